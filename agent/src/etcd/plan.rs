//! The etcd membership decision: a pure function from what the node can see (its ASG, the
//! cluster marker in S3, the members it can reach, its data dir) to what it should do (SPEC §7).
//! The code that talks to AWS and etcd only gathers these facts and carries out the plan.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::aws::AsgInstance;

/// This node as an etcd member would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// The member name: the instance id.
    pub name: String,
    pub ip: Ipv4Addr,
    pub peer_url: String,
}

impl Me {
    /// This node: named by its instance id, its peer URL on its private IP.
    pub fn new(instance_id: &str, ip: Ipv4Addr, scheme: &str, peer_port: u16) -> Self {
        Me {
            name: instance_id.to_string(),
            ip,
            peer_url: format!("{scheme}://{ip}:{peer_port}"),
        }
    }
}

/// One member of the cluster as the member list shows it, with whether it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: u64,
    /// Empty for a learner that has not started yet.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
    /// Its client endpoint answered a status request just now.
    pub healthy: bool,
}

/// The cluster as seen from the members that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub members: Vec<MemberInfo>,
    /// The leader's member id, when the member asked knows one.
    pub leader: Option<u64>,
}

impl ClusterView {
    pub fn voters(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members.iter().filter(|m| !m.is_learner)
    }

    pub fn learners(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members.iter().filter(|m| m.is_learner)
    }

    /// The member that is this node: by name, else (a learner not started yet) by peer URL.
    pub fn find_me(&self, me: &Me) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.name == me.name).or_else(|| {
            self.members
                .iter()
                .find(|m| m.name.is_empty() && m.peer_urls.contains(&me.peer_url))
        })
    }
}

/// `etcd/cluster.json` in the state bucket: written once, by the seeder, by conditional put.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub cluster: String,
    /// `ETCD_INITIAL_CLUSTER_TOKEN` of the cluster.
    pub token: String,
    pub seeded_by: String,
    pub seed_peer_url: String,
    pub seeded_at: String,
}

/// What the agent recorded about the data dir when it last configured etcd
/// (`/var/lib/tn-agent/etcd-member.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub cluster_token: String,
    pub name: String,
    pub peer_url: String,
    /// Known when the member was added by `member add`; a seeder's id is made by etcd.
    pub member_id: Option<u64>,
    pub initial_cluster: String,
    pub initial_cluster_state: String,
    pub data_dir: String,
}

/// The data dir as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDir {
    /// No `member/` directory: etcd has never run with it.
    Empty,
    /// etcd data, with the agent's record of it when there is one.
    Present { record: Option<MemberRecord> },
}

/// Everything the decision looks at.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub me: &'a Me,
    /// The etcd ASG's instances (AutoScaling and EC2 view).
    pub asg: &'a [AsgInstance],
    pub marker: Option<&'a Marker>,
    /// `None` when no member answered.
    pub cluster: Option<&'a ClusterView>,
    pub data: &'a DataDir,
}

/// A stale member to remove before joining, and why it is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub id: u64,
    pub name: String,
    pub why: String,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Create the cluster: write the marker, start a one-member cluster.
    Seed,
    /// Start etcd on the existing data: no membership change.
    Restart { why: String },
    /// Move the data dir aside (never delete it), then decide again.
    MoveAside { why: String },
    /// Remove these stale members (each keeps quorum), then add this node as a learner, or reuse
    /// the learner an earlier run added for it.
    Join {
        remove: Vec<Removal>,
        reuse_learner: Option<u64>,
    },
    /// Not yet: look again after a while.
    Wait { why: String },
    /// Going on would risk quorum or data: stop and say why.
    Refuse { why: String },
}

/// Votes needed for a cluster of `voters` voters to make progress.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Decides what this node does about etcd.
pub fn decide(f: &Facts) -> Plan {
    match f.data {
        DataDir::Present { record } => decide_with_data(f, record.as_ref()),
        DataDir::Empty => decide_fresh(f),
    }
}

fn decide_with_data(f: &Facts, record: Option<&MemberRecord>) -> Plan {
    if let Some(rec) = record {
        if rec.name != f.me.name {
            return Plan::MoveAside {
                why: format!(
                    "the data dir belongs to member {} (another instance), not {}",
                    rec.name, f.me.name
                ),
            };
        }
        if let Some(marker) = f.marker {
            if rec.cluster_token != marker.token {
                return Plan::MoveAside {
                    why: format!(
                        "the data dir belongs to another cluster (token {}, the cluster's is {})",
                        rec.cluster_token, marker.token
                    ),
                };
            }
        }
    }
    let Some(cluster) = f.cluster else {
        return match record {
            Some(_) => Plan::Restart {
                why: "this node has the cluster's data and no member answers: restarting \
                      with it (a whole-cluster restart needs every member's data)"
                    .into(),
            },
            None => Plan::Wait {
                why: "the data dir has no record of which cluster it belongs to and no member \
                      answers to tell"
                    .into(),
            },
        };
    };
    let mine = cluster.members.iter().find(|m| {
        m.name == f.me.name
            || record
                .and_then(|r| r.member_id)
                .is_some_and(|id| id == m.id)
    });
    match mine {
        Some(m) => Plan::Restart {
            why: format!(
                "still member {:x} of the cluster with its data: no membership change",
                m.id
            ),
        },
        None => Plan::MoveAside {
            why: "this node's member was removed from the cluster; its data is stale".into(),
        },
    }
}

fn decide_fresh(f: &Facts) -> Plan {
    let Some(cluster) = f.cluster else {
        return match f.marker {
            Some(marker) => Plan::Wait {
                why: format!(
                    "the cluster exists (seeded by {} at {}) but no member answers; \
                     a new cluster is never started once it exists",
                    marker.seeded_by, marker.seeded_at
                ),
            },
            None => match seeder(f.asg) {
                Some(seeder) if seeder == f.me.name => Plan::Seed,
                Some(seeder) => Plan::Wait {
                    why: format!(
                        "waiting for {seeder} (lowest in-service instance id) to seed the cluster"
                    ),
                },
                None => Plan::Wait {
                    why: "no instance of the etcd ASG is in service yet".into(),
                },
            },
        };
    };
    plan_join(f, cluster)
}

/// The seeder: the lowest instance id among in-service instances.
fn seeder(asg: &[AsgInstance]) -> Option<&str> {
    asg.iter()
        .filter(|i| i.in_service() && !i.leaving())
        .map(|i| i.instance_id.as_str())
        .min()
}

/// The alive instance whose private IP is `ip`.
fn owner_of(asg: &[AsgInstance], ip: Option<Ipv4Addr>) -> Option<&AsgInstance> {
    let ip = ip?;
    asg.iter()
        .find(|i| !i.leaving() && i.private_ip == Some(ip))
}

fn alive(asg: &[AsgInstance], id: &str) -> bool {
    asg.iter().any(|i| i.instance_id == id && !i.leaving())
}

/// The host of a member's first peer URL, when it is an IPv4 address.
fn peer_ip(m: &MemberInfo) -> Option<Ipv4Addr> {
    super::host_of(m.peer_urls.first()?)?.parse().ok()
}

fn plan_join(f: &Facts, cluster: &ClusterView) -> Plan {
    let me = f.me;
    let mut remove = Vec::new();
    let mut reuse_learner = None;
    for m in &cluster.members {
        let is_my_url = m.peer_urls.contains(&me.peer_url);
        if m.name.is_empty() {
            // A learner added but not started: whose is it? Its peer URL says.
            if is_my_url {
                reuse_learner = Some(m.id);
                continue;
            }
            match owner_of(f.asg, peer_ip(m)) {
                Some(owner) => {
                    return Plan::Wait {
                        why: format!(
                            "{} is joining (learner {:x} not started yet); one joins at a time",
                            owner.instance_id, m.id
                        ),
                    }
                }
                None => remove.push(Removal {
                    id: m.id,
                    name: String::new(),
                    why: format!(
                        "unstarted learner {:x} at {} belongs to no instance of the ASG",
                        m.id,
                        m.peer_urls.join(",")
                    ),
                }),
            }
        } else if m.name == me.name {
            remove.push(Removal {
                id: m.id,
                name: m.name.clone(),
                why: "this node's earlier member, whose data is not on this node".into(),
            });
        } else if is_my_url {
            remove.push(Removal {
                id: m.id,
                name: m.name.clone(),
                why: format!("its peer URL {} now belongs to {}", me.peer_url, me.name),
            });
        } else if !alive(f.asg, &m.name) {
            remove.push(Removal {
                id: m.id,
                name: m.name.clone(),
                why: format!("instance {} is gone from the ASG", m.name),
            });
        } else if m.is_learner {
            return Plan::Wait {
                why: format!("{} is joining as a learner; one joins at a time", m.name),
            };
        }
    }
    if let Some(why) = quorum_after(cluster, &remove) {
        return Plan::Refuse { why };
    }
    if cluster.leader.is_none() {
        let (healthy, voters) = (
            cluster.voters().filter(|v| v.healthy).count(),
            cluster.voters().count(),
        );
        return Plan::Wait {
            why: format!(
                "the cluster has no leader right now ({healthy} of {voters} voters answer, \
                 quorum needs {})",
                quorum(voters)
            ),
        };
    }
    Plan::Join {
        remove,
        reuse_learner,
    }
}

/// Checks each removal in order against quorum: `Some(why)` when one would leave fewer healthy
/// voters than the remaining voters need.
fn quorum_after(cluster: &ClusterView, remove: &[Removal]) -> Option<String> {
    let mut voters: Vec<&MemberInfo> = cluster.voters().collect();
    for r in remove {
        let Some(pos) = voters.iter().position(|v| v.id == r.id) else {
            continue; // a learner: no vote, no quorum change
        };
        voters.remove(pos);
        let healthy = voters.iter().filter(|v| v.healthy).count();
        let need = quorum(voters.len());
        if voters.is_empty() || healthy < need {
            return Some(format!(
                "removing stale member {} ({:x}: {}) would leave {healthy} healthy of {} voters \
                 and quorum needs {need}; bring the unhealthy members back or restore the \
                 cluster (see docs/etcd.md, Runbooks)",
                display_name(&r.name),
                r.id,
                r.why,
                voters.len()
            ));
        }
    }
    None
}

/// Whether removing member `id` (e.g. this node leaving) keeps quorum: `Err(why)` if not.
pub fn check_leave(cluster: &ClusterView, id: u64) -> Result<(), String> {
    let Some(member) = cluster.members.iter().find(|m| m.id == id) else {
        return Ok(());
    };
    if member.is_learner {
        return Ok(());
    }
    let rest: Vec<_> = cluster.voters().filter(|v| v.id != id).collect();
    if rest.is_empty() {
        return Err(format!(
            "member {} is the cluster's only voter; removing it would end the cluster",
            display_name(&member.name)
        ));
    }
    let healthy = rest.iter().filter(|v| v.healthy).count();
    let need = quorum(rest.len());
    if healthy < need {
        return Err(format!(
            "removing member {} would leave {healthy} healthy of {} voters and quorum needs {need}",
            display_name(&member.name),
            rest.len()
        ));
    }
    Ok(())
}

fn display_name(name: &str) -> &str {
    if name.is_empty() {
        "(unstarted)"
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, ip: u8, state: &str) -> AsgInstance {
        AsgInstance {
            instance_id: id.into(),
            lifecycle_state: state.into(),
            health_status: "Healthy".into(),
            availability_zone: "us-east-1a".into(),
            private_ip: Some(Ipv4Addr::new(127, 0, 1, ip)),
            launch_time: None,
            ec2_state: Some("running".into()),
        }
    }

    fn url(ip: u8) -> String {
        format!("https://127.0.1.{ip}:2380")
    }

    fn member(id: u64, name: &str, ip: u8, learner: bool, healthy: bool) -> MemberInfo {
        MemberInfo {
            id,
            name: name.into(),
            peer_urls: vec![url(ip)],
            client_urls: if name.is_empty() {
                vec![]
            } else {
                vec![format!("https://127.0.1.{ip}:2379")]
            },
            is_learner: learner,
            healthy,
        }
    }

    fn me(name: &str, ip: u8) -> Me {
        Me {
            name: name.into(),
            ip: Ipv4Addr::new(127, 0, 1, ip),
            peer_url: url(ip),
        }
    }

    fn marker() -> Marker {
        Marker {
            cluster: "prod".into(),
            token: "prod-abc".into(),
            seeded_by: "i-a".into(),
            seed_peer_url: url(1),
            seeded_at: "2026-11-24T00:00:00Z".into(),
        }
    }

    fn record(name: &str, token: &str) -> MemberRecord {
        MemberRecord {
            cluster_token: token.into(),
            name: name.into(),
            peer_url: String::new(),
            member_id: None,
            initial_cluster: String::new(),
            initial_cluster_state: "existing".into(),
            data_dir: "/var/lib/etcd".into(),
        }
    }

    fn view(members: Vec<MemberInfo>) -> ClusterView {
        let leader = members
            .iter()
            .find(|m| !m.is_learner && m.healthy)
            .map(|m| m.id);
        ClusterView { members, leader }
    }

    /// The usual ASG: three instances a, b, c at .1, .2, .3 all in service.
    fn asg3() -> Vec<AsgInstance> {
        vec![
            inst("i-a", 1, "InService"),
            inst("i-b", 2, "InService"),
            inst("i-c", 3, "InService"),
        ]
    }

    fn plan(
        me_: &Me,
        asg: &[AsgInstance],
        marker: Option<&Marker>,
        cluster: Option<&ClusterView>,
        data: &DataDir,
    ) -> Plan {
        decide(&Facts {
            me: me_,
            asg,
            marker,
            cluster,
            data,
        })
    }

    fn is_wait(p: &Plan, containing: &str) -> bool {
        matches!(p, Plan::Wait { why } if why.contains(containing))
    }

    #[test]
    fn cold_start() {
        let asg = asg3();
        // The lowest in-service id seeds; the others wait for it.
        assert_eq!(
            plan(&me("i-a", 1), &asg, None, None, &DataDir::Empty),
            Plan::Seed
        );
        let p = plan(&me("i-b", 2), &asg, None, None, &DataDir::Empty);
        assert!(is_wait(&p, "waiting for i-a"), "{p:?}");
        // A lower id that is not in service yet does not seed, nor is waited for.
        let mut asg = asg3();
        asg.push(inst("i-0", 9, "Pending"));
        assert_eq!(
            plan(&me("i-a", 1), &asg, None, None, &DataDir::Empty),
            Plan::Seed
        );
        // A single-node ASG seeds.
        let one = vec![inst("i-a", 1, "InService")];
        assert_eq!(
            plan(&me("i-a", 1), &one, None, None, &DataDir::Empty),
            Plan::Seed
        );
        // Nobody in service: wait.
        let pending = vec![inst("i-a", 1, "Pending")];
        let p = plan(&me("i-a", 1), &pending, None, None, &DataDir::Empty);
        assert!(is_wait(&p, "in service"), "{p:?}");
    }

    #[test]
    fn marker_present_but_nobody_answers_never_seeds() {
        let m = marker();
        for who in [me("i-a", 1), me("i-b", 2)] {
            let p = plan(&who, &asg3(), Some(&m), None, &DataDir::Empty);
            assert!(is_wait(&p, "never started once it exists"), "{p:?}");
        }
    }

    #[test]
    fn joins_a_seeded_cluster() {
        let v = view(vec![member(1, "i-a", 1, false, true)]);
        let p = plan(
            &me("i-b", 2),
            &asg3(),
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        assert_eq!(
            p,
            Plan::Join {
                remove: vec![],
                reuse_learner: None
            }
        );
        // Even without the marker (lost bucket), a running cluster is joined, not re-seeded.
        let p = plan(&me("i-c", 3), &asg3(), None, Some(&v), &DataDir::Empty);
        assert!(matches!(p, Plan::Join { .. }), "{p:?}");
    }

    #[test]
    fn joiners_go_one_at_a_time() {
        // i-b's learner was added but has not started: i-c waits.
        let v = view(vec![
            member(1, "i-a", 1, false, true),
            member(2, "", 2, true, false),
        ]);
        let p = plan(
            &me("i-c", 3),
            &asg3(),
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        assert!(is_wait(&p, "i-b is joining"), "{p:?}");
        // i-b started as a learner and is catching up: i-c still waits.
        let v = view(vec![
            member(1, "i-a", 1, false, true),
            member(2, "i-b", 2, true, true),
        ]);
        let p = plan(
            &me("i-c", 3),
            &asg3(),
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        assert!(is_wait(&p, "i-b is joining as a learner"), "{p:?}");
    }

    #[test]
    fn reuses_its_own_unstarted_learner() {
        let v = view(vec![
            member(1, "i-a", 1, false, true),
            member(7, "", 2, true, false),
        ]);
        let p = plan(
            &me("i-b", 2),
            &asg3(),
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        assert_eq!(
            p,
            Plan::Join {
                remove: vec![],
                reuse_learner: Some(7)
            }
        );
    }

    #[test]
    fn replacement_removes_the_gone_member_first() {
        // i-c was terminated and replaced by i-d at a new IP.
        let asg = vec![
            inst("i-a", 1, "InService"),
            inst("i-b", 2, "InService"),
            inst("i-d", 4, "InService"),
        ];
        let v = view(vec![
            member(1, "i-a", 1, false, true),
            member(2, "i-b", 2, false, true),
            member(3, "i-c", 3, false, false),
        ]);
        let p = plan(
            &me("i-d", 4),
            &asg,
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        assert_eq!(
            p,
            Plan::Join {
                remove: vec![Removal {
                    id: 3,
                    name: "i-c".into(),
                    why: "instance i-c is gone from the ASG".into()
                }],
                reuse_learner: None
            }
        );
        // Terminating or terminated in EC2 counts as gone too.
        let mut asg2 = asg.clone();
        let mut c = inst("i-c", 3, "Terminating:Wait");
        c.ec2_state = Some("running".into());
        asg2.push(c);
        let p = plan(
            &me("i-d", 4),
            &asg2,
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        assert!(
            matches!(&p, Plan::Join { remove, .. } if remove.len() == 1),
            "{p:?}"
        );
    }

    #[test]
    fn an_unreachable_member_whose_instance_lives_is_never_removed() {
        // i-c is rebooting: down, but its instance is in the ASG.
        let asg = vec![
            inst("i-a", 1, "InService"),
            inst("i-b", 2, "InService"),
            inst("i-c", 3, "InService"),
            inst("i-d", 4, "InService"),
        ];
        let v = view(vec![
            member(1, "i-a", 1, false, true),
            member(2, "i-b", 2, false, true),
            member(3, "i-c", 3, false, false),
        ]);
        let p = plan(
            &me("i-d", 4),
            &asg,
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        assert_eq!(
            p,
            Plan::Join {
                remove: vec![],
                reuse_learner: None
            }
        );
    }

    #[test]
    fn a_reused_ip_makes_the_old_member_stale() {
        // i-c was replaced by i-d, which got i-c's IP.
        let asg = vec![
            inst("i-a", 1, "InService"),
            inst("i-b", 2, "InService"),
            inst("i-d", 3, "InService"),
        ];
        let v = view(vec![
            member(1, "i-a", 1, false, true),
            member(2, "i-b", 2, false, true),
            member(3, "i-c", 3, false, false),
        ]);
        let p = plan(
            &me("i-d", 3),
            &asg,
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        let Plan::Join { remove, .. } = p else {
            panic!("{p:?}")
        };
        assert_eq!(remove.len(), 1);
        assert_eq!(remove[0].id, 3);
        assert_eq!(
            remove[0].why,
            "its peer URL https://127.0.1.3:2380 now belongs to i-d"
        );
    }

    #[test]
    fn refuses_a_removal_that_would_lose_quorum() {
        // Two of three members are down; one of them is gone from the ASG.
        let asg = vec![
            inst("i-a", 1, "InService"),
            inst("i-b", 2, "InService"),
            inst("i-d", 4, "InService"),
        ];
        let v = ClusterView {
            members: vec![
                member(1, "i-a", 1, false, true),
                member(2, "i-b", 2, false, false),
                member(3, "i-c", 3, false, false),
            ],
            leader: None, // two of three down: no leader either
        };
        let p = plan(
            &me("i-d", 4),
            &asg,
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        let Plan::Refuse { why } = p else {
            panic!("{p:?}")
        };
        assert!(
            why.starts_with("removing stale member i-c (3: instance i-c is gone from the ASG) would leave 1 healthy of 2 voters and quorum needs 2"),
            "{why}"
        );
        // Removing a stale learner never touches quorum.
        let v = ClusterView {
            members: vec![
                member(1, "i-a", 1, false, true),
                member(2, "i-b", 2, false, false),
                member(3, "", 3, true, false),
            ],
            leader: Some(1),
        };
        let p = plan(
            &me("i-d", 4),
            &asg,
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        assert!(
            matches!(&p, Plan::Join { remove, .. } if remove.len() == 1),
            "{p:?}"
        );
    }

    #[test]
    fn no_leader_means_wait() {
        let v = ClusterView {
            members: vec![member(1, "i-a", 1, false, true)],
            leader: None,
        };
        let p = plan(
            &me("i-b", 2),
            &asg3(),
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        assert!(is_wait(&p, "no leader"), "{p:?}");
    }

    #[test]
    fn reboot_with_data_changes_nothing() {
        let data = DataDir::Present {
            record: Some(record("i-b", "prod-abc")),
        };
        let v = view(vec![
            member(1, "i-a", 1, false, true),
            member(2, "i-b", 2, false, false),
            member(3, "i-c", 3, false, true),
        ]);
        let p = plan(&me("i-b", 2), &asg3(), Some(&marker()), Some(&v), &data);
        assert!(matches!(p, Plan::Restart { .. }), "{p:?}");
        // The whole cluster rebooting: nobody answers, and the data is ours.
        let p = plan(&me("i-b", 2), &asg3(), Some(&marker()), None, &data);
        assert!(matches!(p, Plan::Restart { .. }), "{p:?}");
    }

    #[test]
    fn stale_data_is_moved_aside() {
        let m = marker();
        // Our member was removed while we were away.
        let data = DataDir::Present {
            record: Some(record("i-b", "prod-abc")),
        };
        let v = view(vec![
            member(1, "i-a", 1, false, true),
            member(3, "i-c", 3, false, true),
        ]);
        let p = plan(&me("i-b", 2), &asg3(), Some(&m), Some(&v), &data);
        assert!(
            matches!(&p, Plan::MoveAside { why } if why.contains("removed")),
            "{p:?}"
        );
        // Another cluster's data (a reused volume, a restored image).
        let other = DataDir::Present {
            record: Some(record("i-b", "old-cluster")),
        };
        let p = plan(&me("i-b", 2), &asg3(), Some(&m), None, &other);
        assert!(
            matches!(&p, Plan::MoveAside { why } if why.contains("another cluster")),
            "{p:?}"
        );
        // Another instance's data.
        let theirs = DataDir::Present {
            record: Some(record("i-z", "prod-abc")),
        };
        let p = plan(&me("i-b", 2), &asg3(), Some(&m), None, &theirs);
        assert!(
            matches!(&p, Plan::MoveAside { why } if why.contains("i-z")),
            "{p:?}"
        );
        // Data without a record: a member keeps it, a non-member moves it aside, and with
        // nobody to ask, wait.
        let unknown = DataDir::Present { record: None };
        let with_me = view(vec![
            member(2, "i-b", 2, false, false),
            member(1, "i-a", 1, false, true),
        ]);
        let p = plan(&me("i-b", 2), &asg3(), Some(&m), Some(&with_me), &unknown);
        assert!(matches!(p, Plan::Restart { .. }), "{p:?}");
        let p = plan(&me("i-b", 2), &asg3(), Some(&m), Some(&v), &unknown);
        assert!(matches!(p, Plan::MoveAside { .. }), "{p:?}");
        let p = plan(&me("i-b", 2), &asg3(), Some(&m), None, &unknown);
        assert!(is_wait(&p, "no record"), "{p:?}");
    }

    #[test]
    fn a_node_without_its_data_replaces_its_own_old_member() {
        // i-b's data dir was moved aside; its old member is still listed (down).
        let v = view(vec![
            member(1, "i-a", 1, false, true),
            member(2, "i-b", 2, false, false),
            member(3, "i-c", 3, false, true),
        ]);
        let p = plan(
            &me("i-b", 2),
            &asg3(),
            Some(&marker()),
            Some(&v),
            &DataDir::Empty,
        );
        let Plan::Join { remove, .. } = p else {
            panic!("{p:?}")
        };
        assert_eq!(remove.len(), 1);
        assert_eq!(remove[0].id, 2);
    }

    #[test]
    fn leave_keeps_quorum() {
        let healthy3 = view(vec![
            member(1, "i-a", 1, false, true),
            member(2, "i-b", 2, false, true),
            member(3, "i-c", 3, false, true),
        ]);
        assert_eq!(check_leave(&healthy3, 3), Ok(()));
        let one_down = view(vec![
            member(1, "i-a", 1, false, true),
            member(2, "i-b", 2, false, false),
            member(3, "i-c", 3, false, true),
        ]);
        assert_eq!(
            check_leave(&one_down, 3),
            Err("removing member i-c would leave 1 healthy of 2 voters and quorum needs 2".into())
        );
        let single = view(vec![member(1, "i-a", 1, false, true)]);
        assert!(check_leave(&single, 1).unwrap_err().contains("only voter"));
        // A learner can always leave; so can a member that is not there.
        let with_learner = view(vec![
            member(1, "i-a", 1, false, true),
            member(2, "i-b", 2, true, true),
        ]);
        assert_eq!(check_leave(&with_learner, 2), Ok(()));
        assert_eq!(check_leave(&with_learner, 9), Ok(()));
    }

    #[test]
    fn quorum_sizes() {
        assert_eq!((1..=6).map(quorum).collect::<Vec<_>>(), [1, 2, 2, 3, 3, 4]);
    }
}
