//! `tn-bench`: how long tn-agent takes to form and repair an etcd cluster in the local AWS world,
//! against the floor of the same etcd processes started with a static `--initial-cluster`.
//! Run by `scripts/bench`; prints figures, asserts nothing beyond each step succeeding, leaves
//! nothing running. `--what` picks the benches: this file's formation bench, `reboot` (rolling
//! reboots, SPEC §9), `backup` (etcd backups to S3, SPEC §10) and `storm` (a whole cluster's
//! nodes booting at once, clean and under AWS throttling).
//!
//! For each cluster size N and each run:
//! - agent cold start: a fresh world, the etcd PKI, an ASG of N; every node's boot (bootstrap,
//!   etcd, promote) started at once; timed until all N are healthy voters with a leader;
//! - replacement: in that cluster, once it has run for `STEADY`, a non-leader member's etcd is
//!   SIGKILLed and its instance terminated; the ASG's new instance boots; timed from its boot
//!   until the N members (the newcomer in, the old one out) are healthy voters;
//! - static floor: a fresh world's ASG of N, the same TLS and env file the agent would write, but
//!   with every member in `ETCD_INITIAL_CLUSTER` from the start and no agent; timed from starting
//!   the N etcd processes until all are healthy voters with a leader.

mod backup;
mod figures;
mod reboot;
mod storm;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tn_agent::etcd::env::{EtcdEnv, TlsFiles};
use tn_agent::etcd::model::{ClusterState, Endpoints};
use tn_agent::files::{ETCD_ENV, ETCD_NODE_CA, ETCD_PEER, ETCD_SERVER};
use tn_agent::fsutil::{write_atomic, MODE_PUBLIC, MODE_SECRET};
use tn_agent::pki::{Ca, LeafRequest, Usage};
use tn_world::{boot_in_parallel, EtcdProcess, Inspector, Node, World};

use self::figures::{
    counts, cpu_model, durations, etcd_version, loadavg, median_of, millis, nproc, secs, table,
};

const ASG: &str = "demo-etcd";
/// How long bootstrap and promote may wait (as in the etcd tests).
const JOIN_TIMEOUT: u32 = 90;
/// How long a step may take to reach a healthy cluster (as in the etcd tests).
const SETTLE: Duration = Duration::from_secs(30);
/// How long the ASG may take to show the replacement instance.
const REPLACEMENT_LAUNCH: Duration = Duration::from_secs(10);
/// How long a freshly formed cluster runs before a member is replaced: etcd (strict reconfig
/// check) refuses to add a member until the leader has been connected to every peer for 5 s
/// (its `HealthInterval`), so a failure right after the cold start would time that, not the
/// replacement of a member of a running cluster.
const STEADY: Duration = Duration::from_secs(6);
/// Pause between looks at the cluster while timing: short, so the figures are not rounded up
/// to the 200 ms steps of `Inspector::expect_members`.
const POLL: Duration = Duration::from_millis(20);
/// The goals: a cold formation within 1.5 times the static floor (medians), a member replaced
/// in under 5 s from the new node's boot (median).
const GOAL_RATIO: f64 = 1.5;
const GOAL_REPLACE: f64 = 5.0;
const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;

const USAGE: &str =
    "usage: tn-bench [--what LIST] [--runs R] [--sizes N,N,...] [--backup-mib M,M,...] [--workers W]
  --what LIST        which benches, comma-separated: formation, reboot, backup, storm
                     (default all)
  --runs R           runs per figure (default 5); the median is reported with min and max
  --sizes LIST       etcd cluster sizes for formation and reboot (default 3,5)
  --backup-mib LIST  keyspace sizes in MiB for backup (default 100,1024)
  --workers W        workers booting at once in storm (default 200, at most 240); storm
                     runs one clean and one faults round, whatever --runs says";

pub struct Options {
    what: Vec<String>,
    pub runs: usize,
    pub sizes: Vec<usize>,
    pub backup_mib: Vec<usize>,
    pub workers: usize,
}

const BENCHES: [&str; 4] = ["formation", "reboot", "backup", "storm"];

fn parse_args() -> Result<Options> {
    let mut opts = Options {
        what: BENCHES.iter().map(|s| s.to_string()).collect(),
        runs: 5,
        sizes: vec![3, 5],
        backup_mib: vec![100, 1024],
        workers: 200,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--runs" => {
                let v = value("--runs")?;
                opts.runs = v
                    .parse()
                    .ok()
                    .filter(|r| (1..=100).contains(r))
                    .with_context(|| format!("--runs: expected 1 to 100, got {v:?}"))?;
            }
            "--sizes" => {
                let v = value("--sizes")?;
                opts.sizes = v
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse()
                            .ok()
                            .filter(|n| (1..=15).contains(n))
                            .with_context(|| {
                                format!("--sizes: expected sizes from 1 to 15, got {s:?}")
                            })
                    })
                    .collect::<Result<_>>()?;
            }
            "--what" => {
                let v = value("--what")?;
                opts.what = v.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = opts.what.iter().find(|w| !BENCHES.contains(&w.as_str())) {
                    bail!("--what: unknown bench {bad:?}\n{USAGE}");
                }
            }
            "--backup-mib" => {
                let v = value("--backup-mib")?;
                opts.backup_mib = v
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse()
                            .ok()
                            .filter(|n| (1..=2048).contains(n))
                            .with_context(|| {
                                format!("--backup-mib: expected sizes from 1 to 2048, got {s:?}")
                            })
                    })
                    .collect::<Result<_>>()?;
            }
            "--workers" => {
                let v = value("--workers")?;
                opts.workers = v
                    .parse()
                    .ok()
                    .filter(|w| (1..=240).contains(w))
                    .with_context(|| format!("--workers: expected 1 to 240, got {v:?}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => bail!("unknown argument {arg:?}\n{USAGE}"),
        }
    }
    Ok(opts)
}

fn main() {
    let result = parse_args().and_then(|opts| run(&opts));
    if let Err(e) = result {
        eprintln!("tn-bench: error: {e:#}");
        std::process::exit(1);
    }
}

/// What one run of one size measured.
struct Sample {
    cold: Duration,
    floor: Duration,
    replace: Duration,
    cold_calls: Vec<u64>,
    replace_calls: u64,
    cold_bootstrap_ms: Vec<u64>,
    replace_bootstrap_ms: u64,
    /// How long one look at the healthy cluster took (the resolution of the timings).
    probe: Duration,
}

fn run(opts: &Options) -> Result<()> {
    header(opts)?;
    for what in &opts.what {
        match what.as_str() {
            "formation" => formation(opts)?,
            "reboot" => reboot::run(opts)?,
            "backup" => backup::run(opts)?,
            "storm" => storm::run(opts)?,
            _ => unreachable!("checked when parsed"),
        }
        println!();
    }
    println!("load at the end: {}", loadavg());
    Ok(())
}

/// The machine, the build and the world, printed once.
fn header(opts: &Options) -> Result<()> {
    let agent = tn_world::agent_bin()?;
    let agent_size = std::fs::metadata(&agent)
        .with_context(|| format!("reading {}", agent.display()))?
        .len();
    let build = agent_build(&agent);
    println!(
        "tn-bench: figures from a {} build of tn-agent on this machine",
        build.to_uppercase()
    );
    println!("machine:  {} CPUs (nproc), {}", nproc(), cpu_model());
    println!("load:     {} (1, 5, 15 min averages at start)", loadavg());
    println!("etcd:     {}", etcd_version()?);
    println!(
        "agent:    {} ({build} build, {:.2} MiB, {agent_size} bytes)",
        agent.display(),
        agent_size as f64 / (1024.0 * 1024.0)
    );
    println!(
        "world:    moto_server, a fake IMDSv2 per node, real etcd with TLS, all on loopback and \
         sharing the CPUs above"
    );
    println!(
        "runs:     {} per figure; figures are median (min–max)\n",
        opts.runs
    );
    Ok(())
}

/// Which cargo profile built the agent binary, from the directory it is in (`…/release/` or
/// `…/debug/`); `unknown` elsewhere.
fn agent_build(agent: &std::path::Path) -> &'static str {
    let dir = agent.parent().and_then(|d| d.file_name());
    match dir.and_then(|d| d.to_str()) {
        Some("release") => "release",
        Some("debug") => "debug",
        _ => "unknown",
    }
}

/// Cold formation and member replacement against the static floor.
fn formation(opts: &Options) -> Result<()> {
    println!("== formation: cold start and member replacement");
    let mut samples: Vec<Vec<Sample>> = opts.sizes.iter().map(|_| Vec::new()).collect();
    for r in 1..=opts.runs {
        for (k, &n) in opts.sizes.iter().enumerate() {
            let s = measure(n).with_context(|| format!("run {r} of {}, N={n}", opts.runs))?;
            eprintln!(
                "  run {r}/{} N={n}: cold start {}, static {}, replacement {}",
                opts.runs,
                secs(s.cold),
                secs(s.floor),
                secs(s.replace)
            );
            samples[k].push(s);
        }
    }
    eprintln!();

    type Row = (&'static str, fn(&[Sample]) -> String);
    let rows: [Row; 11] = [
        ("agent cold start to healthy", |s| {
            durations(s.iter().map(|s| s.cold))
        }),
        ("static --initial-cluster", |s| {
            durations(s.iter().map(|s| s.floor))
        }),
        ("ratio agent / static", |s| format!("{:.2}x", ratio(s))),
        ("  goal: at most 1.5x", |s| verdict(ratio(s) <= GOAL_RATIO)),
        ("replacement to healthy", |s| {
            durations(s.iter().map(|s| s.replace))
        }),
        ("  goal: under 5 s", |s| {
            verdict(median_of(s.iter().map(|s| s.replace.as_secs_f64())) < GOAL_REPLACE)
        }),
        ("AWS calls per boot (cold)", |s| {
            counts(s.iter().flat_map(|s| s.cold_calls.iter().copied()))
        }),
        ("AWS calls per boot (replace)", |s| {
            counts(s.iter().map(|s| s.replace_calls))
        }),
        ("bootstrap process (cold)", |s| {
            millis(s.iter().flat_map(|s| s.cold_bootstrap_ms.iter().copied()))
        }),
        ("bootstrap process (replace)", |s| {
            millis(s.iter().map(|s| s.replace_bootstrap_ms))
        }),
        ("one look at the cluster", |s| {
            millis(s.iter().map(|s| s.probe.as_millis() as u64))
        }),
    ];
    table(
        31,
        22,
        &opts
            .sizes
            .iter()
            .map(|n| format!("N={n}"))
            .collect::<Vec<_>>(),
        rows,
        &samples,
    );
    for note in [
        "cold start: from starting all N boots at once (bootstrap, etcd, promote per node)"
            .to_string(),
        "  to all N healthy voters with a leader.".into(),
        "static: the same N etcd processes, TLS and env file, every member listed in".into(),
        "  ETCD_INITIAL_CLUSTER, started together, no agent.".into(),
        format!(
            "replacement: {} s after the cold start, a non-leader member SIGKILLed and its",
            STEADY.as_secs()
        ),
        "  instance terminated; from the new instance's boot to N healthy voters.".into(),
        "AWS calls, bootstrap process: per node boot, from state.json (aws_calls; the sum of"
            .into(),
        "  timings_ms).".into(),
        "one look at the cluster: status and member list over TLS; the timings' resolution.".into(),
    ] {
        println!("{note}");
    }
    Ok(())
}

/// The cold start's median over the static floor's median, in the same runs.
fn ratio(s: &[Sample]) -> f64 {
    let cold = median_of(s.iter().map(|s| s.cold.as_secs_f64()));
    let floor = median_of(s.iter().map(|s| s.floor.as_secs_f64()));
    cold / floor
}

fn verdict(met: bool) -> String {
    match met {
        true => "met".into(),
        false => "NOT met".into(),
    }
}

/// One run of one size: an agent cluster (cold start, then a replacement) and a static floor.
fn measure(n: usize) -> Result<Sample> {
    let agent = agent_cluster(n)?;
    let floor = static_floor(n).context("static --initial-cluster floor")?;
    Ok(Sample { floor, ..agent })
}

fn agent_cluster(n: usize) -> Result<Sample> {
    let world = World::start().context("starting the world")?;
    world.init_etcd_pki()?;
    world.create_asg(ASG, "etcd", n as i32)?;
    let nodes = world.etcd_nodes(ASG, JOIN_TIMEOUT)?;
    let all: Vec<&Node> = nodes.iter().collect();
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();

    let start = Instant::now();
    let mut etcds = boot_in_parallel(&all).context("agent cold start: booting the nodes")?;
    // Built once the nodes have their certificates (bootstrap writes them); reads files only.
    let check = Inspector::new(&world, &nodes[0], &all)?;
    wait_healthy(&check, &ids).context("agent cold start")?;
    let cold = start.elapsed();
    let cold_healthy_at = Instant::now();

    let probe_start = Instant::now();
    let view = check
        .view()
        .context("agent cluster: no member answers after the cold start")?;
    let probe = probe_start.elapsed();
    let mut cold_calls = Vec::new();
    let mut cold_bootstrap_ms = Vec::new();
    for node in &nodes {
        let (calls, ms) = boot_figures(node)?;
        cold_calls.push(calls);
        cold_bootstrap_ms.push(ms);
    }

    // Replacement: the highest-id member that is not the leader (never the seeder either, which
    // has the lowest id).
    let leader = view.leader.context("the cluster has no leader")?;
    let leader_name = view
        .members
        .iter()
        .find(|m| m.id == leader)
        .map(|m| m.name.clone())
        .context("the leader is not in the member list")?;
    let victim = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.id != leader_name)
        .max_by(|a, b| a.1.id.cmp(&b.1.id))
        .map(|(i, _)| i)
        .context("no member other than the leader")?;
    let gone = nodes[victim].id.clone();
    std::thread::sleep(STEADY.saturating_sub(cold_healthy_at.elapsed()));
    etcds[victim].kill();
    world.terminate(&gone)?;
    let newcomer = replacement_instance(&world, &nodes)?;
    let newcomer = world.node(&newcomer, &world.etcd_config(JOIN_TIMEOUT))?;
    let members: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.id != gone)
        .chain([&newcomer])
        .collect();
    let member_ids: Vec<&str> = members.iter().map(|n| n.id.as_str()).collect();

    let start = Instant::now();
    let etcd = newcomer
        .boot_etcd()
        .context("replacement: booting the new instance")?;
    // After the boot: the newcomer's client URL depends on the files bootstrap wrote.
    let check = Inspector::new(&world, members[0], &members)?;
    wait_healthy(&check, &member_ids).context("replacement")?;
    let replace = start.elapsed();
    let (replace_calls, replace_bootstrap_ms) = boot_figures(&newcomer)?;

    drop(etcd);
    drop(etcds);
    drop(check);
    drop(world);
    Ok(Sample {
        cold,
        floor: Duration::ZERO,
        replace,
        cold_calls,
        replace_calls,
        cold_bootstrap_ms,
        replace_bootstrap_ms,
        probe,
    })
}

/// The instance the ASG launched in place of a terminated one.
fn replacement_instance(world: &World, known: &[Node]) -> Result<tn_world::Instance> {
    let deadline = Instant::now() + REPLACEMENT_LAUNCH;
    loop {
        if let Some(inst) = world.instances_besides(ASG, known)?.into_iter().next() {
            return Ok(inst);
        }
        if Instant::now() > deadline {
            bail!("the ASG launched no replacement within {REPLACEMENT_LAUNCH:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `aws_calls` and the sum of `timings_ms` from the node's state.json.
fn boot_figures(node: &Node) -> Result<(u64, u64)> {
    let state = node.state()?;
    ensure!(
        state.ok,
        "{}: state.json says the last bootstrap did not finish: {:?}",
        node.id,
        state.error
    );
    Ok((state.aws_calls.into(), state.timings_ms.values().sum()))
}

fn static_floor(n: usize) -> Result<Duration> {
    let world = World::start().context("starting the world")?;
    let ca = world.init_etcd_pki()?;
    world.create_asg(ASG, "etcd", n as i32)?;
    let nodes = world.etcd_nodes(ASG, JOIN_TIMEOUT)?;
    let all: Vec<&Node> = nodes.iter().collect();
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let token = format!("{}-{:016x}", world.cluster, rand::random::<u64>());
    let initial_cluster = nodes
        .iter()
        .map(|n| format!("{}=https://{}:{PEER_PORT}", n.id, n.ip))
        .collect::<Vec<_>>()
        .join(",");
    for node in &nodes {
        write_static_config(node, &ca, &initial_cluster, &token)?;
    }
    let check = Inspector::new(&world, &nodes[0], &all)?;

    let start = Instant::now();
    let etcds: Vec<EtcdProcess> = nodes
        .iter()
        .map(|n| n.start_etcd())
        .collect::<Result<_>>()?;
    wait_healthy(&check, &ids)?;
    let floor = start.elapsed();

    drop(etcds);
    drop(check);
    drop(world);
    Ok(floor)
}

/// What bootstrap would write for a member of a new cluster that lists every member: the CA,
/// server and peer certificates under /etc/etcd/pki, and /etc/etcd/etcd.env.
fn write_static_config(node: &Node, ca: &Ca, initial_cluster: &str, token: &str) -> Result<()> {
    let tls = TlsFiles {
        ca: node.path(ETCD_NODE_CA),
        server_cert: node.path(ETCD_SERVER.cert),
        server_key: node.path(ETCD_SERVER.key),
        peer_cert: node.path(ETCD_PEER.cert),
        peer_key: node.path(ETCD_PEER.key),
    };
    let write = |path: &std::path::Path, text: &str, mode: u32| {
        write_atomic(path, text.as_bytes(), mode)
            .with_context(|| format!("writing {}", path.display()))
    };
    write(&tls.ca, ca.cert_pem(), MODE_PUBLIC)?;
    let request = LeafRequest {
        common_name: node.id.clone(),
        organization: None,
        dns_names: vec!["localhost".into()],
        ips: vec![node.ip.into(), [127, 0, 0, 1].into()],
        usages: vec![Usage::ServerAuth, Usage::ClientAuth],
    };
    for (cert, key) in [
        (&tls.server_cert, &tls.server_key),
        (&tls.peer_cert, &tls.peer_key),
    ] {
        let leaf = ca
            .issue(&request)
            .with_context(|| format!("issuing a certificate for {}", node.id))?;
        write(cert, &leaf.cert_pem, MODE_PUBLIC)?;
        write(key, &leaf.key_pem, MODE_SECRET)?;
    }
    let env = EtcdEnv {
        name: node.id.clone(),
        data_dir: node.path("/var/lib/etcd"),
        ip: node.ip,
        endpoints: Endpoints {
            tls: true,
            client_port: CLIENT_PORT,
            peer_port: PEER_PORT,
        },
        initial_cluster: initial_cluster
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?,
        initial_cluster_state: ClusterState::New,
        token: token.to_string(),
        tls: Some(tls),
    };
    write(&node.path(ETCD_ENV), &env.render()?, MODE_PUBLIC)
}

/// Waits (at most `SETTLE`) until the members are exactly `names`, all healthy voters, with a
/// leader: `Inspector::expect_members`, looking every `POLL` instead of 200 ms.
fn wait_healthy(check: &Inspector<'_>, names: &[&str]) -> Result<()> {
    check.wait_for_members(names, SETTLE, POLL).map(|_| ())
}
