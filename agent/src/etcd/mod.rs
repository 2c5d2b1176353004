//! etcd membership (SPEC §7): seed, join one member at a time, restart, move stale data aside,
//! promote, leave. Safety first: a new cluster is started once, by one node; a member is removed
//! only when its instance is gone, and only if quorum holds without it.

pub mod client;
pub mod env;
pub mod plan;
pub mod tls;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use self::client::{voter_endpoints, ClientTls, EtcdAccess};
use self::env::{ClusterState, EtcdEnv, TlsFiles};
use self::plan::{
    ClusterView, DataDir, Facts, Marker, Me, MemberInfo, MemberRecord, Plan, Removal,
};
use crate::aws::{AsgView, Aws};
use crate::config::Settings;
use crate::exit::{one_line, BadInput};
use crate::fsutil::{self, Root};
use crate::identity::NodeIdentity;
use crate::retry::Backoff;
use crate::state::BootState;

/// What the agent recorded about the etcd data dir it configured.
pub const RECORD_PATH: &str = "/var/lib/tn-agent/etcd-member.json";

/// S3 key of the cluster marker.
pub fn marker_key(cluster: &str) -> String {
    format!("{cluster}/etcd/cluster.json")
}

/// How old the ASG view may get while waiting.
const ASG_REFRESH: Duration = Duration::from_secs(5);

/// How old the ASG view may be when a removal is decided on it.
const FRESH: Duration = Duration::from_secs(1);

/// Waits between looks at the cluster while waiting (seeder, a joiner ahead, a leader).
fn wait_policy(deadline: Duration) -> Backoff {
    Backoff::new(Duration::from_millis(300), Duration::from_secs(1), deadline)
}

/// Paces a command's wait loop: logs each new reason once, backs off with jitter, and gives up
/// at the deadline with the last reason.
struct Waiter {
    policy: Backoff,
    timeout: Duration,
    deadline: Instant,
    attempt: u32,
    last_why: String,
}

impl Waiter {
    fn new(timeout: Duration) -> Self {
        Waiter {
            policy: wait_policy(timeout),
            timeout,
            deadline: Instant::now() + timeout,
            attempt: 0,
            last_why: String::new(),
        }
    }

    /// Waits before the next look, or `Err(why)` when that would pass the deadline.
    async fn pause(&mut self, why: String) -> Result<(), String> {
        if why != self.last_why {
            tracing::info!(reason = %why, "waiting");
            self.last_why = why.clone();
        }
        self.attempt += 1;
        let wait = self.policy.wait(self.attempt);
        if Instant::now() + wait > self.deadline {
            return Err(why);
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn secs(&self) -> u64 {
        self.timeout.as_secs()
    }
}

/// What the etcd commands know about this node.
struct Local<'a> {
    settings: &'a Settings,
    root: &'a Root,
    me: Me,
    access: EtcdAccess,
    tls_files: Option<TlsFiles>,
    data_dir: PathBuf,
}

impl Local<'_> {
    fn record_path(&self) -> PathBuf {
        self.root.path(RECORD_PATH)
    }

    fn read_record(&self) -> Option<MemberRecord> {
        read_record(self.root)
    }

    fn data_dir_state(&self) -> DataDir {
        if self.data_dir.join("member").exists() {
            DataDir::Present {
                record: self.read_record(),
            }
        } else {
            DataDir::Empty
        }
    }

    /// Writes the member record, then the env file: once the env file is there, etcd may start.
    fn write_config(&self, record: &MemberRecord, state: &mut BootState) -> Result<()> {
        let path = self.record_path();
        let mut json = serde_json::to_vec_pretty(record).expect("record serialises");
        json.push(b'\n');
        fsutil::write_atomic(&path, &json, fsutil::MODE_PUBLIC)
            .with_context(|| format!("writing {}", path.display()))?;
        state.wrote(self.root, &path);
        let env = EtcdEnv {
            name: self.me.name.clone(),
            data_dir: self.data_dir.clone(),
            ip: self.me.ip,
            client_port: self.settings.etcd.client_port,
            peer_port: self.settings.etcd.peer_port,
            initial_cluster: record.initial_cluster.clone(),
            initial_cluster_state: if record.initial_cluster_state == "new" {
                ClusterState::New
            } else {
                ClusterState::Existing
            },
            token: record.cluster_token.clone(),
            tls: self.tls_files.clone(),
        };
        let path = self.root.path(env::PATH);
        fsutil::write_atomic(&path, env.render().as_bytes(), fsutil::MODE_PUBLIC)
            .with_context(|| format!("writing {}", path.display()))?;
        state.wrote(self.root, &path);
        Ok(())
    }

    fn record(
        &self,
        token: &str,
        member_id: Option<u64>,
        initial: String,
        st: ClusterState,
    ) -> MemberRecord {
        MemberRecord {
            cluster_token: token.to_string(),
            name: self.me.name.clone(),
            peer_url: self.me.peer_url.clone(),
            member_id,
            initial_cluster: initial,
            initial_cluster_state: st.as_str().into(),
            data_dir: self.data_dir.display().to_string(),
        }
    }

    /// `name=peer_url,...` for `members`, this node's unstarted learner under its own name.
    fn initial_cluster(&self, members: &[MemberInfo]) -> String {
        members
            .iter()
            .filter_map(|m| {
                let url = m.peer_urls.first()?;
                let name = if m.name.is_empty() && url == &self.me.peer_url {
                    &self.me.name
                } else {
                    &m.name
                };
                Some(format!("{name}={url}"))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Client URLs to look for members at (see [`candidate_urls`]).
    fn candidates(&self, asg: Option<&AsgView>) -> Vec<String> {
        candidate_urls(&self.access, self.me.ip, asg, self.read_record().as_ref())
    }
}

/// The agent's record of the etcd data dir it configured (`RECORD_PATH`); `None` when there is
/// none or it cannot be read (logged).
pub fn read_record(root: &Root) -> Option<MemberRecord> {
    let path = root.path(RECORD_PATH);
    let bytes = std::fs::read(&path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable member record");
            None
        }
    }
}

/// Client URLs to look for members at: this node's, the live instances of `asg` when known, and
/// the peers of the member record; sorted, without duplicates.
pub fn candidate_urls(
    access: &EtcdAccess,
    own_ip: std::net::Ipv4Addr,
    asg: Option<&AsgView>,
    record: Option<&MemberRecord>,
) -> Vec<String> {
    let mut urls = vec![access.client_url(own_ip)];
    if let Some(asg) = asg {
        urls.extend(
            asg.instances
                .iter()
                .filter(|i| !i.leaving())
                .filter_map(|i| i.private_ip)
                .map(|ip| access.client_url(ip)),
        );
    }
    if let Some(rec) = record {
        urls.extend(
            rec.initial_cluster
                .split(',')
                .filter_map(|pair| host_of(pair.split_once('=')?.1))
                .map(|host| access.client_url(host)),
        );
    }
    urls.sort();
    urls.dedup();
    urls
}

/// The host of `scheme://host:port`.
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    (!host.is_empty()).then_some(host)
}

/// `bootstrap` for role etcd: decide, act, write the env file. Returns when starting etcd with
/// that file is safe and will succeed, or fails after `etcd.join_timeout_seconds`.
pub async fn bootstrap(
    settings: &Settings,
    root: &Root,
    ident: &NodeIdentity,
    aws: &Aws,
    own_asg: &AsgView,
    state: &mut BootState,
) -> Result<()> {
    let bucket = settings.state_bucket.as_str();
    let cluster_name = settings.cluster.as_str();
    let asg_name = settings
        .etcd_asg()
        .map_or_else(|| own_asg.name.clone(), str::to_owned);
    let (client_tls, tls_files) = if settings.etcd.tls {
        let (c, f) = tls::prepare(aws, bucket, cluster_name, root, ident, state).await?;
        (Some(c), Some(f))
    } else {
        (None, None)
    };
    let local = local(settings, root, ident, client_tls, tls_files);
    let mut waiter = Waiter::new(settings.etcd.join_timeout);
    // While waiting, the ASG is listed again at most every ASG_REFRESH, and the marker is
    // read until it exists (it never changes after): a waiting node costs few AWS calls.
    let mut asg_view = None;
    if asg_name == own_asg.name {
        asg_view = Some((own_asg.clone(), Instant::now()));
    }
    let mut marker: Option<Marker> = None;
    loop {
        let stale = asg_view
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() > ASG_REFRESH);
        if stale {
            let view = aws
                .describe_asg(&asg_name)
                .await
                .with_context(|| format!("listing the etcd autoscaling group {asg_name}"))?;
            asg_view = Some((view, Instant::now()));
        }
        let (asg, listed_at) = asg_view.as_ref().expect("listed above");
        let asg_age = listed_at.elapsed();
        if marker.is_none() {
            marker = read_marker(aws, bucket, cluster_name).await?;
        }
        let cluster = local.access.observe(&local.candidates(Some(asg))).await;
        let data = local.data_dir_state();
        let plan = plan::decide(&Facts {
            me: &local.me,
            asg: &asg.instances,
            marker: marker.as_ref(),
            cluster: cluster.as_ref(),
            data: &data,
        });
        tracing::debug!(?plan, "etcd plan");
        // A removal is decided on a fresh ASG view only: an instance launched since the last
        // look must not have its new learner taken for a stale one.
        let removes = matches!(&plan, Plan::Join { remove, .. } if !remove.is_empty());
        if removes && asg_age > FRESH {
            asg_view = None;
            continue;
        }
        let why = match plan {
            Plan::Seed => match seed(&local, aws, asg, state).await? {
                None => return Ok(()),
                Some(why) => {
                    marker = read_marker(aws, bucket, cluster_name).await?;
                    why
                }
            },
            Plan::Restart { why } => {
                restart(&local, cluster.as_ref(), marker.as_ref(), state, why)?;
                return Ok(());
            }
            Plan::MoveAside { why } => {
                move_aside(&local, state, &why)?;
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
            Plan::Wait { why } => why,
            Plan::Refuse { why } => format!("refusing to change membership: {why}"),
        };
        if let Err(why) = waiter.pause(why).await {
            state.decide("gave up", why.clone());
            bail!("etcd is not ready to start after {}s: {why}", waiter.secs());
        }
    }
}

fn local<'a>(
    settings: &'a Settings,
    root: &'a Root,
    ident: &NodeIdentity,
    client_tls: Option<ClientTls>,
    tls_files: Option<TlsFiles>,
) -> Local<'a> {
    let access = EtcdAccess::new(client_tls, settings.etcd.client_port);
    let me = Me::new(
        &ident.instance_id,
        ident.private_ip,
        access.scheme(),
        settings.etcd.peer_port,
    );
    Local {
        settings,
        root,
        me,
        access,
        tls_files,
        data_dir: root.path(&settings.etcd.data_dir),
    }
}

async fn read_marker(aws: &Aws, bucket: &str, cluster: &str) -> Result<Option<Marker>> {
    let key = marker_key(cluster);
    let Some(bytes) = aws
        .get_object(bucket, &key)
        .await
        .context("reading the cluster marker")?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        anyhow::Error::new(e).context(BadInput(format!(
            "s3://{bucket}/{key} is not a cluster marker written by tn-agent"
        )))
    })
}

/// Creates the cluster: the marker first (by conditional put, so exactly one node wins), then
/// the files. `Some(why)` when another node won.
async fn seed(
    local: &Local<'_>,
    aws: &Aws,
    asg: &AsgView,
    state: &mut BootState,
) -> Result<Option<String>> {
    let s = local.settings;
    let marker = Marker {
        cluster: s.cluster.as_str().into(),
        token: format!("{}-{:016x}", s.cluster, rand::random::<u64>()),
        seeded_by: local.me.name.clone(),
        seed_peer_url: local.me.peer_url.clone(),
        seeded_at: crate::state::now_rfc3339(),
    };
    let body = serde_json::to_vec_pretty(&marker).expect("marker serialises");
    let created = aws
        .put_object_if_absent(&s.state_bucket, &marker_key(s.cluster.as_str()), body)
        .await
        .context("writing the cluster marker")?;
    if !created {
        return Ok(Some("another node created the cluster marker first".into()));
    }
    state.decide(
        "seeded cluster",
        format!(
            "{} is the lowest in-service instance id of {} and no cluster existed; token {}",
            local.me.name, asg.name, marker.token
        ),
    );
    let record = local.record(
        &marker.token,
        None,
        format!("{}={}", local.me.name, local.me.peer_url),
        ClusterState::New,
    );
    local.write_config(&record, state)?;
    Ok(None)
}

/// Starts etcd on its data as before: same env, no membership change.
fn restart(
    local: &Local<'_>,
    cluster: Option<&ClusterView>,
    marker: Option<&Marker>,
    state: &mut BootState,
    why: String,
) -> Result<()> {
    state.decide("restart etcd with its data", why);
    let record = match local.read_record() {
        Some(r) => r,
        None => {
            // Data without a record, and the cluster lists this node: adopt it.
            let view = cluster.ok_or_else(|| anyhow!("no record and no cluster view"))?;
            let token = marker.map_or_else(
                || format!("{}-etcd", local.settings.cluster),
                |m| m.token.clone(),
            );
            let id = view.find_me(&local.me).map(|m| m.id);
            local.record(
                &token,
                id,
                local.initial_cluster(&view.members),
                ClusterState::Existing,
            )
        }
    };
    local.write_config(&record, state)
}

/// Moves the data dir (and the record of it) aside: never deleted, named with the time.
fn move_aside(local: &Local<'_>, state: &mut BootState, why: &str) -> Result<()> {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("timestamp formats");
    let name = local
        .data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "etcd".into());
    let dest = local
        .data_dir
        .with_file_name(format!("{name}.moved-{stamp}"));
    std::fs::rename(&local.data_dir, &dest).with_context(|| {
        format!(
            "moving {} aside to {}",
            local.data_dir.display(),
            dest.display()
        )
    })?;
    let record = local.record_path();
    if record.exists() {
        std::fs::rename(&record, dest.join("tn-agent-member.json"))
            .with_context(|| format!("moving {} with the data", record.display()))?;
    }
    fsync_dir(dest.parent())?;
    state.decide(
        "moved data dir aside",
        format!("{why}; it is now {}", dest.display()),
    );
    Ok(())
}

fn fsync_dir(dir: Option<&Path>) -> Result<()> {
    if let Some(dir) = dir {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
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
    let endpoints = voter_endpoints(view);
    for r in remove {
        if let Err(e) = local.access.remove(&endpoints, r.id).await {
            return Ok(Some(format!(
                "removing stale member {:x} failed: {}",
                r.id,
                one_line(&e)
            )));
        }
        let name = if r.name.is_empty() {
            "(unstarted)"
        } else {
            &r.name
        };
        state.decide(
            "removed stale member",
            format!("{name} ({:x}): {}", r.id, r.why),
        );
    }
    let (id, members) = match reuse_learner {
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
                .collect::<Vec<_>>();
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
            Err(e) => {
                let msg = e.server_message().unwrap_or_default();
                let why = if msg.contains("too many learner") {
                    "another node is joining (etcd takes one learner at a time)".to_string()
                } else {
                    format!("adding this node as a learner failed: {}", one_line(&e))
                };
                return Ok(Some(why));
            }
        },
    };
    let token = marker.map_or_else(
        || format!("{}-etcd", local.settings.cluster),
        |m| m.token.clone(),
    );
    let record = local.record(
        &token,
        Some(id),
        local.initial_cluster(&members),
        ClusterState::Existing,
    );
    local.write_config(&record, state)?;
    Ok(None)
}

/// Client TLS material from the node's own files (written by bootstrap).
fn tls_from_disk(root: &Root) -> Result<ClientTls> {
    let read = |name: &str| {
        let path = root.path(format!("{}/{name}", env::PKI_DIR));
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (run `tn-agent bootstrap` first)",
                path.display()
            )
        })
    };
    Ok(ClientTls {
        ca_pem: read("ca.crt")?,
        cert_pem: read("server.crt")?,
        key_pem: read("server.key")?,
    })
}

fn local_from_disk<'a>(
    settings: &'a Settings,
    root: &'a Root,
    ident: &NodeIdentity,
) -> Result<Local<'a>> {
    let tls = if settings.etcd.tls {
        Some(tls_from_disk(root)?)
    } else {
        None
    };
    Ok(local(settings, root, ident, tls, None))
}

/// `etcd promote`: once etcd runs, make this member a voter when it has caught up. A voter
/// already: nothing to do.
pub async fn promote(settings: &Settings, root: &Root, ident: &NodeIdentity) -> Result<String> {
    let local = local_from_disk(settings, root, ident)?;
    let mut waiter = Waiter::new(settings.etcd.join_timeout);
    loop {
        let why = match local.access.observe(&local.candidates(None)).await {
            None => "no etcd member answers".to_string(),
            Some(view) => match view.find_me(&local.me) {
                None => bail!(
                    "{} is not a member of the etcd cluster; run `tn-agent bootstrap` first",
                    local.me.name
                ),
                Some(m) if !m.is_learner => {
                    return Ok(format!("member {:x} is a voter", m.id));
                }
                Some(m) => match local.access.promote(&voter_endpoints(&view), m.id).await {
                    Ok(()) => {
                        tracing::info!(member = %format!("{:x}", m.id), "promoted");
                        return Ok(format!("promoted learner {:x} to voter", m.id));
                    }
                    Err(e) => {
                        let msg = e.server_message().unwrap_or_default();
                        if msg.contains("in sync with leader") {
                            "the learner is still catching up with the leader".to_string()
                        } else {
                            format!("promote failed: {}", one_line(&e))
                        }
                    }
                },
            },
        };
        if let Err(why) = waiter.pause(why).await {
            bail!("not promoted after {}s: {why}", waiter.secs());
        }
    }
}

/// `etcd leave`: remove this node's member if the remaining voters keep quorum. A refusal is
/// immediate; etcd saying "not now" (a member that just started, a leader election) is retried
/// for up to `etcd.join_timeout_seconds`.
pub async fn leave(settings: &Settings, root: &Root, ident: &NodeIdentity) -> Result<String> {
    let local = local_from_disk(settings, root, ident)?;
    let mut waiter = Waiter::new(settings.etcd.join_timeout);
    let own = local.access.client_url(local.me.ip);
    loop {
        let Some(view) = local.access.observe(&local.candidates(None)).await else {
            bail!("no etcd member answers: cannot check quorum, so not leaving");
        };
        let Some(me) = view.find_me(&local.me) else {
            return Ok(format!("{} is not a member: nothing to do", local.me.name));
        };
        if let Err(why) = plan::check_leave(&view, me.id) {
            bail!("refusing to leave: {why}");
        }
        let others: Vec<String> = voter_endpoints(&view)
            .into_iter()
            .filter(|e| *e != own)
            .collect();
        let endpoints = if others.is_empty() {
            vec![own.clone()]
        } else {
            others
        };
        let why = match local.access.remove(&endpoints, me.id).await {
            Ok(()) => {
                tracing::info!(member = %format!("{:x}", me.id), "left the cluster");
                return Ok(format!(
                    "removed member {:x} ({}) from the cluster",
                    me.id, local.me.name
                ));
            }
            Err(e) => format!("removing member {:x} failed: {}", me.id, one_line(&e)),
        };
        if let Err(why) = waiter.pause(why).await {
            bail!("did not leave after {}s: {why}", waiter.secs());
        }
    }
}
