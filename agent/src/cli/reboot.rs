//! `tn-agent reboot ...` (SPEC §9): ask for a reboot, and look at or repair the groups' locks.
//! On etcd nodes the locks live in etcd; masters' and workers' live in Kubernetes, which this
//! version does not reach yet.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::Globals;
use crate::config::Role;
use crate::exit::BadInput;
use crate::files;
use crate::fsutil;
use crate::identity::NodeIdentity;
use crate::imds::Imds;
use crate::reboot::etcd_lock::{self, EtcdLock, ETCD_GROUP};
use crate::reboot::phase::RebootState;
use crate::reboot::semaphore::{is_instance_id, Outcome};

#[derive(Debug, Subcommand)]
pub enum Reboot {
    /// The node's reboot manager (tn-agent-reboot.service): when a reboot is needed, wait for
    /// the window and the gates, take a slot of the group's lock, reboot; after the boot, wait
    /// until the node is healthy and release. Exits 0 once the reboot command has run.
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
        if settings.role() != Role::Etcd {
            bail!(
                "the reboot locks of masters and workers live in Kubernetes (SPEC §9), which \
                 this version of tn-agent does not reach yet; run this on an etcd node for the \
                 etcd group"
            );
        }
        let me = NodeIdentity::from_imds(&Imds::from_env())
            .await
            .context("finding out who this node is from the instance metadata service")?;
        if let Reboot::Watch = self {
            // A service: it waits for etcd itself rather than failing when it is not up yet.
            let done = crate::reboot::watch::watch(&settings, &globals.root, &me).await?;
            println!("{done}");
            return Ok(crate::exit::OK);
        }
        let (access, candidates) = crate::etcd::node_client(&settings, &globals.root, &me)?;
        // Through the healthy voters: a client given a member that is down may fail on it.
        let endpoints = access
            .observe(&candidates)
            .await
            .context("no etcd member answers")?
            .voter_endpoints();
        let group = |g: Option<String>| -> Result<String> {
            let g = g.unwrap_or_else(|| ETCD_GROUP.to_string());
            if !etcd_lock::is_group_name(&g) {
                return Err(BadInput(format!(
                    "--group {g:?}: expected 1-255 characters without '/' or control characters"
                ))
                .into());
            }
            Ok(g)
        };
        match self {
            Reboot::Request | Reboot::Watch => unreachable!("handled above"),
            Reboot::Status(args) => {
                let found = etcd_lock::groups(&access, &endpoints)
                    .await
                    .context("reading the reboot groups from etcd")?;
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
                                error: Some(e.to_string()),
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
                let lock = EtcdLock::new(&access, endpoints, &g);
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
                let lock = EtcdLock::new(&access, endpoints, &g);
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
