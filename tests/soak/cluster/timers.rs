//! The cluster's timers as the soak fires them (backups, reconcile) and the looks that follow:
//! the backups in S3, every certificate in use, every acknowledged write.

use std::time::Duration;

use anyhow::{Context, Result};
use tn_agent::backup::catalog::{BackupName, META_FILE};
use tn_agent::pki::inspect;
use tn_world::{run_at_once, Node};

use crate::invariants::Rule;
use crate::timeline::MarkKind;
use crate::writer;

use super::{error_line, Cluster, KEEP_DAILY_DAYS};

impl Cluster<'_> {
    /// The backup timer: `etcd backup` on every member that is up, at the same moment (the
    /// leader uploads); then the backups in S3 as the monitor and the retention rule see them.
    pub fn backup_timer(&mut self, s3_failing: bool) -> Result<()> {
        let up: Vec<&Node> = self
            .etcd
            .iter()
            .filter(|e| e.etcd.is_some())
            .map(|e| &e.node)
            .collect();
        let runs = run_at_once(&up, &["etcd", "backup"]);
        let mut uploaded = false;
        let mut skips = Vec::new();
        for (node, run) in up.iter().zip(runs) {
            let run = run?;
            if run.code == 0 && run.stdout.starts_with("backup ") {
                uploaded = true;
            } else if run.code == 0 {
                skips.push(format!("{}: {}", node.id, run.stdout.trim()));
                if run.stdout.contains("has not changed since backup") {
                    if let Some(newest) = self.newest {
                        self.unchanged_at = Some((newest, self.clock().now()));
                    }
                }
            }
            if run.code != 0 {
                let line = error_line(&run.stderr);
                if !s3_failing {
                    self.backup_failures += 1;
                }
                self.shared.mark(
                    MarkKind::Event,
                    format!("backup failed on {}: {line}", node.id),
                );
            }
        }
        if !uploaded && !skips.is_empty() {
            self.shared.mark(
                MarkKind::Event,
                format!("backup: none uploaded ({})", skips.join("; ")),
            );
        }
        self.list_backups()
    }

    /// The complete backups in S3 (those with a `meta.json`): the newest for the monitor, and
    /// the retention rule on their number.
    fn list_backups(&mut self) -> Result<()> {
        let prefix = format!("{}/etcd/backups/", self.world.cluster);
        let keys = self.world.block_on(async {
            let mut keys = Vec::new();
            let mut pages = self
                .world
                .s3
                .list_objects_v2()
                .bucket(&self.world.bucket)
                .prefix(&prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.context("listing the backups")?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_string)),
                );
            }
            anyhow::Ok(keys)
        })?;
        let mut complete: Vec<BackupName> = keys
            .iter()
            .filter_map(|k| {
                k.strip_prefix(&prefix)?
                    .strip_suffix(&format!("/{META_FILE}"))
            })
            .filter_map(|name| name.parse().ok())
            .collect();
        complete.sort();
        self.backups = complete.len();
        self.newest = complete.last().copied();
        // How fresh the newest backup is: when it was taken, or when a run last found nothing
        // changed since.
        let fresh = self.newest.map(|n| match self.unchanged_at {
            Some((same, at)) if same == n => at.max(n.taken_at),
            _ => n.taken_at,
        });
        *self.shared.newest_backup.lock().expect("newest") = fresh;
        // One a day, kept 14 days (the hourly tier keeps one more within its day).
        let day = self.day();
        let limit = KEEP_DAILY_DAYS + 2;
        self.shared
            .invariants
            .check(Rule::Retention, day, complete.len() <= limit, || {
                format!(
                    "{} backups in S3, retention keeps at most {limit}",
                    complete.len()
                )
            });
        Ok(())
    }

    /// The reconcile timer on every master (its hourly run), or on every node.
    pub fn reconcile(&mut self, everywhere: bool) -> Result<()> {
        let nodes: Vec<&Node> = self
            .kube
            .iter()
            .filter(|k| everywhere || k.master)
            .map(|k| &k.node)
            .chain(
                self.etcd
                    .iter()
                    .filter(|e| everywhere && e.etcd.is_some())
                    .map(|e| &e.node),
            )
            .filter(|n| !self.down.iter().any(|d| d.id == n.id))
            .collect();
        for node in nodes {
            let run = node.run(&["reconcile"])?;
            if run.code != 0 {
                self.shared.mark(
                    MarkKind::Event,
                    format!(
                        "reconcile failed on {}: {}",
                        node.id,
                        error_line(&run.stderr)
                    ),
                );
            }
        }
        self.look_at_certificates();
        Ok(())
    }

    /// Every certificate tn-agent keeps on every node that is up: none expired by the
    /// simulated clock; a changed serial is a renewal.
    pub fn look_at_certificates(&mut self) {
        let now = self.clock().now();
        let day = self.day();
        let mut renewed = 0;
        let nodes: Vec<&Node> = self
            .etcd
            .iter()
            .map(|e| &e.node)
            .chain(self.kube.iter().map(|k| &k.node))
            .filter(|n| !self.down.iter().any(|d| d.id == n.id))
            .collect();
        for node in nodes {
            let seen = self.serials.entry(node.id.clone()).or_default();
            for dir in ["/etc/etcd/pki", "/etc/kubernetes/pki"] {
                for path in cert_files(&node.path(dir)) {
                    let Ok(text) = std::fs::read_to_string(&path) else {
                        continue;
                    };
                    let Ok(info) = inspect(&text) else {
                        continue;
                    };
                    if info.is_ca {
                        continue;
                    }
                    let name = path.display().to_string();
                    self.shared.invariants.check(
                        Rule::CertsValid,
                        day,
                        info.not_after > now,
                        || format!("{name} expired at {}", info.not_after),
                    );
                    if let Some(old) = seen.insert(name, info.serial.clone()) {
                        if old != info.serial {
                            renewed += 1;
                        }
                    }
                }
            }
        }
        if renewed > 0 {
            self.renewals += renewed;
            self.shared.mark(
                MarkKind::Event,
                format!("renewal: {renewed} certificates renewed"),
            );
        }
    }

    // ---- writes -------------------------------------------------------------------------

    /// Every write etcd acknowledged (up to `revision`, when given) is there.
    pub fn check_writes(&self, up_to: Option<i64>) -> Result<()> {
        let acked: Vec<(u64, i64)> = self.writes.acked.lock().expect("acked").clone();
        let present: std::collections::HashSet<String> = self
            .etcd_read(
                (Duration::from_secs(5), Duration::from_secs(30)),
                async |access, urls| access.get_prefix(urls, writer::PREFIX).await,
            )
            .context("reading the writer's keys")?
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        let due: Vec<&(u64, i64)> = acked
            .iter()
            .filter(|(_, rev)| up_to.is_none_or(|r| *rev <= r))
            .collect();
        let lost: Vec<u64> = due
            .iter()
            .filter(|(seq, _)| !present.contains(&writer::key(*seq)))
            .map(|(seq, _)| *seq)
            .collect();
        self.shared
            .invariants
            .check(Rule::NoWriteLost, self.day(), lost.is_empty(), || {
                format!(
                    "{} of {} acknowledged writes missing, the first {}",
                    lost.len(),
                    due.len(),
                    writer::key(lost[0])
                )
            });
        Ok(())
    }
}

/// `*.crt` files under `dir`, recursively.
fn cert_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(cert_files(&path));
        } else if path.extension().is_some_and(|e| e == "crt") {
            out.push(path);
        }
    }
    out
}
