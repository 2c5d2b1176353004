//! OS updates: staged on every node, `reboot watch` everywhere, and the world doing what a
//! reboot does when a watch runs its reboot command.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tn_agent::reboot::etcd_lock::PREFIX as LOCK_PREFIX;
use tn_agent::reboot::lock::ETCD_GROUP;
use tn_agent::reboot::semaphore::Semaphore;
use tn_world::kube_reboot::node_name;
use tn_world::reboot::{reboot_mark, reboot_state, Watch};

use crate::invariants::Rule;
use crate::timeline::MarkKind;

use super::{Cluster, POLL, ROUND_LIMIT};

impl Cluster<'_> {
    pub(super) fn round_active(&self) -> bool {
        !self.watches.is_empty()
    }

    pub(super) fn start_watch(&mut self, id: &str) -> Result<()> {
        self.watch_count += 1;
        let node = self.node(id).context("a node to watch")?;
        let watch = Watch::start(node, self.watch_count)?;
        self.watches.insert(id.to_string(), watch);
        Ok(())
    }

    /// An OS update staged on every node: each runs `reboot watch` (tn-agent-reboot.service),
    /// which reboots it when its group's lock and gates allow; the round ends when every node
    /// booted the update (by its watch's reboot, or by a crash) and every lock is free.
    pub fn update_round(&mut self) -> Result<()> {
        self.shared
            .mark(MarkKind::Event, "update: staged on every node");
        let started = Instant::now();
        let ids: Vec<String> = self
            .etcd
            .iter()
            .map(|e| e.node.id.clone())
            .chain(self.kube.iter().map(|k| k.node.id.clone()))
            .collect();
        let boots_before: HashMap<String, String> = ids
            .iter()
            .map(|id| (id.clone(), self.boot_id(id)))
            .collect();
        for id in &ids {
            if self.is_down(id) {
                continue; // it boots the update when it comes back
            }
            let run = self
                .node(id)
                .context("a node")?
                .run(&["reboot", "request"])?;
            ensure!(run.code == 0, "reboot request on {id}: {}", run.stderr);
        }
        for id in &ids {
            if !self.is_down(id) {
                self.start_watch(id)?;
            }
        }
        loop {
            self.tick()?;
            self.reboot_those_that_asked()?;
            // A node replaced meanwhile (a lost disk) is gone; its replacement booted the
            // update.
            let done = ids.iter().all(|id| {
                self.node(id).is_none_or(|node| {
                    self.boot_id(id) != boots_before[id]
                        && reboot_state(node).is_none_or(|s| s["phase"] == "idle")
                })
            }) && self.down.is_empty();
            if done {
                break;
            }
            if started.elapsed() > ROUND_LIMIT {
                let states: Vec<String> = ids
                    .iter()
                    .filter_map(|id| {
                        let node = self.node(id)?;
                        Some(match reboot_state(node) {
                            Some(s) => format!("{id}: {} {}", s["phase"], s["why"]),
                            None => format!("{id}: no reboot.json"),
                        })
                    })
                    .collect();
                self.watches.clear();
                bail!(
                    "the update round did not end within {ROUND_LIMIT:?}: {}",
                    states.join("; ")
                );
            }
            std::thread::sleep(POLL);
        }
        self.watches.clear();
        self.check_back()?;
        Ok(())
    }

    fn boot_id(&self, id: &str) -> String {
        self.node(id)
            .and_then(|n| std::fs::read_to_string(n.path("/proc/sys/kernel/random/boot_id")).ok())
            .unwrap_or_default()
    }

    /// The nodes whose watch ran the reboot command go down together, then boot one after
    /// the other; a watch that failed is started again (systemd's `Restart=`).
    fn reboot_those_that_asked(&mut self) -> Result<()> {
        let mut asked = Vec::new();
        let ids: Vec<String> = self.watches.keys().cloned().collect();
        for id in ids {
            let exited = self.watches.get_mut(&id).expect("a watch").exited()?;
            match exited {
                None => {}
                Some(true) => {
                    let node = self.node(&id).expect("a node");
                    if reboot_mark(node).exists() {
                        asked.push(id);
                    } else {
                        self.watches.remove(&id);
                    }
                }
                Some(false) => {
                    self.watch_failures += 1;
                    let log = self.watches[&id].log();
                    let last = log.lines().last().unwrap_or_default().to_string();
                    eprintln!("    reboot watch on {id} failed: {last}; started again");
                    std::thread::sleep(Duration::from_millis(500));
                    self.start_watch(&id)?;
                }
            }
        }
        if asked.is_empty() {
            return Ok(());
        }
        // How many of each group go down at this moment (the lock's max is the limit).
        let day = self.day();
        let mut per_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in &asked {
            per_group
                .entry(self.group_of(id))
                .or_default()
                .push(id.clone());
        }
        let maxes: BTreeMap<String, u32> = self
            .shared
            .timeline
            .lock()
            .expect("timeline")
            .groups
            .iter()
            .cloned()
            .collect();
        for (group, ids) in &per_group {
            let max = maxes.get(group).copied().unwrap_or(1);
            self.shared
                .invariants
                .check(Rule::GroupDown, day, ids.len() as u32 <= max, || {
                    format!(
                        "{} of group {group} rebooting at once (max {max}): {}",
                        ids.len(),
                        ids.join(", ")
                    )
                });
        }
        for id in &asked {
            self.watches.remove(id);
            self.power_off(id);
            self.reboots += 1;
        }
        for id in &asked {
            self.boot_node(id, false)?;
        }
        Ok(())
    }

    fn group_of(&self, id: &str) -> String {
        match self.kube.iter().find(|k| k.node.id == id) {
            Some(k) => k.group.clone(),
            None => "etcd".into(),
        }
    }

    /// After a round (every node idle): every member a healthy voter, every Node Ready and
    /// schedulable, every lock free.
    fn check_back(&mut self) -> Result<()> {
        let whole = self.check_whole("the update round");
        let day = self.day();
        for (group, holders) in self.lock_holders()? {
            self.shared
                .invariants
                .check(Rule::BackAfterReboot, day, holders.is_empty(), || {
                    format!("the {group} lock still held by {holders:?} after the round")
                });
        }
        for k in &self.kube {
            let name = node_name(&k.node);
            let node = self.api.node(&name);
            let ready = node.as_ref().is_some_and(|n| {
                n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            });
            let schedulable = !self.api.unschedulable(&name);
            self.shared
                .invariants
                .check(Rule::BackAfterReboot, day, ready && schedulable, || {
                    format!(
                        "{} ({}): ready {ready}, schedulable {schedulable} after the round",
                        k.node.id, k.group
                    )
                });
        }
        whole
    }

    /// Every group's lock holders as its document says now: the etcd group's key (read
    /// through the members, tried for up to 10 s), the ConfigMaps of the others.
    fn lock_holders(&self) -> Result<Vec<(String, Vec<String>)>> {
        let parse = |group: &str, doc: Option<Vec<u8>>| -> Result<Vec<String>> {
            Ok(match doc {
                Some(bytes) => {
                    Semaphore::parse(&bytes)
                        .with_context(|| format!("the {group} lock"))?
                        .holders
                }
                None => Vec::new(),
            })
        };
        let key = format!("{LOCK_PREFIX}{ETCD_GROUP}/semaphore");
        let doc = self
            .etcd_read(
                (Duration::from_secs(2), Duration::from_secs(10)),
                async |access, urls| access.get_versioned(urls, &key).await,
            )
            .context("reading the etcd lock")?
            .map(|kv| kv.value);
        let mut out = vec![(ETCD_GROUP.to_string(), parse(ETCD_GROUP, doc)?)];
        let groups: Vec<String> = self.kube.iter().map(|k| k.group.clone()).collect();
        for group in groups
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
        {
            let doc = self
                .api
                .configmap_value("kube-system", &format!("tn-reboot-{group}"), "semaphore")
                .map(String::into_bytes);
            let holders = parse(&group, doc)?;
            out.push((group, holders));
        }
        Ok(out)
    }
}
