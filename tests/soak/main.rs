//! `tn-soak`: a simulated year (or any number of days) of a cluster's life in the local AWS
//! world, with tn-agent doing what it does on every node and nobody helping it: every day the
//! backup timer, every two weeks an OS update on every node (rolling reboots through the locks),
//! every month the etcd ASG rolled, faults at random (seeded), and at the end a disaster: every
//! etcd data dir lost, the cluster restored from the newest backup. A writer writes all along;
//! a monitor looks every 100 ms. Prints the timeline and the invariants' table, writes the plot;
//! exits 1 when a rule was broken (printing the seed to replay it). Run by `scripts/soak`.
//!
//! The agents' clock is the simulated one (`TN_AGENT_CLOCK_OFFSET_SECONDS`): backups' names,
//! ages and retention, certificates' validity and renewal go by it. The clock runs at the
//! system's pace while something happens and jumps forward in between.

mod clock;
mod cluster;
mod invariants;
mod monitor;
mod plot;
mod schedule;
mod timeline;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tn_agent::pki::Ca;
use tn_world::kube_api::{KubeApi, Policy};
use tn_world::World;

use crate::clock::{SimClock, DAY, HOUR};
use crate::cluster::{Cluster, BACKUP_INTERVAL, ETCD_ASG, MASTER_ASG, POOLS};
use crate::invariants::Invariants;
use crate::monitor::Shared;
use crate::schedule::Fault;
use crate::timeline::{MarkKind, Timeline};
use crate::writer::Writes;

const USAGE: &str = "usage: tn-soak [--seed S] [--days D] [--etcd N] [--out DIR]
  --seed S   the seed of the faults' schedule (default: from the clock; printed)
  --days D   simulated days (default 365; 30 is the short form)
  --etcd N   etcd members: 3 or 5 (default 3)
  --out DIR  where the timeline and the plot go (default target/soak)";

struct Options {
    seed: u64,
    days: u32,
    etcd: i32,
    out: PathBuf,
}

fn parse_args() -> Result<Options> {
    let mut opts = Options {
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            % 100_000,
        days: 365,
        etcd: 3,
        out: tn_world::workspace_dir().join("target/soak"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--seed" => {
                let v = value("--seed")?;
                opts.seed = v
                    .parse()
                    .with_context(|| format!("--seed: expected a whole number, got {v:?}"))?;
            }
            "--days" => {
                let v = value("--days")?;
                opts.days = v
                    .parse()
                    .ok()
                    .filter(|d| (1..=1000).contains(d))
                    .with_context(|| format!("--days: expected 1 to 1000, got {v:?}"))?;
            }
            "--etcd" => {
                let v = value("--etcd")?;
                opts.etcd = v
                    .parse()
                    .ok()
                    .filter(|n| [3, 5].contains(n))
                    .with_context(|| format!("--etcd: expected 3 or 5, got {v:?}"))?;
            }
            "--out" => opts.out = value("--out")?.into(),
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
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tn-soak: error: {e:#}");
            std::process::exit(2);
        }
    };
    let replay = format!(
        "scripts/soak --seed {} --days {} --etcd {}",
        opts.seed, opts.days, opts.etcd
    );
    match run(&opts) {
        Ok(true) => println!("\nsoak passed: seed {} ({replay})", opts.seed),
        Ok(false) => {
            println!("\nsoak FAILED: a rule was broken. Replay: {replay}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("\ntn-soak: error: {e:#}\nReplay: {replay}");
            std::process::exit(1);
        }
    }
}

/// The whole soak; `Ok(false)` when a rule was broken.
fn run(opts: &Options) -> Result<bool> {
    let wall = Instant::now();
    println!(
        "tn-soak: seed {}, {} simulated days, {} etcd members, 2 masters, worker pools {}",
        opts.seed,
        opts.days,
        opts.etcd,
        POOLS
            .iter()
            .map(|(asg, size, max)| format!("{asg} ({size}, max {max})"))
            .collect::<Vec<_>>()
            .join(" and ")
    );
    let world = World::start().context("starting the world")?;
    world.create_asg(ETCD_ASG, "etcd", opts.etcd)?;
    world.create_asg(MASTER_ASG, "master", 2)?;
    for (asg, size, _) in POOLS {
        world.create_asg(asg, "worker", size)?;
    }
    world.init_pki()?;
    let operator = world.dir().join("operator");
    let read = |n: &str| {
        std::fs::read_to_string(operator.join(n)).with_context(|| format!("operator/{n}"))
    };
    let ca = Ca::from_pem(&read("ca.crt")?, &read("ca.key")?)?;
    let api = KubeApi::start_with(&ca, world.apiserver_addr(), Policy::default())?;

    let clock = SimClock::new();
    let invariants = Invariants::new();
    let mut groups = vec![("etcd".to_string(), 1), ("master".to_string(), 1)];
    groups.extend(POOLS.iter().map(|(asg, _, max)| (asg.to_string(), *max)));
    let shared = Shared {
        clock: &clock,
        invariants: &invariants,
        timeline: Mutex::new(Timeline {
            seed: opts.seed,
            days: opts.days as f64,
            etcd_size: opts.etcd as u32,
            groups,
            backup_interval_hours: (BACKUP_INTERVAL / HOUR) as f64,
            ..Timeline::default()
        }),
        endpoints: Mutex::new(Vec::new()),
        manifests: Mutex::new(Vec::new()),
        newest_backup: Mutex::new(None),
        backup_interval: BACKUP_INTERVAL,
        disaster: Default::default(),
        stop: Default::default(),
    };
    let writes = Writes::default();
    println!("== booting the cluster");
    let mut cluster = Cluster::boot(&world, &api, ca, &shared, &writes, opts.etcd)?;
    println!(
        "booted in {:.0} s: {} etcd members, {} masters and workers",
        wall.elapsed().as_secs_f64(),
        cluster.etcd.len(),
        cluster.kube.len()
    );

    let monitor_access = Cluster::etcd_access(
        &world,
        Duration::from_millis(300),
        Duration::from_millis(700),
    )?;
    let writer_access =
        Cluster::etcd_access(&world, Duration::from_secs(1), Duration::from_secs(2))?;
    let outcome = std::thread::scope(|s| {
        let monitor = s.spawn(|| monitor::run(&shared, monitor_access, &api));
        let writer = s.spawn(|| writer::run(writer_access, &writes));
        let outcome = live(&mut cluster, opts);
        shared.stop.store(true, Ordering::SeqCst);
        writes.stop.store(true, Ordering::SeqCst);
        let _ = monitor.join();
        let _ = writer.join();
        outcome
    });
    if let Err(e) = &outcome {
        eprintln!("the soak stopped: {e:#}");
    }

    let timeline = shared.timeline.lock().expect("timeline").clone();
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let svg_path = opts.out.join(format!("soak-seed-{}.svg", opts.seed));
    std::fs::write(&svg_path, plot::svg(&timeline))?;
    let text_path = opts.out.join(format!("soak-seed-{}.txt", opts.seed));
    let summary = summary(&cluster, &writes, &timeline, &invariants, wall.elapsed());
    let mut text = summary.clone();
    text.push_str("\ntimeline:\n");
    for m in &timeline.marks {
        let kind = match m.kind {
            MarkKind::Fault => "fault",
            MarkKind::Event => "event",
        };
        text.push_str(&format!("  day {:>8.3}  {kind}  {}\n", m.day, m.label));
    }
    std::fs::write(&text_path, text)?;
    println!("\n{summary}");
    println!(
        "plot: {}\ntimeline: {}",
        svg_path.display(),
        text_path.display()
    );
    drop(cluster);
    drop(api);
    drop(world);
    outcome?;
    let unchecked = invariants.unchecked();
    if !unchecked.is_empty() {
        println!(
            "rules never checked: {}",
            unchecked
                .iter()
                .map(|r| r.text())
                .collect::<Vec<_>>()
                .join("; ")
        );
        return Ok(false);
    }
    Ok(invariants.violations() == 0)
}

/// The simulated days, one after the other.
fn live(cluster: &mut Cluster<'_>, opts: &Options) -> Result<()> {
    let plan = schedule::plan(opts.seed, opts.days);
    let wall = Instant::now();
    for (d, day) in plan.iter().enumerate() {
        let start = d as i64 * DAY;
        cluster.jump_to(start);
        cluster.boot_due(true)?;
        cluster.clear_faults()?;
        if let Some(fault) = day.fault {
            cluster.inject(
                fault,
                day.target,
                Duration::from_secs(day.down_for),
                opts.seed ^ (d as u64) << 16,
            )?;
        }
        // 00:00, the backup timer; 01:00, the reconcile timer (every node once a week: a
        // certificate's renewal window is 30 days).
        cluster.backup_timer(day.fault == Some(Fault::S3SlowDown))?;
        cluster.jump_to(start + HOUR);
        cluster.reconcile(d % 7 == 6)?;
        if day.roll {
            cluster.jump_to(start + 2 * HOUR);
            cluster
                .roll()
                .with_context(|| format!("the roll of day {d}"))?;
        }
        if day.update {
            cluster.jump_to(start + 6 * HOUR);
            cluster
                .update_round()
                .with_context(|| format!("the update round of day {d}"))?;
        }
        cluster.settle()?;
        cluster.look_at_certificates();
        if d % 7 == 6 || day.roll {
            cluster.check_writes(None)?;
        }
        if d % 10 == 9 || d as u32 + 1 == opts.days {
            println!(
                "day {:>3}: {:>5.0} s wall; {} reboots, {} backups in S3, {} writes acknowledged",
                d + 1,
                wall.elapsed().as_secs_f64(),
                cluster.reboots,
                cluster.backups,
                cluster.writes.acked.lock().expect("acked").len()
            );
        }
    }
    cluster.jump_to(opts.days as i64 * DAY);
    cluster.clear_faults()?;
    println!("== the disaster: every etcd data dir lost, restore from the newest backup");
    let backup = cluster.disaster_and_restore()?;
    cluster.check_writes(Some(backup.revision))?;
    let acked = cluster.writes.acked.lock().expect("acked").clone();
    let after = acked.iter().filter(|(_, r)| *r > backup.revision).count();
    println!(
        "restored {backup}: every write acknowledged up to revision {} is there ({} written \
         after it were lost with the disaster, as expected)",
        backup.revision, after
    );
    Ok(())
}

/// What happened, in numbers, and the invariants' table.
fn summary(
    cluster: &Cluster<'_>,
    writes: &Writes,
    timeline: &Timeline,
    invariants: &Invariants,
    wall: Duration,
) -> String {
    let count = |kind: MarkKind, first: &str| {
        timeline
            .marks
            .iter()
            .filter(|m| m.kind == kind && m.label.split(':').next() == Some(first))
            .count()
    };
    let faults: Vec<String> = ["kill", "disk lost", "imds", "s3", "throttle"]
        .iter()
        .map(|f| format!("{f} {}", count(MarkKind::Fault, f)))
        .collect();
    // Before the disaster (the last day), which takes every member away on purpose.
    let lived = || timeline.samples.iter().filter(|s| s.day < timeline.days);
    let max_down = lived().map(|s| s.down).max().unwrap_or(0);
    let min_voters = lived().map(|s| s.healthy_voters).min().unwrap_or(0);
    let mut out = format!(
        "summary: seed {}, {} simulated days in {:.0} s of wall time\n",
        timeline.seed,
        timeline.days,
        wall.as_secs_f64()
    );
    out.push_str(&format!(
        "  OS updates {}, reboots {}, etcd ASG rolls {} ({} members replaced)\n",
        count(MarkKind::Event, "update"),
        cluster.reboots,
        timeline
            .marks
            .iter()
            .filter(|m| m.label.starts_with("roll: instance refresh"))
            .count(),
        timeline
            .marks
            .iter()
            .filter(|m| m.label.starts_with("roll: ") && m.label.contains("replaced by"))
            .count()
    ));
    out.push_str(&format!("  faults: {}\n", faults.join(", ")));
    out.push_str(&format!(
        "  certificates renewed {}, backups in S3 at the end {}, backup runs failed without an S3 fault {}\n",
        cluster.renewals, cluster.backups, cluster.backup_failures
    ));
    out.push_str(&format!(
        "  writes acknowledged {}, attempts failed {}; bootstraps tried again {}, watches restarted {}\n",
        writes.acked.lock().expect("acked").len(),
        writes.failed.load(Ordering::SeqCst),
        cluster.boot_retries,
        cluster.watch_failures
    ));
    out.push_str(&format!(
        "  monitor: {} samples; before the disaster, most members down at once {max_down}, fewest healthy voters {min_voters}\n\n",
        timeline.samples.len()
    ));
    out.push_str(&invariants.table());
    out
}
