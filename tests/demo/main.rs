//! The local demo: a simulated cluster's nodes booting with tn-agent in a local AWS world.
//! Run by `scripts/demo`; leaves nothing running.

use std::time::{Duration, Instant};

use anyhow::Result;
use tn_agent::etcd::plan::ClusterView;
use tn_world::{boot_in_parallel, Inspector, Instance, Node, World};

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
    world.init_etcd_pki()?;
    println!(
        "  the etcd CA is in s3://{}/{}/pki/ (as `pki init --upload` or Terraform puts it)",
        world.bucket, world.cluster
    );
    let mut booted = Vec::new();
    for pool in POOLS {
        world.create_asg(pool.asg, pool.role, pool.size)?;
        let instances = world.asg_instances(pool.asg)?;
        println!(
            "  autoscaling group {:<20} role {:<6} {} instance(s)",
            pool.asg,
            pool.role,
            instances.len()
        );
        for inst in instances {
            booted.push((pool, inst));
        }
    }

    println!(
        "\n== etcd: three nodes boot at the same moment (bootstrap, start etcd, etcd promote)\n"
    );
    let etcd_config = world.etcd_config(120);
    let mut etcd_nodes = world.etcd_nodes("demo-etcd", 120)?;
    let started = Instant::now();
    let mut etcd = boot_in_parallel(&etcd_nodes.iter().collect::<Vec<_>>())?;
    let check = Inspector::new(
        &world,
        &etcd_nodes[0],
        &etcd_nodes.iter().collect::<Vec<_>>(),
    )?;
    let ids: Vec<String> = etcd_nodes.iter().map(|n| n.id.clone()).collect();
    let view = check.expect_members(
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
        Duration::from_secs(60),
    )?;
    println!(
        "all three are healthy voters {:.1} s after boot began\n",
        started.elapsed().as_secs_f64()
    );
    for node in &etcd_nodes {
        show_decisions(node)?;
    }
    show_members(&view);
    check.put("/demo/greeting", "written before the replacement")?;

    println!("\n== a member's instance is terminated; the ASG launches a replacement\n");
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
    let newcomer = world
        .asg_instances("demo-etcd")?
        .into_iter()
        .find(|i| !ids.contains(&i.id))
        .ok_or_else(|| anyhow::anyhow!("the ASG did not replace {gone}"))?;
    println!(
        "terminated {gone}; the ASG launched {} at {}",
        newcomer.id, newcomer.ip
    );
    let node = world.node(&newcomer, &etcd_config)?;
    let started = Instant::now();
    let new_etcd = node.boot_etcd()?;
    etcd_nodes.remove(victim);
    etcd.remove(victim);
    etcd_nodes.push(node);
    etcd.push(new_etcd);
    let nodes: Vec<&Node> = etcd_nodes.iter().collect();
    let check = Inspector::new(&world, nodes[0], &nodes)?;
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let view = check.expect_members(
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
        Duration::from_secs(60),
    )?;
    println!(
        "healed: three healthy voters again {:.1} s after the newcomer began to boot\n",
        started.elapsed().as_secs_f64()
    );
    show_decisions(etcd_nodes.last().unwrap())?;
    show_members(&view);
    println!(
        "read back after the replacement: /demo/greeting = {:?}",
        check.get("/demo/greeting")?.unwrap_or_default()
    );

    println!("\n== masters and workers: identity and peers (their role work is not built yet)\n");
    for (pool, inst) in booted.iter().filter(|(p, _)| p.role != "etcd") {
        let node = world.node(inst, &world.config(pool.role, pool.extra_config))?;
        boot(&node, pool, inst)?;
    }
    println!(
        "Stopping the world: etcd processes, moto_server, fake IMDS servers, node directories."
    );
    drop(etcd);
    drop(world);
    println!("Done; nothing left running.");
    Ok(())
}

fn show_decisions(node: &Node) -> Result<()> {
    let state = node.state()?;
    println!("{} ({}) decided:", node.id, node.ip);
    for d in state["decisions"].as_array().into_iter().flatten() {
        println!(
            "  - {}: {}",
            d["what"].as_str().unwrap_or("?"),
            d["why"].as_str().unwrap_or("?")
        );
    }
    println!("  AWS API calls: {}", state["aws_calls"]);
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

fn boot(node: &Node, pool: &Pool, inst: &Instance) -> Result<()> {
    let run = node.run(&["bootstrap"])?;
    let state = node.state().ok();
    println!(
        "{} ({}, {}) $ tn-agent bootstrap",
        inst.id, pool.role, inst.ip
    );
    if let Some(state) = &state {
        let id = &state["identity"];
        println!(
            "  identified: instance {} ip {} az {} region {} host {}",
            id["instance_id"].as_str().unwrap_or("?"),
            id["private_ip"].as_str().unwrap_or("?"),
            id["availability_zone"].as_str().unwrap_or("?"),
            id["region"].as_str().unwrap_or("?"),
            id["hostname"].as_str().unwrap_or("?"),
        );
        if let Some(peers) = state["asg"]["instances"].as_array() {
            println!(
                "  peers in {}: {}",
                state["asg"]["name"].as_str().unwrap_or("?"),
                peers
                    .iter()
                    .map(|p| format!(
                        "{} {} {}",
                        p["instance_id"].as_str().unwrap_or("?"),
                        p["private_ip"].as_str().unwrap_or("?"),
                        p["lifecycle_state"].as_str().unwrap_or("?")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        println!("  AWS API calls: {}", state["aws_calls"]);
    }
    match run.code {
        0 => println!("  bootstrap: done"),
        code => println!(
            "  bootstrap: exit {code}: {}",
            run.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
    println!();
    Ok(())
}
