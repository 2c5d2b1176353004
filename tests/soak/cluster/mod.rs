//! The soak's cluster and what the world does to it: its nodes (etcd members, masters, two
//! worker pools) in the local AWS world, booted the way their units would, and the world's
//! side of their life — timers firing, OS updates staged and the reboots they lead to, the etcd
//! ASG rolled, faults injected and nodes coming back.
//!
//! A reboot is simulated as the reboot tests do (`tn_world::reboot`): a node's `reboot watch`
//! runs a command that only leaves a mark; then the world powers the node off at once (etcd
//! killed, the Node NotReady), gives it a new boot id, empties /run and boots it: bootstrap, etcd
//! or the kubelet again. Nodes that ran their reboot command at the same moment go down at the
//! same moment, so a broken lock shows as two members (or two workers of a pool) down at once.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tn_agent::backup::catalog::BackupName;
use tn_agent::etcd::client::{ClientTls, EtcdAccess, EtcdError};
use tn_agent::pki::{Ca, LeafRequest, Usage};
use tn_world::cluster::ETCD_PORTS;
use tn_world::kube_api::{KubeApi, PodSeed};
use tn_world::kube_reboot::{node_name, reboot_table, write_kubelet_credentials};
use tn_world::reboot::Watch;
use tn_world::{boot_in_parallel, EtcdProcess, Instance, Node, World};

use crate::clock::{SimClock, HOUR};
use crate::invariants::Rule;
use crate::monitor::Shared;
use crate::writer::Writes;

mod etcd_asg;
mod faults;
mod kubelet;
mod timers;
mod updates;

pub const ETCD_ASG: &str = "soak-etcd";
pub const MASTER_ASG: &str = "soak-master";
/// The worker pools: ASG, size, reboot max.
pub const POOLS: [(&str, i32, u32); 2] = [("soak-pool-a", 4, 2), ("soak-pool-b", 2, 1)];
const MASTERS: i32 = 2;
/// The backup timer's interval, and the retention (`[backup]`): one backup a day, kept 14 days.
pub const BACKUP_INTERVAL: i64 = 24 * HOUR;
const KEEP_DAILY_DAYS: usize = 14;
/// The reboot window's start, every day (UTC, the agents' clock), 4 h long.
const WINDOW_START: &str = "05:00";
/// How long bootstrap and promote may wait for etcd.
const JOIN_TIMEOUT: u32 = 120;
/// How long the cluster may take to be whole again after a step.
const SETTLE: Duration = Duration::from_secs(120);
/// How long one update round (every node rebooted once) may take.
const ROUND_LIMIT: Duration = Duration::from_secs(900);
/// How often a failed bootstrap is tried again at a boot (systemd's restart of the unit).
const BOOT_TRIES: u32 = 10;
const BOOT_RETRY: Duration = Duration::from_secs(2);
/// Pause between looks while waiting.
const POLL: Duration = Duration::from_millis(100);

/// An etcd node and its etcd (none while the node is down).
pub struct EtcdNode {
    pub node: Node,
    pub etcd: Option<EtcdProcess>,
}

/// A master or worker, its reboot group, and (masters) its apiserver as the world's kubelet runs
/// it (`kubelet.rs`).
pub struct KubeNode {
    pub node: Node,
    pub group: String,
    pub master: bool,
    apiserver: kubelet::Apiserver,
}

/// A node the world took down that boots again later.
struct Down {
    id: String,
    at: Instant,
    lost_disk: bool,
}

pub struct Cluster<'a> {
    pub world: &'a World,
    pub api: &'a KubeApi,
    pub shared: &'a Shared<'a>,
    pub writes: &'a Writes,
    ca: Ca,
    pub etcd: Vec<EtcdNode>,
    pub kube: Vec<KubeNode>,
    /// Watches running (an update round), by instance id.
    watches: HashMap<String, Watch>,
    watch_count: usize,
    down: Vec<Down>,
    /// Instances with IMDS down until the end of the day.
    imds_down: Vec<String>,
    /// Per node: each certificate file's serial, to count renewals.
    serials: HashMap<String, BTreeMap<String, String>>,
    pub renewals: u64,
    pub reboots: u64,
    pub boot_retries: u64,
    pub watch_failures: u64,
    /// The newest backup in S3 and how many there are.
    pub newest: Option<BackupName>,
    /// When a timer run last found the keyspace unchanged since the newest backup (which is
    /// then as good as one taken at that moment: SPEC §10 skips such a backup).
    unchanged_at: Option<(BackupName, time::OffsetDateTime)>,
    pub backups: usize,
    /// Backup runs that failed while S3 was not failing on purpose.
    pub backup_failures: u64,
}

/// Every node's `[reboot]`: the world's (look every second, reboot by leaving a mark) and a
/// daily window, 05:00 to 09:00 UTC by the agents' clock, when the update rounds run (06:00).
fn reboot_config(node: &Node) -> String {
    format!(
        "{}window_start = \"{WINDOW_START}\"\nwindow_length = \"4h\"\n",
        reboot_table(node)
    )
}

/// What the etcd group's config says beyond the world's defaults.
fn etcd_extra(node: &Node) -> String {
    format!(
        "[etcd]\nasg = \"{ETCD_ASG}\"\njoin_timeout_seconds = {JOIN_TIMEOUT}\n\
         [backup]\ninterval = \"24h\"\nkeep_hourly_days = 1\nkeep_daily_days = {KEEP_DAILY_DAYS}\n\
         restore_tool = \"etcdctl\"\n{}",
        reboot_config(node)
    )
}

impl<'a> Cluster<'a> {
    /// The world's ASGs and PKI, every node booted, the kubelets joined and the reboot locks'
    /// addon applied: a cluster as an operator's Terraform leaves it.
    pub fn boot(
        world: &'a World,
        api: &'a KubeApi,
        ca: Ca,
        shared: &'a Shared<'a>,
        writes: &'a Writes,
        etcd_size: i32,
    ) -> Result<Self> {
        let mut c = Cluster {
            world,
            api,
            shared,
            writes,
            ca,
            etcd: Vec::new(),
            kube: Vec::new(),
            watches: HashMap::new(),
            watch_count: 0,
            down: Vec::new(),
            imds_down: Vec::new(),
            serials: HashMap::new(),
            renewals: 0,
            reboots: 0,
            boot_retries: 0,
            watch_failures: 0,
            newest: None,
            unchanged_at: None,
            backups: 0,
            backup_failures: 0,
        };
        c.boot_etcd(etcd_size)?;
        c.boot_kube()?;
        c.look_at_certificates();
        Ok(c)
    }

    /// The etcd ASG's nodes booting at the same moment, as their units would.
    fn boot_etcd(&mut self, size: i32) -> Result<()> {
        for inst in self.world.asg_instances(ETCD_ASG)? {
            let mut node = self.world.node(&inst, "")?;
            node.write_config(&self.world.config("etcd", &etcd_extra(&node)))?;
            self.set_clock(&mut node);
            self.etcd.push(EtcdNode { node, etcd: None });
        }
        ensure!(self.etcd.len() == size as usize, "the etcd ASG's instances");
        let nodes: Vec<&Node> = self.etcd.iter().map(|e| &e.node).collect();
        let booted = boot_in_parallel(&nodes).context("booting the etcd members")?;
        for (member, etcd) in self.etcd.iter_mut().zip(booted) {
            member.etcd = Some(etcd);
        }
        self.publish_endpoints();
        self.wait_whole("the cluster formed")
    }

    /// The masters and workers: configs naming the fake apiserver, bootstrap, the kubelet's
    /// credentials and Node (Ready) with a DaemonSet pod, each master's apiserver; then the
    /// operator's part: the reboot locks' addon applied, each pool's reboot max set.
    fn boot_kube(&mut self) -> Result<()> {
        let (world, api) = (self.world, self.api);
        let groups: Vec<String> = POOLS.iter().map(|p| format!("\"{}\"", p.0)).collect();
        let kube = format!(
            "[kubernetes]\nversion = \"v1.31.4\"\napiserver = \"{}\"\n",
            api.url()
        );
        let masters = world.asg_instances(MASTER_ASG)?;
        ensure!(masters.len() == MASTERS as usize, "the masters' ASG");
        let mut instances: Vec<(Instance, &str)> =
            masters.into_iter().map(|i| (i, "master")).collect();
        for (asg, _, _) in POOLS {
            instances.extend(world.asg_instances(asg)?.into_iter().map(|i| (i, asg)));
        }
        for (inst, group) in instances {
            let master = group == "master";
            let mut node = world.node(&inst, "")?;
            let config = if master {
                world.config(
                    "master",
                    &format!(
                        "[etcd]\nasg = \"{ETCD_ASG}\"\n{kube}{}worker_groups = [{}]\n",
                        reboot_config(&node),
                        groups.join(", ")
                    ),
                )
            } else {
                world.config("worker", &format!("{kube}{}", reboot_config(&node)))
            };
            node.write_config(&config)?;
            self.set_clock(&mut node);
            let run = node.run(&["bootstrap"])?;
            ensure!(
                run.code == 0,
                "bootstrap of {} ({group}): {}",
                node.id,
                run.stderr
            );
            let name = node_name(&node);
            if !master {
                write_kubelet_credentials(&node, api, &self.ca, &name)?;
            }
            api.add_node(&name, &[("tn.example/pool", group)])?;
            api.add_pod(
                PodSeed::new("kube-system", &format!("kube-proxy-{}", node.id), &name)
                    .daemonset("kube-proxy"),
            )?;
            self.kube.push(KubeNode {
                node,
                group: group.into(),
                master,
                apiserver: Default::default(),
            });
            self.start_apiserver(self.kube.len() - 1)?;
        }
        let master = self.kube.iter().find(|k| k.master).context("a master")?;
        let addon =
            std::fs::read_to_string(master.node.path("/etc/kubernetes/addons/reboot-locks.yaml"))?;
        api.apply_reboot_locks_addon(&addon)?;
        *self.shared.manifests.lock().expect("manifests") = self
            .kube
            .iter()
            .filter(|k| k.master)
            .map(|k| k.node.path("/etc/kubernetes/manifests/kube-apiserver.yaml"))
            .collect();
        for (asg, _, max) in POOLS.iter().filter(|p| p.2 > 1) {
            let worker = self
                .kube
                .iter()
                .find(|k| k.group == *asg)
                .context("a worker")?;
            let run = worker.node.run(&["reboot", "set-max", &max.to_string()])?;
            ensure!(run.code == 0, "reboot set-max on {asg}: {}", run.stderr);
        }
        Ok(())
    }

    /// Gives a node the simulated clock's offset.
    fn set_clock(&self, node: &mut Node) {
        set_offset(node, self.shared.clock.offset());
    }

    /// Moves the simulated clock to `at` seconds after day 0 and tells every node.
    pub fn jump_to(&mut self, at: i64) {
        self.shared.clock.jump_to(at);
        let offset = self.shared.clock.offset();
        for node in self
            .etcd
            .iter_mut()
            .map(|e| &mut e.node)
            .chain(self.kube.iter_mut().map(|k| &mut k.node))
        {
            set_offset(node, offset);
        }
    }

    fn clock(&self) -> &SimClock {
        self.shared.clock
    }

    fn day(&self) -> f64 {
        self.clock().day()
    }

    /// Tells the monitor and the writer the members' client URLs.
    fn publish_endpoints(&self) {
        let urls: Vec<String> = self.etcd.iter().map(|e| e.node.client_url()).collect();
        *self.shared.endpoints.lock().expect("endpoints") = urls.clone();
        *self.writes.endpoints.lock().expect("endpoints") = urls;
    }

    /// A client certificate of the etcd CA for looking from outside.
    pub fn etcd_access(world: &World, connect: Duration, request: Duration) -> Result<EtcdAccess> {
        let operator = world.dir().join("operator");
        let read = |n: &str| {
            std::fs::read_to_string(operator.join(n)).with_context(|| format!("operator/{n}"))
        };
        let ca = Ca::from_pem(&read("etcd-ca.crt")?, &read("etcd-ca.key")?)?;
        let leaf = ca.issue(&LeafRequest {
            common_name: "soak".into(),
            organization: None,
            dns_names: Vec::new(),
            ips: Vec::new(),
            usages: vec![Usage::ClientAuth],
        })?;
        let tls = ClientTls {
            ca_pem: ca.cert_pem().to_string(),
            cert_pem: leaf.cert_pem,
            key_pem: leaf.key_pem,
        };
        Ok(EtcdAccess::with_timeouts(
            Some(tls),
            ETCD_PORTS,
            connect,
            request,
        ))
    }

    /// Waits until every etcd node is a healthy voter (and nothing else is a member).
    pub fn wait_whole(&mut self, after: &str) -> Result<()> {
        let access = Self::etcd_access(
            self.world,
            Duration::from_millis(500),
            Duration::from_secs(1),
        )?;
        let want: Vec<String> = self.etcd.iter().map(|e| e.node.id.clone()).collect();
        let urls: Vec<String> = self.etcd.iter().map(|e| e.node.client_url()).collect();
        let deadline = Instant::now() + SETTLE;
        loop {
            self.tick()?;
            let view = self.world.block_on(access.observe(&urls));
            if let Some(v) = &view {
                let whole = v.members.len() == want.len()
                    && v.members
                        .iter()
                        .all(|m| want.contains(&m.name) && !m.is_learner && m.healthy)
                    && v.leader.is_some();
                if whole {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd is not {want:?}, all healthy voters, {SETTLE:?} after {after}: {view:?}"
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// `read` through the members with a client whose requests are bounded by `timing.0`,
    /// tried again for up to `timing.1` (right after a member went down the others answer once
    /// they have a leader).
    pub(super) fn etcd_read<T>(
        &self,
        timing: (Duration, Duration),
        read: impl AsyncFn(&EtcdAccess, &[String]) -> Result<T, EtcdError>,
    ) -> Result<T> {
        let (request, patience) = timing;
        let access = Self::etcd_access(self.world, Duration::from_secs(1), request)?;
        let urls: Vec<String> = self.etcd.iter().map(|e| e.node.client_url()).collect();
        self.world.block_on(async {
            let deadline = Instant::now() + patience;
            loop {
                match read(&access, &urls).await {
                    Ok(value) => return Ok(value),
                    Err(e) if Instant::now() > deadline => return Err(e.into()),
                    Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            }
        })
    }

    /// Every node that went down today is back: the members healthy voters (a rule: every node
    /// back and healthy after every reboot).
    pub fn settle(&mut self) -> Result<()> {
        self.boot_due(true)?;
        self.check_whole("the day's reboots")
    }

    /// [`Cluster::wait_whole`] as a check of the rule "every node back and healthy after every
    /// reboot".
    pub(super) fn check_whole(&mut self, after: &str) -> Result<()> {
        let whole = self.wait_whole(after);
        let day = self.day();
        self.shared
            .invariants
            .check(Rule::BackAfterReboot, day, whole.is_ok(), || {
                format!("{:#}", whole.as_ref().expect_err("not whole"))
            });
        whole
    }

    pub(super) fn is_down(&self, id: &str) -> bool {
        self.down.iter().any(|d| d.id == id)
    }

    pub(super) fn node(&self, id: &str) -> Option<&Node> {
        self.etcd
            .iter()
            .map(|e| &e.node)
            .chain(self.kube.iter().map(|k| &k.node))
            .find(|n| n.id == id)
    }
}

/// The `error:` line of a run's stderr and its cause, else its last line.
fn error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    match lines.iter().position(|l| l.starts_with("error:")) {
        Some(i) => lines[i..]
            .iter()
            .take(3)
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" "),
        None => lines.last().unwrap_or(&"").to_string(),
    }
}

/// Sets the agent's clock offset in a node's environment.
fn set_offset(node: &mut Node, offset: i64) {
    node.env.retain(|(k, _)| k != tn_agent::clock::OFFSET_VAR);
    node.env
        .push((tn_agent::clock::OFFSET_VAR.into(), offset.to_string()));
}
