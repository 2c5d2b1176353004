//! Whether an etcd member may go down for a reboot now (SPEC §9, step 1): a pure function of
//! what the cluster shows, each refusal a sentence for `reboot status`.

use std::fmt;

use crate::etcd::model::{quorum, ClusterView, Me};

/// Why an etcd member may not reboot now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// This node is not in the member list.
    NotAMember,
    NoLeader,
    /// A member that has not started, is a learner, or does not answer.
    Member {
        name: String,
        why: &'static str,
    },
    /// etcd raised an alarm (NOSPACE, CORRUPT).
    Alarm {
        member: u64,
        alarm: String,
    },
    /// Without this member, the healthy voters would be fewer than quorum.
    Quorum {
        healthy_others: usize,
        need: usize,
    },
}

/// Every member a started, healthy voter; no learner; no alarm; a leader; and quorum without
/// this member.
pub fn etcd_gates(view: &ClusterView, me: &Me, alarms: &[(u64, String)]) -> Result<(), Closed> {
    let Some(mine) = view.find_me(me) else {
        return Err(Closed::NotAMember);
    };
    if view.leader.is_none() {
        return Err(Closed::NoLeader);
    }
    for m in &view.members {
        let why = if m.name.is_empty() {
            "has not started"
        } else if m.is_learner {
            "is a learner (joining)"
        } else if !m.healthy {
            "does not answer"
        } else {
            continue;
        };
        return Err(Closed::Member {
            name: m.display_name().to_string(),
            why,
        });
    }
    if let Some((member, alarm)) = alarms.first() {
        return Err(Closed::Alarm {
            member: *member,
            alarm: alarm.clone(),
        });
    }
    let voters = view.voters().count();
    let healthy_others = view
        .voters()
        .filter(|v| v.healthy && v.id != mine.id)
        .count();
    let need = quorum(voters);
    if healthy_others < need {
        return Err(Closed::Quorum {
            healthy_others,
            need,
        });
    }
    Ok(())
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::NotAMember => f.write_str("this node is not a member of the etcd cluster"),
            Closed::NoLeader => f.write_str("the etcd cluster has no leader"),
            Closed::Member { name, why } => write!(f, "etcd member {name} {why}"),
            Closed::Alarm { member, alarm } => {
                write!(f, "etcd member {member:x} has raised alarm {alarm}")
            }
            Closed::Quorum {
                healthy_others,
                need,
            } => write!(
                f,
                "without this member {healthy_others} healthy voters would be left and quorum \
                 needs {need}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::model::{Endpoints, MemberInfo};

    const EP: Endpoints = Endpoints {
        tls: true,
        client_port: 2379,
        peer_port: 2380,
    };

    fn member(id: u64, name: &str, learner: bool, healthy: bool) -> MemberInfo {
        MemberInfo {
            id,
            name: name.into(),
            peer_urls: vec![EP.peer_url(format!("10.0.0.{id}"))],
            client_urls: vec![],
            is_learner: learner,
            healthy,
        }
    }

    fn three() -> ClusterView {
        ClusterView {
            members: vec![
                member(1, "i-a", false, true),
                member(2, "i-b", false, true),
                member(3, "i-c", false, true),
            ],
            leader: Some(1),
        }
    }

    #[test]
    fn gates() {
        let me = Me::new("i-a", "10.0.0.1".parse().unwrap(), &EP);
        assert_eq!(etcd_gates(&three(), &me, &[]), Ok(()));
        let mut v = three();
        v.members[2].healthy = false;
        assert_eq!(
            etcd_gates(&v, &me, &[]).unwrap_err().to_string(),
            "etcd member i-c does not answer"
        );
        let mut v = three();
        v.members.push(member(4, "i-d", true, true));
        assert_eq!(
            etcd_gates(&v, &me, &[]).unwrap_err().to_string(),
            "etcd member i-d is a learner (joining)"
        );
        let mut v = three();
        v.leader = None;
        assert_eq!(etcd_gates(&v, &me, &[]), Err(Closed::NoLeader));
        let alarm = [(2, "Nospace".to_string())];
        assert!(matches!(
            etcd_gates(&three(), &me, &alarm),
            Err(Closed::Alarm { .. })
        ));
        // One member: rebooting it is an outage of etcd.
        let one = ClusterView {
            members: vec![member(1, "i-a", false, true)],
            leader: Some(1),
        };
        assert_eq!(
            etcd_gates(&one, &me, &[]),
            Err(Closed::Quorum {
                healthy_others: 0,
                need: 1
            })
        );
        let stranger = Me::new("i-z", "10.0.0.9".parse().unwrap(), &EP);
        assert_eq!(
            etcd_gates(&three(), &stranger, &[]),
            Err(Closed::NotAMember)
        );
    }
}
