//! etcd membership (SPEC §7): seed, join one member at a time, restart, move stale data aside,
//! promote, leave. Safety first: a new cluster is started once, by one node; a member is removed
//! only when its instance is gone, and only if quorum holds without it.
//!
//! `model` is the data (members, views, marker, record, URLs), `plan` the pure decision over it,
//! `client` the calls to etcd; `bootstrap` and `membership` gather facts and carry out plans.

mod bootstrap;
pub mod client;
pub mod env;
mod membership;
pub mod model;
mod peers;
pub mod plan;
mod restore;
pub mod tls;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use self::bootstrap::{bootstrap, restart_as_before};
pub use self::membership::{leave, promote};
pub use self::restore::restore;

use self::client::{ClientTls, EtcdAccess};
use self::env::TlsFiles;
use self::model::{Endpoints, Me, MemberRecord};
use self::plan::DataDir;
use crate::aws::AsgView;
use crate::config::{EtcdSettings, Settings};
use crate::files;
use crate::fsutil::Root;
use crate::identity::NodeIdentity;
use crate::retry::Backoff;

/// The cluster's endpoints as the settings describe them.
pub fn endpoints(etcd: &EtcdSettings) -> Endpoints {
    Endpoints {
        tls: etcd.tls,
        client_port: etcd.client_port,
        peer_port: etcd.peer_port,
    }
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
    /// Waits between looks at the cluster while waiting (seeder, a joiner ahead, a leader).
    fn new(timeout: Duration) -> Self {
        Waiter {
            policy: Backoff::new(Duration::from_millis(300), Duration::from_secs(1), timeout),
            timeout,
            deadline: Instant::now() + timeout,
            attempt: 0,
            last_why: String::new(),
        }
    }

    /// Waits before the next look, or `Err(why)` when that would pass the deadline.
    async fn pause(&mut self, why: String) -> Result<(), String> {
        self.pause_until(why, None::<std::future::Pending<()>>)
            .await
    }

    /// [`Waiter::pause`], cut short when `sign` completes: what is waited for shows itself
    /// before the next look is due.
    async fn pause_until(
        &mut self,
        why: String,
        sign: Option<impl std::future::Future<Output = ()>>,
    ) -> Result<(), String> {
        if why != self.last_why {
            tracing::info!(reason = %why, "waiting");
            self.last_why = why.clone();
        }
        self.attempt += 1;
        let wait = self.policy.wait(self.attempt);
        if Instant::now() + wait > self.deadline {
            return Err(why);
        }
        let sign = async {
            match sign {
                Some(sign) => sign.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = sign => {}
        }
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

impl<'a> Local<'a> {
    fn new(
        settings: &'a Settings,
        root: &'a Root,
        ident: &NodeIdentity,
        client_tls: Option<ClientTls>,
        tls_files: Option<TlsFiles>,
    ) -> Self {
        let access = EtcdAccess::new(client_tls, endpoints(&settings.etcd));
        let me = Me::new(&ident.instance_id, ident.private_ip, access.endpoints());
        Local {
            settings,
            root,
            me,
            access,
            tls_files,
            data_dir: root.path(&settings.etcd.data_dir),
        }
    }

    /// For the commands run after bootstrap: the client TLS material from the node's own files.
    fn from_disk(settings: &'a Settings, root: &'a Root, ident: &NodeIdentity) -> Result<Self> {
        let tls = if settings.etcd.tls {
            Some(tls_from_disk(root)?)
        } else {
            None
        };
        Ok(Local::new(settings, root, ident, tls, None))
    }

    fn record_path(&self) -> PathBuf {
        self.root.path(files::ETCD_MEMBER_RECORD)
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
            DataDir::Empty {
                record: self.read_record(),
            }
        }
    }

    /// Moves the data dir's contents (and the record of them) aside into `<data_dir>/moved-<UTC
    /// time>`: never deleted, kept on the data volume. Returns where they went.
    fn move_data_aside(&self) -> Result<PathBuf> {
        let stamp = crate::clock::now()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .expect("timestamp formats");
        let dest = crate::fsutil::move_aside(
            &self.data_dir,
            &format!("{}{stamp}", crate::fsutil::MOVED_PREFIX),
        )
        .with_context(|| format!("moving the contents of {} aside", self.data_dir.display()))?;
        let record = self.record_path();
        if record.exists() {
            // Copied, then removed: the data dir is often another file system.
            let kept = dest.join("tn-agent-member.json");
            std::fs::copy(&record, &kept)
                .and_then(|_| std::fs::File::open(&kept)?.sync_all())
                .and_then(|()| std::fs::remove_file(&record))
                .with_context(|| format!("moving {} with the data", record.display()))?;
        }
        Ok(dest)
    }

    /// Client URLs to look for members at (see [`candidate_urls`]).
    fn candidates(&self, asg: Option<&AsgView>) -> Vec<String> {
        candidate_urls(&self.access, self.me.ip, asg, self.read_record().as_ref())
    }
}

/// For commands run on an etcd node after bootstrap: access with the node's own client files,
/// and the client URLs to ask (its own and its record's peers).
pub fn node_client(
    settings: &Settings,
    root: &Root,
    ident: &NodeIdentity,
) -> Result<(EtcdAccess, Vec<String>)> {
    let local = Local::from_disk(settings, root, ident)?;
    let urls = local.candidates(None);
    Ok((local.access, urls))
}

/// The agent's record of the etcd data dir it configured ([`files::ETCD_MEMBER_RECORD`]); `None` when there is
/// none or it cannot be read (logged).
pub fn read_record(root: &Root) -> Option<MemberRecord> {
    let path = root.path(files::ETCD_MEMBER_RECORD);
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
                .hosts()
                .map(|host| access.client_url(host)),
        );
    }
    urls.sort();
    urls.dedup();
    urls
}

/// Client TLS material from the node's own files (written by bootstrap).
fn tls_from_disk(root: &Root) -> Result<ClientTls> {
    let read = |node_path: &str| {
        let path = root.path(node_path);
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (run `tn-agent bootstrap` first)",
                path.display()
            )
        })
    };
    Ok(ClientTls {
        ca_pem: read(files::ETCD_NODE_CA)?,
        cert_pem: read(files::ETCD_SERVER.cert)?,
        key_pem: read(files::ETCD_SERVER.key)?,
    })
}
