//! etcd clusters as the etcd and status tests start them: a world with the etcd CA in its state
//! bucket and an ASG of etcd nodes, booted as their units would and settled.

use std::time::Duration;

use tn_agent::pki::Ca;
use tn_world::{boot_in_parallel, EtcdProcess, Inspector, Node, World};

pub const ASG: &str = "demo-etcd";
/// How long bootstrap and promote may wait in these tests.
pub const JOIN_TIMEOUT: u32 = 90;
/// How long a test waits for the cluster to settle.
pub const SETTLE: Duration = Duration::from_secs(30);

/// A world with the etcd CA in its state bucket and an etcd ASG of `size`: the CA and a node
/// (not booted) for each instance.
pub fn world_with_etcd_asg(size: i32) -> (World, Ca, Vec<Node>) {
    let world = World::start().unwrap();
    let ca = world.init_etcd_pki().unwrap();
    world.create_asg(ASG, "etcd", size).unwrap();
    let nodes = world.etcd_nodes(ASG, JOIN_TIMEOUT).unwrap();
    (world, ca, nodes)
}

/// Boots every node at once and waits until they are all healthy voters with a leader.
pub fn boot_cluster(world: &World, nodes: &[Node]) -> Vec<EtcdProcess> {
    let all: Vec<&Node> = nodes.iter().collect();
    let etcd = boot_in_parallel(&all).unwrap();
    Inspector::new(world, &nodes[0], &all)
        .unwrap()
        .expect_nodes(&all, SETTLE)
        .unwrap();
    etcd
}
