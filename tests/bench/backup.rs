//! The backup bench (SPEC §10): `tn-agent etcd backup --force` on a member holding a keyspace of
//! M MiB, against what an operator would do by hand in the same run: `etcdctl snapshot save` to
//! a file, then an upload of that file with boto3's `upload_file` (the s3transfer engine that
//! `aws s3 cp` uses). Both upload through the world's S3 proxy to moto. Figures: throughput
//! (snapshot MiB per second of wall time, whole command) and peak RSS of each process (its VmHWM).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tn_world::{boot_in_parallel, Node, World};

use crate::figures::{cell, table};
use crate::Options;

const ASG: &str = "demo-etcd";
/// Each value written: well under etcd's 1.5 MiB request limit.
const VALUE: usize = 512 * 1024;

struct Sample {
    snapshot_mib: f64,
    agent: Measured,
    etcdctl: Measured,
    upload: Measured,
}

/// One process: wall time and peak resident memory.
#[derive(Clone, Copy)]
struct Measured {
    wall: Duration,
    peak_rss_kib: i64,
}

pub fn run(opts: &Options) -> Result<()> {
    println!("== backup: snapshot to S3, agent against etcdctl + an upload by hand");
    let mut samples: Vec<Vec<Sample>> = opts.backup_mib.iter().map(|_| Vec::new()).collect();
    for (k, &mib) in opts.backup_mib.iter().enumerate() {
        // One world per size: the keyspace is written once and backed up `runs` times.
        let world = World::start().context("starting the world")?;
        world.init_etcd_pki()?;
        world.create_asg(ASG, "etcd", 1)?;
        let nodes = world.etcd_nodes(ASG, 90)?;
        let all: Vec<&Node> = nodes.iter().collect();
        let _etcd = boot_in_parallel(&all).context("booting the member")?;
        let node = &nodes[0];
        let write_start = Instant::now();
        fill(&world, node, mib)?;
        eprintln!(
            "  {mib} MiB keyspace written in {:.1} s",
            write_start.elapsed().as_secs_f64()
        );
        for r in 1..=opts.runs {
            let s = measure(&world, node, r).with_context(|| format!("run {r}, {mib} MiB"))?;
            eprintln!(
                "  run {r}/{} {mib} MiB: agent {:.1} s, etcdctl {:.1} s + upload {:.1} s",
                opts.runs,
                s.agent.wall.as_secs_f64(),
                s.etcdctl.wall.as_secs_f64(),
                s.upload.wall.as_secs_f64()
            );
            samples[k].push(s);
        }
    }

    let mibs = |v: f64| format!("{v:.0}");
    let rate = |mib: f64, d: Duration| mib / d.as_secs_f64();
    type Row = (&'static str, Box<dyn Fn(&[Sample]) -> String>);
    let rows: Vec<Row> = vec![
        (
            "snapshot size",
            Box::new(move |s| cell(s.iter().map(|s| s.snapshot_mib), mibs, " MiB")),
        ),
        (
            "agent: throughput",
            Box::new(move |s| {
                cell(
                    s.iter().map(|s| rate(s.snapshot_mib, s.agent.wall)),
                    |v| format!("{v:.0}"),
                    " MiB/s",
                )
            }),
        ),
        (
            "by hand: throughput (both steps)",
            Box::new(move |s| {
                cell(
                    s.iter()
                        .map(|s| rate(s.snapshot_mib, s.etcdctl.wall + s.upload.wall)),
                    |v| format!("{v:.0}"),
                    " MiB/s",
                )
            }),
        ),
        (
            "agent: peak RSS",
            Box::new(move |s| cell(s.iter().map(|s| kib(s.agent.peak_rss_kib)), mibs, " MiB")),
        ),
        (
            "etcdctl snapshot save: peak RSS",
            Box::new(move |s| cell(s.iter().map(|s| kib(s.etcdctl.peak_rss_kib)), mibs, " MiB")),
        ),
        (
            "boto3 upload_file: peak RSS",
            Box::new(move |s| cell(s.iter().map(|s| kib(s.upload.peak_rss_kib)), mibs, " MiB")),
        ),
    ];
    table(
        36,
        26,
        &opts
            .backup_mib
            .iter()
            .map(|m| format!("{m} MiB keyspace"))
            .collect::<Vec<_>>(),
        rows,
        &samples,
    );
    for note in [
        "agent: `tn-agent etcd backup --force` as a whole, with the environment of its unit",
        "  (MALLOC_MMAP_THRESHOLD_): status, listing, marker, member list,",
        "  the snapshot streamed and checked (sha256 trailer) while uploaded in 16 MiB parts (one uploading while the next is read),",
        "  meta.json, retention. It holds at most two parts in memory, whatever the snapshot's size.",
        "by hand: `etcdctl snapshot save` to a file on the same disk, then boto3's upload_file",
        "  (s3transfer, as `aws s3 cp`: 8 MiB parts, 10 threads) from that file.",
        "both upload to moto through the world's S3 proxy (one process, same machine): the",
        "  figures compare the two ways, they are not S3's speed.",
    ] {
        println!("{note}");
    }
    Ok(())
}

fn kib(v: i64) -> f64 {
    v as f64 / 1024.0
}

/// Writes about `mib` MiB of values to the member, 8 writers at a time.
fn fill(world: &World, node: &Node, mib: usize) -> Result<()> {
    let opts = node.etcd_access()?.connect_options();
    let url = node.client_url();
    let count = mib * 1024 * 1024 / VALUE;
    world.block_on(async move {
        let client = etcd_client::Client::connect([url], Some(opts)).await?;
        let value = vec![b'v'; VALUE];
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..8 {
            let (mut c, value) = (client.clone(), value.clone());
            tasks.spawn(async move {
                for i in (w..count).step_by(8) {
                    c.put(format!("/bench/{i:06}"), value.clone(), None).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        anyhow::Ok(())
    })
}

fn measure(world: &World, node: &Node, run: usize) -> Result<Sample> {
    // The agent, first: a fresh backup each run (--force: even though nothing changed).
    // As tn-agent-etcd-backup.service runs it (its Environment=).
    let cmd = node
        .agent()?
        .env("MALLOC_MMAP_THRESHOLD_", "1048576")
        .command(&["etcd", "backup", "--force"]);
    let (agent, out) = timed(cmd)?;
    ensure!(
        out.status.success(),
        "tn-agent etcd backup exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bytes: f64 = stdout
        .split_whitespace()
        .nth(2)
        .and_then(|b| b.parse().ok())
        .with_context(|| format!("no size in {stdout:?}"))?;
    std::thread::sleep(Duration::from_millis(1100)); // the next backup gets another name

    // By hand: etcdctl to a file, then boto3.
    let file = world.dir().join(format!("by-hand-{run}.db"));
    let pki = |f: &str| node.path(&format!("/etc/etcd/pki/{f}"));
    let mut etcdctl = Command::new("etcdctl");
    etcdctl
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", node.client_url()))
        .arg(format!("--cacert={}", pki("ca.crt").display()))
        .arg(format!("--cert={}", pki("server.crt").display()))
        .arg(format!("--key={}", pki("server.key").display()))
        .args(["snapshot", "save"])
        .arg(&file);
    let (saved, out) = timed(etcdctl)?;
    ensure!(
        out.status.success(),
        "etcdctl snapshot save: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = tn_world::workspace_dir().join(".venv/bin/python");
    let mut upload = Command::new(&python);
    upload
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .arg("-c")
        .arg(
            "import sys, boto3\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1')\n\
             s3.upload_file(sys.argv[2], sys.argv[3], sys.argv[4])\n",
        )
        .arg(world.aws.url())
        .arg(&file)
        .arg(&world.bucket)
        .arg(format!("by-hand/{run}/snapshot.db"));
    let (uploaded, out) = timed(upload)?;
    ensure!(
        out.status.success(),
        "boto3 upload_file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&file).ok();
    Ok(Sample {
        snapshot_mib: bytes / (1024.0 * 1024.0),
        agent,
        etcdctl: saved,
        upload: uploaded,
    })
}

/// Runs `cmd` to the end: its wall time, peak RSS and output. The peak is the process's own
/// high-water mark (`VmHWM` in /proc/<pid>/status, which only grows), read every 10 ms while it
/// runs: `wait4`'s `ru_maxrss` would count the memory of the forking parent too.
fn timed(mut cmd: Command) -> Result<(Measured, std::process::Output)> {
    let start = Instant::now();
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let status_file = format!("/proc/{}/status", child.id());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0i64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                }) {
                    peak = peak.max(kib);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let out = child.wait_with_output()?;
    let wall = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_rss_kib = sampler.join().expect("sampler");
    if peak_rss_kib == 0 {
        bail!("no memory figure for {:?}", cmd.get_program());
    }
    Ok((Measured { wall, peak_rss_kib }, out))
}
