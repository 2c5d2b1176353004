//! `tn-agent reboot watch` (SPEC §9): when a reboot is needed, wait for the window and the
//! gates, take a slot of the group's lock, make ready (an etcd member hands leadership away; a
//! Kubernetes node is cordoned and drained), reboot; after the boot, wait until the node is
//! healthy again (an etcd member a caught-up voter; a Node `Ready`), uncordon what this agent
//! cordoned, release. Every step is written to `reboot.json` before it is taken
//! ([`RebootState`]), so a restart resumes where it was.
//!
//! A master whose apiserver runs with older client certificates than the node has (reconcile
//! renewed them; the apiserver reads them only at start) has its apiserver restarted the same
//! way, one master at a time: window, gates, the master group's lock; then, instead of a drain
//! and a reboot, its static pod's manifest is marked with the renewed certificates (the kubelet
//! restarts it) and the slot is released once its mirror pod carries the mark and is Ready.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::dbus::{logind_reboot, UpdateEngine};
use super::drain;
use super::etcd_lock::EtcdLock;
use super::gates::etcd_gates;
use super::kube_lock::KubeLock;
use super::lock::{GroupLock, ETCD_GROUP, MASTER_GROUP};
use super::phase::{boot_id, booted_version, Phase, RebootState};
use super::semaphore::Outcome;
use crate::aws::Aws;
use crate::backup::record::{fresh_enough, BackupRecord, SeenBackup};
use crate::config::{Role, Settings};
use crate::etcd::client::EtcdAccess;
use crate::etcd::model::{ClusterView, Me, MemberInfo};
use crate::exit::one_line;
use crate::files;
use crate::fsutil::{self, Root, MODE_PUBLIC};
use crate::identity::NodeIdentity;
use crate::kube::apiserver_restart;
use crate::kube::client::{Eviction, KubeClient};
use crate::store::Store;

/// How long the leadership hand-off may take before it is tried again.
const HANDOFF_WAIT: Duration = Duration::from_secs(30);

/// The node whose reboot the watch manages.
struct Node<'a> {
    settings: &'a Settings,
    root: &'a Root,
    ident: &'a NodeIdentity,
    side: Side,
}

/// What differs between an etcd member and a Kubernetes node.
enum Side {
    Etcd(EtcdMember),
    /// A master or a worker, by its Node's name.
    Kube {
        node_name: String,
    },
}

/// An etcd node: its client, the members' client URLs, and which member it is.
struct EtcdMember {
    access: EtcdAccess,
    endpoints: Vec<String>,
    me: Me,
}

impl EtcdMember {
    /// The cluster as it answers now, and this node's member in it.
    async fn observe_me(&self, when: &str) -> Result<(ClusterView, MemberInfo)> {
        let view = self
            .access
            .observe(&self.endpoints)
            .await
            .with_context(|| format!("no etcd member answers{when}"))?;
        let mine = view
            .find_me(&self.me)
            .context("this node is not an etcd member")?
            .clone();
        Ok((view, mine))
    }
}

/// What one round of the watch reaches the cluster with: etcd, or the apiserver with the
/// kubelet's credentials as they are now (the kubelet writes them after its TLS bootstrap and
/// rotates them, so they are read again each round).
enum Reach<'a> {
    Etcd(&'a EtcdMember),
    Kube {
        node_name: &'a str,
        client: KubeClient,
    },
}

impl Node<'_> {
    fn reach(&self) -> Result<Reach<'_>> {
        Ok(match &self.side {
            Side::Etcd(member) => Reach::Etcd(member),
            Side::Kube { node_name } => Reach::Kube {
                node_name,
                client: kubelet_client(self.root)?,
            },
        })
    }
}

impl Reach<'_> {
    /// The group's lock: in etcd through the healthy voters (a client given a member that is
    /// down may send a request there and fail), or in Kubernetes.
    async fn lock(&self, group: &str) -> Result<GroupLock<'_>> {
        Ok(match self {
            Reach::Etcd(m) => {
                let view = m
                    .access
                    .observe(&m.endpoints)
                    .await
                    .context("no etcd member answers")?;
                GroupLock::Etcd(EtcdLock::new(&m.access, view.voter_endpoints(), group))
            }
            Reach::Kube { client, .. } => GroupLock::Kube(KubeLock::new(client, group)),
        })
    }
}

/// A client with the kubelet's credentials (`/etc/kubernetes/kubelet.conf`).
pub fn kubelet_client(root: &Root) -> Result<KubeClient> {
    let path = root.path(files::KUBELET_KUBECONFIG);
    KubeClient::from_kubeconfig(&path)
        .context("the node's Kubernetes credentials (the kubelet writes them once it has joined)")
}

/// The reboot group of this node: `[reboot] group`, else `etcd`, `master` or (a worker) its
/// ASG's name, as the last bootstrap recorded it (else AWS says).
pub async fn own_group(settings: &Settings, root: &Root, ident: &NodeIdentity) -> Result<String> {
    if let Some(g) = &settings.reboot.group {
        return Ok(g.clone());
    }
    Ok(match settings.role() {
        Role::Etcd => ETCD_GROUP.to_string(),
        Role::Master => MASTER_GROUP.to_string(),
        Role::Worker => {
            let asg = own_asg(root, ident).await?;
            if !super::lock::is_kube_group_name(&asg) {
                bail!(
                    "this worker's autoscaling group {asg:?} cannot name a reboot group's \
                     ConfigMap (tn-reboot-<group>: lowercase letters, digits, '-' and '.'); \
                     set `[reboot] group`"
                );
            }
            asg
        }
    })
}

/// Runs until this node's reboot command has been started (returns what it did), or forever
/// while no reboot is needed.
pub async fn watch(settings: &Settings, root: &Root, ident: &NodeIdentity) -> Result<String> {
    let side = match settings.role() {
        Role::Etcd => {
            let (access, endpoints) = crate::etcd::node_client(settings, root, ident)?;
            let me = Me::new(&ident.instance_id, ident.private_ip, access.endpoints());
            Side::Etcd(EtcdMember {
                access,
                endpoints,
                me,
            })
        }
        Role::Master | Role::Worker => Side::Kube {
            node_name: crate::kube::certs::node_name(ident),
        },
    };
    let node = Node {
        settings,
        root,
        ident,
        side,
    };
    let group = own_group(settings, root, ident).await?;
    let mut st = RebootState::load(root, &group)?;
    let interval = settings.reboot.check_interval;
    let mut engine = UpdateEngine::connect().await;
    crate::metrics::write(settings, root, crate::metrics::Etcd::Ask).await;
    let mut metrics_phase = st.phase;
    loop {
        // An idle node with nothing to do does not reach for its cluster (a worker's kubelet
        // may not have joined yet).
        let idle =
            st.phase == Phase::Idle && !needed(root, engine.as_ref()) && !restart_needed(&node);
        let reach = match idle {
            true => None,
            false => Some(node.reach()),
        };
        let step = match &reach {
            None => Ok(None),
            Some(Ok(reach)) => step(&node, reach, &mut st, &group, engine.as_ref()).await,
            Some(Err(e)) => Err(anyhow::anyhow!("{e:#}")),
        };
        let failed = step.is_err();
        if st.phase != metrics_phase {
            metrics_phase = st.phase;
            crate::metrics::write(settings, root, crate::metrics::Etcd::Ask).await;
        }
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
            let lock = match (st.phase, &reach) {
                (Phase::Waiting | Phase::Locking, Some(Ok(reach))) => {
                    reach.lock(&st.group).await.ok()
                }
                _ => None,
            };
            match lock {
                Some(lock) => {
                    let free_now = st.why.as_deref().is_some_and(|w| w.starts_with(SLOTS_HELD));
                    lock.wait_for_change(interval, free_now).await
                }
                None => std::future::pending().await,
            }
        };
        // After the boot this node holds the slot and the whole rollout waits on it; a drain
        // waits on evictions; a step that failed (a member going down under a request) is
        // worth another try soon: look again soon, not at the interval.
        let pause = if failed
            || matches!(
                st.phase,
                Phase::Rebooting | Phase::Draining | Phase::Restarting
            ) {
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

/// How soon a failed step is tried again, how often a drain looks at its pods (and retries an
/// eviction a budget refused), and how often a node that holds its slot after its boot looks
/// whether it is healthy again.
const RETRY_SOON: Duration = Duration::from_secs(2);

/// How a wait for a held slot is worded (and recognised).
const SLOTS_HELD: &str = "every slot of reboot group";
/// How a wait after a drain that gave up is worded (and recognised).
const DRAIN_GAVE_UP: &str = "the drain did not finish within";

/// One step from where the state is. `Ok(Some(..))`: the reboot command ran.
async fn step(
    node: &Node<'_>,
    reach: &Reach<'_>,
    st: &mut RebootState,
    group: &str,
    engine: Option<&UpdateEngine>,
) -> Result<Option<String>> {
    let this_boot = boot_id(node.root);
    match st.phase {
        Phase::Rebooting if this_boot.is_some() && this_boot == st.boot_id => {
            // Same boot: the command failed or the machine is still going down. Again.
            reboot(node, st).await
        }
        Phase::Rebooting => after_boot(node, reach, st).await.map(|()| None),
        Phase::Locking | Phase::Locked | Phase::Draining => lock_and_reboot(node, reach, st).await,
        Phase::Restarting => after_restart(node, reach, st).await.map(|()| None),
        Phase::Idle | Phase::Waiting => {
            let reboot = needed(node.root, engine);
            let restart = !reboot && restart_needed(node);
            if !reboot && !restart {
                if st.phase != Phase::Idle {
                    st.restart = false;
                    st.enter(node.root, Phase::Idle, None)?;
                }
                return Ok(None);
            }
            if reboot
                && st
                    .why
                    .as_deref()
                    .is_some_and(|w| w.starts_with(DRAIN_GAVE_UP))
                && elapsed_since(&st.since) < node.settings.reboot.drain_timeout
            {
                // After a drain gave up, the slot stays free for the others as long as the
                // drain held it, before this node tries again. (Released again: the release
                // may not have happened if the watch stopped right after recording this.)
                reach
                    .lock(&st.group)
                    .await?
                    .release(&node.ident.instance_id)
                    .await?;
                return Ok(None);
            }
            st.group = group.to_string();
            st.restart = restart;
            st.staged_version = engine
                .and_then(UpdateEngine::last)
                .filter(|s| reboot && s.needs_reboot() && !s.new_version.is_empty())
                .map(|s| s.new_version.clone());
            lock_and_reboot(node, reach, st).await
        }
    }
}

/// Whether a reboot is wanted: update_engine says an update is staged, or the sentinel exists
/// (Flatcar's postinstall, `reboot request`).
fn needed(root: &Root, engine: Option<&UpdateEngine>) -> bool {
    engine
        .and_then(UpdateEngine::last)
        .is_some_and(|s| s.needs_reboot())
        || root.path(files::REBOOT_SENTINEL).exists()
}

/// Whether this master's apiserver runs with older client certificates than the node has (see
/// the module's doc). A manifest or certificate that cannot be read is logged and not acted on.
fn restart_needed(node: &Node<'_>) -> bool {
    if node.settings.role() != Role::Master {
        return false;
    }
    match apiserver_restart::remarked_manifest(node.root) {
        Ok(remarked) => remarked.is_some(),
        Err(e) => {
            tracing::warn!(error = %one_line(e.as_ref()), "cannot tell whether the apiserver needs a restart");
            false
        }
    }
}

/// Window, gates, lock, gates again, hand-off or drain, reboot (or, for `restart`, the
/// apiserver's restart). `Ok(None)`: not now (the state says why).
async fn lock_and_reboot(
    node: &Node<'_>,
    reach: &Reach<'_>,
    st: &mut RebootState,
) -> Result<Option<String>> {
    let lock = reach.lock(&st.group).await?;
    if !matches!(st.phase, Phase::Locked | Phase::Draining) {
        if let Some(window) = node.settings.reboot.window {
            if !window.is_open(crate::clock::now()) {
                let why = format!("outside the reboot window ({window})");
                return wait(node, st, &lock, why).await;
            }
        }
        if let Err(why) = gates(node, reach).await {
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
        if let Err(why) = gates(node, reach).await {
            return wait(node, st, &lock, why).await;
        }
        st.enter(node.root, Phase::Locked, None)?;
    }
    match reach {
        Reach::Etcd(member) => hand_off_leadership(member).await?,
        Reach::Kube { .. } if st.restart => {
            // Recorded before the manifest is marked: a watch stopped in between resumes in
            // `after_restart`, which marks it.
            st.enter(node.root, Phase::Restarting, None)?;
            after_restart(node, reach, st).await?;
            return Ok(None);
        }
        Reach::Kube { node_name, client } => {
            if !drain(node, st, &lock, client, node_name).await? {
                return Ok(None);
            }
        }
    }
    reboot(node, st).await
}

/// Holding the slot for the apiserver's restart: mark its manifest with the client certificates
/// on disk if it is not (the kubelet restarts the pod), then release once the mirror pod
/// carries that mark and is Ready. `Err` (retried soon) while it is not: the slot stays held,
/// so no other master goes down while this one's apiserver is not back.
async fn after_restart(node: &Node<'_>, reach: &Reach<'_>, st: &mut RebootState) -> Result<()> {
    let Reach::Kube { node_name, client } = reach else {
        bail!("only a master restarts its apiserver");
    };
    if let Some(text) = apiserver_restart::remarked_manifest(node.root)? {
        let path = node.root.path(files::APISERVER_MANIFEST);
        fsutil::write_atomic(&path, text.as_bytes(), MODE_PUBLIC)
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(
            "marked the apiserver's manifest with its renewed client certificates: the kubelet \
             restarts it"
        );
    }
    let mark = apiserver_restart::manifest_mark(node.root)?;
    let name = apiserver_restart::mirror_pod_name(node_name);
    let pods = client.pods_on(node_name).await?;
    match pods
        .iter()
        .find(|p| p.namespace == "kube-system" && p.name == name)
    {
        None => bail!("the apiserver's mirror pod kube-system/{name} is not there yet"),
        Some(p) if p.annotations.get(apiserver_restart::CLIENT_CERTS_MARK) != mark.as_ref() => {
            bail!("the apiserver has not restarted with its renewed client certificates yet")
        }
        Some(p) if !p.ready => bail!("the restarted apiserver is not Ready yet"),
        Some(_) => {}
    }
    let lock = reach.lock(&st.group).await?;
    let (_, doc) = lock.release(&node.ident.instance_id).await?;
    tracing::info!(group = %st.group, lock = %doc, "the apiserver is back with its renewed client certificates: released the reboot lock");
    st.restart = false;
    st.enter(node.root, Phase::Idle, None)?;
    Ok(())
}

/// Not now: gives back a slot taken in this attempt (a no-op when none is held) and records
/// why it waits.
async fn wait(
    node: &Node<'_>,
    st: &mut RebootState,
    lock: &GroupLock<'_>,
    why: String,
) -> Result<Option<String>> {
    if st.phase == Phase::Locking {
        lock.release(&node.ident.instance_id).await?;
    }
    st.enter(node.root, Phase::Waiting, Some(why))?;
    Ok(None)
}

/// `Err(why)` when a gate is closed.
async fn gates(node: &Node<'_>, reach: &Reach<'_>) -> Result<(), String> {
    match reach {
        Reach::Etcd(m) => {
            let view = m
                .access
                .observe(&m.endpoints)
                .await
                .ok_or_else(|| "no etcd member answers".to_string())?;
            let alarms = m
                .access
                .alarms(&view.voter_endpoints())
                .await
                .map_err(|e| format!("cannot read etcd's alarms: {}", one_line(&e)))?;
            etcd_gates(&view, &m.me, &alarms).map_err(|c| c.to_string())?;
            backup_fresh(node, m).await
        }
        Reach::Kube { client, .. } if node.settings.role() == Role::Master => {
            other_apiservers_ready(node, client).await
        }
        Reach::Kube { .. } => Ok(()),
    }
}

/// The backup gate (SPEC §9, §10): the newest backup in this node's record, else in the bucket.
/// All members' timer runs of one tick start together, so a member that does not lead may list
/// the bucket while the leader is still uploading, and record the backup before: its own record
/// would then hold its reboot for an interval although a fresh backup is there. So a record too
/// old to pass is checked against the bucket (one listing per check, only while it fails), and
/// a newer backup found there is recorded for `status` too.
async fn backup_fresh(node: &Node<'_>, member: &EtcdMember) -> Result<(), String> {
    let interval = node.settings.backup.interval;
    let record = BackupRecord::load(node.root).unwrap_or_default();
    let Err(why) = fresh_enough(record.newest.as_ref(), crate::clock::now(), interval) else {
        return Ok(());
    };
    let aws = Aws::connect(&node.ident.region).await;
    let store = Store::new(
        &aws,
        &node.settings.state_bucket,
        node.settings.cluster.as_str(),
    );
    let catalog = match store.backups().await {
        Ok(catalog) => catalog,
        Err(e) => {
            return Err(format!(
                "{why} (the bucket could not be listed: {})",
                one_line(&e)
            ))
        }
    };
    let Some(newest) = catalog.newest() else {
        return Err(why);
    };
    // The keyspace's revision as this member has applied it: a backup at that revision holds
    // everything there is (none read: the backup counts from when it was taken).
    let revision = member
        .access
        .status(&member.access.client_url(member.me.ip))
        .await
        .map_or(-1, |s| s.revision);
    // Read again: a timer run may have saved the record while the bucket was listed.
    let mut record = BackupRecord::load(node.root).unwrap_or_default();
    if record.saw(SeenBackup::of(newest, revision)) {
        if let Err(e) = record.save(node.root) {
            tracing::warn!(error = %format!("{e:#}"), "could not record the newest backup");
        }
    }
    fresh_enough(record.newest.as_ref(), crate::clock::now(), interval)
}

/// A master's gate: the apiserver of every other in-service master answers `/readyz`, so that
/// the cluster keeps an API while this one is down. A master alone passes.
async fn other_apiservers_ready(node: &Node<'_>, client: &KubeClient) -> Result<(), String> {
    let port = node
        .settings
        .kubernetes()
        .map(|k| k.apiserver.port())
        .ok_or("a master without [kubernetes]")?;
    let own = own_asg(node.root, node.ident)
        .await
        .map_err(|e| one_line(e.as_ref()))?;
    let aws = Aws::connect(&node.ident.region).await;
    let view = aws
        .describe_asg(&own)
        .await
        .map_err(|e| format!("cannot list the masters' group {own}: {}", one_line(&e)))?;
    for other in view
        .instances
        .iter()
        .filter(|i| i.in_service() && i.instance_id != node.ident.instance_id)
    {
        let Some(ip) = other.private_ip else {
            return Err(format!(
                "master {} has no private IP yet",
                other.instance_id
            ));
        };
        let server = format!("https://{ip}:{port}");
        if let Err(e) = client.with_server(&server).ready().await {
            return Err(format!(
                "the apiserver of master {} is not ready: {}",
                other.instance_id,
                one_line(&e)
            ));
        }
    }
    Ok(())
}

/// This node's ASG as the last bootstrap recorded it, else as AWS says.
async fn own_asg(root: &Root, ident: &NodeIdentity) -> Result<String> {
    let state = crate::state::BootState::load(root).ok().flatten();
    if let Some(asg) = state.as_ref().and_then(|s| s.own_asg()) {
        return Ok(asg.to_owned());
    }
    Aws::connect(&ident.region)
        .await
        .asg_of(&ident.instance_id)
        .await
        .context("finding this node's autoscaling group")
}

/// Frees the slots of holders whose instances are gone (EC2 says so); `true` when it freed
/// one. A failure to ask is logged: it only delays a reclaim.
async fn reclaim(node: &Node<'_>, lock: &GroupLock<'_>) -> bool {
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

/// One round of a Kubernetes node's drain: cordon (only a node that was schedulable, and
/// remember that it did), evict what must go, and say whether the node is drained. A drain
/// that outlasts `[reboot] drain_timeout` gives up: uncordon what it cordoned, release the
/// slot, try again later. `Ok(false)`: not drained yet (the state says why).
async fn drain(
    node: &Node<'_>,
    st: &mut RebootState,
    lock: &GroupLock<'_>,
    client: &KubeClient,
    node_name: &str,
) -> Result<bool> {
    let view = client.node(node_name).await?;
    if st.phase == Phase::Locked {
        // Decided once, before the cordon, and saved: a restart never takes an operator's
        // cordon for its own, nor its own for an operator's.
        st.cordoned = !view.unschedulable;
        st.enter(node.root, Phase::Draining, None)?;
    }
    if st.cordoned && !view.unschedulable {
        client.set_unschedulable(node_name, true).await?;
        tracing::info!(node = node_name, "cordoned");
    }
    let pods = client.pods_on(node_name).await?;
    let plan = drain::plan(&pods);
    if plan.done() {
        tracing::info!(node = node_name, "drained");
        return Ok(true);
    }
    let mut refused = Vec::new();
    for pod in &plan.evict {
        match client.evict(&pod.namespace, &pod.name).await? {
            Eviction::Started => tracing::info!(pod = %pod.key(), "evicting"),
            Eviction::Gone => {}
            Eviction::Refused(why) => {
                tracing::info!(pod = %pod.key(), %why, "eviction refused");
                refused.push(pod.key());
            }
        }
    }
    let drained_for = elapsed_since(&st.since);
    let limit = node.settings.reboot.drain_timeout;
    if drained_for >= limit {
        let mut left = Vec::new();
        if !refused.is_empty() {
            left.push(format!(
                "eviction refused for {} by a PodDisruptionBudget",
                refused.join(", ")
            ));
        }
        if !plan.terminating.is_empty() {
            let keys: Vec<String> = plan.terminating.iter().map(|p| p.key()).collect();
            left.push(format!("{} still terminating", keys.join(", ")));
        }
        if left.is_empty() {
            left.push("pods were still being evicted".to_string());
        }
        return give_up_drain(node, st, lock, client, node_name, &left.join("; ")).await;
    }
    let mut why = format!(
        "draining {node_name}: {} pod(s) to evict, {} terminating",
        plan.evict.len(),
        plan.terminating.len()
    );
    if !refused.is_empty() {
        why.push_str(&format!(
            "; refused by a PodDisruptionBudget: {} (retried until {} from the drain's start)",
            refused.join(", "),
            crate::reboot::window::format_duration(limit)
        ));
    }
    st.enter(node.root, Phase::Draining, Some(why))?;
    Ok(false)
}

/// The drain took too long: uncordon if this agent cordoned, release the slot, and wait as long
/// as the drain took before the next attempt (a new drain), so that the others get the slot.
/// The pods a budget protects are left running.
async fn give_up_drain(
    node: &Node<'_>,
    st: &mut RebootState,
    lock: &GroupLock<'_>,
    client: &KubeClient,
    node_name: &str,
    left: &str,
) -> Result<bool> {
    let cordoned = st.cordoned;
    if cordoned {
        client.set_unschedulable(node_name, false).await?;
        tracing::info!(node = node_name, "uncordoned: the drain gave up");
    }
    st.cordoned = false;
    let limit = crate::reboot::window::format_duration(node.settings.reboot.drain_timeout);
    let why = format!(
        "{DRAIN_GAVE_UP} {limit} ([reboot] drain_timeout): {left}; {}slot released, trying \
         again in {limit}",
        if cordoned { "uncordoned, " } else { "" }
    );
    tracing::warn!(%why, "drain gave up");
    // Recorded before the release: a watch stopped in between resumes in this wait, which
    // releases again; the other order could resume a drain without a slot.
    st.enter(node.root, Phase::Waiting, Some(why))?;
    lock.release(&node.ident.instance_id).await?;
    Ok(false)
}

/// Time since an RFC 3339 instant on the agent's clock; zero when it cannot be read.
fn elapsed_since(rfc3339: &str) -> Duration {
    crate::state::parse_rfc3339(rfc3339)
        .and_then(|t| Duration::try_from(crate::clock::now() - t).ok())
        .unwrap_or_default()
}

/// When this member leads, asks it to hand leadership to a healthy voter and waits until it
/// has, so that the reboot costs no election.
async fn hand_off_leadership(member: &EtcdMember) -> Result<()> {
    let (view, mine) = member.observe_me("").await?;
    let EtcdMember {
        access,
        endpoints,
        me,
    } = member;
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
    let own = access.client_url(me.ip);
    access.move_leader(&own, target.id).await?;
    let deadline = tokio::time::Instant::now() + HANDOFF_WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = access.observe(endpoints).await {
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

/// After the reboot: wait until the node is healthy (an etcd member a voter caught up with the
/// leader; a Kubernetes node `Ready`), uncordon what this agent cordoned, then release the
/// slot. `Err` (retried) while it is not.
async fn after_boot(node: &Node<'_>, reach: &Reach<'_>, st: &mut RebootState) -> Result<()> {
    if let (Some(staged), Some(booted)) = (&st.staged_version, booted_version(node.root)) {
        if *staged != booted {
            bail!(
                "the booted version is {booted} but {staged} was staged: keeping the reboot \
                 slot (the rollout halts) until an operator looks (docs/node.md, \"A stuck \
                 rollout\")"
            );
        }
    }
    match reach {
        Reach::Etcd(member) => caught_up(member).await?,
        Reach::Kube { node_name, client } => {
            let view = client.node(node_name).await?;
            if !view.ready {
                bail!("Node {node_name} is not Ready yet");
            }
            if st.cordoned {
                if view.unschedulable {
                    client.set_unschedulable(node_name, false).await?;
                }
                tracing::info!(node = %node_name, "uncordoned");
                st.cordoned = false;
                st.save(node.root)?;
            }
        }
    }
    let lock = reach.lock(&st.group).await?;
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
async fn caught_up(member: &EtcdMember) -> Result<()> {
    let (view, mine) = member.observe_me(" yet").await?;
    let EtcdMember { access, me, .. } = member;
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
    let leader_index = access.status(leader_url).await?.raft_index;
    let own = access.status(&access.client_url(me.ip)).await?;
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
    let Some(started) = crate::state::parse_rfc3339(reboot_started) else {
        return;
    };
    if time::OffsetDateTime::from(modified) < started {
        let _ = std::fs::remove_file(&path);
    }
}
