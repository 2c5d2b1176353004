//! The local demo: a simulated cluster's nodes booting with tn-agent in a local AWS world.
//! Run by `scripts/demo`; leaves nothing running.

use std::time::{Duration, Instant};

use anyhow::Result;
use tn_agent::etcd::model::ClusterView;
use tn_world::reboot::{reboot_state, simulate_reboot, stage_update, Watch};
use tn_world::{boot_in_parallel, EtcdProcess, Inspector, Node, World};

struct Pool {
    asg: &'static str,
    role: &'static str,
    size: i32,
    extra_config: &'static str,
}

const POOLS: &[Pool] = &[
    Pool {
        asg: "demo-etcd",
        role: "etcd",
        size: 3,
        extra_config: "",
    },
    Pool {
        asg: "demo-master",
        role: "master",
        size: 1,
        extra_config: "[etcd]\nasg = \"demo-etcd\"\n[kubernetes]\nversion = \"v1.31.4\"\n",
    },
    Pool {
        asg: "demo-worker-general",
        role: "worker",
        size: 2,
        extra_config: "[kubernetes]\nversion = \"v1.31.4\"\nnode_labels = { \"node.kubernetes.io/pool\" = \"general\" }\n",
    },
    Pool {
        asg: "demo-worker-gpu",
        role: "worker",
        size: 1,
        extra_config: "[kubernetes]\nversion = \"v1.31.4\"\nnode_labels = { \"node.kubernetes.io/pool\" = \"gpu\" }\nnode_taints = [\"nvidia.com/gpu=present:NoSchedule\"]\n",
    },
];

fn main() {
    if let Err(e) = run() {
        eprintln!("demo failed: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    println!("tn-agent demo: a simulated cluster booting in a local AWS world\n");
    let world = World::start()?;
    println!(
        "world: moto_server at {} (EC2, AutoScaling, S3), VPC {}, state bucket s3://{}",
        world.moto.endpoint,
        world.vpc_cidr(),
        world.bucket
    );
    let mut instances = Vec::new();
    for pool in POOLS {
        world.create_asg(pool.asg, pool.role, pool.size)?;
        for inst in world.asg_instances(pool.asg)? {
            instances.push((pool, inst));
        }
        println!(
            "  autoscaling group {:<20} role {:<6} {} instance(s)",
            pool.asg, pool.role, pool.size
        );
    }

    section("the operator creates the cluster's PKI: tn-agent pki init --upload");
    let run = world.init_pki()?;
    print_indented(&run.stdout);

    section("etcd: three nodes boot at the same moment (bootstrap, start etcd, etcd promote)");
    let etcd_config = world.etcd_config(120);
    let mut etcd_nodes = world.etcd_nodes("demo-etcd", 120)?;
    let started = Instant::now();
    let mut etcd = boot_in_parallel(&etcd_nodes.iter().collect::<Vec<_>>())?;
    let view = expect_cluster(&world, &etcd_nodes)?;
    println!(
        "all three are healthy voters {:.1} s after boot began\n",
        started.elapsed().as_secs_f64()
    );
    for node in &etcd_nodes {
        show_decisions(node)?;
    }
    show_members(&view);
    let check = inspector(&world, &etcd_nodes)?;
    check.put("/demo/greeting", "written before the replacement")?;

    section("the master and the workers boot: tn-agent bootstrap");
    let mut others = Vec::new();
    for (pool, inst) in instances.iter().filter(|(p, _)| p.role != "etcd") {
        let node = world.node(inst, &world.config(pool.role, pool.extra_config))?;
        let run = node.run(&["bootstrap"])?;
        println!(
            "{} ({}, {}): bootstrap exit {}",
            inst.id, pool.asg, inst.ip, run.code
        );
        if run.code != 0 {
            print_indented(&run.stderr);
            anyhow::bail!("bootstrap of {} failed", inst.id);
        }
        let state = node.state()?;
        println!(
            "  wrote {} files in {} ms with {} AWS calls; S3 objects read: {}",
            state.files_written.len(),
            state.timings_ms.values().sum::<u64>(),
            state.aws_calls,
            state
                .s3_keys_read
                .iter()
                .map(|k| k.rsplit('/').next().unwrap_or(k))
                .collect::<Vec<_>>()
                .join(", ")
        );
        others.push(node);
    }
    println!(
        "\n(kube-apiserver, the kubelets and containerd do not run in this world: their files are \
         written, and checked by the tests)"
    );

    section("tn-agent status on an etcd node");
    status(&etcd_nodes[0], true)?;
    section("tn-agent status on the master");
    status(&others[0], true)?;
    section("tn-agent status everywhere");
    for node in etcd_nodes.iter().chain(&others) {
        status(node, false)?;
    }

    section("a member's instance is terminated; the ASG launches a replacement");
    let leader = view.leader.unwrap_or_default();
    let victim = etcd_nodes
        .iter()
        .position(|n| {
            view.members
                .iter()
                .any(|m| m.name == n.id && m.id != leader)
        })
        .unwrap_or(0);
    let gone = etcd_nodes[victim].id.clone();
    etcd[victim].kill();
    world.terminate(&gone)?;
    println!("terminated {gone}; status on a surviving member now says:");
    status(&etcd_nodes[(victim + 1) % etcd_nodes.len()], true)?;
    let newcomer = world
        .instances_besides("demo-etcd", &etcd_nodes)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the ASG did not replace {gone}"))?;
    println!(
        "\nthe ASG launched {} at {}; it boots:",
        newcomer.id, newcomer.ip
    );
    let node = world.node(&newcomer, &etcd_config)?;
    let started = Instant::now();
    let new_etcd = node.boot_etcd()?;
    etcd_nodes.remove(victim);
    etcd.remove(victim);
    etcd_nodes.push(node);
    etcd.push(new_etcd);
    let view = expect_cluster(&world, &etcd_nodes)?;
    println!(
        "healed: three healthy voters again {:.1} s after the newcomer began to boot\n",
        started.elapsed().as_secs_f64()
    );
    show_decisions(etcd_nodes.last().expect("the newcomer"))?;
    show_members(&view);
    let check = inspector(&world, &etcd_nodes)?;
    println!(
        "read back after the replacement: /demo/greeting = {:?}",
        check.get("/demo/greeting")?.unwrap_or_default()
    );
    section("tn-agent status on the newcomer");
    status(etcd_nodes.last().expect("the newcomer"), true)?;

    let etcd = rolling_reboot(&world, &etcd_nodes, etcd)?;
    let etcd = backup_and_restore(&world, &etcd_nodes, etcd)?;

    println!(
        "\nStopping the world: etcd processes, moto_server, fake IMDS servers, node directories."
    );
    drop(etcd);
    drop(world);
    println!("Done; nothing left running.");
    Ok(())
}

/// Flatcar stages an update on every etcd node at once; each node's `reboot watch` reboots it
/// in turn through the etcd lock. The world does what a reboot does when a watch has run its
/// reboot command (`tn_world::reboot`). Prints the timeline as it happens.
fn rolling_reboot(
    world: &World,
    nodes: &[Node],
    etcd: Vec<EtcdProcess>,
) -> Result<Vec<Option<EtcdProcess>>> {
    section(
        "Flatcar stages an update on all three etcd nodes: tn-agent reboots them one at a time",
    );
    let mut etcd: Vec<Option<EtcdProcess>> = etcd.into_iter().map(Some).collect();
    for node in nodes {
        stage_update(world, node, "[etcd]\njoin_timeout_seconds = 120\n")?;
    }
    println!(
        "each node: /run/reboot-required exists; tn-agent-reboot.service (reboot watch) starts"
    );
    let check = inspector(world, nodes)?;
    check.put("/demo/before-reboots", "still here")?;
    let mut watches = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Watch::start(n, 10 + i))
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let mut last: Vec<String> = vec![String::new(); nodes.len()];
    let mut shown_status = false;
    let mut rebooted = 0;
    while rebooted < nodes.len() || !all_idle(nodes) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the rolling reboot did not finish"
        );
        for (i, node) in nodes.iter().enumerate() {
            let phase = reboot_state(node)
                .map(|s| {
                    let why = s["why"]
                        .as_str()
                        .map(|w| format!(": {w}"))
                        .unwrap_or_default();
                    format!("{}{why}", s["phase"].as_str().unwrap_or("?"))
                })
                .unwrap_or_default();
            if phase != last[i] && !phase.is_empty() {
                println!(
                    "{:>5.1} s  {}  {phase}",
                    started.elapsed().as_secs_f64(),
                    node.id
                );
                last[i] = phase.clone();
                if phase.starts_with("locked") && !shown_status {
                    println!(
                        "         tn-agent reboot status on {}:",
                        nodes[(i + 1) % nodes.len()].id
                    );
                    let run = nodes[(i + 1) % nodes.len()].run(&["reboot", "status"])?;
                    print_indented(&run.stdout);
                    shown_status = true;
                }
            }
            if watches[i].exited()? == Some(true) {
                println!(
                    "{:>5.1} s  {}  ran its reboot command: etcd stops, the node reboots, \
                     bootstrap and etcd start again",
                    started.elapsed().as_secs_f64(),
                    node.id
                );
                simulate_reboot(node, &mut etcd[i])?;
                rebooted += 1;
                watches[i] = Watch::start(node, 20 + i)?;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, node) in nodes.iter().enumerate() {
        if last[i] != "idle" {
            println!(
                "{:>5.1} s  {}  idle",
                started.elapsed().as_secs_f64(),
                node.id
            );
        }
    }
    drop(watches);
    let view = expect_cluster(world, nodes)?;
    println!(
        "\nall three rebooted once, one at a time, in {:.1} s; the lock is free again:",
        started.elapsed().as_secs_f64()
    );
    let run = nodes[0].run(&["reboot", "status"])?;
    print_indented(&run.stdout);
    show_members(&view);
    let check = inspector(world, nodes)?;
    println!(
        "read back after the reboots: /demo/before-reboots = {:?}",
        check.get("/demo/before-reboots")?.unwrap_or_default()
    );
    Ok(etcd)
}

/// The backup timer's command on every member (the leader uploads), then the disaster: every
/// member killed, two disks lost; the operator restores on one node, the others bootstrap and
/// rejoin, and the backed-up data is back.
fn backup_and_restore(
    world: &World,
    nodes: &[Node],
    etcd: Vec<Option<EtcdProcess>>,
) -> Result<Vec<EtcdProcess>> {
    section("etcd backups: the timer runs tn-agent etcd backup on every member at the same moment");
    for node in nodes {
        // Debian's etcd 3.4 has no etcdutl; its etcdctl restores snapshots (SPEC §10).
        let dir = node.path("/etc/tn-agent/config.d");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("50-backup.toml"),
            "[backup]\nrestore_tool = \"etcdctl\"\n",
        )?;
    }
    let check = inspector(world, nodes)?;
    check.put("/demo/orders", "backed up at the last backup")?;
    let runs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| s.spawn(move || n.run(&["etcd", "backup"])))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("backup thread"))
            .collect()
    });
    for (node, run) in nodes.iter().zip(runs) {
        let run = run?;
        println!("{}: exit {}: {}", node.id, run.code, run.stdout.trim());
        anyhow::ensure!(
            run.code == 0,
            "backup on {} failed: {}",
            node.id,
            run.stderr
        );
    }
    let run = nodes[0].run(&["etcd", "backups"])?;
    println!("\ntn-agent etcd backups:");
    print_indented(&run.stdout);
    let name = run
        .stdout
        .lines()
        .rfind(|l| l.starts_with("20"))
        .and_then(|l| l.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no backup listed"))?
        .to_string();
    check.put("/demo/after-backup", "written after the backup")?;

    section("disaster: every etcd member is killed, and two of the three disks are lost");
    for mut e in etcd.into_iter().flatten() {
        e.kill();
    }
    for node in &nodes[1..] {
        std::fs::remove_dir_all(node.path("/var/lib/etcd"))?;
        println!("{}: etcd killed, its data dir gone", node.id);
    }
    println!("{}: etcd killed, its data dir left as it was", nodes[0].id);

    section(&format!(
        "the operator restores on {}: tn-agent etcd restore --backup {name} --cluster demo",
        nodes[0].id
    ));
    let run = nodes[0].run(&["etcd", "restore", "--backup", &name, "--cluster", "demo"])?;
    print_indented(&run.stdout);
    anyhow::ensure!(run.code == 0, "restore failed: {}", run.stderr);
    let started = Instant::now();
    let mut restored = vec![nodes[0].start_etcd()?];
    println!(
        "etcd started on {}; the other nodes run their boot again:",
        nodes[0].id
    );
    for node in &nodes[1..] {
        restored.push(node.boot_etcd()?);
    }
    let view = expect_cluster(world, nodes)?;
    println!(
        "three healthy voters again {:.1} s after etcd started on the restored node\n",
        started.elapsed().as_secs_f64()
    );
    show_decisions(&nodes[1])?;
    show_members(&view);
    let check = inspector(world, nodes)?;
    println!(
        "read back after the restore: /demo/orders = {:?}, /demo/after-backup = {:?} (written \
         after the backup: not in it)",
        check.get("/demo/orders")?.unwrap_or_default(),
        check.get("/demo/after-backup")?
    );
    Ok(restored)
}

fn all_idle(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| {
        reboot_state(n).is_some_and(|s| s["phase"] == "idle" && s["last_reboot"].is_string())
    })
}

fn section(title: &str) {
    println!("\n== {title}\n");
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("  {line}");
    }
}

/// Looks at the etcd cluster of `nodes` through the first one.
fn inspector<'a>(world: &'a World, nodes: &[Node]) -> Result<Inspector<'a>> {
    Inspector::new(world, &nodes[0], &nodes.iter().collect::<Vec<_>>())
}

/// Waits until the nodes are exactly the members, all healthy voters.
fn expect_cluster(world: &World, nodes: &[Node]) -> Result<ClusterView> {
    let refs: Vec<&Node> = nodes.iter().collect();
    inspector(world, nodes)?.expect_nodes(&refs, Duration::from_secs(60))
}

/// `tn-agent status` on a node: the whole text, or one line.
fn status(node: &Node, full: bool) -> Result<()> {
    let run = node.run(&["status"])?;
    if full {
        println!("$ tn-agent status    (on {}; exit {})", node.id, run.code);
        print_indented(&run.stdout);
    } else {
        let last = run
            .stdout
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string();
        println!("  {} exit {}: {last}", node.id, run.code);
    }
    Ok(())
}

fn show_decisions(node: &Node) -> Result<()> {
    let state = node.state()?;
    println!("{} ({}) decided:", node.id, node.ip);
    for d in &state.decisions {
        println!("  - {}: {}", d.what, d.why);
    }
    println!("  AWS API calls: {}", state.aws_calls);
    Ok(())
}

fn show_members(view: &ClusterView) {
    println!("\nmember list:");
    println!(
        "  {:<18} {:<21} {:<28} {:<7} {:<8}",
        "ID", "NAME", "PEER URL", "VOTER", "HEALTHY"
    );
    for m in &view.members {
        let leader = if Some(m.id) == view.leader {
            " (leader)"
        } else {
            ""
        };
        println!(
            "  {:<18x} {:<21} {:<28} {:<7} {:<8}{leader}",
            m.id,
            m.name,
            m.peer_urls.join(","),
            if m.is_learner { "no" } else { "yes" },
            if m.healthy { "yes" } else { "no" },
        );
    }
}
