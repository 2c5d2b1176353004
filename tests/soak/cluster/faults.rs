//! Faults the world injects and nodes coming back: power lost and restored, a lost data volume,
//! IMDS down, AWS answering errors; a node's boot.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tn_world::kube_reboot::node_name;
use tn_world::reboot::reboot_mark;

use crate::invariants::Rule;
use crate::schedule::Fault;
use crate::timeline::MarkKind;

use super::{error_line, Cluster, Down, BOOT_RETRY, BOOT_TRIES};

impl Cluster<'_> {
    /// Injects `fault` at `target` (reduced modulo the candidates); a node taken down boots
    /// again `down_for` later (wall time).
    pub fn inject(
        &mut self,
        fault: Fault,
        target: usize,
        down_for: Duration,
        seed: u64,
    ) -> Result<()> {
        let aws = &self.world.aws;
        match fault {
            Fault::KillEtcd | Fault::LostDisk => {
                let i = target % self.etcd.len();
                if self.is_down(&self.etcd[i].node.id) {
                    return Ok(());
                }
                let lost_disk = fault == Fault::LostDisk;
                let id = self.etcd[i].node.id.clone();
                self.power_off(&id);
                if lost_disk {
                    let data = self.etcd[i].node.path("/var/lib/etcd");
                    std::fs::remove_dir_all(&data)
                        .with_context(|| format!("losing {}", data.display()))?;
                }
                self.shared.mark(
                    MarkKind::Fault,
                    if lost_disk {
                        format!("disk lost: etcd {id}")
                    } else {
                        format!("kill: etcd {id}")
                    },
                );
                self.down.push(Down {
                    id,
                    at: Instant::now() + down_for,
                    lost_disk,
                });
            }
            Fault::KillKube => {
                let i = target % self.kube.len();
                let id = self.kube[i].node.id.clone();
                if self.is_down(&id) {
                    return Ok(());
                }
                self.power_off(&id);
                self.shared.mark(
                    MarkKind::Fault,
                    format!("kill: {} {id}", self.kube[i].group),
                );
                self.down.push(Down {
                    id,
                    at: Instant::now() + down_for,
                    lost_disk: false,
                });
            }
            Fault::ImdsDown => {
                let n = self.etcd.len() + self.kube.len();
                let i = target % n;
                let node = if i < self.etcd.len() {
                    &mut self.etcd[i].node
                } else {
                    &mut self.kube[i - self.etcd.len()].node
                };
                node.imds.down();
                let id = node.id.clone();
                self.shared
                    .mark(MarkKind::Fault, format!("imds: down on {id} for the day"));
                self.imds_down.push(id);
            }
            Fault::S3SlowDown => {
                aws.fail_fraction("s3", 0.33, 503, "SlowDown", seed);
                self.shared
                    .mark(MarkKind::Fault, "s3: 503 SlowDown on a third of the calls");
            }
            Fault::Throttling => {
                aws.fail_fraction("ec2", 0.33, 400, "RequestLimitExceeded", seed);
                aws.fail_fraction("autoscaling", 0.33, 400, "Throttling", seed + 1);
                self.shared.mark(
                    MarkKind::Fault,
                    "throttle: EC2 and AutoScaling on a third of the calls",
                );
            }
        }
        Ok(())
    }

    /// The end of a day's faults: AWS answers again, every IMDS is back.
    pub fn clear_faults(&mut self) -> Result<()> {
        self.world.aws.clear_faults();
        for id in std::mem::take(&mut self.imds_down) {
            if let Some(node) = self
                .etcd
                .iter_mut()
                .map(|e| &mut e.node)
                .chain(self.kube.iter_mut().map(|k| &mut k.node))
                .find(|n| n.id == id)
            {
                node.imds.up()?;
            }
        }
        Ok(())
    }

    /// The node loses power: etcd killed or the kubelet gone (NotReady, the apiserver too on a
    /// master), its watch with it.
    pub(super) fn power_off(&mut self, id: &str) {
        self.watches.remove(id);
        if let Some(e) = self.etcd.iter_mut().find(|e| e.node.id == id) {
            if let Some(mut p) = e.etcd.take() {
                p.kill();
            }
        }
        if let Some(i) = self.kube.iter().position(|k| k.node.id == id) {
            self.stop_apiserver(i);
            let _ = self.api.set_ready(&node_name(&self.kube[i].node), false);
        }
    }

    /// Boots the nodes whose time down is over, and lets the masters' kubelets look at their
    /// manifests (called while the soak waits for something).
    pub fn tick(&mut self) -> Result<()> {
        self.boot_due(false)?;
        self.kubelets()
    }

    /// Boots the nodes whose time down is over, and every one when `all` (the day is over).
    pub fn boot_due(&mut self, all: bool) -> Result<()> {
        let now = Instant::now();
        let due: Vec<Down> = {
            let (due, later) = std::mem::take(&mut self.down)
                .into_iter()
                .partition(|d| all || d.at <= now);
            self.down = later;
            due
        };
        for d in due {
            self.boot_node(&d.id, d.lost_disk)?;
        }
        Ok(())
    }

    /// A node's boot after a reboot or a power loss: a new boot id, /run emptied, bootstrap
    /// (tried again as systemd would when it fails), then etcd or the kubelet (Ready) and, on a
    /// master, its apiserver; its watch when a round runs. A lost disk: the instance replaced.
    pub(super) fn boot_node(&mut self, id: &str, lost_disk: bool) -> Result<()> {
        if lost_disk {
            return self.boot_without_data(id);
        }
        let node = self.node(id).context("a node to boot")?;
        let mut retries = 0;
        let _ = std::fs::remove_file(reboot_mark(node));
        let _ = std::fs::remove_file(node.path("/run/reboot-required"));
        node.new_boot()?;
        let mut tries = 0;
        loop {
            tries += 1;
            let run = node.run(&["bootstrap"])?;
            if run.code == 0 {
                break;
            }
            retries += 1;
            let line = error_line(&run.stderr);
            eprintln!(
                "    bootstrap on {id} exited {} ({line}); again in {BOOT_RETRY:?}",
                run.code
            );
            if tries >= BOOT_TRIES {
                self.boot_retries += retries;
                self.shared
                    .invariants
                    .check(Rule::BackAfterReboot, self.day(), false, || {
                        format!("{id}: bootstrap failed {tries} times: {}", run.stderr)
                    });
                bail!("{id} does not boot: {}", run.stderr);
            }
            std::thread::sleep(BOOT_RETRY);
        }
        self.boot_retries += retries;
        if let Some(i) = self.etcd.iter().position(|e| e.node.id == id) {
            let node = &self.etcd[i].node;
            self.etcd[i].etcd = Some(node.start_etcd()?);
        } else if let Some(i) = self.kube.iter().position(|k| k.node.id == id) {
            self.api.set_ready(&node_name(&self.kube[i].node), true)?;
            self.start_apiserver(i)?;
        }
        if self.round_active() {
            self.start_watch(id)?;
        }
        Ok(())
    }

    /// An etcd node whose data volume was lost. Its bootstrap would refuse to start etcd under
    /// the member id whose data is gone (it cannot tell a lost volume from one not mounted yet:
    /// docs/etcd.md; tests/etcd.rs shows the refusal), so the impaired instance is replaced, as
    /// an ASG health check or the runbook would; the new instance takes the member's place.
    fn boot_without_data(&mut self, id: &str) -> Result<()> {
        self.replace_member(id, "lost disk")
    }
}
