//! The local demo: a simulated cluster's nodes booting with tn-agent in a local AWS world.
//! Run by `scripts/demo`; leaves nothing running.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tn_agent::etcd::model::ClusterView;
use tn_agent::pki::Ca;
use tn_world::kube_api::{admin_cert, Amount, Budget, KubeApi, Pdb, PodSeed, LOCALHOST};
use tn_world::kube_reboot::{
    node_name, reboot_table, request_reboot, simulate_kube_reboot, write_kubelet_credentials,
};
use tn_world::reboot::{reboot_state, simulate_reboot, stage_update, Watch};
use tn_world::{boot_in_parallel, run_at_once, EtcdProcess, Inspector, Node, World};

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
        extra_config: "[etcd]\nasg = \"demo-etcd\"\n[reboot]\nworker_groups = [\"demo-worker-general\", \"demo-worker-gpu\"]\n[kubernetes]\nversion = \"v1.31.4\"\n",
    },
    Pool {
        asg: "demo-worker-general",
        role: "worker",
        size: 4,
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

    // The cluster's API: a fake kube-apiserver trusting the cluster CA `pki init` made (no
    // kube-apiserver can run in this world); the nodes' `kubernetes.apiserver` points at it.
    let operator = world.dir().join("operator");
    let read = |name: &str| {
        std::fs::read_to_string(operator.join(name)).with_context(|| format!("operator/{name}"))
    };
    let ca = Ca::from_pem(&read("ca.crt")?, &read("ca.key")?)?;
    let api = KubeApi::start(&ca, LOCALHOST)?;

    section("the master and the workers boot: tn-agent bootstrap");
    let mut others = Vec::new();
    for (pool, inst) in instances.iter().filter(|(p, _)| p.role != "etcd") {
        let config = world.config(
            pool.role,
            &format!("{}apiserver = \"{}\"\n", pool.extra_config, api.url()),
        );
        let node = world.node(inst, &config)?;
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
        others.push(Kube {
            node,
            pool: pool.asg,
        });
    }
    println!(
        "\n(kube-apiserver, the kubelets and containerd do not run in this world: their files are \
         written, and checked by the tests)"
    );
    join_kubernetes(&api, &ca, &others)?;

    section("tn-agent status on an etcd node");
    status(&etcd_nodes[0], true)?;
    section("tn-agent status on the master");
    status(&others[0].node, true)?;
    section("tn-agent status everywhere");
    for node in etcd_nodes.iter().chain(others.iter().map(|k| &k.node)) {
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

    section("the master's hourly reconcile: its apiserver follows the etcd voters");
    let master = &others[0].node;
    let run = master.run(&["reconcile"])?;
    println!(
        "$ tn-agent reconcile    (on {}; exit {})",
        master.id, run.code
    );
    print_indented(&run.stdout);
    anyhow::ensure!(run.code == 0, "reconcile: {}", run.stderr);

    let etcd = rolling_reboot(&world, &etcd_nodes, etcd)?;
    kube_rolling_reboot(&api, &ca, &others)?;
    let etcd = backup_and_restore(&world, &etcd_nodes, etcd)?;

    println!(
        "\nStopping the world: etcd processes, moto_server, fake IMDS and kube-apiserver, node \
         directories."
    );
    drop(etcd);
    drop(api);
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
            let phase = phase_line(node);
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
    // The operator's Terraform turns metrics on ([metrics] textfile_dir): a drop-in here.
    for node in nodes {
        let dropin = node.path("/etc/tn-agent/config.d/60-metrics.toml");
        std::fs::create_dir_all(dropin.parent().expect("a parent"))?;
        std::fs::write(
            &dropin,
            "[metrics]\ntextfile_dir = \"/var/lib/node_exporter/textfile\"\n",
        )?;
    }
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
    let runs = run_at_once(&nodes.iter().collect::<Vec<_>>(), &["etcd", "backup"]);
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
    println!(
        "\nthe metrics the backup run wrote for node_exporter on {} (an excerpt of \
         /var/lib/node_exporter/textfile/tn_agent.prom; docs/alerts.md):",
        nodes[0].id
    );
    let prom =
        std::fs::read_to_string(nodes[0].path("/var/lib/node_exporter/textfile/tn_agent.prom"))?;
    for line in prom.lines().filter(|l| {
        !l.starts_with('#') && (l.starts_with("tn_agent_etcd_") || l.contains("server.crt"))
    }) {
        println!("  {line}");
    }

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

/// A master or worker of the demo: its node and its ASG.
struct Kube {
    node: Node,
    pool: &'static str,
}

/// What the kubelets and the operator do once the masters and workers booted, simulated: each
/// kubelet registers its Node (workers after their TLS bootstrap, whose certificate the world
/// signs with the cluster CA as the controller-manager would), the operator applies the master's
/// reboot-locks addon, and workloads get scheduled: a ReplicaSet `web` of 6 pods with a budget
/// of one disruption, a `kube-proxy` DaemonSet pod on every node.
fn join_kubernetes(api: &KubeApi, ca: &Ca, nodes: &[Kube]) -> Result<()> {
    section("the kubelets join; the operator applies the master's addons");
    for k in nodes {
        let name = node_name(&k.node);
        if k.pool.contains("worker") {
            write_kubelet_credentials(&k.node, api, ca, &name)?;
        }
        api.add_node(&name, &[("tn.example/pool", k.pool)])?;
        api.add_pod(
            PodSeed::new("kube-system", &format!("kube-proxy-{}", k.node.id), &name)
                .daemonset("kube-proxy"),
        )?;
    }
    let master = nodes
        .iter()
        .find(|k| k.pool == "demo-master")
        .context("a master")?;
    let addon =
        std::fs::read_to_string(master.node.path("/etc/kubernetes/addons/reboot-locks.yaml"))?;
    api.apply_reboot_locks_addon(&addon)?;
    println!("$ kubectl apply -f reboot-locks.yaml   (written by the master's bootstrap)");
    for line in addon
        .lines()
        .filter(|l| l.contains("name: tn-reboot-") || l.contains("kind:"))
    {
        println!("  {}", line.trim());
    }
    let general: Vec<String> = nodes
        .iter()
        .filter(|k| k.pool == "demo-worker-general")
        .map(|k| node_name(&k.node))
        .collect();
    for i in 0..6 {
        let on = &general[i % general.len()];
        api.add_pod(
            PodSeed::new("default", &format!("web-{i}"), on)
                .label("app", "web")
                .replicaset("web-7d9c"),
        )?;
    }
    api.add_pdb(Pdb::new(
        "default",
        "web",
        &[("app", "web")],
        Budget::MaxUnavailable(Amount::Count(1)),
    ))?;
    println!("\n$ kubectl get nodes; kubectl get pods -A -o wide");
    kubectl(api, ca, &["get", "nodes"])?;
    kubectl(api, ca, &["get", "pods", "-A", "-o", "wide"])?;
    Ok(())
}

/// The real kubectl as the operator (an admin certificate), its output indented.
fn kubectl(api: &KubeApi, ca: &Ca, args: &[&str]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("admin.conf");
    std::fs::write(&config, api.kubeconfig(&admin_cert(ca)?))?;
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&config)
        .args(args)
        .env("HOME", dir.path())
        .output()
        .context("running kubectl")?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    print_indented(&String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// The update reaches the masters and workers: the master first, then both worker pools at
/// once, the general pool two at a time (`reboot set-max 2`) and the gpu pool alone. The world
/// plays the kubelet (NotReady, Ready) and the web ReplicaSet with its scheduler (an evicted pod
/// is replaced on a schedulable node of its pool).
fn kube_rolling_reboot(api: &KubeApi, ca: &Ca, nodes: &[Kube]) -> Result<()> {
    // The reboot command of the world and a 1 s interval, as a drop-in over the node's config.
    let stage = |k: &Kube| -> Result<()> {
        let dropin = k.node.path("/etc/tn-agent/config.d/50-reboot.toml");
        std::fs::create_dir_all(dropin.parent().context("a parent")?)?;
        std::fs::write(&dropin, reboot_table(&k.node))?;
        request_reboot(&k.node)
    };
    let (masters, workers): (Vec<&Kube>, Vec<&Kube>) =
        nodes.iter().partition(|k| k.pool == "demo-master");
    section("the update reaches the master: drain, reboot, Ready, uncordon (group master, max 1)");
    for k in &masters {
        stage(k)?;
    }
    drive_kube_reboots(api, &masters, None)?;

    section(
        "then every worker: pool demo-worker-general two at a time, demo-worker-gpu alone; pods \
         move",
    );
    let general = workers
        .iter()
        .find(|k| k.pool == "demo-worker-general")
        .context("a general worker")?;
    let run = general.node.run(&["reboot", "set-max", "2"])?;
    println!("$ tn-agent reboot set-max 2    (on {})", general.node.id);
    print_indented(&run.stdout);
    anyhow::ensure!(run.code == 0, "set-max: {}", run.stderr);
    for k in &workers {
        stage(k)?;
    }
    drive_kube_reboots(api, &workers, Some(&general.node))?;
    println!("\n$ kubectl get nodes; kubectl get pods -A -o wide");
    kubectl(api, ca, &["get", "nodes"])?;
    kubectl(api, ca, &["get", "pods", "-A", "-o", "wide"])?;
    Ok(())
}

/// Runs the nodes' watches until each has rebooted once and is idle again, printing each phase
/// change, each eviction and where its replacement went; `reboot status` on `show_on` once two
/// of its group hold slots.
fn drive_kube_reboots(api: &KubeApi, nodes: &[&Kube], show_on: Option<&Node>) -> Result<()> {
    let started = Instant::now();
    let mut watches = nodes
        .iter()
        .enumerate()
        .map(|(i, k)| Watch::start(&k.node, 30 + i))
        .collect::<Result<Vec<_>>>()?;
    let mut last = vec![String::new(); nodes.len()];
    let mut seen_evictions = api.evictions().len();
    let mut replacements = 0;
    let mut shown = show_on.is_none();
    let names: Vec<String> = nodes.iter().map(|k| node_name(&k.node)).collect();
    let all_nodes = |pool: &str| -> Vec<String> {
        nodes
            .iter()
            .filter(|k| k.pool == pool)
            .map(|k| node_name(&k.node))
            .collect()
    };
    while !nodes.iter().all(|k| {
        reboot_state(&k.node).is_some_and(|s| s["phase"] == "idle" && s["last_reboot"].is_string())
    }) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the rolling reboot of the Kubernetes nodes did not finish"
        );
        let t = started.elapsed().as_secs_f64();
        for (i, k) in nodes.iter().enumerate() {
            let phase = phase_line(&k.node);
            if phase != last[i] && !phase.is_empty() {
                println!("{t:>5.1} s  {} ({})  {phase}", k.node.id, k.pool);
                last[i] = phase;
            }
            if watches[i].exited()? == Some(false) {
                anyhow::bail!("the watch on {} failed:\n{}", k.node.id, watches[i].log());
            }
            if watches[i].exited()? == Some(true) {
                println!(
                    "{t:>5.1} s  {} ({})  ran its reboot command: the kubelet stops (NotReady), \
                     the node reboots, the kubelet is back (Ready)",
                    k.node.id, k.pool
                );
                simulate_kube_reboot(&k.node, api, &mut watches[i])?;
                watches[i] = Watch::start(&k.node, 40 + i)?;
            }
        }
        // The ReplicaSet and the scheduler: an evicted web pod comes back on a schedulable
        // node of the same pool.
        let evictions = api.evictions();
        for e in &evictions[seen_evictions..] {
            let pool = nodes
                .iter()
                .find(|k| node_name(&k.node) == e.node)
                .map(|k| k.pool)
                .unwrap_or_default();
            // A schedulable node of the pool, those already through their reboot first (as a
            // scheduler spreading by free capacity would, roughly).
            let done = |n: &String| {
                nodes.iter().any(|k| {
                    node_name(&k.node) == *n
                        && reboot_state(&k.node).is_some_and(|s| s["last_reboot"].is_string())
                })
            };
            let mut candidates: Vec<String> = all_nodes(pool)
                .into_iter()
                .filter(|n| *n != e.node && !api.unschedulable(n))
                .collect();
            candidates.sort_by_key(|n| !done(n));
            let target = candidates.into_iter().next();
            match (e.name.starts_with("web-"), target) {
                (true, Some(target)) => {
                    let name = format!("web-r{replacements}");
                    replacements += 1;
                    api.add_pod(
                        PodSeed::new("default", &name, &target)
                            .label("app", "web")
                            .replicaset("web-7d9c"),
                    )?;
                    println!(
                        "{t:>5.1} s  evicted {}/{} from {}; its ReplicaSet starts {name} on {target}",
                        e.namespace, e.name, e.node
                    );
                }
                _ => println!(
                    "{t:>5.1} s  evicted {}/{} from {}",
                    e.namespace, e.name, e.node
                ),
            }
        }
        seen_evictions = evictions.len();
        if let (false, Some(on)) = (shown, show_on) {
            let cordoned = names.iter().filter(|n| api.unschedulable(n)).count();
            if cordoned >= 2 {
                println!("         tn-agent reboot status on {}:", on.id);
                print_indented(&on.run(&["reboot", "status"])?.stdout);
                shown = true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "{:>5.1} s  every node rebooted once and is idle; uncordoned, locks free",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The node's reboot phase and what it waits for, as one line (empty before its first state).
fn phase_line(node: &Node) -> String {
    reboot_state(node)
        .map(|s| {
            let why = s["why"]
                .as_str()
                .map(|w| format!(": {w}"))
                .unwrap_or_default();
            format!("{}{why}", s["phase"].as_str().unwrap_or("?"))
        })
        .unwrap_or_default()
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
