//! `tn-agent etcd ...`: this node's etcd membership after boot.

use anyhow::{Context, Result};
use clap::Subcommand;

use super::Globals;
use crate::aws::Aws;
use crate::identity::NodeIdentity;
use crate::imds::Imds;

#[derive(Debug, Subcommand)]
pub enum Etcd {
    /// After etcd has started: promote this member from learner to voter once it has caught up
    /// (no-op if it is a voter). Waits up to etcd.join_timeout_seconds.
    Promote,
    /// Remove this member from the cluster if the remaining voters keep quorum (scale-in,
    /// termination); then complete the ASG termination lifecycle action of etcd.leave_hook.
    Leave,
    /// Snapshot this member to S3 if it leads (the timer runs it on every etcd node); skipped
    /// when the revision has not changed since the newest backup. Then prune old backups.
    Backup {
        /// Back up from this member whether or not it leads, even if nothing changed.
        #[arg(long)]
        force: bool,
    },
    /// List the backups in S3, oldest first.
    Backups {
        /// One JSON document for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Disaster recovery: make this node a one-member cluster from a backup (etcd stopped
    /// here). The other members rejoin at their next bootstrap. See docs/etcd.md.
    Restore {
        /// The backup's name, as `etcd backups` lists it (20261202T101500Z-r1234).
        #[arg(long, value_name = "NAME")]
        backup: String,
        /// The cluster's name, again: a restore replaces the cluster.
        #[arg(long, value_name = "NAME")]
        cluster: String,
    },
}

impl Etcd {
    pub async fn run(self, globals: &Globals) -> Result<u8> {
        let settings = globals.load_config()?;
        if let Etcd::Backups { json } = self {
            return list_backups(&settings, json).await;
        }
        let imds = Imds::from_env();
        let me = NodeIdentity::find(&globals.root).await?;
        match self {
            Etcd::Promote => {
                let done = crate::etcd::promote(&settings, &globals.root, &me).await?;
                println!("{done}");
            }
            Etcd::Leave => {
                let done = crate::etcd::leave(&settings, &globals.root, &me).await?;
                println!("{done}");
                complete_termination(&imds, &me, &settings.etcd.leave_hook).await?;
            }
            Etcd::Backup { force } => {
                let outcome = crate::backup::run(&settings, &globals.root, &me, force).await;
                crate::metrics::write(&settings, &globals.root, crate::metrics::Etcd::Ask).await;
                let outcome = outcome
                    .inspect_err(|e| tracing::error!(error = %format!("{e:#}"), "backup failed"))?;
                println!("{outcome}");
            }
            Etcd::Restore { backup, cluster } => {
                let done =
                    crate::etcd::restore(&settings, &globals.root, &me, &backup, &cluster).await?;
                println!("{done}");
            }
            Etcd::Backups { .. } => unreachable!("handled above"),
        }
        Ok(crate::exit::OK)
    }
}

/// `etcd backups`: one listing, then each backup's meta.json. Runs wherever the bucket can be
/// read (an operator's workstation with `AWS_REGION`, any etcd node).
async fn list_backups(settings: &crate::config::Settings, json: bool) -> Result<u8> {
    let region = match std::env::var("AWS_REGION") {
        Ok(r) if !r.is_empty() => r,
        _ => {
            let ident = NodeIdentity::from_imds(&Imds::from_env())
                .await
                .context("finding the region (set AWS_REGION off an instance)")?;
            ident.region
        }
    };
    let aws = Aws::connect(&region).await;
    let store = crate::store::Store::new(&aws, &settings.state_bucket, settings.cluster.as_str());
    let catalog = store.backups().await.context("listing the backups")?;
    let mut rows = Vec::new();
    for name in &catalog.complete {
        let meta = store
            .backup_meta(name)
            .await
            .with_context(|| format!("reading backup {name}"))?;
        if let Some(meta) = meta {
            rows.push((name, meta));
        }
    }
    if json {
        let docs: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, meta)| {
                serde_json::json!({
                    "name": name.to_string(),
                    "taken_at": meta.taken_at,
                    "revision": meta.revision,
                    "size": meta.size,
                    "sha256": meta.sha256,
                    "taken_by": meta.taken_by,
                    "etcd_version": meta.etcd_version,
                    "members": meta.members.len(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "bucket": store.bucket(),
            "prefix": store.backups_prefix(),
            "backups": docs,
            "incomplete": catalog.incomplete.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(crate::exit::OK);
    }
    println!(
        "backups in s3://{}/{}: {}",
        store.bucket(),
        store.backups_prefix(),
        rows.len()
    );
    if !rows.is_empty() {
        println!(
            "{:<24} {:<22} {:>12} {:>14}  taken by",
            "NAME", "TAKEN AT", "REVISION", "SIZE"
        );
    }
    for (name, meta) in &rows {
        println!(
            "{:<24} {:<22} {:>12} {:>14}  {}",
            name.to_string(),
            meta.taken_at,
            meta.revision,
            human_size(meta.size),
            meta.taken_by
        );
    }
    if !catalog.incomplete.is_empty() {
        println!(
            "incomplete (no meta.json; not backups): {}",
            catalog
                .incomplete
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(crate::exit::OK)
}

fn human_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// When the ASG is terminating this instance (IMDS `autoscaling/target-lifecycle-state` is
/// `Terminated`), tell it to go on now rather than at the hook's timeout.
async fn complete_termination(imds: &Imds, me: &NodeIdentity, hook: &str) -> Result<()> {
    let target = imds
        .target_lifecycle_state()
        .await
        .context("reading the ASG target lifecycle state")?;
    if target.as_deref() != Some("Terminated") {
        return Ok(());
    }
    let aws = Aws::connect(&me.region).await;
    let asg = aws
        .asg_of(&me.instance_id)
        .await
        .context("finding this instance's autoscaling group")?;
    let hooks = aws
        .complete_termination(&asg, &me.instance_id, hook)
        .await
        .context("completing the termination lifecycle action")?;
    for hook in hooks {
        tracing::info!(hook = %hook, asg = %asg, "completed lifecycle action");
        println!("completed lifecycle action {hook} of {asg}: termination continues");
    }
    Ok(())
}
