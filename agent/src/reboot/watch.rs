//! `tn-agent reboot watch` on etcd nodes (SPEC §9): when a reboot is needed, wait for the window
//! and the gates, take the `etcd` group's lock, hand leadership away, reboot; after the boot,
//! wait until this member is a healthy, caught-up voter, then release. Every step is written to
//! `reboot.json` before it is taken ([`RebootState`]), so a restart resumes where it was.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::dbus::{logind_reboot, UpdateEngine};
use super::etcd_lock::{EtcdLock, ETCD_GROUP};
use super::gates::etcd_gates;
use super::phase::{boot_id, booted_version, Phase, RebootState};
use super::semaphore::Outcome;
use crate::aws::Aws;
use crate::config::Settings;
use crate::etcd::client::EtcdAccess;
use crate::etcd::model::{ClusterView, Me};
use crate::exit::one_line;
use crate::files;
use crate::fsutil::Root;
use crate::identity::NodeIdentity;

/// How long the leadership hand-off may take before it is tried again.
const HANDOFF_WAIT: Duration = Duration::from_secs(30);

/// What the watch needs about this etcd node.
struct Node<'a> {
    settings: &'a Settings,
    root: &'a Root,
    ident: &'a NodeIdentity,
    access: EtcdAccess,
    endpoints: Vec<String>,
    me: Me,
}

impl Node<'_> {
    /// The group's lock, reached through the healthy voters (a client given a member that is
    /// down may send a request there and fail).
    async fn lock(&self, group: &str) -> Result<EtcdLock<'_>> {
        let view = self
            .access
            .observe(&self.endpoints)
            .await
            .context("no etcd member answers")?;
        Ok(EtcdLock::new(&self.access, view.voter_endpoints(), group))
    }
}

/// Runs until this node's reboot command has been started (returns what it did), or forever
/// while no reboot is needed.
pub async fn watch(settings: &Settings, root: &Root, ident: &NodeIdentity) -> Result<String> {
    let (access, endpoints) = crate::etcd::node_client(settings, root, ident)?;
    let me = Me::new(&ident.instance_id, ident.private_ip, access.endpoints());
    let node = Node {
        settings,
        root,
        ident,
        access,
        endpoints,
        me,
    };
    let group = settings
        .reboot
        .group
        .clone()
        .unwrap_or_else(|| ETCD_GROUP.to_string());
    let mut st = RebootState::load(root, &group)?;
    let interval = settings.reboot.check_interval;
    let mut engine = UpdateEngine::connect().await;
    loop {
        let this_boot = boot_id(root);
        let step = match st.phase {
            Phase::Rebooting if this_boot.is_some() && this_boot == st.boot_id => {
                // Same boot: the command failed or the machine is still going down. Again.
                reboot(&node, &mut st).await
            }
            Phase::Rebooting => after_boot(&node, &mut st).await.map(|()| None),
            Phase::Locking | Phase::Locked => lock_and_reboot(&node, &mut st).await,
            Phase::Idle | Phase::Waiting => {
                if !needed(root, engine.as_ref()) {
                    if st.phase != Phase::Idle {
                        st.enter(root, Phase::Idle, None)?;
                    }
                    Ok(None)
                } else {
                    st.group = group.clone();
                    st.staged_version = engine
                        .as_ref()
                        .and_then(UpdateEngine::last)
                        .filter(|s| s.needs_reboot() && !s.new_version.is_empty())
                        .map(|s| s.new_version.clone());
                    lock_and_reboot(&node, &mut st).await
                }
            }
        };
        let failed = step.is_err();
        match step {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %one_line(e.as_ref()), phase = ?st.phase, "reboot step failed; trying again");
                st.enter(root, st.phase, Some(one_line(e.as_ref())))?;
            }
        }
        // Waiting for a slot or for the cluster: the lock's next change (a holder releasing
        // after its boot) wakes the watch at once, not at the next interval.
        let lock_changed = async {
            match (st.phase, node.lock(&st.group).await) {
                (Phase::Waiting | Phase::Locking, Ok(lock)) => {
                    let free_now = st.why.as_deref().is_some_and(|w| w.starts_with(SLOTS_HELD));
                    lock.wait_for_change(interval, free_now).await
                }
                _ => std::future::pending().await,
            }
        };
        // After the boot this node holds the slot and the whole rollout waits on it; a step
        // that failed (a member going down under a request) is worth another try soon: look
        // again soon, not at the interval.
        let pause = if failed || st.phase == Phase::Rebooting {
            interval.min(RETRY_SOON)
        } else {
            interval
        };
        tokio::select! {
            () = async {
                match &mut engine {
                    Some(engine) => engine.wait(pause).await,
                    None => tokio::time::sleep(pause).await,
                }
            } => {}
            () = lock_changed => {}
        }
    }
}

/// How soon a failed step is tried again, and how often a node that holds its slot after its
/// boot looks whether it is healthy again.
const RETRY_SOON: Duration = Duration::from_secs(2);

/// How a wait for a held slot is worded (and recognised).
const SLOTS_HELD: &str = "every slot of reboot group";

/// Whether a reboot is wanted: update_engine says an update is staged, or the sentinel exists
/// (Flatcar's postinstall, `reboot request`).
fn needed(root: &Root, engine: Option<&UpdateEngine>) -> bool {
    engine
        .and_then(UpdateEngine::last)
        .is_some_and(|s| s.needs_reboot())
        || root.path(files::REBOOT_SENTINEL).exists()
}

/// Window, gates, lock, gates again, hand-off, reboot. `Ok(None)`: not now (the state says why).
async fn lock_and_reboot(node: &Node<'_>, st: &mut RebootState) -> Result<Option<String>> {
    let lock = node.lock(&st.group).await?;
    if st.phase != Phase::Locked {
        if let Some(window) = node.settings.reboot.window {
            if !window.is_open(crate::clock::now()) {
                let why = format!("outside the reboot window ({window})");
                return wait(node, st, &lock, why).await;
            }
        }
        if let Err(why) = gates(node).await {
            return wait(node, st, &lock, why).await;
        }
        st.enter(node.root, Phase::Locking, None)?;
        let id = &node.ident.instance_id;
        let (mut outcome, _) = lock.take(id).await?;
        if matches!(outcome, Outcome::Full { .. }) && reclaim(node, &lock).await {
            outcome = lock.take(id).await?.0;
        }
        if let Outcome::Full { holders } = outcome {
            let why = format!(
                "{SLOTS_HELD} {} is held (by {})",
                st.group,
                holders.join(", ")
            );
            return wait(node, st, &lock, why).await;
        }
        tracing::info!(group = %st.group, "took the reboot lock");
        // The cluster may have changed while the lock was taken.
        if let Err(why) = gates(node).await {
            return wait(node, st, &lock, why).await;
        }
        st.enter(node.root, Phase::Locked, None)?;
    }
    hand_off_leadership(node).await?;
    reboot(node, st).await
}

/// Not now: gives back a slot taken in this attempt (a no-op when none is held) and records
/// why it waits.
async fn wait(
    node: &Node<'_>,
    st: &mut RebootState,
    lock: &EtcdLock<'_>,
    why: String,
) -> Result<Option<String>> {
    if st.phase == Phase::Locking {
        lock.release(&node.ident.instance_id).await?;
    }
    st.enter(node.root, Phase::Waiting, Some(why))?;
    Ok(None)
}

/// `Err(why)` when a gate is closed.
async fn gates(node: &Node<'_>) -> Result<(), String> {
    let view = node
        .access
        .observe(&node.endpoints)
        .await
        .ok_or_else(|| "no etcd member answers".to_string())?;
    let alarms = node
        .access
        .alarms(&view.voter_endpoints())
        .await
        .map_err(|e| format!("cannot read etcd's alarms: {}", one_line(&e)))?;
    etcd_gates(&view, &node.me, &alarms).map_err(|c| c.to_string())?;
    let record = crate::backup::record::BackupRecord::load(node.root);
    crate::backup::record::fresh_enough(
        record.as_ref(),
        crate::clock::now(),
        node.settings.backup.interval,
    )
}

/// Frees the slots of holders whose instances are gone (EC2 says so); `true` when it freed
/// one. A failure to ask is logged: it only delays a reclaim.
async fn reclaim(node: &Node<'_>, lock: &EtcdLock<'_>) -> bool {
    let aws = Aws::connect(&node.ident.region).await;
    match lock.reclaim_gone(&aws).await {
        Ok(gone) if !gone.is_empty() => {
            tracing::warn!(holders = ?gone, "freed the reboot slots of instances that are gone");
            true
        }
        Ok(_) => false,
        Err(e) => {
            tracing::warn!(error = %one_line(&e), "could not check the reboot lock's holders");
            false
        }
    }
}

/// When this member leads, asks it to hand leadership to a healthy voter and waits until it
/// has, so that the reboot costs no election.
async fn hand_off_leadership(node: &Node<'_>) -> Result<()> {
    let view = node
        .access
        .observe(&node.endpoints)
        .await
        .context("no etcd member answers")?;
    let mine = view
        .find_me(&node.me)
        .context("this node is not an etcd member")?;
    if view.leader != Some(mine.id) {
        return Ok(());
    }
    let Some(target) = view
        .voters()
        .filter(|v| v.healthy && v.id != mine.id)
        .min_by_key(|v| v.id)
    else {
        bail!("no other healthy voter to hand leadership to");
    };
    let own = node.access.client_url(node.me.ip);
    node.access.move_leader(&own, target.id).await?;
    let deadline = tokio::time::Instant::now() + HANDOFF_WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = node.access.observe(&node.endpoints).await {
            if v.leader.is_some() && v.leader != Some(mine.id) {
                tracing::info!(to = %target.display_name(), "handed etcd leadership over");
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("leadership did not move within {}s", HANDOFF_WAIT.as_secs())
}

/// Records the boot id, then starts the reboot command. `Ok(Some(..))` once it returned 0.
async fn reboot(node: &Node<'_>, st: &mut RebootState) -> Result<Option<String>> {
    st.boot_id = boot_id(node.root);
    st.enter(node.root, Phase::Rebooting, None)?;
    let how = match &node.settings.reboot.command {
        None => {
            tracing::info!("rebooting through logind");
            logind_reboot().await?;
            "logind's Reboot over D-Bus".to_string()
        }
        Some(argv) => {
            tracing::info!(command = ?argv, "rebooting");
            let status = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .status()
                .await
                .with_context(|| format!("starting {}", argv[0]))?;
            if !status.success() {
                bail!("{} exited with {status}", argv.join(" "));
            }
            format!("`{}`", argv.join(" "))
        }
    };
    Ok(Some(format!(
        "rebooting through {how} holding a slot of reboot group {}",
        st.group
    )))
}

/// After the reboot: wait until this member is a healthy voter caught up with the leader, then
/// release the slot. `Err` (retried) while it is not.
async fn after_boot(node: &Node<'_>, st: &mut RebootState) -> Result<()> {
    let view = node
        .access
        .observe(&node.endpoints)
        .await
        .context("no etcd member answers yet")?;
    if let (Some(staged), Some(booted)) = (&st.staged_version, booted_version(node.root)) {
        if *staged != booted {
            bail!(
                "the booted version is {booted} but {staged} was staged: keeping the reboot \
                 slot (the rollout halts) until an operator looks (docs/node.md, \"A stuck \
                 rollout\")"
            );
        }
    }
    caught_up(node, &view).await?;
    let lock = EtcdLock::new(&node.access, view.voter_endpoints(), &st.group);
    let (_, doc) = lock.release(&node.ident.instance_id).await?;
    tracing::info!(group = %st.group, lock = %doc, "back and healthy: released the reboot lock");
    let started = st.since.clone();
    st.last_reboot = Some(crate::state::now_rfc3339());
    st.boot_id = None;
    st.staged_version = None;
    st.enter(node.root, Phase::Idle, None)?;
    forget_fulfilled_request(node.root, &started);
    Ok(())
}

/// This member is a healthy voter whose raft index has reached the leader's (read first).
async fn caught_up(node: &Node<'_>, view: &ClusterView) -> Result<()> {
    let mine = view
        .find_me(&node.me)
        .context("this node is not an etcd member")?;
    if mine.is_learner || !mine.healthy {
        bail!("this member is not a healthy voter yet");
    }
    let leader = view
        .leader
        .and_then(|id| view.members.iter().find(|m| m.id == id))
        .context("the etcd cluster has no leader")?;
    let leader_url = leader
        .client_urls
        .first()
        .context("the leader has no client URL")?;
    let leader_index = node.access.status(leader_url).await?.raft_index;
    let own = node
        .access
        .status(&node.access.client_url(node.me.ip))
        .await?;
    if own.raft_index < leader_index {
        bail!(
            "this member is catching up (raft index {} of the leader's {leader_index})",
            own.raft_index
        );
    }
    Ok(())
}

/// The sentinel lives in /run, which a reboot empties; one left from before the reboot (a root
/// that is not tmpfs) is the request this reboot fulfilled, and is removed.
fn forget_fulfilled_request(root: &Root, reboot_started: &str) {
    let path = root.path(files::REBOOT_SENTINEL);
    let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
        return;
    };
    let Ok(started) = time::OffsetDateTime::parse(
        reboot_started,
        &time::format_description::well_known::Rfc3339,
    ) else {
        return;
    };
    if time::OffsetDateTime::from(modified) < started {
        let _ = std::fs::remove_file(&path);
    }
}
