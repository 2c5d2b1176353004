//! The decision as one table: a baseline (i-b joining a cluster that i-a seeded), and each row
//! changes what one situation changes and names the plan.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::etcd::model::{ClusterState, InitialCluster};

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
        restored_from: None,
        founders: Vec::new(),
    }
}

/// The marker of a cold start that founded with i-a, i-b and i-c (SPEC §7.6).
fn founding_marker() -> Marker {
    let founder = |id: &str, ip: u8| crate::etcd::model::Founder {
        instance_id: id.into(),
        peer_url: url(ip),
    };
    Marker {
        founders: vec![founder("i-a", 1), founder("i-b", 2), founder("i-c", 3)],
        ..marker()
    }
}

/// i-a and i-c started, i-b's founding member (id 2) never did: etcd lists it under the name
/// the initial cluster gave it, with no client URL.
fn b_never_started() -> Option<ClusterView> {
    let mut b = member(2, "i-b", 2, false, false);
    b.client_urls.clear();
    view(vec![
        member(1, "i-a", 1, false, true),
        b,
        member(3, "i-c", 3, false, true),
    ])
}

fn member_record(name: &str, token: &str) -> MemberRecord {
    MemberRecord {
        cluster_token: token.into(),
        name: name.into(),
        peer_url: String::new(),
        member_id: None,
        initial_cluster: InitialCluster::default(),
        initial_cluster_state: ClusterState::Existing,
        data_dir: "/var/lib/etcd".into(),
    }
}

/// Data in the data dir, with the agent's record of it.
fn record(name: &str, token: &str) -> DataDir {
    DataDir::Present {
        record: Some(member_record(name, token)),
    }
}

/// An empty data dir, and a record left from the last configuration.
fn empty_with_record(name: &str, token: &str) -> DataDir {
    DataDir::Empty {
        record: Some(member_record(name, token)),
    }
}

/// A view whose leader is the first healthy voter.
fn view(members: Vec<MemberInfo>) -> Option<ClusterView> {
    let leader = members
        .iter()
        .find(|m| !m.is_learner && m.healthy)
        .map(|m| m.id);
    Some(ClusterView { members, leader })
}

/// i-a, i-b, i-c voters at .1-.3, i-c down.
fn abc_c_down() -> Option<ClusterView> {
    view(vec![
        member(1, "i-a", 1, false, true),
        member(2, "i-b", 2, false, true),
        member(3, "i-c", 3, false, false),
    ])
}

/// i-a, i-b, i-c voters at .1-.3, i-b (this node in the baseline) down.
fn abc_b_down() -> Option<ClusterView> {
    view(vec![
        member(1, "i-a", 1, false, true),
        member(2, "i-b", 2, false, false),
        member(3, "i-c", 3, false, true),
    ])
}

fn removal(id: u64, name: &str, why: Stale) -> Removal {
    Removal {
        id,
        name: name.into(),
        why,
    }
}

/// i-c, whose instance is gone from the ASG.
fn c_gone() -> Removal {
    removal(
        3,
        "i-c",
        Stale::InstanceGone {
            instance: "i-c".into(),
        },
    )
}

/// Waiting: the marker (i-a's) exists and no member answers.
fn nobody_answers() -> Plan {
    Plan::Wait(Wait::NobodyAnswers {
        seeded_by: "i-a".into(),
        seeded_at: "2026-11-24T00:00:00Z".into(),
    })
}

fn join(remove: Vec<Removal>, reuse_learner: Option<u64>) -> Plan {
    Plan::Join {
        remove,
        reuse_learner,
    }
}

/// The facts one row starts from.
struct World {
    me: Me,
    asg: Vec<AsgInstance>,
    asg_age: Duration,
    marker: Option<Marker>,
    marker_age: Option<Duration>,
    cluster: Option<ClusterView>,
    listening: Vec<String>,
    data: DataDir,
    env_written: bool,
    learners_unhealthy_for: BTreeMap<u64, Duration>,
    unstarted_per_peers: Option<u64>,
}

/// The default `etcd.learner_timeout_seconds`.
const LEARNER_TIMEOUT: Duration = Duration::from_secs(600);

impl World {
    fn plan(&self) -> Plan {
        decide(&Facts {
            me: &self.me,
            asg: &self.asg,
            asg_age: self.asg_age,
            marker: self.marker.as_ref(),
            marker_age: self.marker_age,
            cluster: self.cluster.as_ref(),
            listening: &self.listening,
            data: &self.data,
            env_written: self.env_written,
            learners_unhealthy_for: &self.learners_unhealthy_for,
            learner_timeout: LEARNER_TIMEOUT,
            unstarted_per_peers: self.unstarted_per_peers,
        })
    }

    fn may_found_at_once(&self) -> bool {
        super::may_found_at_once(&Facts {
            me: &self.me,
            asg: &self.asg,
            asg_age: self.asg_age,
            marker: self.marker.as_ref(),
            marker_age: self.marker_age,
            cluster: None,
            listening: &self.listening,
            data: &self.data,
            env_written: self.env_written,
            learners_unhealthy_for: &self.learners_unhealthy_for,
            learner_timeout: LEARNER_TIMEOUT,
            unstarted_per_peers: None,
        })
    }

    /// i-a, i-b, i-d in service (i-c was terminated), i-d at .4 is this node.
    fn replacing_c(&mut self) {
        self.asg = vec![
            inst("i-a", 1, "InService"),
            inst("i-b", 2, "InService"),
            inst("i-d", 4, "InService"),
        ];
        self.me = me("i-d", 4);
        self.cluster = abc_c_down();
    }
}

/// i-b, with no data, joining the cluster i-a seeded: i-a, i-b, i-c in service at .1-.3.
fn baseline() -> World {
    World {
        me: me("i-b", 2),
        asg: vec![
            inst("i-a", 1, "InService"),
            inst("i-b", 2, "InService"),
            inst("i-c", 3, "InService"),
        ],
        asg_age: Duration::ZERO,
        marker: Some(marker()),
        marker_age: Some(Duration::from_secs(60)),
        cluster: view(vec![member(1, "i-a", 1, false, true)]),
        listening: vec![],
        data: DataDir::Empty { record: None },
        env_written: false,
        learners_unhealthy_for: BTreeMap::new(),
        unstarted_per_peers: None,
    }
}

type Row = (&'static str, fn(&mut World), Plan);

fn rows() -> Vec<Row> {
    vec![
        ("joins a seeded cluster", |_| {}, join(vec![], None)),
        (
            "a running cluster is joined even without the marker (lost bucket), never re-seeded",
            |w| w.marker = None,
            join(vec![], None),
        ),
        // Cold start.
        (
            "cold start: the lowest in-service id seeds",
            |w| (w.me, w.marker, w.cluster) = (me("i-a", 1), None, None),
            Plan::Seed,
        ),
        (
            "cold start: a client port accepts connections but nobody answers as etcd: no seed",
            |w| {
                (w.me, w.marker, w.cluster) = (me("i-a", 1), None, None);
                w.listening = vec!["https://127.0.1.2:2379".into()];
            },
            Plan::Refuse(Refuse::Unreadable {
                endpoints: vec!["https://127.0.1.2:2379".into()],
            }),
        ),
        (
            "cold start: the others wait for the seeder",
            |w| (w.marker, w.cluster) = (None, None),
            Plan::Wait(Wait::ForSeeder {
                seeder: "i-a".into(),
            }),
        ),
        (
            "cold start: a lower id not in service yet neither seeds nor is waited for",
            |w| {
                (w.me, w.marker, w.cluster) = (me("i-a", 1), None, None);
                w.asg.push(inst("i-0", 9, "Pending"));
            },
            Plan::Seed,
        ),
        (
            "cold start: a single-node ASG seeds",
            |w| {
                (w.me, w.marker, w.cluster) = (me("i-a", 1), None, None);
                w.asg.truncate(1);
            },
            Plan::Seed,
        ),
        (
            "cold start: nobody in service yet",
            |w| {
                (w.me, w.marker, w.cluster) = (me("i-a", 1), None, None);
                w.asg = vec![inst("i-a", 1, "Pending")];
            },
            Plan::Wait(Wait::NoInstanceInService),
        ),
        (
            "the seeder's run ended after its marker put (lost reply, crash): it finishes seeding",
            |w| (w.me, w.cluster) = (me("i-a", 1), None),
            Plan::ResumeSeed,
        ),
        (
            "... also when it wrote its seeding record but not the env file",
            |w| {
                (w.me, w.cluster) = (me("i-a", 1), None);
                let mut rec = member_record("i-a", "prod-abc");
                rec.initial_cluster_state = ClusterState::New;
                w.data = DataDir::Empty { record: Some(rec) };
            },
            Plan::ResumeSeed,
        ),
        (
            "the marker exists and nobody answers: a seeder whose env file was written (etcd may \
             have run) never seeds again",
            |w| {
                (w.me, w.cluster) = (me("i-a", 1), None);
                let mut rec = member_record("i-a", "prod-abc");
                rec.initial_cluster_state = ClusterState::New;
                w.data = DataDir::Empty { record: Some(rec) };
                w.env_written = true;
            },
            nobody_answers(),
        ),
        (
            "... nor one whose record is a joiner's",
            |w| {
                (w.me, w.cluster) = (me("i-a", 1), None);
                w.data = empty_with_record("i-a", "prod-abc");
            },
            nobody_answers(),
        ),
        (
            "... nor another instance at the seeder's address",
            |w| (w.me, w.cluster) = (me("i-z", 1), None),
            nobody_answers(),
        ),
        (
            "the marker exists and nobody answers: nor does anyone else",
            |w| w.cluster = None,
            nobody_answers(),
        ),
        // One joiner at a time.
        (
            "i-b's learner was added and has not started: i-c waits",
            |w| {
                w.me = me("i-c", 3);
                w.cluster = view(vec![
                    member(1, "i-a", 1, false, true),
                    member(2, "", 2, true, false),
                ]);
            },
            Plan::Wait(Wait::UnstartedLearner {
                owner: "i-b".into(),
                id: 2,
                left: 600,
            }),
        ),
        (
            "... and removes it once it has not started for etcd.learner_timeout_seconds",
            |w| {
                w.me = me("i-c", 3);
                w.cluster = view(vec![
                    member(1, "i-a", 1, false, true),
                    member(2, "", 2, true, false),
                ]);
                w.learners_unhealthy_for.insert(2, LEARNER_TIMEOUT);
            },
            join(
                vec![removal(
                    2,
                    "",
                    Stale::UnhealthyLearner {
                        owner: "i-b".into(),
                        secs: 600,
                    },
                )],
                None,
            ),
        ),
        (
            "i-b's started learner does not answer: i-c waits, saying when it removes it",
            |w| {
                w.me = me("i-c", 3);
                w.cluster = view(vec![
                    member(1, "i-a", 1, false, true),
                    member(2, "i-b", 2, true, false),
                ]);
                w.learners_unhealthy_for.insert(2, Duration::from_secs(420));
            },
            Plan::Wait(Wait::LearnerDown {
                name: "i-b".into(),
                id: 2,
                left: 180,
            }),
        ),
        (
            "... and removes it after etcd.learner_timeout_seconds (no vote: quorum holds)",
            |w| {
                w.me = me("i-c", 3);
                w.cluster = view(vec![
                    member(1, "i-a", 1, false, true),
                    member(2, "i-b", 2, true, false),
                ]);
                w.learners_unhealthy_for.insert(2, Duration::from_secs(601));
            },
            join(
                vec![removal(
                    2,
                    "i-b",
                    Stale::UnhealthyLearner {
                        owner: "i-b".into(),
                        secs: 601,
                    },
                )],
                None,
            ),
        ),
        (
            "a healthy learner catching up is never removed, however long",
            |w| {
                w.me = me("i-c", 3);
                w.cluster = view(vec![
                    member(1, "i-a", 1, false, true),
                    member(2, "i-b", 2, true, true),
                ]);
                w.learners_unhealthy_for
                    .insert(2, Duration::from_secs(3600));
            },
            Plan::Wait(Wait::LearnerCatchingUp { name: "i-b".into() }),
        ),
        (
            "i-b is a learner catching up: i-c waits",
            |w| {
                w.me = me("i-c", 3);
                w.cluster = view(vec![
                    member(1, "i-a", 1, false, true),
                    member(2, "i-b", 2, true, true),
                ]);
            },
            Plan::Wait(Wait::LearnerCatchingUp { name: "i-b".into() }),
        ),
        (
            "its own unstarted learner is reused",
            |w| {
                w.cluster = view(vec![
                    member(1, "i-a", 1, false, true),
                    member(7, "", 2, true, false),
                ]);
            },
            join(vec![], Some(7)),
        ),
        (
            "no leader: wait",
            |w| w.cluster.as_mut().unwrap().leader = None,
            Plan::Wait(Wait::NoLeader {
                healthy: 1,
                voters: 1,
                need: 1,
            }),
        ),
        // Replacement.
        (
            "a replacement removes the gone member first",
            World::replacing_c,
            join(vec![c_gone()], None),
        ),
        (
            "terminating in the ASG counts as gone",
            |w| {
                w.replacing_c();
                w.asg.push(inst("i-c", 3, "Terminating:Wait"));
            },
            join(vec![c_gone()], None),
        ),
        (
            "a removal on an ASG view older than FRESH lists the ASG again first",
            |w| {
                w.replacing_c();
                w.asg_age = FRESH + Duration::from_millis(1);
            },
            Plan::Relist,
        ),
        (
            "an old view without a removal needs no new one",
            |w| w.asg_age = Duration::from_secs(60),
            join(vec![], None),
        ),
        (
            "an unreachable member whose instance lives (rebooting) is never removed",
            |w| {
                w.replacing_c();
                w.asg.push(inst("i-c", 3, "InService"));
            },
            join(vec![], None),
        ),
        (
            "a reused IP makes the old member stale",
            |w| {
                w.replacing_c();
                w.asg[2] = inst("i-d", 3, "InService");
                w.me = me("i-d", 3);
            },
            join(
                vec![removal(
                    3,
                    "i-c",
                    Stale::UrlTaken {
                        peer_url: url(3),
                        by: "i-d".into(),
                    },
                )],
                None,
            ),
        ),
        (
            "a removal that would lose quorum is refused",
            |w| {
                w.replacing_c();
                w.cluster = Some(ClusterView {
                    members: vec![
                        member(1, "i-a", 1, false, true),
                        member(2, "i-b", 2, false, false),
                        member(3, "i-c", 3, false, false),
                    ],
                    leader: None, // two of three down: no leader either
                });
            },
            Plan::Refuse(Refuse::LosesQuorum {
                removal: c_gone(),
                healthy: 1,
                voters: 2,
                need: 2,
            }),
        ),
        (
            "removing a stale learner never touches quorum",
            |w| {
                w.replacing_c();
                w.cluster = Some(ClusterView {
                    members: vec![
                        member(1, "i-a", 1, false, true),
                        member(2, "i-b", 2, false, false),
                        member(3, "", 3, true, false),
                    ],
                    leader: Some(1),
                });
            },
            join(
                vec![removal(
                    3,
                    "",
                    Stale::OrphanLearner {
                        id: 3,
                        peer_urls: vec![url(3)],
                    },
                )],
                None,
            ),
        ),
        (
            "a node without its data replaces its own old member",
            |w| w.cluster = abc_b_down(),
            join(vec![removal(2, "i-b", Stale::OwnEarlierMember)], None),
        ),
        (
            "a member that answers is never removed, even when its instance left the ASG",
            |w| {
                w.replacing_c();
                w.cluster.as_mut().unwrap().members[2].healthy = true;
            },
            join(vec![], None),
        ),
        (
            "a stopped instance is alive: its member is never removed",
            |w| {
                w.replacing_c();
                let mut c = inst("i-c", 3, "InService");
                c.ec2_state = Some("stopped".into());
                w.asg.push(c);
            },
            join(vec![], None),
        ),
        // Founding sets (SPEC §7.6).
        (
            "founding: a founder whose member never started starts `new` while nobody answers",
            |w| (w.marker, w.cluster) = (Some(founding_marker()), None),
            Plan::Found(Found::NobodyAnswers {
                seeded_by: "i-a".into(),
            }),
        ),
        (
            "... at once when the peer ports list its member as never started (their client \
             ports answer only once a quorum of founders runs)",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), None);
                w.unstarted_per_peers = Some(2);
            },
            Plan::Found(Found::Unstarted { id: 2 }),
        ),
        (
            "... whose word counts only while the founder may found (not once its env file was \
             written)",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), None);
                w.unstarted_per_peers = Some(2);
                w.env_written = true;
            },
            nobody_answers(),
        ),
        (
            "... also when its run wrote the founding record but not the env file",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), None);
                let mut rec = member_record("i-b", "prod-abc");
                rec.initial_cluster_state = ClusterState::New;
                w.data = DataDir::Empty { record: Some(rec) };
            },
            Plan::Found(Found::NobodyAnswers {
                seeded_by: "i-a".into(),
            }),
        ),
        (
            "... not once its env file was written (its member may have run): it waits",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), None);
                w.env_written = true;
            },
            nobody_answers(),
        ),
        (
            "... nor with a joiner's record (it joined before, then lost its data)",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), None);
                w.data = empty_with_record("i-b", "prod-abc");
            },
            nobody_answers(),
        ),
        (
            "... nor an hour after the seeding (a founder that lost everything during an outage \
             must not come back under its old member id)",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), None);
                w.marker_age = Some(FOUNDING_WINDOW);
            },
            nobody_answers(),
        ),
        (
            "... nor when the marker's time cannot be read",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), None);
                w.marker_age = None;
            },
            nobody_answers(),
        ),
        (
            "... nor an instance the founders do not name, nor a founder's id at another address",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), None);
                w.me = me("i-b", 4);
            },
            nobody_answers(),
        ),
        (
            "a marker without founders: the seeder founded alone, the others never start `new`",
            |w| w.cluster = None,
            nobody_answers(),
        ),
        (
            "a founder's late start: its member is listed and never started: it starts `new`",
            |w| (w.marker, w.cluster) = (Some(founding_marker()), b_never_started()),
            Plan::Found(Found::Unstarted { id: 2 }),
        ),
        (
            "... also long after the seeding (the member list says it never ran)",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), b_never_started());
                w.marker_age = Some(FOUNDING_WINDOW * 24);
            },
            Plan::Found(Found::Unstarted { id: 2 }),
        ),
        (
            "... also after a founding run whose etcd never came up (env file and record written)",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), b_never_started());
                let mut rec = member_record("i-b", "prod-abc");
                rec.initial_cluster_state = ClusterState::New;
                w.data = DataDir::Empty { record: Some(rec) };
                w.env_written = true;
            },
            Plan::Found(Found::Unstarted { id: 2 }),
        ),
        (
            "... but never with a joiner's record: its founding member is removed, it joins",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), b_never_started());
                w.data = empty_with_record("i-b", "prod-abc");
            },
            join(
                vec![removal(
                    2,
                    "i-b",
                    Stale::UnstartedFounder {
                        id: 2,
                        peer_urls: vec![url(2)],
                    },
                )],
                None,
            ),
        ),
        (
            "a joiner waits while another founder's member has not started and its instance lives",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), b_never_started());
                w.asg.push(inst("i-d", 4, "InService"));
                w.me = me("i-d", 4);
            },
            Plan::Wait(Wait::FounderStarting {
                owner: "i-b".into(),
                id: 2,
            }),
        ),
        (
            "a founder that died before starting: its replacement removes the never-started \
             member (quorum kept) and joins",
            |w| {
                (w.marker, w.cluster) = (Some(founding_marker()), b_never_started());
                w.asg = vec![
                    inst("i-a", 1, "InService"),
                    inst("i-c", 3, "InService"),
                    inst("i-d", 4, "InService"),
                ];
                w.me = me("i-d", 4);
            },
            join(
                vec![removal(
                    2,
                    "i-b",
                    Stale::UnstartedFounder {
                        id: 2,
                        peer_urls: vec![url(2)],
                    },
                )],
                None,
            ),
        ),
        (
            "a founder wiped after the cluster formed (its member ran): never `new` again; with \
             its record, refused as a volume that is not mounted",
            |w| {
                w.marker = Some(founding_marker());
                w.data = empty_with_record("i-b", "prod-abc");
                w.env_written = true;
                w.cluster = abc_b_down();
            },
            Plan::Refuse(Refuse::DataMissing {
                id: 2,
                data_dir: "/var/lib/etcd".into(),
            }),
        ),
        (
            "... and with its record gone too: its old member is removed, it joins as a new one",
            |w| {
                w.marker = Some(founding_marker());
                w.cluster = abc_b_down();
            },
            join(vec![removal(2, "i-b", Stale::OwnEarlierMember)], None),
        ),
        (
            "an empty data dir whose member has run and is listed: refused (a volume not mounted)",
            |w| {
                w.data = empty_with_record("i-b", "prod-abc");
                w.cluster = abc_b_down();
            },
            Plan::Refuse(Refuse::DataMissing {
                id: 2,
                data_dir: "/var/lib/etcd".into(),
            }),
        ),
        (
            "an empty data dir and a record of an unstarted learner: the learner is reused",
            |w| {
                w.data = empty_with_record("i-b", "prod-abc");
                w.cluster = view(vec![
                    member(1, "i-a", 1, false, true),
                    member(7, "", 2, true, false),
                ]);
            },
            join(vec![], Some(7)),
        ),
        (
            "an empty data dir and another cluster's record: a new member as usual",
            |w| {
                w.data = empty_with_record("i-b", "old-cluster");
                w.cluster = abc_b_down();
            },
            join(vec![removal(2, "i-b", Stale::OwnEarlierMember)], None),
        ),
        (
            "an empty data dir with a record and nobody answering: wait, never seed",
            |w| {
                w.data = empty_with_record("i-b", "prod-abc");
                w.cluster = None;
            },
            nobody_answers(),
        ),
        // With data.
        (
            "a reboot with its data changes nothing",
            |w| {
                w.data = record("i-b", "prod-abc");
                w.cluster = abc_c_down();
            },
            Plan::Restart(Restart::StillMember { id: 2 }),
        ),
        (
            "the whole cluster rebooting: nobody answers, and the data is ours",
            |w| (w.data, w.cluster) = (record("i-b", "prod-abc"), None),
            Plan::Restart(Restart::NobodyAnswers),
        ),
        (
            "its member was removed while it was away",
            |w| {
                w.data = record("i-b", "prod-abc");
                w.cluster = view(vec![
                    member(1, "i-a", 1, false, true),
                    member(3, "i-c", 3, false, true),
                ]);
            },
            Plan::MoveAside(MoveAside::Removed),
        ),
        (
            "another cluster's data (a reused volume, a restored image)",
            |w| (w.data, w.cluster) = (record("i-b", "old-cluster"), None),
            Plan::MoveAside(MoveAside::OtherCluster {
                theirs: "old-cluster".into(),
                ours: "prod-abc".into(),
            }),
        ),
        (
            "another instance's data",
            |w| (w.data, w.cluster) = (record("i-z", "prod-abc"), None),
            Plan::MoveAside(MoveAside::OtherInstance {
                owner: "i-z".into(),
                me: "i-b".into(),
            }),
        ),
        (
            "data without a record, and the member list has it: kept",
            |w| {
                w.data = DataDir::Present { record: None };
                w.cluster = view(vec![
                    member(2, "i-b", 2, false, false),
                    member(1, "i-a", 1, false, true),
                ]);
            },
            Plan::Restart(Restart::StillMember { id: 2 }),
        ),
        (
            "data without a record, and the member list does not have it: moved aside",
            |w| w.data = DataDir::Present { record: None },
            Plan::MoveAside(MoveAside::Removed),
        ),
        (
            "data without a record and nobody to ask: wait",
            |w| (w.data, w.cluster) = (DataDir::Present { record: None }, None),
            Plan::Wait(Wait::UnknownData),
        ),
    ]
}

#[test]
fn plan_table() {
    let mut failures = Vec::new();
    for (name, change, expected) in rows() {
        let mut world = baseline();
        change(&mut world);
        let got = world.plan();
        if got != expected {
            failures.push(format!(
                "{name}:\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reasons_read_as_before() {
    let gone = c_gone();
    let cases: Vec<(String, &str)> = vec![
        (
            Wait::ForSeeder {
                seeder: "i-a".into(),
            }
            .to_string(),
            "waiting for i-a (lowest in-service instance id) to seed the cluster",
        ),
        (
            Wait::NoInstanceInService.to_string(),
            "no instance of the etcd ASG is in service yet",
        ),
        (
            Wait::UnstartedLearner {
                owner: "i-b".into(),
                id: 0x2a,
                left: 30,
            }
            .to_string(),
            "i-b is joining (learner 2a not started yet); one joins at a time; removed as \
             unhealthy in 30s if it does not start",
        ),
        (
            Stale::UnhealthyLearner {
                owner: "i-b".into(),
                secs: 601,
            }
            .to_string(),
            "learner of i-b has not answered for 601s while blocking every join \
             (etcd.learner_timeout_seconds); a learner has no vote, and i-b joins again when it \
             is back",
        ),
        (
            Wait::NoLeader {
                healthy: 1,
                voters: 3,
                need: 2,
            }
            .to_string(),
            "the cluster has no leader right now (1 of 3 voters answer, quorum needs 2)",
        ),
        (
            Stale::UrlTaken {
                peer_url: url(3),
                by: "i-d".into(),
            }
            .to_string(),
            "its peer URL https://127.0.1.3:2380 now belongs to i-d",
        ),
        (
            Refuse::LosesQuorum {
                removal: gone,
                healthy: 1,
                voters: 2,
                need: 2,
            }
            .to_string(),
            "removing stale member i-c (3: instance i-c is gone from the ASG) would leave 1 \
             healthy of 2 voters and quorum needs 2; bring the unhealthy members back or restore \
             the cluster (see docs/etcd.md, Runbooks)",
        ),
        (
            Restart::StillMember { id: 0x1f }.to_string(),
            "still member 1f of the cluster with its data: no membership change",
        ),
        (
            MoveAside::OtherCluster {
                theirs: "old".into(),
                ours: "new".into(),
            }
            .to_string(),
            "the data dir belongs to another cluster (token old, the cluster's is new)",
        ),
        (
            Wait::NobodyAnswers {
                seeded_by: "i-a".into(),
                seeded_at: "T".into(),
            }
            .to_string(),
            "the cluster exists (seeded by i-a at T) but no member answers; a new cluster is \
             never started once it exists",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
}

#[test]
fn leave_keeps_quorum() {
    let v = |m| view(m).unwrap();
    let healthy3 = v(vec![
        member(1, "i-a", 1, false, true),
        member(2, "i-b", 2, false, true),
        member(3, "i-c", 3, false, true),
    ]);
    assert_eq!(check_leave(&healthy3, 3), Ok(()));
    let one_down = v(vec![
        member(1, "i-a", 1, false, true),
        member(2, "i-b", 2, false, false),
        member(3, "i-c", 3, false, true),
    ]);
    let refused = check_leave(&one_down, 3).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "removing member i-c would leave 1 healthy of 2 voters and quorum needs 2"
    );
    let single = v(vec![member(1, "i-a", 1, false, true)]);
    assert!(check_leave(&single, 1)
        .unwrap_err()
        .to_string()
        .contains("only voter"));
    // A learner can always leave; so can a member that is not there.
    let with_learner = v(vec![
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

/// When the peer ports may settle the plan: a founder other than the seeder, data dir empty,
/// no env file, a founding record or none, within the founding window.
#[test]
fn who_may_found_at_once() {
    let founder = || World {
        marker: Some(founding_marker()),
        cluster: None,
        ..baseline()
    };
    assert!(founder().may_found_at_once());
    type Change = (&'static str, fn(&mut World));
    let rows: [Change; 6] = [
        ("the seeder (it resumes its seed)", |w| w.me = me("i-a", 1)),
        ("env file written", |w| w.env_written = true),
        ("data present", |w| {
            w.data = DataDir::Present { record: None }
        }),
        ("a joiner's record", |w| {
            w.data = empty_with_record("i-b", "prod-abc")
        }),
        ("the founding window passed", |w| {
            w.marker_age = Some(FOUNDING_WINDOW)
        }),
        ("a marker without founders", |w| w.marker = Some(marker())),
    ];
    for (what, change) in rows {
        let mut w = founder();
        change(&mut w);
        assert!(!w.may_found_at_once(), "{what}");
    }
}
