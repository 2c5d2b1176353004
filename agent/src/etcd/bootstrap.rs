//! `bootstrap` for role etcd: gather the facts, let the plan decide, carry it out, and write the
//! env file once starting etcd is safe.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use super::client::ErrorKind;
use super::model::{
    ClusterState, ClusterView, Founder, InitialCluster, Marker, MemberInfo, MemberRecord,
};
use super::plan::{self, DataDir, Facts, Plan, Removal, Wait};
use super::{env, peers, tls, Local, Waiter};
use crate::aws::AsgView;
use crate::exit::one_line;
use crate::files;
use crate::fsutil;
use crate::node::{Node, OwnFiles};
use crate::state::BootState;
use crate::store::Store;

/// How old the ASG view may get while waiting.
const ASG_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a node waiting for the seeder asks the seeder's etcd peer port (no AWS call): once
/// it answers, the marker is there to read.
const SEEDER_LOOK: std::time::Duration = std::time::Duration::from_millis(50);

/// Decide, act, write the env file. Returns when starting etcd with that file is safe and will
/// succeed, or fails after `etcd.join_timeout_seconds`.
pub async fn bootstrap(node: &Node<'_>, asg_name: &str, state: &mut BootState) -> Result<()> {
    let settings = node.settings;
    let store = node.store();
    // Everything read before anything is written: the CA, the group (a config naming a group
    // this node is not in stops here), the marker. The group is listed, and the marker read,
    // right before the members are asked: a removal can mostly be decided on that first
    // listing (it must be fresh), and a seeder's etcd that started after the marker was read
    // would be asked without it (the marker is read again only after a pause).
    let ca = match settings.etcd.tls {
        true => Some(tls::fetch_ca(&store).await?),
        false => None,
    };
    let mut asg_view = (
        list_group(node, asg_name, state, true).await?,
        Instant::now(),
    );
    let mut marker = read_marker(&store).await?;
    let (client_tls, tls_files) = match &ca {
        Some(ca) => {
            let (c, f) = tls::write(ca, node.root, node.ident, state)?;
            (Some(c), Some(f))
        }
        None => (None, None),
    };
    let local = Local::new(settings, node.root, node.ident, client_tls, tls_files);
    let peer_ports = peers::PeerPorts::new(&local.access);
    let mut waiter = Waiter::new(settings.etcd.join_timeout);
    let mut learners = LearnerWatch::load(node.root);
    // While waiting, the group is listed again at most every ASG_REFRESH (at once when a
    // removal needs a fresh listing), and the marker is read until it exists (it never changes
    // after): a waiting node costs few AWS calls.
    let mut relist = false;
    loop {
        if relist || asg_view.1.elapsed() > ASG_REFRESH {
            asg_view = (
                list_group(node, asg_name, state, false).await?,
                Instant::now(),
            );
            relist = false;
        }
        let (asg, listed_at) = &asg_view;
        let candidates = local.candidates(Some(asg));
        // No marker yet, but an etcd runs: the seeder may have written it since it was read,
        // and the seeder's etcd, until a quorum of founders runs, would hold the look below
        // for its whole timeout.
        if marker.is_none() && peer_ports.any_runs(&candidates).await {
            marker = read_marker(&store).await?;
        }
        let env_written = node.root.path(files::ETCD_ENV).exists();
        let data = local.data_dir_state();
        let facts = Facts {
            me: &local.me,
            asg: &asg.instances,
            asg_age: listed_at.elapsed(),
            marker: marker.as_ref(),
            marker_age: marker.as_ref().and_then(age_of),
            cluster: None,
            listening: &[],
            data: &data,
            env_written,
            learners_unhealthy_for: &Default::default(),
            learner_timeout: settings.etcd.learner_timeout,
            unstarted_per_peers: None,
        };
        // A founder asks the peer ports first: during a cold start the founders' client ports
        // answer only once a quorum of them runs, their peer ports at once.
        let unstarted_per_peers = match plan::may_found_at_once(&facts) {
            true => peer_ports.unstarted_member(&candidates, &local.me).await,
            false => None,
        };
        let cluster = match unstarted_per_peers {
            Some(_) => None,
            None => local.access.observe(&candidates).await,
        };
        // Nobody answers and no marker: before anyone seeds, is an etcd there that we cannot
        // talk to?
        let listening = match (&cluster, &marker) {
            (None, None) => local.access.listening(&candidates).await,
            _ => Vec::new(),
        };
        let learners_unhealthy_for = learners.look(cluster.as_ref(), &local.me);
        let plan = plan::decide(&Facts {
            cluster: cluster.as_ref(),
            listening: &listening,
            learners_unhealthy_for: &learners_unhealthy_for,
            unstarted_per_peers,
            ..facts
        });
        tracing::debug!(?plan, "etcd plan");
        // Waiting for the seeder, look again as soon as its etcd runs: it wrote the marker
        // before its files, and its etcd starts from them.
        let seeder = match &plan {
            Plan::Wait(Wait::ForSeeder { seeder }) => asg
                .instance(seeder)
                .and_then(|i| i.private_ip)
                .map(|ip| local.access.client_url(ip)),
            _ => None,
        };
        let seeder_runs = seeder
            .as_deref()
            .map(|url| peer_ports.until_answers(url, SEEDER_LOOK));
        let why = match plan {
            Plan::Seed => match seed(&local, &store, asg, state).await? {
                None => return Ok(()),
                Some(why) => {
                    marker = read_marker(&store).await?;
                    why
                }
            },
            Plan::ResumeSeed => {
                let marker = marker.as_ref().expect("resuming a seed needs the marker");
                resume_seed(&local, marker, state)?;
                return Ok(());
            }
            Plan::Found(why) => {
                let marker = marker.as_ref().expect("founding needs the marker");
                found(&local, marker, state, &why)?;
                return Ok(());
            }
            Plan::Restart(why) => {
                restart(&local, cluster.as_ref(), marker.as_ref(), state, why)?;
                return Ok(());
            }
            Plan::MoveAside(why) => {
                move_aside(&local, state, &why)?;
                continue;
            }
            Plan::Relist => {
                relist = true;
                continue;
            }
            Plan::Join {
                remove,
                reuse_learner,
            } => {
                let view = cluster
                    .as_ref()
                    .expect("a join plan comes from a cluster view");
                match join(&local, view, &remove, reuse_learner, marker.as_ref(), state).await? {
                    None => return Ok(()),
                    Some(why) => why,
                }
            }
            Plan::Wait(why) => why.to_string(),
            Plan::Refuse(why) => format!("refusing to change membership: {why}"),
        };
        if let Err(why) = waiter.pause_until(why, seeder_runs).await {
            state.decide("gave up", why.clone());
            bail!("etcd is not ready to start after {}s: {why}", waiter.secs());
        }
        if marker.is_none() {
            marker = read_marker(&store).await?;
        }
    }
}

/// Lists the node's group: its instances' lifecycle states (one AutoScaling call) and addresses
/// (one EC2 call). The `first` listing is recorded in `state.json`; when the config names the
/// group, it must hold this node.
async fn list_group(
    node: &Node<'_>,
    name: &str,
    state: &mut BootState,
    first: bool,
) -> Result<AsgView> {
    let step = Instant::now();
    let asg = node
        .aws
        .describe_asg(name)
        .await
        .with_context(|| format!("listing the instances of autoscaling group {name}"))?;
    if !first {
        return Ok(asg);
    }
    let me = &node.ident.instance_id;
    if node.settings.etcd_asg().is_some() && asg.instance(me).is_none() {
        bail!(crate::exit::BadInput(format!(
            "this instance {me} is not in autoscaling group {name}, which key `etcd.asg` names: \
             an etcd node's `etcd.asg` is its own group"
        )));
    }
    state.decide(
        "discovered peers",
        format!(
            "autoscaling group {} has {} instances ({} in service)",
            asg.name,
            asg.instances.len(),
            asg.instances.iter().filter(|i| i.in_service()).count()
        ),
    );
    state.asg = Some(asg.clone());
    state
        .timings_ms
        .insert("discover".into(), step.elapsed().as_millis() as u64);
    Ok(asg)
}

/// A restart as itself (SPEC §7.4) decided without the ASG view or the marker: etcd restarts on
/// its data when this node has its data dir, the record of it, the env file and certificates
/// good enough for `when`, and the members it can reach from the record list it. When none
/// answers, only [`OwnFiles::AwsDown`] restarts (a whole-cluster restart); a reboot asks AWS
/// then, as the marker may have changed (a restore). `Ok(false)` when that cannot be told
/// without AWS: a join, a replacement or a removal still needs it.
pub async fn restart_as_before(
    node: &Node<'_>,
    state: &mut BootState,
    when: OwnFiles,
) -> Result<bool> {
    let (settings, root) = (node.settings, node.root);
    let expected = files::expected(crate::config::Role::Etcd, settings.etcd.tls);
    if let Some(file) = files::first_missing(root, &expected) {
        tracing::info!(file, "not starting as before: a file is missing");
        return Ok(false);
    }
    if settings.etcd.tls {
        if let Some(why) = certificates_not_kept(node, when) {
            tracing::info!(%why, "not starting as before");
            return Ok(false);
        }
    }
    let Ok(mut local) = Local::from_disk(settings, root, node.ident) else {
        return Ok(false);
    };
    if settings.etcd.tls {
        local.tls_files = Some(tls::node_files(root));
    }
    let DataDir::Present {
        record: Some(record),
    } = local.data_dir_state()
    else {
        tracing::info!("not starting as before: no etcd data with a record of it");
        return Ok(false);
    };
    let own = record.name == local.me.name
        && record.peer_url == local.me.peer_url
        && record.data_dir == local.data_dir.display().to_string();
    if !own {
        tracing::info!("not starting as before: the record is not this node's data dir's");
        return Ok(false);
    }
    let cluster = local.access.observe(&local.candidates(None)).await;
    let why = match (&cluster, when) {
        (None, OwnFiles::AwsDown) => plan::Restart::NobodyAnswers,
        (None, OwnFiles::Reboot) => {
            tracing::info!("not starting as before: no member answers");
            return Ok(false);
        }
        (Some(view), _) => match view
            .members
            .iter()
            .find(|m| m.name == local.me.name || record.member_id.is_some_and(|id| id == m.id))
        {
            Some(m) => plan::Restart::StillMember { id: m.id },
            None => {
                tracing::info!("not starting as before: the members no longer list this node");
                return Ok(false);
            }
        },
    };
    restart(&local, cluster.as_ref(), None, state, why)?;
    Ok(true)
}

/// Why the node's etcd certificates are not good enough for `when`: for a reboot, each leaf
/// must be one a run with the CA would keep; without AWS, each must be valid now.
fn certificates_not_kept(node: &Node<'_>, when: OwnFiles) -> Option<String> {
    let root = node.root;
    if let Some(why) = files::unusable_cert(root, files::ETCD_NODE_CA) {
        return Some(why);
    }
    let request = tls::leaf_request(node.ident, tls::USAGES.to_vec());
    [files::ETCD_SERVER, files::ETCD_PEER]
        .into_iter()
        .find_map(|leaf| match when {
            OwnFiles::Reboot => files::leaf_not_kept(root, leaf, files::ETCD_NODE_CA, &request),
            OwnFiles::AwsDown => files::unusable_cert(root, leaf.cert),
        })
}

/// When this node first saw each other learner unhealthy, kept across runs
/// ([`files::ETCD_LEARNER_WATCH`]): a learner that blocks joins for longer than one run is seen
/// as such. A learner that answers, or is gone, is forgotten.
struct LearnerWatch {
    path: std::path::PathBuf,
    /// Member id (hex) → Unix seconds when first seen unhealthy.
    first_seen: std::collections::BTreeMap<String, u64>,
}

impl LearnerWatch {
    fn load(root: &crate::fsutil::Root) -> Self {
        let path = root.path(files::ETCD_LEARNER_WATCH);
        let first_seen = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable learner watch");
                Default::default()
            }),
            Err(_) => Default::default(),
        };
        LearnerWatch { path, first_seen }
    }

    /// Updates the watch from `view` (kept as is when nobody answered) and returns how long
    /// each other unhealthy learner has been seen so.
    fn look(
        &mut self,
        view: Option<&ClusterView>,
        me: &super::model::Me,
    ) -> std::collections::BTreeMap<u64, std::time::Duration> {
        let mut out = std::collections::BTreeMap::new();
        let Some(view) = view else {
            return out;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut seen = std::collections::BTreeMap::new();
        for m in view.learners() {
            if m.healthy || m.peer_urls.contains(&me.peer_url) {
                continue;
            }
            let key = format!("{:x}", m.id);
            let since = self.first_seen.get(&key).copied().unwrap_or(now);
            out.insert(
                m.id,
                std::time::Duration::from_secs(now.saturating_sub(since)),
            );
            seen.insert(key, since);
        }
        if seen != self.first_seen {
            self.first_seen = seen;
            let mut json = serde_json::to_vec_pretty(&self.first_seen).expect("watch serialises");
            json.push(b'\n');
            if let Err(e) = fsutil::write_atomic(&self.path, &json, fsutil::MODE_PUBLIC) {
                tracing::warn!(path = %self.path.display(), error = %e, "could not save the learner watch");
            }
        }
        out
    }
}

/// How long ago the marker was written, by this node's clock.
fn age_of(marker: &Marker) -> Option<std::time::Duration> {
    let at = crate::state::parse_rfc3339(&marker.seeded_at)?;
    std::time::Duration::try_from(crate::clock::now() - at).ok()
}

async fn read_marker(store: &Store<'_>) -> Result<Option<Marker>> {
    store.marker().await.context("reading the cluster marker")
}

impl Local<'_> {
    /// Writes the member record, then the env file: once the env file is there, etcd may start.
    /// The env file is rendered (and its values checked) before anything is written.
    pub(super) fn write_config(&self, record: &MemberRecord, state: &mut BootState) -> Result<()> {
        let env = env::EtcdEnv {
            name: self.me.name.clone(),
            data_dir: self.data_dir.clone(),
            ip: self.me.ip,
            endpoints: *self.access.endpoints(),
            initial_cluster: record.initial_cluster.clone(),
            initial_cluster_state: record.initial_cluster_state,
            token: record.cluster_token.clone(),
            tls: self.tls_files.clone(),
        }
        .render()
        .with_context(|| format!("refusing to write {}", files::ETCD_ENV))?;
        let mut json = serde_json::to_vec_pretty(record).expect("record serialises");
        json.push(b'\n');
        files::write(
            self.root,
            state,
            files::ETCD_MEMBER_RECORD,
            &json,
            fsutil::MODE_PUBLIC,
        )?;
        files::write(
            self.root,
            state,
            files::ETCD_ENV,
            env.as_bytes(),
            fsutil::MODE_PUBLIC,
        )?;
        Ok(())
    }

    /// The files of a founding member (the seeder too): `new`, the marker's founders (the seeder
    /// alone when it names none) and token.
    fn write_founding_config(&self, marker: &Marker, state: &mut BootState) -> Result<()> {
        let record = self.record(
            &marker.token,
            None,
            marker.initial_cluster(),
            ClusterState::New,
        );
        self.write_config(&record, state)
    }

    pub(super) fn record(
        &self,
        token: &str,
        member_id: Option<u64>,
        initial_cluster: InitialCluster,
        initial_cluster_state: ClusterState,
    ) -> MemberRecord {
        MemberRecord {
            cluster_token: token.to_string(),
            name: self.me.name.clone(),
            peer_url: self.me.peer_url.clone(),
            member_id,
            initial_cluster,
            initial_cluster_state,
            data_dir: self.data_dir.display().to_string(),
        }
    }

    /// The cluster token: the marker's, else (a cluster whose marker is lost) the default.
    fn token(&self, marker: Option<&Marker>) -> String {
        marker.map_or_else(
            || format!("{}-etcd", self.settings.cluster),
            |m| m.token.clone(),
        )
    }
}

/// Creates the cluster: the marker first (by conditional put, so exactly one node wins), then
/// the files. `Some(why)` when another node won.
async fn seed(
    local: &Local<'_>,
    store: &Store<'_>,
    asg: &AsgView,
    state: &mut BootState,
) -> Result<Option<String>> {
    let s = local.settings;
    let mut marker = Marker {
        cluster: s.cluster.as_str().into(),
        token: format!("{}-{:016x}", s.cluster, rand::random::<u64>()),
        seeded_by: local.me.name.clone(),
        seed_peer_url: local.me.peer_url.clone(),
        seeded_at: crate::state::now_rfc3339(),
        restored_from: None,
        founders: founders(local, asg),
    };
    if let Err(e) = marker.check(s.cluster.as_str()) {
        tracing::warn!(error = %e, "founding alone: the founding set would not be a usable marker");
        marker.founders.clear();
    }
    let created = store
        .create_marker(&marker)
        .await
        .context("writing the cluster marker")?;
    // "Already exists" may answer our own put: S3 stored it, the reply was lost, and the SDK's
    // retry found it there. The token is random: only this run can have written it.
    let ours = created
        || read_marker(store)
            .await?
            .is_some_and(|m| m.token == marker.token);
    if !ours {
        return Ok(Some("another node created the cluster marker first".into()));
    }
    if !created {
        tracing::warn!(
            token = %marker.token,
            "the cluster marker put was answered \"already exists\", but the marker is this \
             run's own (a lost reply): going on as the seeder"
        );
    }
    let founding = match marker.founders.len() {
        0 => "founding alone (not every instance of the ASG's desired capacity was in service; \
              the others join one at a time)"
            .to_string(),
        n => format!(
            "founding with all {n} instances of the ASG's desired capacity, each starting \
             `new` at once: {}",
            marker.initial_cluster()
        ),
    };
    state.decide(
        "seeded cluster",
        format!(
            "{} is the lowest in-service instance id of {} and no cluster existed; token {}; \
             {founding}",
            local.me.name, asg.name, marker.token
        ),
    );
    local.write_founding_config(&marker, state)?;
    Ok(None)
}

/// The founding set (SPEC §7.6): every instance of the ASG's desired capacity, when the seeder
/// sees them all in service, each with its peer URL; empty otherwise (the seeder founds alone),
/// and for a group of one.
fn founders(local: &Local<'_>, asg: &AsgView) -> Vec<Founder> {
    let serving: Vec<_> = asg
        .instances
        .iter()
        .filter(|i| i.in_service() && !i.leaving())
        .collect();
    let whole = i32::try_from(serving.len()).is_ok_and(|n| n == asg.desired_capacity);
    if !whole || serving.len() < 2 || !serving.iter().any(|i| i.instance_id == local.me.name) {
        return Vec::new();
    }
    let mut founders = Vec::new();
    for i in serving {
        let Some(ip) = i.private_ip else {
            return Vec::new();
        };
        let peer_url = match i.instance_id == local.me.name {
            true => local.me.peer_url.clone(),
            false => local.access.endpoints().peer_url(ip),
        };
        founders.push(Founder {
            instance_id: i.instance_id.clone(),
            peer_url,
        });
    }
    founders.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    founders
}

/// A founder other than the seeder, whose member never started: the founders' initial cluster,
/// `new`, the marker's token.
fn found(
    local: &Local<'_>,
    marker: &Marker,
    state: &mut BootState,
    why: &plan::Found,
) -> Result<()> {
    state.decide("founding member", why.to_string());
    local.write_founding_config(marker, state)
}

/// Finishes a seed whose run ended after the marker was stored: the same files `seed` writes,
/// with the marker's token.
fn resume_seed(local: &Local<'_>, marker: &Marker, state: &mut BootState) -> Result<()> {
    state.decide(
        "seeded cluster",
        format!(
            "finishing the seed: the cluster marker (token {}) was written by this node at {}, \
             but etcd never started from it (no data, no env file, no member answers)",
            marker.token, marker.seeded_at
        ),
    );
    local.write_founding_config(marker, state)
}

/// Starts etcd on its data as before: same env, no membership change.
fn restart(
    local: &Local<'_>,
    cluster: Option<&ClusterView>,
    marker: Option<&Marker>,
    state: &mut BootState,
    why: plan::Restart,
) -> Result<()> {
    state.decide("restart etcd with its data", why.to_string());
    let record = match local.read_record() {
        Some(r) => r,
        None => {
            // Data without a record, and the cluster lists this node: adopt it.
            let view = cluster.ok_or_else(|| anyhow!("no record and no cluster view"))?;
            let id = view.find_me(&local.me).map(|m| m.id);
            local.record(
                &local.token(marker),
                id,
                InitialCluster::of_members(&view.members, &local.me),
                ClusterState::Existing,
            )
        }
    };
    local.write_config(&record, state)
}

/// Moves the data dir's contents (and the record of them) aside into `<data_dir>/moved-<UTC
/// time>`: never deleted, kept on the data volume.
fn move_aside(local: &Local<'_>, state: &mut BootState, why: &plan::MoveAside) -> Result<()> {
    let dest = local.move_data_aside()?;
    state.decide(
        "moved data dir aside",
        format!("{why}; it is now {}", dest.display()),
    );
    Ok(())
}

/// Removes the stale members, adds this node as a learner (or reuses the one added for it),
/// writes the files. `Some(why)` when etcd said not now.
async fn join(
    local: &Local<'_>,
    view: &ClusterView,
    remove: &[Removal],
    reuse_learner: Option<u64>,
    marker: Option<&Marker>,
    state: &mut BootState,
) -> Result<Option<String>> {
    let endpoints = view.voter_endpoints();
    for r in remove {
        if let Err(e) = local.access.remove(&endpoints, r.id).await {
            return Ok(Some(format!(
                "removing stale member {:x} failed: {}",
                r.id,
                one_line(&e)
            )));
        }
        state.decide(
            "removed stale member",
            format!(
                "{} ({:x}): {}",
                super::model::display_name(&r.name),
                r.id,
                r.why
            ),
        );
    }
    let (id, members): (u64, Vec<MemberInfo>) = match reuse_learner {
        Some(id) => {
            state.decide(
                "reusing learner",
                format!(
                    "learner {id:x} was added for this node by an earlier run and never started"
                ),
            );
            let members = view
                .members
                .iter()
                .filter(|m| !remove.iter().any(|r| r.id == m.id))
                .cloned()
                .collect();
            (id, members)
        }
        None => match local
            .access
            .add_learner(&endpoints, &local.me.peer_url)
            .await
        {
            Ok(added) => {
                state.decide(
                    "joined as learner",
                    format!(
                        "added learner {:x} with peer URL {}; `tn-agent etcd promote` makes it a voter once it has caught up",
                        added.0, local.me.peer_url
                    ),
                );
                added
            }
            Err(e) if e.kind() == ErrorKind::TooManyLearners => {
                return Ok(Some(
                    "another node is joining (etcd takes one learner at a time)".into(),
                ));
            }
            Err(e) => {
                return Ok(Some(format!(
                    "adding this node as a learner failed: {}",
                    one_line(&e)
                )));
            }
        },
    };
    let record = local.record(
        &local.token(marker),
        Some(id),
        InitialCluster::of_members(&members, &local.me),
        ClusterState::Existing,
    );
    local.write_config(&record, state)?;
    Ok(None)
}
