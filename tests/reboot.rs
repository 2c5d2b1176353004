//! The reboot lock of etcd nodes (SPEC §9) against a real etcd 3.4 cluster: locksmith's
//! semaphore document at its key, changed only by compare-and-swap; many concurrent takers never
//! exceed `max`; `holders: null` is read; a holder is reclaimed only when EC2 says its instance is
//! gone; and the operator commands `reboot request`, `status`, `unlock`, `set-max`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tn_agent::aws::Aws;
use tn_agent::reboot::etcd_lock::EtcdLock;
use tn_agent::reboot::lock::{GroupLock, ETCD_GROUP};
use tn_agent::reboot::semaphore::{Outcome, Semaphore};
use tn_world::reboot::{
    leave_phase, reboot_mark, reboot_state, simulate_reboot, stage_update, Watch,
};
use tn_world::{Node, World};

use crate::support::cluster::{boot_cluster, world_with_etcd_asg};

const KEY: &str = "coreos.com/updateengine/rebootlock/groups/etcd/semaphore";

fn endpoints(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(Node::client_url).collect()
}

/// Waits up to `within` until the node's `reboot.json` satisfies `ok`; fails with the state.
fn await_state(node: &Node, within: Duration, ok: impl Fn(&serde_json::Value) -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !reboot_state(node).is_some_and(|s| ok(&s)) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}: {:?}",
            node.id,
            reboot_state(node)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the state's `why` contains `text`.
fn why_has(s: &serde_json::Value, text: &str) -> bool {
    s["why"].as_str().is_some_and(|w| w.contains(text))
}

#[test]
fn many_takers_never_hold_more_slots_than_max() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    let _etcd = boot_cluster(&world, &nodes);
    let access = nodes[0].etcd_access().unwrap();
    let urls = endpoints(&nodes);
    let max = 3;
    let takers = 12;
    let violations = world.block_on(async {
        let lock = GroupLock::Etcd(EtcdLock::new(&access, urls.clone(), "pool-a"));
        let (outcome, doc) = lock.set_max(max).await.unwrap();
        assert_eq!((outcome, doc.max), (Outcome::Changed, max));
        let done = Arc::new(AtomicBool::new(false));
        // A sampler reads the document throughout.
        let sampler = {
            let (access, urls, done) = (access.clone(), urls.clone(), done.clone());
            tokio::spawn(async move {
                let lock = GroupLock::Etcd(EtcdLock::new(&access, urls, "pool-a"));
                let mut over = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let doc = lock.read().await.unwrap().unwrap();
                    if doc.holders.len() as i64 > max
                        || doc.semaphore != max - doc.holders.len() as i64
                    {
                        over.push(doc);
                    }
                }
                over
            })
        };
        let mut tasks = Vec::new();
        for i in 0..takers {
            let (access, urls) = (access.clone(), urls.clone());
            tasks.push(tokio::spawn(async move {
                let lock = GroupLock::Etcd(EtcdLock::new(&access, urls, "pool-a"));
                let id = format!("i-{i:017x}");
                for _ in 0..400 {
                    let (outcome, doc) = lock.take(&id).await.unwrap();
                    match outcome {
                        Outcome::Changed => {
                            assert!(doc.holders.contains(&id));
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            let (released, _) = lock.release(&id).await.unwrap();
                            assert_eq!(released, Outcome::Changed);
                            return;
                        }
                        Outcome::Full { holders } => {
                            assert_eq!(holders.len() as i64, max);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Outcome::Unchanged => panic!("{id} already held a slot"),
                    }
                }
                panic!("{id} never got a slot");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let over = sampler.await.unwrap();
        let end = lock.read().await.unwrap().unwrap();
        assert_eq!(
            end,
            Semaphore {
                semaphore: max,
                max,
                holders: vec![]
            }
        );
        over
    });
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn the_etcd_group_lock_reclaims_only_gone_holders_and_obeys_the_operator() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    let _etcd = boot_cluster(&world, &nodes);
    let check =
        tn_world::Inspector::new(&world, &nodes[0], &nodes.iter().collect::<Vec<_>>()).unwrap();
    let access = nodes[0].etcd_access().unwrap();
    let urls = endpoints(&nodes);
    let lock = GroupLock::Etcd(EtcdLock::new(&access, urls.clone(), ETCD_GROUP));

    let run = nodes[0].run(&["reboot", "status"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("none yet"), "{}", run.stdout);

    // A document as locksmith wrote it: holders null.
    check
        .put(KEY, r#"{"semaphore":1,"max":1,"holders":null}"#)
        .unwrap();
    let run = nodes[0].run(&["reboot", "status", "--json"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["groups"][0]["group"], "etcd");
    assert_eq!(report["groups"][0]["max"], 1);
    assert_eq!(report["groups"][0]["holders"], serde_json::json!([]));

    // The etcd group's max never goes above 1.
    let run = nodes[0].run(&["reboot", "set-max", "2"]).unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("the etcd group's max stays 1"),
        "{}",
        run.stderr
    );
    let run = nodes[0]
        .run(&["reboot", "set-max", "--group", "pool-b", "2"])
        .unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("group pool-b: max 2, 2 free"),
        "{}",
        run.stdout
    );

    // A live holder keeps its slot; once EC2 says its instance is terminated, it is reclaimed.
    let aws = Aws::from_sdk_config(&world.sdk_config, true);
    let (a, b) = (&nodes[1].id, &nodes[2].id);
    world.block_on(async {
        assert_eq!(lock.take(a).await.unwrap().0, Outcome::Changed);
        assert_eq!(
            lock.take(a).await.unwrap().0,
            Outcome::Unchanged,
            "re-entrant"
        );
        assert!(matches!(
            lock.take(b).await.unwrap().0,
            Outcome::Full { .. }
        ));
        assert!(lock.reclaim_gone(&aws).await.unwrap().is_empty());
    });
    let run = nodes[0].run(&["reboot", "status"]).unwrap();
    assert!(
        run.stdout
            .contains(&format!("etcd: max 1, 0 free, held by {a}")),
        "{}",
        run.stdout
    );
    world.terminate(a).unwrap();
    world.block_on(async {
        assert_eq!(
            lock.reclaim_gone(&aws).await.unwrap(),
            std::slice::from_ref(a)
        );
        assert_eq!(lock.take(b).await.unwrap().0, Outcome::Changed);
    });

    // The operator frees a slot by hand.
    let run = nodes[0].run(&["reboot", "unlock", b]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("released {b}'s slot of group etcd")),
        "{}",
        run.stdout
    );
    let run = nodes[0].run(&["reboot", "unlock", "node-1"]).unwrap();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        world.block_on(lock.read()).unwrap().unwrap(),
        Semaphore::new(1)
    );

    // A malformed document is named, and never overwritten.
    check
        .put(KEY, r#"{"semaphore":1,"max":1,"holders":["node 1"]}"#)
        .unwrap();
    let err = world.block_on(lock.take(b)).unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(
        text.contains(KEY) && text.contains("not an EC2 instance id"),
        "{text}"
    );
    let run = nodes[0].run(&["reboot", "status"]).unwrap();
    assert!(run.stdout.contains("etcd: unreadable"), "{}", run.stdout);
    assert_eq!(
        check.get(KEY).unwrap().as_deref(),
        Some(r#"{"semaphore":1,"max":1,"holders":["node 1"]}"#)
    );

    // A reboot request leaves Flatcar's sentinel.
    let run = nodes[0].run(&["reboot", "request"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(nodes[0].path("/run/reboot-required").is_file());
}

/// Three etcd members all needing a reboot at once, each with its `reboot watch`, whose reboot
/// command only leaves a mark; the test then does what a reboot does (etcd stops, the boot id
/// changes, /run empties, bootstrap and etcd start again, the watch starts again). Each member
/// reboots exactly once, never two at a time (the lock sampled throughout), the lock is free
/// at the end, every member a healthy voter, the data written before still there.
#[test]
fn members_needing_a_reboot_reboot_one_at_a_time() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    let mut etcd: Vec<Option<tn_world::EtcdProcess>> =
        boot_cluster(&world, &nodes).into_iter().map(Some).collect();
    let all: Vec<&Node> = nodes.iter().collect();
    let check = tn_world::Inspector::new(&world, &nodes[0], &all).unwrap();
    check.put("/before", "v1").unwrap();
    for node in &nodes {
        stage_update(&world, node, "[etcd]\njoin_timeout_seconds = 90\n").unwrap();
    }

    // The lock, sampled throughout from outside.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let access = nodes[0].etcd_access().unwrap();
        let urls = endpoints(&nodes);
        let rt = tokio::runtime::Runtime::new().unwrap();
        std::thread::spawn(move || {
            rt.block_on(async {
                let lock = GroupLock::Etcd(EtcdLock::new(&access, urls, ETCD_GROUP));
                let (mut samples, mut most) = (0, 0);
                while !done.load(Ordering::Relaxed) {
                    if let Ok(Some(doc)) = lock.read().await {
                        samples += 1;
                        most = most.max(doc.holders.len());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (samples, most)
            })
        })
    };

    let mut watches: Vec<Watch> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Watch::start(n, i).unwrap())
        .collect();
    let mut reboots = [0; 3];
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        for (i, node) in nodes.iter().enumerate() {
            let Some(success) = watches[i].exited().unwrap() else {
                continue;
            };
            assert!(
                success,
                "watch of {} failed:\n{}",
                node.id,
                watches[i].log()
            );
            assert!(
                reboot_mark(node).exists(),
                "{} exited without rebooting",
                node.id
            );
            let others: Vec<&Node> = nodes.iter().filter(|n| n.id != node.id).collect();
            assert!(
                others.iter().all(|n| !reboot_mark(n).exists()),
                "two reboots at once"
            );
            simulate_reboot(node, &mut etcd[i]).unwrap();
            reboots[i] += 1;
            watches[i] = Watch::start(node, i + 3 * reboots[i]).unwrap();
        }
        let settled = nodes.iter().all(|n| {
            reboot_state(n).is_some_and(|s| s["phase"] == "idle" && s["last_reboot"].is_string())
        });
        if settled {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not done: reboots {reboots:?}, states {:?}",
            nodes.iter().map(reboot_state).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    done.store(true, Ordering::Relaxed);
    let (samples, most) = sampler.join().unwrap();
    assert!(samples > 10, "the lock was sampled {samples} times");
    assert_eq!(most, 1, "at most one holder at any sample");
    assert_eq!(reboots, [1, 1, 1]);
    let access = nodes[0].etcd_access().unwrap();
    let lock = GroupLock::Etcd(EtcdLock::new(&access, endpoints(&nodes), ETCD_GROUP));
    assert_eq!(
        world.block_on(lock.read()).unwrap().unwrap(),
        Semaphore::new(1)
    );
    check.expect_nodes(&all, Duration::from_secs(30)).unwrap();
    assert_eq!(check.get("/before").unwrap().as_deref(), Some("v1"));
    let run = nodes[0].run(&["reboot", "status"]).unwrap();
    assert!(
        run.stdout.contains("this node's reboot: Idle"),
        "{}",
        run.stdout
    );
}

/// Gates and resumption: with a member down, a node needing a reboot takes no slot and says
/// why; a watch that died between taking the lock and recording it (phase `locking`) gives the
/// slot back while a gate is closed; once the member is back, the reboot goes ahead.
#[test]
fn a_closed_gate_takes_no_slot_and_a_crash_after_the_take_leaks_none() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    let mut etcd: Vec<Option<tn_world::EtcdProcess>> =
        boot_cluster(&world, &nodes).into_iter().map(Some).collect();
    let node = &nodes[0];
    let mark = reboot_mark(node);
    stage_update(&world, node, "").unwrap();
    let access = node.etcd_access().unwrap();
    // Through the members that stay up.
    let lock = GroupLock::Etcd(EtcdLock::new(&access, endpoints(&nodes[..2]), ETCD_GROUP));
    // A crash right after the take: the slot is held, the state says `locking`.
    world.block_on(lock.take(&node.id)).unwrap();
    leave_phase(node, "locking").unwrap();
    etcd[2].take().unwrap().kill();
    let watch = Watch::start(node, 0).unwrap();
    let down = format!("{} does not answer", nodes[2].id);
    await_state(node, Duration::from_secs(30), |s| {
        s["phase"] == "waiting" && why_has(s, &down)
    });
    assert_eq!(
        world.block_on(lock.read()).unwrap().unwrap(),
        Semaphore::new(1),
        "the slot taken before the crash is given back"
    );
    let run = node.run(&["reboot", "status"]).unwrap();
    assert!(
        run.stdout.contains("this node's reboot: Waiting")
            && run.stdout.contains("does not answer"),
        "{}",
        run.stdout
    );
    assert!(!mark.exists());

    // The member is back: the reboot goes ahead.
    etcd[2] = Some(nodes[2].start_etcd().unwrap());
    let mut watch = watch;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let success = loop {
        if let Some(success) = watch.exited().unwrap() {
            break success;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            reboot_state(node)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(success);
    assert!(mark.exists());
    let doc = world.block_on(lock.read()).unwrap().unwrap();
    assert_eq!(
        doc.holders,
        std::slice::from_ref(&node.id),
        "held through the reboot"
    );
    assert_eq!(reboot_state(node).unwrap()["phase"], "rebooting");
}

/// update_engine as the D-Bus service `com.coreos.update1` shows it: its status, shared with
/// the test.
struct FakeUpdateEngine(Arc<std::sync::Mutex<(String, String)>>);

#[zbus::interface(name = "com.coreos.update1.Manager")]
impl FakeUpdateEngine {
    fn get_status(&self) -> (i64, f64, String, String, i64) {
        let (operation, version) = self.0.lock().unwrap().clone();
        (1_764_000_000, 0.0, operation, version, 0)
    }
}

/// logind's `Reboot`, counted.
struct FakeLogind(Arc<std::sync::atomic::AtomicU32>);

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl FakeLogind {
    fn reboot(&self, interactive: bool) {
        assert!(!interactive);
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// With no sentinel at all, update_engine's `StatusUpdate` (over a real dbus-daemon) says an
/// update is staged; the watch reboots through logind's `Reboot` (the default command); after
/// the boot it keeps the slot while the booted version is not the staged one, and releases it
/// once it is.
#[test]
fn update_engine_and_logind_over_d_bus() {
    let (world, _ca, mut nodes) = world_with_etcd_asg(3);
    let mut etcd: Vec<Option<tn_world::EtcdProcess>> =
        boot_cluster(&world, &nodes).into_iter().map(Some).collect();
    let bus = tn_world::dbus::Bus::start(&world.dir().join("dbus")).unwrap();
    let status = Arc::new(std::sync::Mutex::new((
        "UPDATE_STATUS_IDLE".to_string(),
        String::new(),
    )));
    let reboots = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (engine_conn, _logind_conn) = rt.block_on(async {
        let engine = zbus::connection::Builder::address(bus.address.as_str())
            .name("com.coreos.update1")
            .serve_at("/com/coreos/update1", FakeUpdateEngine(status.clone()))
            .build()
            .await
            .unwrap();
        let logind = zbus::connection::Builder::address(bus.address.as_str())
            .name("org.freedesktop.login1")
            .serve_at("/org/freedesktop/login1", FakeLogind(reboots.clone()))
            .build()
            .await
            .unwrap();
        (engine, logind)
    });

    nodes[0]
        .env
        .push(("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.address.clone()));
    let node = &nodes[0];
    node.write_config(&world.config("etcd", "[reboot]\ncheck_interval = \"1s\"\n"))
        .unwrap();
    let boot_id = node.path("/proc/sys/kernel/random/boot_id");
    std::fs::create_dir_all(boot_id.parent().unwrap()).unwrap();
    std::fs::write(&boot_id, "boot-1\n").unwrap();
    std::fs::create_dir_all(node.path("/etc")).unwrap();
    std::fs::write(
        node.path("/etc/os-release"),
        "NAME=\"Flatcar\"\nVERSION=4230.2.0\n",
    )
    .unwrap();
    let mut watch = Watch::start(node, 0).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(reboots.load(Ordering::SeqCst), 0, "nothing staged yet");

    // update_engine stages 4230.2.1 and says so with its signal.
    *status.lock().unwrap() = (
        "UPDATE_STATUS_UPDATED_NEED_REBOOT".into(),
        "4230.2.1".into(),
    );
    rt.block_on(engine_conn.emit_signal(
        None::<()>,
        "/com/coreos/update1",
        "com.coreos.update1.Manager",
        "StatusUpdate",
        &(
            1_764_000_000i64,
            0.0f64,
            "UPDATE_STATUS_UPDATED_NEED_REBOOT",
            "4230.2.1",
            0i64,
        ),
    ))
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while watch.exited().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            reboot_state(node)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(reboots.load(Ordering::SeqCst), 1, "one logind Reboot");
    assert!(
        !node.path("/run/reboot-required").exists(),
        "no sentinel was used"
    );
    let state = reboot_state(node).unwrap();
    assert_eq!(state["phase"], "rebooting");
    assert_eq!(state["staged_version"], "4230.2.1");

    // The reboot, but the old version came back up: the slot is kept, status says why.
    etcd[0].take().unwrap().kill();
    std::fs::write(&boot_id, "boot-2\n").unwrap();
    *status.lock().unwrap() = ("UPDATE_STATUS_IDLE".into(), String::new());
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    etcd[0] = Some(node.start_etcd().unwrap());
    let _watch = Watch::start(node, 1).unwrap();
    await_state(node, Duration::from_secs(60), |s| {
        why_has(s, "the booted version is 4230.2.0 but 4230.2.1 was staged")
    });
    let access = nodes[1].etcd_access().unwrap();
    let lock = GroupLock::Etcd(EtcdLock::new(&access, endpoints(&nodes[1..]), ETCD_GROUP));
    assert_eq!(
        world.block_on(lock.read()).unwrap().unwrap().holders,
        std::slice::from_ref(&node.id)
    );
    // The new version is what runs: released.
    std::fs::write(
        node.path("/etc/os-release"),
        "NAME=\"Flatcar\"\nVERSION=4230.2.1\n",
    )
    .unwrap();
    await_state(node, Duration::from_secs(60), |s| s["phase"] == "idle");
    assert_eq!(
        world.block_on(lock.read()).unwrap().unwrap(),
        Semaphore::new(1)
    );
}

/// Runs `node`'s watch until its reboot command has run (`true`) or `within` passed (`false`,
/// the watch still running).
fn watch_reboots_within(node: &Node, n: usize, within: Duration) -> bool {
    let mut watch = Watch::start(node, n).unwrap();
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Some(success) = watch.exited().unwrap() {
            assert!(success, "{:?}", reboot_state(node));
            return reboot_mark(node).exists();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The window: closed now, nothing is locked and the node waits saying so; open now, the
/// reboot goes ahead. A watch restarted in phase `locked` (it held the slot) reboots without
/// asking again; one restarted in phase `rebooting` on the same boot (the command returned,
/// the machine did not go down) runs the command again.
#[test]
fn the_window_and_resuming_a_held_slot() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    let _etcd = boot_cluster(&world, &nodes);
    let node = &nodes[0];
    let access = nodes[1].etcd_access().unwrap();
    let lock = GroupLock::Etcd(EtcdLock::new(&access, endpoints(&nodes), ETCD_GROUP));
    let now = time::OffsetDateTime::now_utc();
    let at = |t: time::OffsetDateTime| format!("{:02}:{:02}", t.hour(), t.minute());
    let window = |start: time::OffsetDateTime| {
        format!(
            "[reboot]\nwindow_start = \"{}\"\nwindow_length = \"1h\"\n",
            at(start)
        )
    };
    // Closed: it opens in 6 hours, every day.
    stage_update(&world, node, "").unwrap();
    let config = std::fs::read_to_string(node.path("/etc/tn-agent/config.toml")).unwrap();
    let windowed = |start| config.replace("[reboot]\n", &window(start));
    node.write_config(&windowed(now + time::Duration::hours(6)))
        .unwrap();
    assert!(!watch_reboots_within(node, 0, Duration::from_secs(4)));
    let state = reboot_state(node).unwrap();
    assert_eq!(state["phase"], "waiting");
    assert!(
        state["why"]
            .as_str()
            .unwrap()
            .contains("outside the reboot window"),
        "{state}"
    );
    assert_eq!(world.block_on(lock.read()).unwrap(), None, "nothing locked");
    // Open: it began 5 minutes ago.
    node.write_config(&windowed(now - time::Duration::minutes(5)))
        .unwrap();
    assert!(watch_reboots_within(node, 1, Duration::from_secs(30)));
    simulate_reboot_keeping_state(node);

    // Resuming `locked`: the slot is this node's; straight to the reboot.
    let other = &nodes[1];
    stage_update(&world, other, "").unwrap();
    world.block_on(lock.take(&other.id)).unwrap();
    leave_phase(other, "locked").unwrap();
    assert!(watch_reboots_within(other, 0, Duration::from_secs(30)));
    assert_eq!(reboot_state(other).unwrap()["phase"], "rebooting");
    // Resuming `rebooting` on the same boot: the command runs again.
    std::fs::remove_file(reboot_mark(other)).unwrap();
    assert!(watch_reboots_within(other, 1, Duration::from_secs(30)));
    assert_eq!(
        world.block_on(lock.read()).unwrap().unwrap().holders,
        std::slice::from_ref(&other.id),
        "held through it all"
    );
}

/// For the window test: the first node's reboot is left as "done" by hand (its etcd never
/// stopped), so that the next node's slot is free.
fn simulate_reboot_keeping_state(node: &Node) {
    std::fs::remove_file(reboot_mark(node)).unwrap();
    std::fs::remove_file(node.path("/run/reboot-required")).unwrap();
    std::fs::write(node.path("/proc/sys/kernel/random/boot_id"), "boot-2\n").unwrap();
    let mut watch = Watch::start(node, 9).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !reboot_state(node).is_some_and(|s| s["phase"] == "idle") {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            reboot_state(node)
        );
        assert!(watch.exited().unwrap().is_none());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A backup taken by the first node, then a change it does not hold; the inspector that made it.
fn backed_up_then_changed<'w>(world: &'w World, nodes: &[Node]) -> tn_world::Inspector<'w> {
    let run = nodes[0].run(&["etcd", "backup", "--force"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all: Vec<&Node> = nodes.iter().collect();
    let check = tn_world::Inspector::new(world, &nodes[0], &all).unwrap();
    check.put("/app/changed", "after the backup").unwrap();
    check
}

/// The agents' clock an hour ahead from now on: four intervals of the default 15 minutes.
fn an_hour_later(nodes: &mut [Node]) {
    for n in nodes.iter_mut() {
        n.env
            .push(("TN_AGENT_CLOCK_OFFSET_SECONDS".into(), "3600".into()));
    }
}

/// The backup gate (SPEC §9, step 1): an hour later by the agent's clock, with changes since the
/// newest backup, a node does not take the lock and says why; once the leader's timer run has
/// taken a backup and the node's own run has seen it, it reboots.
#[test]
fn a_stale_backup_holds_the_reboot_back() {
    let (world, _ca, mut nodes) = world_with_etcd_asg(3);
    let _etcd = boot_cluster(&world, &nodes);
    let check = backed_up_then_changed(&world, &nodes);
    // Another member leads (the seeder usually wins the first election, not always): the node
    // does not take the backup itself.
    let view = check.view().unwrap();
    let own_id = view
        .members
        .iter()
        .find(|m| m.name == nodes[0].id)
        .unwrap()
        .id;
    if view.leader == Some(own_id) {
        let other = view.members.iter().find(|m| m.id != own_id).unwrap().id;
        let access = nodes[0].etcd_access().unwrap();
        world
            .block_on(access.move_leader(&nodes[0].client_url(), other))
            .unwrap();
    }
    drop(check);
    an_hour_later(&mut nodes);
    let node = &nodes[0];
    stage_update(&world, node, "").unwrap();
    assert!(!watch_reboots_within(node, 0, Duration::from_secs(4)));
    let state = reboot_state(node).unwrap();
    assert_eq!(state["phase"], "waiting");
    assert!(why_has(&state, "newest etcd backup"), "{state}");
    let access = nodes[1].etcd_access().unwrap();
    let lock = GroupLock::Etcd(EtcdLock::new(&access, endpoints(&nodes), ETCD_GROUP));
    assert_eq!(world.block_on(lock.read()).unwrap(), None, "nothing locked");

    // The timer's tick: the leader uploads, the others look and record the newest backup they
    // see. The node runs last, so that it sees the upload whichever member leads (the seeder
    // usually does, but not always). On a loaded machine leadership can move between two runs
    // of a round so that none of them led: the round is repeated then, as the timer's next tick
    // would be.
    let backups = crate::backup::backup_keys(&world).len();
    for round in 1.. {
        assert!(round <= 5, "no member took a backup in 5 rounds");
        for n in nodes.iter().rev() {
            let run = n.run(&["etcd", "backup"]).unwrap();
            assert_eq!(run.code, 0, "{}", run.stderr);
        }
        if crate::backup::backup_keys(&world).len() > backups {
            break;
        }
    }
    assert!(
        watch_reboots_within(node, 1, Duration::from_secs(30)),
        "{:?}",
        reboot_state(node)
    );
}

/// The backup gate reads the bucket when the node's own record is too old: a member whose timer
/// run listed the bucket before the leader's upload of the same tick had finished must not wait
/// a whole interval for its next run while a fresh backup is there.
#[test]
fn a_record_that_missed_the_newest_backup_does_not_hold_the_reboot() {
    let (world, _ca, mut nodes) = world_with_etcd_asg(3);
    let _etcd = boot_cluster(&world, &nodes);
    backed_up_then_changed(&world, &nodes);
    an_hour_later(&mut nodes);
    // An hour later another member backs up; the node's record still names the first backup.
    let run = nodes[1].run(&["etcd", "backup", "--force"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let record = |node: &Node| -> serde_json::Value {
        let text = std::fs::read(node.path("/var/lib/tn-agent/backup.json")).unwrap();
        serde_json::from_slice(&text).unwrap()
    };
    let (first, second) = (record(&nodes[0]), record(&nodes[1]));
    assert_ne!(first["newest"]["name"], second["newest"]["name"]);

    let node = &nodes[0];
    stage_update(&world, node, "").unwrap();
    assert!(
        watch_reboots_within(node, 1, Duration::from_secs(30)),
        "{:?}",
        reboot_state(node)
    );
    assert_eq!(
        record(node)["newest"]["name"],
        second["newest"]["name"],
        "the node records the backup it found"
    );
}

/// A waiting node is woken by the lock's change, not by its check interval: with the default
/// interval of a minute, a slot freed by its holder is taken within seconds.
#[test]
fn a_freed_slot_is_taken_at_once_not_at_the_next_interval() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    let _etcd = boot_cluster(&world, &nodes);
    let access = nodes[1].etcd_access().unwrap();
    let lock = GroupLock::Etcd(EtcdLock::new(&access, endpoints(&nodes), ETCD_GROUP));
    world.block_on(lock.take(&nodes[1].id)).unwrap();
    let node = &nodes[0];
    stage_update(&world, node, "").unwrap();
    let dropins = node.path("/etc/tn-agent/config.d");
    std::fs::create_dir_all(&dropins).unwrap();
    std::fs::write(
        dropins.join("60-interval.toml"),
        "[reboot]\ncheck_interval = \"60s\"\n",
    )
    .unwrap();
    let mut watch = Watch::start(node, 0).unwrap();
    await_state(node, Duration::from_secs(20), |s| {
        s["phase"] == "waiting" && why_has(s, "every slot of reboot group etcd is held")
    });
    let released = std::time::Instant::now();
    world.block_on(lock.release(&nodes[1].id)).unwrap();
    while watch.exited().unwrap().is_none() {
        assert!(
            released.elapsed() < Duration::from_secs(15),
            "still {:?}\n{}",
            reboot_state(node),
            watch.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reboot_mark(node).exists(), "{}", watch.log());
}

/// The learner and quorum gates, in a cluster of two: with a learner present, and then with no
/// quorum left without this member, a node needing a reboot takes no slot, and `reboot status`
/// says why.
#[test]
fn a_learner_or_a_lost_quorum_takes_no_slot() {
    let (world, _ca, nodes) = world_with_etcd_asg(2);
    let _etcd = boot_cluster(&world, &nodes);
    let node = &nodes[0];
    let access = node.etcd_access().unwrap();
    let urls = endpoints(&nodes);
    let lock = GroupLock::Etcd(EtcdLock::new(&access, urls.clone(), ETCD_GROUP));
    // A learner that never starts (its instance is still booting, say).
    let peer = format!("https://{}:2380", world_spare_ip(&nodes));
    // etcd adds a member only once its leader has been connected to every voter for 5 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let learner = loop {
        match world.block_on(access.add_learner(&urls, &peer)) {
            Ok((id, _)) => break id,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("member add: {e}; again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("member add: {e:?}"),
        }
    };
    stage_update(&world, node, "").unwrap();
    let _watch = Watch::start(node, 0).unwrap();
    await_state(node, Duration::from_secs(30), |s| {
        s["phase"] == "waiting" && why_has(s, "(unstarted) has not started")
    });
    assert_eq!(world.block_on(lock.read()).unwrap(), None, "nothing locked");
    let run = node.run(&["reboot", "status"]).unwrap();
    assert!(run.stdout.contains("has not started"), "{}", run.stdout);

    // Without the learner: two voters, and one left without this member is no quorum.
    world.block_on(access.remove(&urls, learner)).unwrap();
    await_state(node, Duration::from_secs(30), |s| {
        s["phase"] == "waiting" && why_has(s, "quorum needs 2")
    });
    assert_eq!(world.block_on(lock.read()).unwrap(), None, "nothing locked");
    let run = node.run(&["reboot", "status"]).unwrap();
    assert!(run.stdout.contains("quorum needs 2"), "{}", run.stdout);
    assert!(!reboot_mark(node).exists());
}

/// An address in the world's network that no node has.
fn world_spare_ip(nodes: &[Node]) -> std::net::Ipv4Addr {
    let o = nodes[0].ip.octets();
    std::net::Ipv4Addr::new(o[0], o[1], 250, 250)
}
