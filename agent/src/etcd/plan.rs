//! The etcd membership decision: a pure function from what the node can see (its ASG, the
//! cluster marker in S3, the members it can reach, its data dir) to what it should do (SPEC §7).
//! The code that talks to AWS and etcd only gathers these facts and carries out the plan.
//!
//! A new situation is one more branch here with its typed reason, and one more row in the
//! table of `plan_tests.rs` (docs/etcd.md, "Adding a situation").

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::{display_name, quorum, ClusterView, Marker, Me, MemberInfo, MemberRecord};
use crate::aws::AsgInstance;

/// How old the ASG view may be when a removal is decided on it: an instance launched since the
/// last look must not have its new learner taken for a stale one.
pub const FRESH: Duration = Duration::from_secs(1);

/// How long after the seeding a founder whose member never started may still start `new` while
/// no member answers (SPEC §7.6). A cold start's founders boot within minutes; later, a node
/// that finds nobody answering and no trace of its own run may be a founder that lost its data
/// and its disk during a whole-cluster outage, which must never come back under its old member
/// id: it waits for the members instead. (With members answering, the member list tells.)
pub const FOUNDING_WINDOW: Duration = Duration::from_secs(3600);

/// The data dir as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDir {
    /// No `member/` directory: etcd has never run with it, or it is not there (a volume not
    /// mounted yet, a disk lost); the agent's record of the last configuration, if any.
    Empty { record: Option<MemberRecord> },
    /// etcd data, with the agent's record of it when there is one.
    Present { record: Option<MemberRecord> },
}

impl DataDir {
    /// The agent's record of the data dir, if any.
    pub fn record(&self) -> Option<&MemberRecord> {
        match self {
            DataDir::Empty { record } | DataDir::Present { record } => record.as_ref(),
        }
    }
}

/// Everything the decision looks at.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub me: &'a Me,
    /// The etcd ASG's instances (AutoScaling and EC2 view).
    pub asg: &'a [AsgInstance],
    /// How long ago the ASG was listed.
    pub asg_age: Duration,
    pub marker: Option<&'a Marker>,
    /// How long ago the marker says it was written (`None`: no marker, or its time cannot be
    /// read or is ahead of this node's clock).
    pub marker_age: Option<Duration>,
    /// `None` when no member answered.
    pub cluster: Option<&'a ClusterView>,
    /// Client URLs that accept connections but did not answer as etcd (looked at only when
    /// nobody answered and there is no marker).
    pub listening: &'a [String],
    pub data: &'a DataDir,
    /// How long each other learner (by member id) has been seen unhealthy, by this node's runs.
    pub learners_unhealthy_for: &'a BTreeMap<u64, Duration>,
    /// `etcd.learner_timeout_seconds`: an unhealthy learner that blocks joins this long is
    /// removed.
    pub learner_timeout: Duration,
    /// Whether `etcd.env` exists: etcd can have started from this node's configuration only
    /// if it does (the unit reads it, and starts only after a bootstrap that wrote it).
    pub env_written: bool,
    /// This node's member as the members' peer ports list it, asked only when this node may
    /// found ([`may_found_at_once`]): `Some(id)` when every peer port that answered lists it as
    /// never started. Their client ports are not asked then (`cluster` is `None`): during a
    /// cold start they answer only once a quorum of founders runs.
    pub unstarted_per_peers: Option<u64>,
}

/// A stale member to remove before joining, and why it is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub id: u64,
    pub name: String,
    pub why: Stale,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Create the cluster: write the marker, start a one-member cluster.
    Seed,
    /// This node wrote the marker but its run ended before etcd could start (the reply to the
    /// put was lost, or the node crashed before writing its files): start the one-member cluster
    /// the marker names.
    ResumeSeed,
    /// A founder (not the seeder) whose member has never started: start `new` with the
    /// founders (SPEC §7.6).
    Found(Found),
    /// Start etcd on the existing data: no membership change.
    Restart(Restart),
    /// Move the data dir aside (never delete it), then decide again.
    MoveAside(MoveAside),
    /// Remove these stale members (each keeps quorum), then add this node as a learner, or reuse
    /// the learner an earlier run added for it.
    Join {
        remove: Vec<Removal>,
        reuse_learner: Option<u64>,
    },
    /// A removal is needed but the ASG view is older than [`FRESH`]: list it again, decide again.
    Relist,
    /// Not yet: look again after a while.
    Wait(Wait),
    /// Going on would risk quorum or data: stop and say why.
    Refuse(Refuse),
}

/// Why a founder starts `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No member answers yet (the founders are starting), and nothing on this node says its
    /// member ever ran.
    NobodyAnswers { seeded_by: String },
    /// The member list has this node's member, never started (no client URL).
    Unstarted { id: u64 },
}

/// Why etcd restarts on its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// The record says the data is this cluster's and nobody answers (a whole-cluster restart).
    NobodyAnswers,
    /// The member list still has this node's member.
    StillMember { id: u64 },
}

/// Why the data dir is moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveAside {
    /// The record names another instance.
    OtherInstance { owner: String, me: String },
    /// The record's token is not the marker's.
    OtherCluster { theirs: String, ours: String },
    /// The member list no longer has this node's member.
    Removed,
}

/// Why a member is stale (SPEC §7.3: gone, or its peer URL is someone else's now).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stale {
    /// An unstarted learner whose peer URL belongs to no live instance.
    OrphanLearner { id: u64, peer_urls: Vec<String> },
    /// A founding member that never started and that no live instance will start (its instance
    /// died before starting it; a voter that never answers blocks every join).
    UnstartedFounder { id: u64, peer_urls: Vec<String> },
    /// This node's earlier member, whose data is not on this node.
    OwnEarlierMember,
    /// Its peer URL now belongs to this node.
    UrlTaken { peer_url: String, by: String },
    /// Its instance is gone from the ASG.
    InstanceGone { instance: String },
    /// Another node's learner (no vote) that has not answered for this long while blocking
    /// every join (etcd takes one learner at a time).
    UnhealthyLearner { owner: String, secs: u64 },
}

/// Why not now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The marker exists and no member answers: never seed again.
    NobodyAnswers {
        seeded_by: String,
        seeded_at: String,
    },
    /// Another instance seeds.
    ForSeeder {
        seeder: String,
    },
    NoInstanceInService,
    /// Data without a record and nobody to ask whose it is.
    UnknownData,
    /// Another founder has not started yet (a founder's late start).
    FounderStarting {
        owner: String,
        id: u64,
    },
    /// Another instance's learner was added and has not started.
    UnstartedLearner {
        owner: String,
        id: u64,
        /// Seconds left before it is removed as an unhealthy learner.
        left: u64,
    },
    /// Another member is a learner catching up.
    LearnerCatchingUp {
        name: String,
    },
    /// Another member is a learner that does not answer.
    LearnerDown {
        name: String,
        id: u64,
        /// Seconds left before it is removed as an unhealthy learner.
        left: u64,
    },
    NoLeader {
        healthy: usize,
        voters: usize,
        need: usize,
    },
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refuse {
    /// No marker and nobody answers as etcd, but client ports accept connections: an etcd this
    /// node cannot talk to may hold a cluster. Never seed over it.
    Unreadable { endpoints: Vec<String> },
    /// The data dir is empty but this node's member has run and is still listed: the data is
    /// elsewhere (a volume not mounted yet) or lost, and only an operator can tell.
    DataMissing { id: u64, data_dir: String },
    /// Removing this stale member would leave the rest without quorum.
    LosesQuorum {
        removal: Removal,
        healthy: usize,
        voters: usize,
        need: usize,
    },
}

/// Why this node may not leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaveRefused {
    OnlyVoter {
        name: String,
    },
    LosesQuorum {
        name: String,
        healthy: usize,
        voters: usize,
        need: usize,
    },
}

/// Decides what this node does about etcd.
pub fn decide(f: &Facts) -> Plan {
    let plan = match f.data {
        DataDir::Present { record } => decide_with_data(f, record.as_ref()),
        DataDir::Empty { record } => decide_fresh(f, record.as_ref()),
    };
    let removes = matches!(&plan, Plan::Join { remove, .. } if !remove.is_empty());
    if removes && f.asg_age > FRESH {
        return Plan::Relist;
    }
    plan
}

fn decide_with_data(f: &Facts, record: Option<&MemberRecord>) -> Plan {
    if let Some(rec) = record {
        if rec.name != f.me.name {
            return Plan::MoveAside(MoveAside::OtherInstance {
                owner: rec.name.clone(),
                me: f.me.name.clone(),
            });
        }
        if let Some(marker) = f.marker {
            if rec.cluster_token != marker.token {
                return Plan::MoveAside(MoveAside::OtherCluster {
                    theirs: rec.cluster_token.clone(),
                    ours: marker.token.clone(),
                });
            }
        }
    }
    let Some(cluster) = f.cluster else {
        return match record {
            Some(_) => Plan::Restart(Restart::NobodyAnswers),
            None => Plan::Wait(Wait::UnknownData),
        };
    };
    let mine = cluster.members.iter().find(|m| {
        m.name == f.me.name
            || record
                .and_then(|r| r.member_id)
                .is_some_and(|id| id == m.id)
    });
    match mine {
        Some(m) => Plan::Restart(Restart::StillMember { id: m.id }),
        None => Plan::MoveAside(MoveAside::Removed),
    }
}

fn decide_fresh(f: &Facts, record: Option<&MemberRecord>) -> Plan {
    if let (Some(rec), Some(cluster)) = (record, f.cluster) {
        let this_cluster = f.marker.is_none_or(|m| m.token == rec.cluster_token);
        let started = cluster.members.iter().find(|m| {
            !m.name.is_empty()
                && !founder_never_started(m)
                && m.name == f.me.name
                && rec.name == f.me.name
        });
        if let (true, Some(m)) = (this_cluster, started) {
            return Plan::Refuse(Refuse::DataMissing {
                id: m.id,
                data_dir: rec.data_dir.clone(),
            });
        }
    }
    let Some(cluster) = f.cluster else {
        return match f.marker {
            Some(marker) if seeded_but_never_started(f, marker, record) => Plan::ResumeSeed,
            Some(marker) if founder_may_found(f, marker, record) => {
                Plan::Found(match f.unstarted_per_peers {
                    Some(id) => Found::Unstarted { id },
                    None => Found::NobodyAnswers {
                        seeded_by: marker.seeded_by.clone(),
                    },
                })
            }
            Some(marker) => Plan::Wait(Wait::NobodyAnswers {
                seeded_by: marker.seeded_by.clone(),
                seeded_at: marker.seeded_at.clone(),
            }),
            None if !f.listening.is_empty() => Plan::Refuse(Refuse::Unreadable {
                endpoints: f.listening.to_vec(),
            }),
            None => match seeder(f.asg) {
                Some(seeder) if seeder == f.me.name => Plan::Seed,
                Some(seeder) => Plan::Wait(Wait::ForSeeder {
                    seeder: seeder.to_string(),
                }),
                None => Plan::Wait(Wait::NoInstanceInService),
            },
        };
    };
    plan_join(f, cluster)
}

/// Whether this node wrote the marker and etcd can never have started from it: no member
/// answers, the data dir is empty, there is no env file (the etcd unit starts only after a
/// bootstrap that wrote it), and the record, if the run got that far, is the seeding one.
/// Joining needs a running member, so nobody else can have joined either.
fn seeded_but_never_started(f: &Facts, marker: &Marker, record: Option<&MemberRecord>) -> bool {
    let mine = marker.seeded_by == f.me.name && marker.seed_peer_url == f.me.peer_url;
    let seeding_record = record.is_none_or(|r| {
        r.name == f.me.name
            && r.cluster_token == marker.token
            && r.initial_cluster_state == super::model::ClusterState::New
            && r.member_id.is_none()
    });
    mine && seeding_record && !f.env_written
}

/// Whether this node, its data dir empty, is a founder that may start `new` if no member lists
/// its member as started ([`founder_may_found`]): then the peer ports' word settles the plan.
pub fn may_found_at_once(f: &Facts) -> bool {
    match (f.data, f.marker) {
        (DataDir::Empty { record }, Some(marker)) => founder_may_found(f, marker, record.as_ref()),
        _ => false,
    }
}

/// Whether this node is a founder other than the seeder whose member can never have started,
/// while nobody answers: named by the marker's founders, no env file (the etcd unit starts only
/// after a bootstrap that wrote it), a record, if any, that is this cluster's founding one, and
/// the marker written less than [`FOUNDING_WINDOW`] ago.
fn founder_may_found(f: &Facts, marker: &Marker, record: Option<&MemberRecord>) -> bool {
    !marker.founders.is_empty()
        && marker.seeded_by != f.me.name
        && marker.founded_by(f.me)
        && founding_record(f, marker, record)
        && !f.env_written
        && f.marker_age.is_some_and(|age| age < FOUNDING_WINDOW)
}

/// No record, or the one a founding run of this node writes (this cluster's, `new`, no member
/// id): nothing says this node ever ran as another kind of member.
fn founding_record(f: &Facts, marker: &Marker, record: Option<&MemberRecord>) -> bool {
    record.is_none_or(|r| {
        r.name == f.me.name
            && r.cluster_token == marker.token
            && r.initial_cluster_state == super::model::ClusterState::New
            && r.member_id.is_none()
    })
}

/// A founding member that has never started: a voter (founders are; a learner is added by a
/// join) that has published no client URL (etcd lists a founder's name from the initial
/// cluster, but a member publishes its client URLs only once it runs) and does not answer.
fn founder_never_started(m: &MemberInfo) -> bool {
    !m.is_learner && m.client_urls.is_empty() && !m.healthy
}

/// The seeder: the lowest instance id among in-service instances.
fn seeder(asg: &[AsgInstance]) -> Option<&str> {
    asg.iter()
        .filter(|i| i.in_service() && !i.leaving())
        .map(|i| i.instance_id.as_str())
        .min()
}

/// The instance, not gone, whose private IP is the member's peer host.
fn owner_of<'a>(asg: &'a [AsgInstance], m: &MemberInfo) -> Option<&'a AsgInstance> {
    let ip = m.peer_ip()?;
    asg.iter().find(|i| !i.gone() && i.private_ip == Some(ip))
}

/// Whether the instance is in the ASG and not gone (a stopped one is alive).
fn alive(asg: &[AsgInstance], id: &str) -> bool {
    asg.iter().any(|i| i.instance_id == id && !i.gone())
}

fn plan_join(f: &Facts, cluster: &ClusterView) -> Plan {
    let me = f.me;
    let mut remove = Vec::new();
    let mut reuse_learner = None;
    for m in &cluster.members {
        let is_my_url = m.peer_urls.contains(&me.peer_url);
        let stale = if founder_never_started(m) {
            // A founder that has not started: this node's (start `new`, SPEC §7.6), another's
            // late start (wait), or one that died before starting (remove it).
            let founding = f
                .marker
                .is_some_and(|mk| mk.founded_by(me) && founding_record(f, mk, f.data.record()));
            if is_my_url && founding {
                return Plan::Found(Found::Unstarted { id: m.id });
            }
            match owner_of(f.asg, m) {
                Some(owner) if !is_my_url => {
                    return Plan::Wait(Wait::FounderStarting {
                        owner: owner.instance_id.clone(),
                        id: m.id,
                    })
                }
                _ => Stale::UnstartedFounder {
                    id: m.id,
                    peer_urls: m.peer_urls.clone(),
                },
            }
        } else if m.name.is_empty() {
            // A learner added but not started: whose is it? Its peer URL says.
            if is_my_url {
                reuse_learner = Some(m.id);
                continue;
            }
            match owner_of(f.asg, m) {
                Some(owner) => match unhealthy_long_enough(f, m, &owner.instance_id) {
                    Ok(stale) => stale,
                    Err(left) => {
                        return Plan::Wait(Wait::UnstartedLearner {
                            owner: owner.instance_id.clone(),
                            id: m.id,
                            left,
                        })
                    }
                },
                None => Stale::OrphanLearner {
                    id: m.id,
                    peer_urls: m.peer_urls.clone(),
                },
            }
        } else if m.name == me.name {
            Stale::OwnEarlierMember
        } else if m.healthy && !is_my_url {
            // It answers: whatever the ASG says, it is not stale (SPEC §7.3).
            if m.is_learner {
                return Plan::Wait(Wait::LearnerCatchingUp {
                    name: m.name.clone(),
                });
            }
            continue;
        } else if is_my_url {
            Stale::UrlTaken {
                peer_url: me.peer_url.clone(),
                by: me.name.clone(),
            }
        } else if !alive(f.asg, &m.name) {
            Stale::InstanceGone {
                instance: m.name.clone(),
            }
        } else if m.is_learner {
            match unhealthy_long_enough(f, m, &m.name) {
                Ok(stale) => stale,
                Err(left) => {
                    return Plan::Wait(Wait::LearnerDown {
                        name: m.name.clone(),
                        id: m.id,
                        left,
                    })
                }
            }
        } else {
            continue;
        };
        remove.push(Removal {
            id: m.id,
            name: m.name.clone(),
            why: stale,
        });
    }
    if let Some(refusal) = quorum_after(cluster, &remove) {
        return Plan::Refuse(refusal);
    }
    if cluster.leader.is_none() {
        let voters = cluster.voters().count();
        return Plan::Wait(Wait::NoLeader {
            healthy: cluster.voters().filter(|v| v.healthy).count(),
            voters,
            need: quorum(voters),
        });
    }
    Plan::Join {
        remove,
        reuse_learner,
    }
}

/// An unhealthy learner of another live instance: stale once it has been seen unhealthy for
/// `learner_timeout` (it blocks every join meanwhile, and a learner has no vote, so removing it
/// costs no quorum; its node moves its data aside and joins again when it comes back);
/// `Err(seconds left)` before.
fn unhealthy_long_enough(f: &Facts, m: &MemberInfo, owner: &str) -> Result<Stale, u64> {
    let seen = f
        .learners_unhealthy_for
        .get(&m.id)
        .copied()
        .unwrap_or_default();
    if seen >= f.learner_timeout {
        Ok(Stale::UnhealthyLearner {
            owner: owner.to_string(),
            secs: seen.as_secs(),
        })
    } else {
        Err((f.learner_timeout - seen).as_secs().max(1))
    }
}

/// Checks each removal in order against quorum: a refusal when one would leave fewer healthy
/// voters than the remaining voters need.
fn quorum_after(cluster: &ClusterView, remove: &[Removal]) -> Option<Refuse> {
    let mut voters: Vec<&MemberInfo> = cluster.voters().collect();
    for r in remove {
        let Some(pos) = voters.iter().position(|v| v.id == r.id) else {
            continue; // a learner: no vote, no quorum change
        };
        voters.remove(pos);
        let healthy = voters.iter().filter(|v| v.healthy).count();
        let need = quorum(voters.len());
        if voters.is_empty() || healthy < need {
            return Some(Refuse::LosesQuorum {
                removal: r.clone(),
                healthy,
                voters: voters.len(),
                need,
            });
        }
    }
    None
}

/// Whether removing member `id` (e.g. this node leaving) keeps quorum.
pub fn check_leave(cluster: &ClusterView, id: u64) -> Result<(), LeaveRefused> {
    let Some(member) = cluster.members.iter().find(|m| m.id == id) else {
        return Ok(());
    };
    if member.is_learner {
        return Ok(());
    }
    let name = member.display_name().to_string();
    let rest: Vec<_> = cluster.voters().filter(|v| v.id != id).collect();
    if rest.is_empty() {
        return Err(LeaveRefused::OnlyVoter { name });
    }
    let healthy = rest.iter().filter(|v| v.healthy).count();
    let need = quorum(rest.len());
    if healthy < need {
        return Err(LeaveRefused::LosesQuorum {
            name,
            healthy,
            voters: rest.len(),
            need,
        });
    }
    Ok(())
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::NobodyAnswers { seeded_by } => write!(
                f,
                "a founding member of the cluster {seeded_by} seeded, whose member never \
                 started: starting `new` with the founders at once"
            ),
            Found::Unstarted { id } => write!(
                f,
                "a founding member of the cluster; its member {id:x} is listed but never \
                 started: starting `new` with the founders"
            ),
        }
    }
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restart::NobodyAnswers => f.write_str(
                "this node has the cluster's data and no member answers: restarting with it \
                 (a whole-cluster restart needs every member's data)",
            ),
            Restart::StillMember { id } => write!(
                f,
                "still member {id:x} of the cluster with its data: no membership change"
            ),
        }
    }
}

impl fmt::Display for MoveAside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoveAside::OtherInstance { owner, me } => write!(
                f,
                "the data dir belongs to member {owner} (another instance), not {me}"
            ),
            MoveAside::OtherCluster { theirs, ours } => write!(
                f,
                "the data dir belongs to another cluster (token {theirs}, the cluster's is {ours})"
            ),
            MoveAside::Removed => {
                f.write_str("this node's member was removed from the cluster; its data is stale")
            }
        }
    }
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stale::OrphanLearner { id, peer_urls } => write!(
                f,
                "unstarted learner {id:x} at {} belongs to no instance of the ASG",
                peer_urls.join(",")
            ),
            Stale::UnstartedFounder { id, peer_urls } => write!(
                f,
                "founding member {id:x} at {} never started, and no instance of the ASG will \
                 start it",
                peer_urls.join(",")
            ),
            Stale::OwnEarlierMember => {
                f.write_str("this node's earlier member, whose data is not on this node")
            }
            Stale::UrlTaken { peer_url, by } => {
                write!(f, "its peer URL {peer_url} now belongs to {by}")
            }
            Stale::InstanceGone { instance } => {
                write!(f, "instance {instance} is gone from the ASG")
            }
            Stale::UnhealthyLearner { owner, secs } => write!(
                f,
                "learner of {owner} has not answered for {secs}s while blocking every join \
                 (etcd.learner_timeout_seconds); a learner has no vote, and {owner} joins again \
                 when it is back"
            ),
        }
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::NobodyAnswers {
                seeded_by,
                seeded_at,
            } => write!(
                f,
                "the cluster exists (seeded by {seeded_by} at {seeded_at}) but no member \
                 answers; a new cluster is never started once it exists"
            ),
            Wait::ForSeeder { seeder } => write!(
                f,
                "waiting for {seeder} (lowest in-service instance id) to seed the cluster"
            ),
            Wait::NoInstanceInService => {
                f.write_str("no instance of the etcd ASG is in service yet")
            }
            Wait::UnknownData => f.write_str(
                "the data dir has no record of which cluster it belongs to and no member \
                 answers to tell",
            ),
            Wait::FounderStarting { owner, id } => write!(
                f,
                "founding member {id:x} of {owner} has not started yet (a join waits until it \
                 has, or until its instance is gone)"
            ),
            Wait::UnstartedLearner { owner, id, left } => write!(
                f,
                "{owner} is joining (learner {id:x} not started yet); one joins at a time; \
                 removed as unhealthy in {left}s if it does not start"
            ),
            Wait::LearnerCatchingUp { name } => {
                write!(f, "{name} is joining as a learner; one joins at a time")
            }
            Wait::LearnerDown { name, id, left } => write!(
                f,
                "learner {name} ({id:x}) does not answer and etcd takes one learner at a time; \
                 it is removed in {left}s unless it comes back (etcd.learner_timeout_seconds)"
            ),
            Wait::NoLeader {
                healthy,
                voters,
                need,
            } => write!(
                f,
                "the cluster has no leader right now ({healthy} of {voters} voters answer, \
                 quorum needs {need})"
            ),
        }
    }
}

impl fmt::Display for Refuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refuse::Unreadable { endpoints } => write!(
                f,
                "there is no cluster marker and no member answers, but {} accept connections on \
                 the etcd client port: an etcd this node cannot talk to (another CA, a client \
                 certificate it refuses) may hold a cluster, so no new one is seeded; check its \
                 certificates against the cluster's etcd CA, or stop it",
                endpoints.join(", ")
            ),
            Refuse::DataMissing { id, data_dir } => write!(
                f,
                "{data_dir} has no etcd data, but this node's member {id:x} has run and is still \
                 a member: if the data volume is not mounted yet, mount it and run bootstrap \
                 again; if the data is lost, move {} aside and run bootstrap again to replace \
                 the member (docs/etcd.md, Runbooks)",
                crate::files::ETCD_MEMBER_RECORD
            ),
            Refuse::LosesQuorum {
                removal,
                healthy,
                voters,
                need,
            } => write!(
                f,
                "removing stale member {} ({:x}: {}) would leave {healthy} healthy of {voters} \
                 voters and quorum needs {need}; bring the unhealthy members back or restore the \
                 cluster (see docs/etcd.md, Runbooks)",
                display_name(&removal.name),
                removal.id,
                removal.why,
            ),
        }
    }
}

impl fmt::Display for LeaveRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveRefused::OnlyVoter { name } => write!(
                f,
                "member {name} is the cluster's only voter; removing it would end the cluster"
            ),
            LeaveRefused::LosesQuorum {
                name,
                healthy,
                voters,
                need,
            } => write!(
                f,
                "removing member {name} would leave {healthy} healthy of {voters} voters and \
                 quorum needs {need}"
            ),
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
