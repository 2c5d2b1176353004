//! The boot-storm bench: W workers (`--workers`, default 200) and an etcd cluster of 5 booting
//! at the same moment in one world, the way an account looks when a whole cluster starts: every
//! worker a `tn-agent bootstrap` process of its own (its own root and fake IMDS), every etcd node
//! booting as its units would (bootstrap, etcd, promote). Two rounds, each in a fresh world: a
//! clean one, and one where the world's AWS proxy fails a fifth of the calls of each service
//! with its throttling error, drawn at random per call from a fixed seed. Figures: each worker's
//! bootstrap process from the storm's start to its exit, the etcd cluster from the storm's start
//! to all healthy, the AWS calls on the wire (the proxy's record, so SDK retries count) by
//! service and per node.
//! Every node must succeed, and the faults round's calls must stay within stated multiples of
//! the clean round's: retries under throttling are bounded, not a storm of their own.

use std::collections::BTreeMap;
use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tn_agent::pki::Ca;
use tn_world::process::Owned;
use tn_world::{boot_in_parallel, EtcdProcess, Inspector, Node, World};

use crate::figures::{nproc, secs, table};
use crate::Options;

const ETCD_ASG: &str = "demo-etcd";
const WORKER_ASG: &str = "demo-worker";
const ETCD_SIZE: i32 = 5;
/// How long bootstrap and promote may wait (as in the etcd tests).
const JOIN_TIMEOUT: u32 = 90;
const VERSION: &str = "v1.31.4";
/// A well-formed bootstrap token: workers read it, nothing checks it here.
const TOKEN: &str = "abcdef.0123456789abcdef";
/// How long a worker's bootstrap may run before it is killed and counted as failed.
const WORKER_LIMIT: Duration = Duration::from_secs(180);
/// How long the etcd cluster may take to be healthy once its nodes have booted.
const SETTLE: Duration = Duration::from_secs(60);
/// How often the running workers are looked at: the resolution of their wall times.
const POLL: Duration = Duration::from_millis(10);
/// How often the etcd cluster is looked at while it forms.
const ETCD_POLL: Duration = Duration::from_millis(50);
/// The share of each service's calls the faults round fails.
const FAULT_SHARE: f64 = 0.2;
/// What the faults round answers, per service: AWS's own throttling errors.
const FAULTS: [(&str, u16, &str); 3] = [
    ("s3", 503, "SlowDown"),
    ("ec2", 503, "RequestLimitExceeded"),
    ("autoscaling", 400, "Throttling"),
];
/// The faults' draws start from here (one generator per service), the same every run.
const SEED: u64 = 0x5707_2026;
/// The most AWS calls the workers may make in the faults round, as a multiple of the clean
/// round's. A worker's requests are the same in both (2); with a fifth of the calls failed,
/// each takes 1.25 tries on average, and twice as many would be retries the faults do not
/// explain.
const WORKERS_BOUND: f64 = 2.0;
/// The most calls one worker may make in the faults round, as a multiple of the most one made
/// in the clean round: the agent's SDK tries one request at most 8 times.
const PER_WORKER_BOUND: u32 = 8;
/// The most AWS calls the etcd nodes may make in the faults round, as a multiple of the clean
/// round's. A node waiting for the founder looks again every 0.3 to 1 s, so their calls grow
/// with how long founding takes (longer when throttled), not with retries alone; a storm of
/// retries would be tens of times more.
const ETCD_BOUND: f64 = 5.0;

/// What one round measured.
struct Round {
    /// Each worker's bootstrap process, from the storm's start to its exit.
    worker_walls: Vec<Duration>,
    /// From the storm's start to the last worker's exit.
    workers_done: Duration,
    /// From the storm's start to 5 healthy voters with a leader; `None` when they never were.
    etcd_healthy: Option<Duration>,
    /// CPU time (user and system) of the round's tn-agent processes, workers and etcd nodes.
    agent_cpu: Duration,
    calls: Calls,
    nodes: usize,
    /// One line per node that did not succeed.
    failures: Vec<String>,
}

/// The AWS calls of one round, from the proxy's record (on the wire: SDK retries count).
struct Calls {
    by_service: BTreeMap<String, u64>,
    s3_gets: u64,
    /// Calls the proxy answered with an injected error.
    injected: u32,
    /// Each worker's calls.
    per_worker: Vec<u32>,
    /// Each etcd node's calls (bootstrap and promote).
    per_etcd_node: Vec<u32>,
}

/// How one worker's bootstrap process ended.
struct Exit {
    /// `None` when a signal ended it (or it was killed at [`WORKER_LIMIT`]).
    code: Option<i32>,
    /// From the storm's start to its exit.
    wall: Duration,
}

/// What a worker's process runs before tn-agent: it waits for its stdin (a pipe every worker
/// shares) to close, then becomes tn-agent. Spawned one by one while the earlier ones run, 200
/// workers took 17 s to start on 2 CPUs (each spawn waits for its child to be scheduled), so
/// every worker is spawned first and held here, and closing the pipe starts them all at once.
const GATE: &str = "read -r _; exec \"$0\" \"$@\"";

pub fn run(opts: &Options) -> Result<()> {
    println!(
        "== storm: {} workers and {ETCD_SIZE} etcd nodes booting at once, clean and with faults",
        opts.workers
    );
    let clean = round(opts.workers, false).context("clean round")?;
    progress("clean", &clean);
    let faults = round(opts.workers, true).context("faults round")?;
    progress("faults", &faults);
    eprintln!();
    print_table(&clean, &faults);
    check(&clean, &faults)
}

/// One storm in a fresh world: the cluster's PKI, the two ASGs, a node per instance, the
/// proxy's random faults when asked for; every boot started at once.
fn round(workers: usize, faults: bool) -> Result<Round> {
    let world = World::start().context("starting the world")?;
    put_worker_pki(&world)?;
    world.init_etcd_pki()?;
    world.create_asg(ETCD_ASG, "etcd", ETCD_SIZE)?;
    world.create_asg(WORKER_ASG, "worker", workers as i32)?;
    let etcd_nodes = named(world.etcd_nodes(ETCD_ASG, JOIN_TIMEOUT)?);
    let worker_nodes = named(worker_nodes(&world)?);
    if faults {
        inject_faults(&world);
    }

    let (gate, opener) = std::io::pipe().context("making the workers' gate")?;
    let held = worker_nodes
        .iter()
        .map(|n| spawn_held(n, &gate))
        .collect::<Result<Vec<_>>>()?;
    let cpu_before = children_cpu()?;
    let start = Instant::now();
    let (etcd, exits, workers_done) = std::thread::scope(|s| {
        let etcd = s.spawn(|| etcd_cluster(&world, &etcd_nodes, start));
        drop(opener);
        let exits = wait_all(held, start);
        let done = start.elapsed();
        (etcd.join().expect("etcd boot thread panicked"), exits, done)
    });
    world.aws.clear_faults();
    // Before the etcd processes and moto stop: only the agents' processes have been reaped.
    let agent_cpu = children_cpu()?.saturating_sub(cpu_before);

    let mut failures = worker_failures(&world, &worker_nodes, &exits);
    let (etcd_healthy, etcds) = match etcd {
        Ok((healthy, etcds)) => (Some(healthy), etcds),
        Err(e) => {
            failures.push(format!("etcd cluster: {e:#}"));
            (None, Vec::new())
        }
    };
    drop(etcds);
    Ok(Round {
        worker_walls: exits.iter().map(|e| e.wall).collect(),
        workers_done,
        etcd_healthy,
        agent_cpu,
        calls: calls(&world, &worker_nodes, &etcd_nodes),
        nodes: worker_nodes.len() + etcd_nodes.len(),
        failures,
    })
}

/// What a worker reads from the state bucket: the cluster CA's certificate and the bootstrap
/// token (SPEC §5), put there directly, as `pki init --upload` would.
fn put_worker_pki(world: &World) -> Result<()> {
    let ca = Ca::generate("kubernetes")?;
    let key = |name: &str| format!("{}/pki/{name}", world.cluster);
    world.put_object(&key("ca.crt"), ca.cert_pem().as_bytes())?;
    world.put_object(&key("bootstrap-token"), format!("{TOKEN}\n").as_bytes())
}

/// A node for every instance of the workers' ASG, with a worker's config.
fn worker_nodes(world: &World) -> Result<Vec<Node>> {
    let config = world.config(
        "worker",
        &format!(
            "[kubernetes]\nversion = \"{VERSION}\"\n\
             node_labels = {{ \"node.kubernetes.io/pool\" = \"general\" }}\nnode_taints = []\n"
        ),
    );
    world
        .asg_instances(WORKER_ASG)?
        .iter()
        .map(|i| world.node(i, &config))
        .collect()
}

/// The nodes, each with its instance id as its SDK's app id: nodes of one role sign with the
/// same key, and the proxy tells their calls apart by it.
fn named(mut nodes: Vec<Node>) -> Vec<Node> {
    for node in &mut nodes {
        node.env.push(("AWS_SDK_UA_APP_ID".into(), node.id.clone()));
    }
    nodes
}

/// A random [`FAULT_SHARE`] of every service's calls answered with its throttling error.
fn inject_faults(world: &World) {
    for (k, (service, status, code)) in FAULTS.iter().enumerate() {
        world
            .aws
            .fail_fraction(service, FAULT_SHARE, *status, code, SEED + k as u64);
    }
}

/// Boots the etcd nodes together (each: bootstrap, etcd, promote) and waits until they are
/// healthy voters with a leader; returns when that was, from `start`, and the etcd processes.
fn etcd_cluster(
    world: &World,
    nodes: &[Node],
    start: Instant,
) -> Result<(Duration, Vec<EtcdProcess>)> {
    let all: Vec<&Node> = nodes.iter().collect();
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let etcds = boot_in_parallel(&all).context("booting the etcd nodes")?;
    // Built once the nodes have their certificates (bootstrap writes them).
    let check = Inspector::new(world, &nodes[0], &all)?;
    check.wait_for_members(&ids, SETTLE, ETCD_POLL)?;
    Ok((start.elapsed(), etcds))
}

/// `tn-agent bootstrap` on the node, held at [`GATE`] until `gate`'s writer closes; its output
/// in `<root>/bootstrap.log`.
fn spawn_held(node: &Node, gate: &std::io::PipeReader) -> Result<Owned> {
    let path = node.root.join("bootstrap.log");
    let log = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let agent = node.agent()?.command(&["bootstrap"]);
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(GATE).arg(agent.get_program());
    cmd.args(agent.get_args());
    for (key, value) in agent.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.stdin(gate.try_clone()?)
        .stdout(log.try_clone()?)
        .stderr(log);
    Owned::spawn(cmd, "tn-agent bootstrap")
        .with_context(|| format!("starting the bootstrap of {}", node.id))
}

/// Looks at the processes every [`POLL`] until all have exited; those still running
/// [`WORKER_LIMIT`] after `start` are killed.
fn wait_all(mut running: Vec<Owned>, start: Instant) -> Vec<Exit> {
    let mut exits: Vec<Option<Exit>> = running.iter().map(|_| None).collect();
    while exits.iter().any(Option::is_none) {
        let late = start.elapsed() > WORKER_LIMIT;
        for (process, exit) in running.iter_mut().zip(&mut exits) {
            if exit.is_some() {
                continue;
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                *exit = Some(Exit {
                    code: status.code(),
                    wall: start.elapsed(),
                });
            } else if late {
                process.kill();
                *exit = Some(Exit {
                    code: None,
                    wall: start.elapsed(),
                });
            }
        }
        std::thread::sleep(POLL);
    }
    exits.into_iter().flatten().collect()
}

/// A line for each worker whose bootstrap did not exit 0: how long it ran, how many AWS calls
/// it made, and its error as its `state.json` records it (else the last line it logged).
fn worker_failures(world: &World, nodes: &[Node], exits: &[Exit]) -> Vec<String> {
    let by_app = world.aws.calls_by_app();
    nodes
        .iter()
        .zip(exits)
        .filter(|(_, e)| e.code != Some(0))
        .map(|(node, e)| {
            format!(
                "worker {}: bootstrap exited {} after {} and {} AWS calls: {}",
                node.id,
                e.code.map_or("by a signal".into(), |c| c.to_string()),
                secs(e.wall),
                by_app.get(&node.id).copied().unwrap_or(0),
                last_error(node)
            )
        })
        .collect()
}

/// The error of the node's last bootstrap, from its `state.json`, else its last log line.
fn last_error(node: &Node) -> String {
    if let Some(error) = node.state().ok().and_then(|s| s.error) {
        return error;
    }
    let log = std::fs::read_to_string(node.root.join("bootstrap.log")).unwrap_or_default();
    log.lines().last().unwrap_or("(nothing logged)").to_string()
}

/// The CPU time (user and system) of this process's children that have exited and been waited
/// for: `cutime` and `cstime` of `/proc/self/stat`, in Linux's fixed 100 ticks a second.
fn children_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // The fields after the command name, the first of them field 3 (`state`).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |field: usize| -> Result<u64> {
        fields
            .get(field - 3)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("field {field} of /proc/self/stat"))
    };
    Ok(Duration::from_millis((ticks(16)? + ticks(17)?) * 10))
}

/// The round's AWS calls from the proxy's record.
fn calls(world: &World, workers: &[Node], etcd: &[Node]) -> Calls {
    let seen = world.aws.seen();
    let mut by_service = BTreeMap::new();
    for call in &seen {
        *by_service.entry(call.service.clone()).or_default() += 1;
    }
    let by_app = world.aws.calls_by_app();
    let each = |nodes: &[Node]| -> Vec<u32> {
        nodes
            .iter()
            .map(|n| by_app.get(&n.id).copied().unwrap_or(0))
            .collect()
    };
    Calls {
        by_service,
        s3_gets: seen
            .iter()
            .filter(|c| c.service == "s3" && c.method == "GET")
            .count() as u64,
        injected: world.aws.faults_injected(),
        per_worker: each(workers),
        per_etcd_node: each(etcd),
    }
}

/// One line on stderr as a round ends.
fn progress(name: &str, r: &Round) {
    eprintln!(
        "  {name}: workers done in {}, etcd healthy at {}, {} AWS calls, {} failures",
        secs(r.workers_done),
        r.etcd_healthy.map_or("never".into(), secs),
        r.calls.total(),
        r.failures.len()
    );
}

impl Round {
    /// The `p`-th percentile (nearest rank) of the workers' wall times.
    fn worker_percentile(&self, p: f64) -> String {
        let mut walls = self.worker_walls.clone();
        walls.sort();
        let rank = ((p / 100.0) * walls.len() as f64).ceil() as usize;
        match walls.get(rank.max(1) - 1) {
            Some(d) => secs(*d),
            None => "-".into(),
        }
    }

    fn succeeded(&self) -> String {
        format!("{}/{}", self.nodes - self.failures.len(), self.nodes)
    }
}

impl Calls {
    fn total(&self) -> u64 {
        self.by_service.values().sum()
    }

    fn of(&self, service: &str) -> u64 {
        self.by_service.get(service).copied().unwrap_or(0)
    }

    fn workers(&self) -> u64 {
        self.per_worker.iter().map(|&n| u64::from(n)).sum()
    }

    fn etcd_nodes(&self) -> u64 {
        self.per_etcd_node.iter().map(|&n| u64::from(n)).sum()
    }

    fn max_per_worker(&self) -> u32 {
        self.per_worker.iter().copied().max().unwrap_or(0)
    }

    fn max_per_etcd_node(&self) -> u32 {
        self.per_etcd_node.iter().copied().max().unwrap_or(0)
    }
}

/// The two rounds side by side, and what the figures are.
fn print_table(clean: &Round, faults: &Round) {
    type Row = (&'static str, fn(&Round) -> String);
    let rows: [Row; 15] = [
        ("nodes that succeeded (exit 0)", Round::succeeded),
        ("worker bootstrap p50", |r| r.worker_percentile(50.0)),
        ("worker bootstrap p99", |r| r.worker_percentile(99.0)),
        ("worker bootstrap max", |r| r.worker_percentile(100.0)),
        ("all workers done", |r| secs(r.workers_done)),
        ("etcd: start to all healthy", |r| {
            r.etcd_healthy.map_or("never".into(), secs)
        }),
        ("CPU time of the agent processes", |r| secs(r.agent_cpu)),
        ("S3 GETs", |r| r.calls.s3_gets.to_string()),
        ("AWS calls: s3", |r| r.calls.of("s3").to_string()),
        ("AWS calls: ec2", |r| r.calls.of("ec2").to_string()),
        ("AWS calls: autoscaling", |r| {
            r.calls.of("autoscaling").to_string()
        }),
        ("AWS calls: total", |r| r.calls.total().to_string()),
        ("AWS calls: workers / etcd nodes", |r| {
            format!("{} / {}", r.calls.workers(), r.calls.etcd_nodes())
        }),
        ("faults injected", |r| r.calls.injected.to_string()),
        ("calls per worker / etcd node (max)", |r| {
            format!(
                "{} / {}",
                r.calls.max_per_worker(),
                r.calls.max_per_etcd_node()
            )
        }),
    ];
    table(
        36,
        16,
        &["clean".into(), "faults".into()],
        rows.map(|(label, figure)| (label, move |s: &[&Round]| figure(s[0]))),
        &[vec![clean], vec![faults]],
    );
    for note in [
        "worker bootstrap: each worker's `tn-agent bootstrap` process, from the storm's start"
            .into(),
        format!(
            "  to its exit, looked at every {} ms; all spawned beforehand, held in a shell that",
            POLL.as_millis()
        ),
        "  execs tn-agent once the storm starts.".into(),
        "etcd: from the storm's start (the workers released, the etcd boots begun) to".into(),
        format!("  {ETCD_SIZE} healthy voters with a leader; each node: bootstrap, etcd, promote."),
        "CPU time: user and system of every tn-agent process of the round (workers and etcd".into(),
        format!(
            "  nodes); on {} CPUs shared with moto and etcd, the storm's floor is that over {}.",
            nproc(),
            nproc()
        ),
        "AWS calls: every request the world's AWS proxy answered, SDK retries included;".into(),
        "  per node by the instance id each node's SDK sends as its app id.".into(),
        format!(
            "faults: {:.0}% of each service's calls, drawn per call from a fixed seed:",
            FAULT_SHARE * 100.0
        ),
        format!(
            "  {}.",
            FAULTS
                .iter()
                .map(|(service, status, code)| format!("{service} {status} {code}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ] {
        println!("{note}");
    }
}

/// Fails when a node did not succeed, when the faults round injected nothing, or when its
/// calls went past the bounds: [`WORKERS_BOUND`] and [`ETCD_BOUND`] times the clean round's,
/// [`PER_WORKER_BOUND`] times the clean round's most for one worker.
fn check(clean: &Round, faults: &Round) -> Result<()> {
    let ratio = |f: fn(&Calls) -> u64| f(&faults.calls) as f64 / f(&clean.calls).max(1) as f64;
    let (workers, etcd) = (ratio(Calls::workers), ratio(Calls::etcd_nodes));
    let worker_bound = PER_WORKER_BOUND * clean.calls.max_per_worker();
    println!(
        "bounded retries: with faults, the workers made {workers:.2}x the clean round's AWS \
         calls (bound {WORKERS_BOUND}x), at most {} each (bound {worker_bound}: \
         {PER_WORKER_BOUND}x the clean round's {}); the etcd nodes {etcd:.2}x (bound \
         {ETCD_BOUND}x)",
        faults.calls.max_per_worker(),
        clean.calls.max_per_worker()
    );
    let mut problems: Vec<String> = [("clean", clean), ("faults", faults)]
        .iter()
        .flat_map(|(name, r)| r.failures.iter().map(move |f| format!("{name} round: {f}")))
        .collect();
    if faults.calls.injected == 0 {
        problems.push("the faults round injected no fault".into());
    }
    if workers > WORKERS_BOUND {
        problems.push(format!(
            "with faults, the workers made {workers:.2}x the clean round's AWS calls (bound \
             {WORKERS_BOUND}x)"
        ));
    }
    if faults.calls.max_per_worker() > worker_bound {
        problems.push(format!(
            "with faults, a worker made {} AWS calls (bound {worker_bound})",
            faults.calls.max_per_worker()
        ));
    }
    if etcd > ETCD_BOUND {
        problems.push(format!(
            "with faults, the etcd nodes made {etcd:.2}x the clean round's AWS calls (bound \
             {ETCD_BOUND}x)"
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let shown = problems.len().min(20);
    bail!(
        "the storm failed ({} problems{}):\n  {}",
        problems.len(),
        if shown < problems.len() {
            format!(", the first {shown} shown")
        } else {
            String::new()
        },
        problems[..shown].join("\n  ")
    )
}
