//! The etcd ASG: its instances replaced (a roll, a lost disk), and the final disaster: every
//! member's data lost, the cluster restored from its newest backup.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use tn_agent::backup::catalog::BackupName;

use crate::clock::HOUR;
use crate::timeline::MarkKind;

use super::{etcd_extra, Cluster, EtcdNode, BOOT_RETRY, ETCD_ASG};

impl Cluster<'_> {
    /// An instance refresh of the etcd ASG: each instance in turn leaves (its termination
    /// hook runs `etcd leave`), is terminated and replaced; the new one boots and joins; an
    /// hour passes (the refresh's warm-up), in which the masters' reconcile timer runs.
    pub fn roll(&mut self) -> Result<()> {
        self.boot_due(true)?;
        self.wait_whole("the faults before the roll")?;
        self.shared
            .mark(MarkKind::Event, "roll: instance refresh of the etcd ASG");
        let old: Vec<String> = self.etcd.iter().map(|e| e.node.id.clone()).collect();
        for id in old {
            let i = self
                .etcd
                .iter()
                .position(|e| e.node.id == id)
                .context("the member to replace")?;
            let mut tries = 0;
            loop {
                tries += 1;
                let run = self.etcd[i].node.run(&["etcd", "leave"])?;
                if run.code == 0 {
                    break;
                }
                ensure!(tries < 5, "etcd leave on {id}: {}", run.stderr);
                eprintln!("    etcd leave on {id} exited {}; again", run.code);
                std::thread::sleep(BOOT_RETRY);
            }
            self.replace_member(&id, "roll")?;
        }
        Ok(())
    }

    /// The instance of member `id` terminated and replaced by the ASG; the new instance boots
    /// (bootstrap, etcd, promote) and joins; an hour passes (the masters' reconcile timer).
    pub(super) fn replace_member(&mut self, id: &str, why: &str) -> Result<()> {
        let i = self
            .etcd
            .iter()
            .position(|e| e.node.id == id)
            .context("the member to replace")?;
        let mut gone = self.etcd.remove(i);
        if let Some(mut p) = gone.etcd.take() {
            p.kill();
        }
        self.world.terminate(id)?;
        self.publish_endpoints();
        let deadline = Instant::now() + Duration::from_secs(30);
        let newcomer = loop {
            let mut found = self.world.asg_instances(ETCD_ASG)?;
            found.retain(|inst| inst.id != id && self.etcd.iter().all(|e| e.node.id != inst.id));
            if let Some(inst) = found.into_iter().next() {
                break inst;
            }
            ensure!(Instant::now() < deadline, "the ASG did not replace {id}");
            std::thread::sleep(Duration::from_millis(500));
        };
        drop(gone);
        let mut node = self.world.node(&newcomer, "")?;
        node.write_config(&self.world.config("etcd", &etcd_extra(&node)))?;
        self.set_clock(&mut node);
        let etcd = node
            .boot_etcd()
            .with_context(|| format!("the replacement of {id}"))?;
        self.shared.mark(
            MarkKind::Event,
            format!("{why}: {id} replaced by {}", node.id),
        );
        self.etcd.push(EtcdNode {
            node,
            etcd: Some(etcd),
        });
        self.publish_endpoints();
        self.wait_whole("a replacement")?;
        let at = self.clock().elapsed() + HOUR;
        self.jump_to(at);
        self.reconcile(false)
    }

    // ---- the disaster -----------------------------------------------------------------------

    /// Every member killed and every data dir lost; the operator restores the newest backup on
    /// one node, the others boot again and join. Returns the backup's revision.
    pub fn disaster_and_restore(&mut self) -> Result<BackupName> {
        self.boot_due(true)?;
        self.wait_whole("the last day")?;
        self.backup_timer(false)?;
        let backup = self.newest.context("no backup to restore")?;
        self.writes
            .paused
            .store(true, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(500));
        self.shared
            .disaster
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.mark(
            MarkKind::Fault,
            "disaster: every etcd member killed, every data dir lost",
        );
        for e in &mut self.etcd {
            if let Some(mut p) = e.etcd.take() {
                p.kill();
            }
            let data = e.node.path("/var/lib/etcd");
            if data.exists() {
                std::fs::remove_dir_all(&data)?;
            }
        }
        let name = backup.to_string();
        let first = &self.etcd[0].node;
        let run = first.run(&[
            "etcd",
            "restore",
            "--backup",
            &name,
            "--cluster",
            &self.world.cluster,
        ])?;
        ensure!(run.code == 0, "etcd restore: {}", run.stderr);
        self.shared
            .mark(MarkKind::Event, format!("restore: {name} on {}", first.id));
        self.etcd[0].etcd = Some(first.start_etcd()?);
        for i in 1..self.etcd.len() {
            let etcd = self.etcd[i].node.boot_etcd()?;
            self.etcd[i].etcd = Some(etcd);
        }
        self.wait_whole("the restore")?;
        self.shared
            .disaster
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.reconcile(false)?;
        Ok(backup)
    }
}
