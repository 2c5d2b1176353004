//! The monitor: looks at the cluster every 100 ms of wall time, from outside, the whole run:
//! etcd's members and which answer, every group's reboot lock, the masters' `--etcd-servers`,
//! the newest backup's age. Each look is a sample of the timeline and a check of the rules that
//! must hold at every moment.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use time::OffsetDateTime;
use tn_agent::etcd::client::EtcdAccess;
use tn_agent::etcd::model::ClusterView;
use tn_agent::kube::render::manifest_etcd_servers;
use tn_agent::reboot::etcd_lock::PREFIX as LOCK_PREFIX;
use tn_agent::reboot::lock::ETCD_GROUP;
use tn_agent::reboot::semaphore::Semaphore;
use tn_world::kube_api::KubeApi;

use crate::clock::{SimClock, HOUR};
use crate::invariants::{Invariants, Rule};
use crate::timeline::{Mark, MarkKind, Sample, Timeline};
use crate::writer::OneAtATime;

/// Wall time between looks.
const EVERY: Duration = Duration::from_millis(100);
/// How long a look at the lock may take.
const LOCK_READ: Duration = Duration::from_millis(700);
/// Slack on the backup age's limit: the timer fires exactly two intervals after the last
/// success when one run failed, and the run itself takes a moment.
pub const BACKUP_AGE_SLACK: i64 = 600;

/// What the driver and the monitor share.
pub struct Shared<'a> {
    pub clock: &'a SimClock,
    pub invariants: &'a Invariants,
    pub timeline: Mutex<Timeline>,
    /// The etcd members' client URLs now.
    pub endpoints: Mutex<Vec<String>>,
    /// The masters' apiserver manifests.
    pub manifests: Mutex<Vec<PathBuf>>,
    /// Since when the newest backup in S3 holds everything there is: its time, or later when a
    /// timer run found nothing changed since (the driver lists them after each timer run).
    pub newest_backup: Mutex<Option<OffsetDateTime>>,
    /// The backup interval, in seconds.
    pub backup_interval: i64,
    /// Set while the world has taken every member away on purpose (the final disaster): the
    /// etcd rules do not apply then.
    pub disaster: AtomicBool,
    pub stop: AtomicBool,
}

impl Shared<'_> {
    /// Adds a fault or event mark at the simulated now, and prints it.
    pub fn mark(&self, kind: MarkKind, label: impl Into<String>) {
        let label = label.into();
        let day = self.clock.day();
        eprintln!(
            "  day {day:>7.3}  {} {label}",
            match kind {
                MarkKind::Fault => "fault:",
                MarkKind::Event => "event:",
            }
        );
        self.timeline
            .lock()
            .expect("timeline")
            .marks
            .push(Mark { day, kind, label });
    }
}

/// Looks until `shared.stop` is set.
pub fn run(shared: &Shared<'_>, access: EtcdAccess, api: &KubeApi) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the monitor");
    let groups = shared.timeline.lock().expect("timeline").groups.clone();
    let mut lock_client = OneAtATime::new(access.clone());
    while !shared.stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let endpoints = shared.endpoints.lock().expect("endpoints").clone();
        let view = rt.block_on(access.observe(&endpoints));
        let day = shared.clock.day();
        let disaster = shared.disaster.load(Ordering::SeqCst);
        let (members, healthy_voters, down) = view.as_ref().map_or((0, 0, 0), counts);
        if !disaster {
            check_etcd(shared, day, view.as_ref());
        }

        // The lock of each group: the etcd group's key (a serializable read: any member
        // answers), the others' ConfigMaps.
        let mut holders = Vec::new();
        for (group, max) in &groups {
            let doc = if group == ETCD_GROUP {
                rt.block_on(read_etcd_lock(&endpoints, &mut lock_client))
            } else {
                api.configmap_value("kube-system", &format!("tn-reboot-{group}"), "semaphore")
                    .map(|v| v.into_bytes())
            };
            let count = match doc.as_deref().map(Semaphore::parse) {
                Some(Ok(s)) => s.holders.len() as u32,
                Some(Err(e)) => {
                    shared.invariants.check(Rule::LockHolders, day, false, || {
                        format!("the {group} lock cannot be read: {e}")
                    });
                    0
                }
                None => 0,
            };
            if doc.is_some() {
                shared
                    .invariants
                    .check(Rule::LockHolders, day, count <= *max, || {
                        format!("{count} holders of the {group} lock, max {max}")
                    });
            }
            holders.push(count);
        }

        let newest = *shared.newest_backup.lock().expect("newest backup");
        let age = newest.map(|t| (shared.clock.now() - t).whole_seconds());
        if let Some(age) = age {
            let limit = 2 * shared.backup_interval + BACKUP_AGE_SLACK;
            shared
                .invariants
                .check(Rule::BackupAge, day, age <= limit, || {
                    format!(
                        "the newest backup is {:.1} h old (limit: two intervals, {:.1} h)",
                        age as f64 / HOUR as f64,
                        2.0 * shared.backup_interval as f64 / HOUR as f64
                    )
                });
        }
        shared
            .timeline
            .lock()
            .expect("timeline")
            .samples
            .push(Sample {
                day,
                members,
                healthy_voters,
                down,
                holders,
                backup_age_hours: age.map(|a| a as f64 / HOUR as f64),
            });
        if let Some(rest) = EVERY.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// Members, healthy voters, members down.
fn counts(view: &ClusterView) -> (u32, u32, u32) {
    let members = view.members.len() as u32;
    let healthy_voters = view.voters().filter(|m| m.healthy).count() as u32;
    let down = view.members.iter().filter(|m| !m.healthy).count() as u32;
    (members, healthy_voters, down)
}

fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// The rules on etcd that hold at every moment: one member down at most, quorum, and the
/// masters' etcd servers.
fn check_etcd(shared: &Shared<'_>, day: f64, view: Option<&ClusterView>) {
    let inv = shared.invariants;
    let Some(view) = view else {
        inv.check(Rule::Quorum, day, false, || {
            "no etcd member answers".to_string()
        });
        return;
    };
    let down: Vec<&str> = view
        .members
        .iter()
        .filter(|m| !m.healthy)
        .map(|m| m.display_name())
        .collect();
    inv.check(Rule::OneMemberDown, day, down.len() <= 1, || {
        format!("{} members down: {}", down.len(), down.join(", "))
    });
    let voters = view.voters().count();
    let healthy: BTreeSet<&str> = view
        .voters()
        .filter(|m| m.healthy)
        .flat_map(|m| m.client_urls.iter().map(String::as_str))
        .collect();
    let healthy_voters = view.voters().filter(|m| m.healthy).count();
    inv.check(Rule::Quorum, day, healthy_voters >= quorum(voters), || {
        format!("{healthy_voters} healthy of {voters} voters")
    });
    let manifests = shared.manifests.lock().expect("manifests").clone();
    for path in manifests {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let servers = match manifest_etcd_servers(&text) {
            Ok(s) => s,
            Err(e) => {
                inv.check(Rule::MasterEndpoints, day, false, || {
                    format!("{}: {e}", path.display())
                });
                continue;
            }
        };
        let live = servers
            .iter()
            .filter(|s| healthy.contains(s.as_str()))
            .count();
        inv.check(Rule::MasterEndpoints, day, live >= quorum(voters), || {
            format!(
                "{} lists {} ({live} live voters; quorum of {voters} needs {})",
                path.display(),
                servers.join(","),
                quorum(voters)
            )
        });
    }
}

/// The etcd group's lock document, when a member answers.
async fn read_etcd_lock(endpoints: &[String], client: &mut OneAtATime) -> Option<Vec<u8>> {
    let key = format!("{LOCK_PREFIX}{ETCD_GROUP}/semaphore");
    let read = async {
        let c = client.get(endpoints).await?;
        c.get(key.as_str(), Some(GetOptions::new().with_serializable()))
            .await
    };
    match tokio::time::timeout(LOCK_READ, read).await {
        Ok(Ok(resp)) => resp.kvs().first().map(|kv| kv.value().to_vec()),
        _ => {
            client.failed();
            None
        }
    }
}
