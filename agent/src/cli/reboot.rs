//! `tn-agent reboot ...` (SPEC §9): ask for a reboot, and look at or repair the groups' locks.
//! On etcd nodes the locks live in etcd (every group there is listed); on masters and workers
//! they live in ConfigMaps, read with the kubelet's credentials, which can read the groups by
//! name only: this node's group, `master`, and the `[reboot] worker_groups` a master knows.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::Globals;
use crate::config::Role;
use crate::etcd::client::EtcdAccess;
use crate::exit::BadInput;
use crate::files;
use crate::fsutil;
use crate::identity::NodeIdentity;
use crate::kube::client::KubeClient;
use crate::reboot::etcd_lock::{self, EtcdLock};
use crate::reboot::kube_lock::KubeLock;
use crate::reboot::lock::{is_group_name, is_kube_group_name, GroupLock, LockError, MASTER_GROUP};
use crate::reboot::phase::RebootState;
use crate::reboot::semaphore::{is_instance_id, BadSemaphore, Outcome, Semaphore};

#[derive(Debug, Subcommand)]
pub enum Reboot {
    /// The node's reboot manager (tn-agent-reboot.service): when a reboot is needed, wait for
    /// the window and the gates, take a slot of the group's lock, hand etcd leadership away or
    /// cordon and drain the Node, reboot; after the boot, wait until the node is healthy,
    /// uncordon what it cordoned, and release. Exits 0 once the reboot command has run.
    Watch,
    /// Mark this node as needing a reboot (creates /run/reboot-required, as Flatcar's
    /// postinstall does when it stages an update).
    Request,
    /// The reboot groups this node can see: max, free slots, holders.
    Status(StatusArgs),
    /// Operator: free the slot instance ID holds in a group (default: this node's group), when
    /// its reboot will not finish. Holders are otherwise removed only when EC2 says their
    /// instance is gone.
    Unlock {
        /// The holder's EC2 instance id.
        id: String,
        #[arg(long, value_name = "G")]
        group: Option<String>,
    },
    /// Operator: how many nodes of a group may reboot at once (the etcd group: at most 1).
    SetMax {
        #[arg(long, value_name = "G")]
        group: Option<String>,
        #[arg(value_parser = clap::value_parser!(i64).range(0..=1000))]
        max: i64,
    },
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `reboot status --json`.
#[derive(Debug, Serialize)]
struct GroupsReport {
    groups: Vec<GroupReport>,
    /// This node's reboot state (`reboot.json`), when it has one.
    this_node: Option<crate::reboot::phase::RebootState>,
}

#[derive(Debug, Serialize)]
struct GroupReport {
    group: String,
    /// `None` when the group's document is malformed (`error` says how).
    max: Option<i64>,
    free: Option<i64>,
    holders: Vec<String>,
    error: Option<String>,
}

impl Reboot {
    pub async fn run(self, globals: &Globals) -> Result<u8> {
        if let Reboot::Request = self {
            let path = globals.root.path(files::REBOOT_SENTINEL);
            fsutil::write_atomic(&path, b"", fsutil::MODE_PUBLIC)
                .with_context(|| format!("creating {}", path.display()))?;
            println!("reboot requested: {} exists", files::REBOOT_SENTINEL);
            return Ok(crate::exit::OK);
        }
        let settings = globals.load_config()?;
        let me = NodeIdentity::find(&globals.root).await?;
        if let Reboot::Watch = self {
            // A service: it waits for etcd or the apiserver rather than failing when they are
            // not up yet.
            let done = crate::reboot::watch::watch(&settings, &globals.root, &me).await?;
            println!("{done}");
            return Ok(crate::exit::OK);
        }
        let own = crate::reboot::watch::own_group(&settings, &globals.root, &me).await?;
        let backend = match settings.role() {
            Role::Etcd => {
                let (access, candidates) = crate::etcd::node_client(&settings, &globals.root, &me)?;
                // Through the healthy voters: a client given a member that is down may fail on it.
                let endpoints = access
                    .observe(&candidates)
                    .await
                    .context("no etcd member answers")?
                    .voter_endpoints();
                Backend::Etcd(access, endpoints)
            }
            Role::Master | Role::Worker => {
                Backend::Kube(crate::reboot::watch::kubelet_client(&globals.root)?)
            }
        };
        let group = |g: Option<String>| -> Result<String> {
            let g = g.unwrap_or_else(|| own.clone());
            let ok = match &backend {
                Backend::Etcd(..) => is_group_name(&g),
                Backend::Kube(_) => is_kube_group_name(&g),
            };
            if !ok {
                return Err(BadInput(format!(
                    "--group {g:?}: expected 1-255 characters without '/' or control characters \
                     (masters and workers: what may end a ConfigMap name, lowercase letters, \
                     digits, '-' and '.')"
                ))
                .into());
            }
            Ok(g)
        };
        match self {
            Reboot::Request | Reboot::Watch => unreachable!("handled above"),
            Reboot::Status(args) => {
                let found = backend.groups(&own, &settings.reboot.worker_groups).await?;
                let report = GroupsReport {
                    groups: found
                        .into_iter()
                        .map(|(group, doc)| match doc {
                            Ok(s) => GroupReport {
                                group,
                                max: Some(s.max),
                                free: Some(s.free()),
                                holders: s.holders,
                                error: None,
                            },
                            Err(e) => GroupReport {
                                group,
                                max: None,
                                free: None,
                                holders: Vec::new(),
                                error: Some(e),
                            },
                        })
                        .collect(),
                    this_node: RebootState::saved(&globals.root)?,
                };
                if args.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).expect("report serialises")
                    );
                } else {
                    print!("{}", text(&report, &me.instance_id));
                }
            }
            Reboot::Unlock { id, group: g } => {
                if !is_instance_id(&id) {
                    return Err(BadInput(format!("{id:?} is not an EC2 instance id")).into());
                }
                let g = group(g)?;
                let lock = backend.lock(&g);
                let (outcome, doc) = lock
                    .release(&id)
                    .await
                    .with_context(|| format!("releasing {id}'s slot of reboot group {g}"))?;
                match outcome {
                    Outcome::Changed => println!("released {id}'s slot of group {g}: {doc}"),
                    _ => println!("{id} holds no slot of group {g}: {doc}"),
                }
            }
            Reboot::SetMax { group: g, max } => {
                let g = group(g)?;
                let lock = backend.lock(&g);
                let (_, doc) = lock
                    .set_max(max)
                    .await
                    .with_context(|| format!("setting the max of reboot group {g}"))?;
                println!("group {g}: {doc}");
            }
        }
        Ok(crate::exit::OK)
    }
}

/// Where this node's groups' locks are.
enum Backend {
    Etcd(EtcdAccess, Vec<String>),
    Kube(KubeClient),
}

impl Backend {
    fn lock(&self, group: &str) -> GroupLock<'_> {
        match self {
            Backend::Etcd(access, endpoints) => {
                GroupLock::Etcd(EtcdLock::new(access, endpoints.clone(), group))
            }
            Backend::Kube(client) => GroupLock::Kube(KubeLock::new(client, group)),
        }
    }

    /// The groups to show, each document parsed on its own (one bad document does not hide the
    /// others): in etcd every group there is; in Kubernetes this node's, `master` and the
    /// worker groups the config names, those not used yet shown as new.
    async fn groups(
        &self,
        own: &str,
        worker_groups: &[String],
    ) -> Result<Vec<(String, Result<Semaphore, String>)>> {
        let text = |r: Result<Semaphore, BadSemaphore>| r.map_err(|e| e.to_string());
        match self {
            Backend::Etcd(access, endpoints) => {
                let found = etcd_lock::groups(access, endpoints)
                    .await
                    .context("reading the reboot groups from etcd")?;
                Ok(found.into_iter().map(|(g, d)| (g, text(d))).collect())
            }
            Backend::Kube(_) => {
                let mut names = vec![own.to_string(), MASTER_GROUP.to_string()];
                names.extend(worker_groups.iter().cloned());
                let mut seen = std::collections::BTreeSet::new();
                names.retain(|n| seen.insert(n.clone()));
                let mut out = Vec::new();
                for name in names {
                    let doc = match self.lock(&name).read().await {
                        Ok(doc) => Ok(doc.unwrap_or_else(|| Semaphore::new(1))),
                        Err(
                            e @ (LockError::Bad { .. }
                            | LockError::NoGroup { .. }
                            | LockError::Forbidden { .. }),
                        ) => Err(crate::exit::one_line(&e)),
                        Err(e) => {
                            return Err(anyhow::Error::new(e)
                                .context(format!("reading reboot group {name}")))
                        }
                    };
                    out.push((name, doc));
                }
                Ok(out)
            }
        }
    }
}

fn text(report: &GroupsReport, me: &str) -> String {
    let mut out = String::from("reboot groups\n");
    if report.groups.is_empty() {
        out.push_str("  none yet (a group's lock is made at its first use)\n");
    }
    for g in &report.groups {
        match (&g.error, g.max, g.free) {
            (Some(e), _, _) => out.push_str(&format!("  {}: unreadable: {e}\n", g.group)),
            (None, Some(max), Some(free)) => {
                let holders = if g.holders.is_empty() {
                    "none".to_string()
                } else {
                    g.holders.join(", ")
                };
                out.push_str(&format!(
                    "  {}: max {max}, {} free, held by {holders}\n",
                    g.group,
                    free.max(0)
                ));
            }
            _ => {}
        }
    }
    let held: Vec<&str> = report
        .groups
        .iter()
        .filter(|g| g.holders.iter().any(|h| h == me))
        .map(|g| g.group.as_str())
        .collect();
    out.push_str(&match held.as_slice() {
        [] => format!("this node ({me}) holds no reboot slot\n"),
        groups => format!("this node ({me}) holds a slot of {}\n", groups.join(", ")),
    });
    if let Some(st) = &report.this_node {
        out.push_str(&format!(
            "this node's reboot: {:?} since {}{}{}\n",
            st.phase,
            st.since,
            st.why
                .as_deref()
                .map(|w| format!(": {w}"))
                .unwrap_or_default(),
            st.last_reboot
                .as_deref()
                .map(|t| format!(" (last reboot {t})"))
                .unwrap_or_default()
        ));
    }
    out
}
