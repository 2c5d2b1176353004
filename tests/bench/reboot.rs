//! The rolling reboots bench (SPEC §9): an etcd ASG of N, an update staged on every member at
//! once, each member running `reboot watch` as tn-agent-reboot.service would. Driven as the
//! reboot tests do (`tn_world::reboot`): the watch's reboot command only leaves a mark; once the
//! watch has exited the bench does what a reboot does (etcd killed, a new boot id, /run emptied,
//! bootstrap, etcd started) and starts the node's watch again.
//!
//! The `etcd` group's lock is followed from outside with etcd's watch API, one watch stream per
//! member, each resumed from the revision after the last it saw when its member goes down; every
//! change of the lock document is timestamped when the first stream delivers it. So the lock's
//! figures come from the same run as the rollout's, to the millisecond, not from reboot.json's
//! second-resolution times.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use etcd_client::{EventType, WatchOptions};
use tn_agent::etcd::client::EtcdAccess;
use tn_agent::reboot::etcd_lock::PREFIX;
use tn_agent::reboot::lock::ETCD_GROUP;
use tn_agent::reboot::semaphore::Semaphore;
use tn_world::reboot::{reboot_mark, reboot_state, simulate_reboot, stage_update, Watch};
use tn_world::{boot_in_parallel, EtcdProcess, Inspector, Node, World};

use crate::figures::{counts, durations, millis, secs, table};
use crate::{wait_healthy, Options, ASG, JOIN_TIMEOUT, POLL};

/// How long a rolling reboot may take, per member, before the run fails (a member takes a few
/// seconds here; the reboot test allows 80 s a member).
const ROLLOUT_PER_MEMBER: Duration = Duration::from_secs(60);
/// How long the lock's watchers may take to read the revision they start from.
const WATCH_START: Duration = Duration::from_secs(10);
/// How long one attempt to (re)open a watch stream on a member may take.
const WATCH_OPEN: Duration = Duration::from_secs(5);
/// Pause between attempts to reopen the watch stream of a member that is down.
const WATCH_RETRY: Duration = Duration::from_millis(50);
/// What the watch logs when a step fails and it tries again at the next check.
const RETRY_LINE: &str = "reboot step failed; trying again";
/// What the watch logs when it moved etcd leadership away before its reboot.
const LEADER_MOVED_LINE: &str = "handed etcd leadership over";

/// What one rolling reboot of one size measured.
struct Sample {
    /// From starting the watches (an update staged on every node) to every node rebooted once,
    /// the lock free and all N healthy voters.
    total: Duration,
    n: usize,
    /// From the start to the first take of the lock.
    first_take: Duration,
    /// Each release to the next take.
    handoffs: Vec<Duration>,
    /// Each slot, take to release.
    slots: Vec<Duration>,
    /// Per node: the take to its watch having run the reboot command and exited.
    to_command: Vec<Duration>,
    /// Per node: the simulated reboot (etcd killed, bootstrap, etcd started).
    reboot: Vec<Duration>,
    /// Per node: from etcd started again to the release by its new watch.
    to_release: Vec<Duration>,
    /// Per node: the sum of the post-reboot bootstrap's `timings_ms`.
    bootstrap_ms: Vec<u64>,
    /// Per node: failed steps of the new watch before it released (each costs a check interval).
    after_boot_retries: Vec<u64>,
    /// Reboots preceded by a leadership hand-off (the member led).
    leader_moves: u64,
    takes: u64,
    max_holders: u64,
    /// Watch streams of the lock that broke (their member went down) and were opened again.
    reopened: u64,
}

pub fn run(opts: &Options) -> Result<()> {
    println!("== rolling reboot: every etcd member at once, one at a time through the lock");
    let mut samples: Vec<Vec<Sample>> = opts.sizes.iter().map(|_| Vec::new()).collect();
    for r in 1..=opts.runs {
        for (k, &n) in opts.sizes.iter().enumerate() {
            let s =
                rolling_reboot(n).with_context(|| format!("run {r} of {}, N={n}", opts.runs))?;
            let ms = |v: &[Duration]| {
                v.iter()
                    .map(|d| d.as_millis().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            eprintln!(
                "  run {r}/{} N={n}: rolling reboot {}; hand-offs {} ms; slots {} ms; \
                 after-boot retries {:?}",
                opts.runs,
                secs(s.total),
                ms(&s.handoffs),
                ms(&s.slots),
                s.after_boot_retries
            );
            samples[k].push(s);
        }
    }
    eprintln!();

    type Row = (&'static str, fn(&[Sample]) -> String);
    let rows: [Row; 15] = [
        ("rolling reboot, start to healthy", |s| {
            durations(s.iter().map(|s| s.total))
        }),
        ("  per node (total / N)", |s| {
            durations(s.iter().map(|s| s.total / s.n as u32))
        }),
        ("start to the first take", |s| {
            durations(s.iter().map(|s| s.first_take))
        }),
        ("lock hand-off, release to take", |s| {
            millis(s.iter().flat_map(|s| s.handoffs.iter().map(as_ms)))
        }),
        ("slot held, take to release", |s| {
            durations(s.iter().flat_map(|s| s.slots.iter().copied()))
        }),
        ("  take to reboot command run", |s| {
            millis(s.iter().flat_map(|s| s.to_command.iter().map(as_ms)))
        }),
        ("  simulated reboot", |s| {
            millis(s.iter().flat_map(|s| s.reboot.iter().map(as_ms)))
        }),
        ("  etcd started to release", |s| {
            durations(s.iter().flat_map(|s| s.to_release.iter().copied()))
        }),
        ("bootstrap after the reboot", |s| {
            millis(s.iter().flat_map(|s| s.bootstrap_ms.iter().copied()))
        }),
        ("after-boot retries per node", |s| {
            counts(s.iter().flat_map(|s| s.after_boot_retries.iter().copied()))
        }),
        ("leadership moved, per rollout", |s| {
            counts(s.iter().map(|s| s.leader_moves))
        }),
        ("lock takes, per rollout", |s| {
            counts(s.iter().map(|s| s.takes))
        }),
        ("max holders seen", |s| {
            counts(s.iter().map(|s| s.max_holders))
        }),
        ("lock watch streams reopened", |s| {
            counts(s.iter().map(|s| s.reopened))
        }),
        ("hand-offs measured", |s| {
            counts(std::iter::once(
                s.iter().map(|s| s.handoffs.len() as u64).sum(),
            ))
        }),
    ];
    table(
        36,
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
        "rolling reboot: an ASG of N booted and healthy; on every node a config with [reboot]",
        "  check_interval = \"60s\" (the default) and a reboot command that leaves a mark, a boot id, and",
        "  `reboot request`; timed from starting the N `reboot watch` processes together (so",
        "  each finds its update at its first look) until every node rebooted exactly once,",
        "  the lock was free and all N were healthy voters with a leader (looked every 20 ms).",
        "  A reboot: once a watch exits after its command, etcd SIGKILLed, a new boot id, /run",
        "  emptied, `tn-agent bootstrap`, etcd started, a new watch started (tn_world::reboot).",
        "lock: the etcd group's key watched on every member (resumed from the next revision",
        "  when its member goes down); each change stamped when first received.",
        "hand-off: a release ([x] to []) to the next take ([] to [y]), all hand-offs of all runs.",
        "slot held: take to release of the same holder, split per node into: take to the bench",
        "  seeing its watch exit after the command (gates again, leadership moved if it led,",
        "  the command; seen within 20 ms); the simulated reboot; etcd started to the release",
        "  by the new watch (its start, this member a healthy caught-up voter, the release).",
        "bootstrap after the reboot: the sum of its timings_ms in state.json.",
        "after-boot retries: failed steps of the post-reboot watch before its release, each",
        "  followed by a check_interval pause.",
    ] {
        println!("{note}");
    }
    Ok(())
}

fn as_ms(d: &Duration) -> u64 {
    d.as_millis() as u64
}

/// One rolling reboot of an etcd cluster of `n`, in a fresh world.
fn rolling_reboot(n: usize) -> Result<Sample> {
    let world = World::start().context("starting the world")?;
    world.init_etcd_pki()?;
    world.create_asg(ASG, "etcd", n as i32)?;
    let nodes = world.etcd_nodes(ASG, JOIN_TIMEOUT)?;
    let all: Vec<&Node> = nodes.iter().collect();
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let mut etcd: Vec<Option<EtcdProcess>> = boot_in_parallel(&all)
        .context("booting the cluster")?
        .into_iter()
        .map(Some)
        .collect();
    let check = Inspector::new(&world, &nodes[0], &all)?;
    wait_healthy(&check, &ids).context("the cluster before the rollout")?;
    let join = format!("[etcd]\njoin_timeout_seconds = {JOIN_TIMEOUT}\n");
    for node in &nodes {
        stage_update(&world, node, &join)
            .with_context(|| format!("staging an update on {}", node.id))?;
        // The production default: waiters are woken by the lock's changes, not by the interval.
        let dropins = node.path("/etc/tn-agent/config.d");
        std::fs::create_dir_all(&dropins)?;
        std::fs::write(
            dropins.join("60-bench.toml"),
            "[reboot]\ncheck_interval = \"60s\"\n",
        )?;
    }
    let lock = LockWatch::start(&nodes)?;

    let start = Instant::now();
    let mut watches: Vec<Watch> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| Watch::start(node, i))
        .collect::<Result<_>>()?;
    let mut first_logs: Vec<Option<String>> = vec![None; n];
    let mut command_run: Vec<Option<Instant>> = vec![None; n];
    let mut etcd_back: Vec<Option<Instant>> = vec![None; n];
    let mut bootstrap_ms = Vec::new();
    let within = ROLLOUT_PER_MEMBER * n as u32;
    let deadline = start + within;
    loop {
        for (i, node) in nodes.iter().enumerate() {
            let Some(success) = watches[i].exited()? else {
                continue;
            };
            let exited = Instant::now();
            ensure!(
                success,
                "the watch of {} failed:\n{}",
                node.id,
                watches[i].log()
            );
            ensure!(
                reboot_mark(node).exists(),
                "the watch of {} exited without rebooting:\n{}",
                node.id,
                watches[i].log()
            );
            ensure!(
                command_run[i].is_none(),
                "{} rebooted a second time",
                node.id
            );
            if let Some(other) = nodes
                .iter()
                .find(|o| o.id != node.id && reboot_mark(o).exists())
            {
                bail!("{} and {} rebooted at the same time", node.id, other.id);
            }
            first_logs[i] = Some(watches[i].log());
            command_run[i] = Some(exited);
            simulate_reboot(node, &mut etcd[i])
                .with_context(|| format!("simulating the reboot of {}", node.id))?;
            etcd_back[i] = Some(Instant::now());
            bootstrap_ms.push(node.state()?.timings_ms.values().sum());
            watches[i] = Watch::start(node, n + i)?;
        }
        let (releases, free) = lock.progress()?;
        let settled = command_run.iter().all(Option::is_some)
            && releases >= n
            && free
            && nodes.iter().all(|n| {
                reboot_state(n)
                    .is_some_and(|s| s["phase"] == "idle" && s["last_reboot"].is_string())
            });
        if settled {
            break;
        }
        if Instant::now() > deadline {
            let states: Vec<String> = nodes
                .iter()
                .map(|n| match reboot_state(n) {
                    Some(s) => format!("{}: {} {}", n.id, s["phase"], s["why"]),
                    None => format!("{}: no reboot.json", n.id),
                })
                .collect();
            bail!(
                "the rolling reboot did not finish within {within:?}: {} of {n} rebooted, \
                 {releases} releases seen, lock {}; {}",
                command_run.iter().filter(|c| c.is_some()).count(),
                if free { "free" } else { "held" },
                states.join("; ")
            );
        }
        std::thread::sleep(POLL);
    }
    wait_healthy(&check, &ids).context("the cluster after the rollout")?;
    let total = start.elapsed();

    let log = lock.finish()?;
    let figures = LockFigures::from(&log);
    let first_take = figures
        .slots
        .first()
        .map(|s| s.taken.saturating_duration_since(start))
        .context("the lock was never taken")?;
    let mut to_command = Vec::new();
    let mut reboot = Vec::new();
    let mut to_release = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let (Some(command), Some(back)) = (command_run[i], etcd_back[i]) else {
            bail!("{} never rebooted", node.id);
        };
        let slot = figures
            .slots
            .iter()
            .rev()
            .find(|s| s.holder == node.id && s.taken <= command)
            .with_context(|| format!("{} rebooted without a slot of the lock", node.id))?;
        let released = slot
            .released
            .with_context(|| format!("{} never released its slot", node.id))?;
        to_command.push(command.saturating_duration_since(slot.taken));
        reboot.push(back.saturating_duration_since(command));
        to_release.push(released.saturating_duration_since(back));
    }
    let after_boot_retries = watches
        .iter()
        .map(|w| w.log().matches(RETRY_LINE).count() as u64)
        .collect();
    let leader_moves = first_logs
        .iter()
        .flatten()
        .filter(|log| log.contains(LEADER_MOVED_LINE))
        .count() as u64;
    let slots = figures
        .slots
        .iter()
        .filter_map(|s| Some(s.released?.saturating_duration_since(s.taken)))
        .collect();

    drop(watches);
    drop(etcd);
    drop(check);
    drop(world);
    Ok(Sample {
        total,
        n,
        first_take,
        handoffs: figures.handoffs,
        slots,
        to_command,
        reboot,
        to_release,
        bootstrap_ms,
        after_boot_retries,
        leader_moves,
        takes: figures.slots.len() as u64,
        max_holders: figures.max_holders as u64,
        reopened: log.reopened,
    })
}

/// The `etcd` group's lock key.
fn lock_key() -> String {
    format!("{PREFIX}{ETCD_GROUP}/semaphore")
}

/// One change of the lock document, stamped when a watch stream first delivered it.
struct Change {
    revision: i64,
    at: Instant,
    /// The holders after the change (none for a deleted key).
    holders: Vec<String>,
}

/// What the lock's watchers saw.
#[derive(Default)]
struct LockLog {
    /// In revision order, each revision once.
    changes: Vec<Change>,
    reopened: u64,
    /// Why following the lock cannot go on (a document that does not parse, history lost).
    fatal: Option<String>,
}

impl LockLog {
    /// Every stream delivers every revision in order from the same start, so the first stream to
    /// deliver a revision has delivered all earlier ones: the log stays complete and in order.
    fn record(&mut self, revision: i64, at: Instant, holders: Vec<String>) {
        match self.changes.last() {
            Some(last) if revision <= last.revision => {
                if let Some(c) = self.changes.iter_mut().find(|c| c.revision == revision) {
                    c.at = c.at.min(at);
                }
            }
            _ => self.changes.push(Change {
                revision,
                at,
                holders,
            }),
        }
    }
}

/// One holder's slot.
struct Slot {
    holder: String,
    taken: Instant,
    released: Option<Instant>,
}

/// The lock's history read as slots and hand-offs.
struct LockFigures {
    slots: Vec<Slot>,
    handoffs: Vec<Duration>,
    max_holders: usize,
}

impl From<&LockLog> for LockFigures {
    fn from(log: &LockLog) -> Self {
        let mut figures = LockFigures {
            slots: Vec::new(),
            handoffs: Vec::new(),
            max_holders: 0,
        };
        let mut before: &[String] = &[];
        let mut last_release: Option<Instant> = None;
        for c in &log.changes {
            figures.max_holders = figures.max_holders.max(c.holders.len());
            for gone in before.iter().filter(|h| !c.holders.contains(h)) {
                if let Some(slot) = figures
                    .slots
                    .iter_mut()
                    .rev()
                    .find(|s| &s.holder == gone && s.released.is_none())
                {
                    slot.released = Some(c.at);
                }
                last_release = Some(c.at);
            }
            for new in c.holders.iter().filter(|h| !before.contains(h)) {
                figures.slots.push(Slot {
                    holder: new.clone(),
                    taken: c.at,
                    released: None,
                });
                if let Some(released) = last_release.take() {
                    figures
                        .handoffs
                        .push(c.at.saturating_duration_since(released));
                }
            }
            before = &c.holders;
        }
        figures
    }
}

/// The lock key followed on every member, on a thread of its own; stopped on drop.
struct LockWatch {
    log: Arc<Mutex<LockLog>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LockWatch {
    /// Reads the key's current revision (the key must not exist yet: a fresh cluster), then
    /// follows every change after it through a watch stream per member.
    fn start(nodes: &[Node]) -> Result<Self> {
        let access = nodes[0].etcd_access()?;
        let urls: Vec<String> = nodes.iter().map(Node::client_url).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let key = lock_key();
        let from = rt
            .block_on(async {
                let read = async {
                    let mut client =
                        etcd_client::Client::connect(&urls, Some(access.connect_options())).await?;
                    let resp = client.get(key.as_str(), None).await?;
                    let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
                    anyhow::Ok((revision, resp.kvs().is_empty()))
                };
                tokio::time::timeout(WATCH_START, read).await
            })
            .with_context(|| format!("reading {key}: no answer within {WATCH_START:?}"))?
            .with_context(|| format!("reading {key}"))?;
        let (revision, absent) = from;
        ensure!(absent, "{key} exists before the rollout");
        let log = Arc::new(Mutex::new(LockLog::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = log.clone();
        let thread = std::thread::Builder::new()
            .name("lock-watch".into())
            .spawn(move || {
                rt.block_on(async move {
                    for url in urls {
                        tokio::spawn(follow(access.clone(), url, revision + 1, shared.clone()));
                    }
                    // Stopped, or the sender dropped: either way, done.
                    let _ = stopped.await;
                });
                // Dropping the runtime ends the streams.
                drop(rt);
            })
            .context("starting the lock watch thread")?;
        Ok(LockWatch {
            log,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Releases seen so far, and whether the lock is free now.
    fn progress(&self) -> Result<(usize, bool)> {
        let log = self.log.lock().expect("lock log");
        if let Some(why) = &log.fatal {
            bail!("following the lock: {why}");
        }
        let figures = LockFigures::from(&*log);
        let releases = figures
            .slots
            .iter()
            .filter(|s| s.released.is_some())
            .count();
        let free = log.changes.last().is_none_or(|c| c.holders.is_empty());
        Ok((releases, free))
    }

    /// Stops following and returns what was seen.
    fn finish(mut self) -> Result<LockLog> {
        self.stop();
        let log = std::mem::take(&mut *self.log.lock().expect("lock log"));
        if let Some(why) = &log.fatal {
            bail!("following the lock: {why}");
        }
        Ok(log)
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LockWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Follows the lock key through the member at `url` from revision `from` on, for ever: when the
/// stream breaks (the member went down), it is opened again from the revision after the last
/// one seen. Stops only on what cannot be followed (recorded as fatal).
async fn follow(access: EtcdAccess, url: String, from: i64, log: Arc<Mutex<LockLog>>) {
    let key = lock_key();
    let mut next = from;
    let mut opened_before = false;
    loop {
        let open = async {
            let mut client =
                etcd_client::Client::connect([url.as_str()], Some(access.connect_options()))
                    .await?;
            let options = WatchOptions::new().with_start_revision(next);
            client.watch(key.as_str(), Some(options)).await
        };
        if let Ok(Ok(mut stream)) = tokio::time::timeout(WATCH_OPEN, open).await {
            if opened_before {
                log.lock().expect("lock log").reopened += 1;
            }
            opened_before = true;
            while let Ok(Some(resp)) = stream.message().await {
                let at = Instant::now();
                if resp.canceled() {
                    log.lock().expect("lock log").fatal = Some(format!(
                        "{url} cancelled the watch from revision {next} (compacted to {}): {}",
                        resp.compact_revision(),
                        resp.cancel_reason()
                    ));
                    return;
                }
                for event in resp.events() {
                    let Some(kv) = event.kv() else { continue };
                    let holders = match event.event_type() {
                        EventType::Delete => Vec::new(),
                        EventType::Put => match Semaphore::parse(kv.value()) {
                            Ok(doc) => doc.holders,
                            Err(e) => {
                                log.lock().expect("lock log").fatal =
                                    Some(format!("{key} at revision {}: {e}", kv.mod_revision()));
                                return;
                            }
                        },
                    };
                    log.lock()
                        .expect("lock log")
                        .record(kv.mod_revision(), at, holders);
                    next = kv.mod_revision() + 1;
                }
            }
        }
        tokio::time::sleep(WATCH_RETRY).await;
    }
}
