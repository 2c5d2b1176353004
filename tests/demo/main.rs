//! The local demo: a simulated cluster's nodes booting with tn-agent in a local AWS world.
//! Run by `scripts/demo`; leaves nothing running.

use anyhow::Result;
use tn_world::{Instance, Node, World};

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

    println!("\nEach node has its own --root and a fake IMDSv2 on its private IP; booting them:\n");
    for (pool, inst) in &booted {
        let node = world.node(inst, &world.config(pool.role, pool.extra_config))?;
        boot(&node, pool, inst)?;
    }
    println!("Stopping the world: moto_server, fake IMDS servers, node directories.");
    drop(world);
    println!("Done; nothing left running.");
    Ok(())
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
