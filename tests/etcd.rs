//! etcd membership against real etcd 3.4, moto and fake IMDS servers, TLS on: cold starts (all
//! instances founding at once), founders that start late, die before starting or lose their disk,
//! replacements, reboots, concurrent joins, stale data, scale-in and the safety refusals.
//! Each test checks the final member list (names = instance ids, all voters, all healthy) and
//! that data written before a change is still readable after it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tn_agent::etcd::model::MemberInfo;
use tn_agent::pki::Ca;
use tn_world::{boot_in_parallel, EtcdProcess, Inspector, Instance, Node, World};

use crate::support::cluster::{boot_cluster, world_with_etcd_asg, ASG, JOIN_TIMEOUT, SETTLE};
use crate::support::files::{files_under, mode, pem_body, pki_object};
use crate::support::state::{decisions, why};

fn refs(nodes: &[Node]) -> Vec<&Node> {
    nodes.iter().collect()
}

fn cold_start(n: i32) {
    let (world, _ca, nodes) = world_with_etcd_asg(n);
    let _etcd = boot_cluster(&world, &nodes);
    let check = Inspector::new(&world, &nodes[0], &refs(&nodes)).unwrap();
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
    // Every instance was in service when the seeder looked: all of them founded it, each
    // starting `new` with the same initial cluster (SPEC §7.6); nobody joined as a learner.
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let initial: Vec<String> = sorted
        .iter()
        .map(|n| format!("{}=https://{}:2380", n.id, n.ip))
        .collect();
    let founders: Vec<String> = marker["founders"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|f| {
            format!(
                "{}={}",
                f["instance_id"].as_str().unwrap(),
                f["peer_url"].as_str().unwrap()
            )
        })
        .collect();
    if n > 1 {
        assert_eq!(founders, initial, "{marker}");
    } else {
        assert!(founders.is_empty(), "a group of one founds alone: {marker}");
    }
    for node in &nodes {
        assert_eq!(
            env_value(node, "ETCD_INITIAL_CLUSTER_STATE"),
            "new",
            "{}",
            node.id
        );
        assert_eq!(
            env_value(node, "ETCD_INITIAL_CLUSTER"),
            initial.join(","),
            "{}",
            node.id
        );
        assert!(
            !decisions(node).contains(&"joined as learner".to_string()),
            "{}",
            node.id
        );
        if node.id != lowest {
            assert!(
                decisions(node).contains(&"founding member".to_string()),
                "{}",
                node.id
            );
        }
    }
    check.put("/before", "v1").unwrap();
    assert_eq!(check.get("/before").unwrap().as_deref(), Some("v1"));
    for node in &nodes {
        expect_node_pki(&world, node);
    }
}

/// The node's etcd certificates: keys 0600, SANs per SPEC §6, and the CA key nowhere on disk.
fn expect_node_pki(world: &World, node: &Node) {
    let mode = |p: &str| mode(&node.path(p));
    assert_eq!(mode("/etc/etcd/pki/server.key"), 0o600);
    assert_eq!(mode("/etc/etcd/pki/peer.key"), 0o600);
    assert_eq!(mode("/etc/etcd/pki/server.crt"), 0o644);
    let cert = std::fs::read_to_string(node.path("/etc/etcd/pki/server.crt")).unwrap();
    let info = tn_agent::pki::inspect(&cert).unwrap();
    let ips: Vec<String> = info.ips.iter().map(|i| i.to_string()).collect();
    assert!(
        ips.contains(&node.ip.to_string()) && ips.contains(&"127.0.0.1".into()),
        "{ips:?}"
    );
    assert!(info.dns_names.contains("localhost"), "{:?}", info.dns_names);
    assert!(info.server_auth && info.client_auth);
    let body = pem_body(&pki_object(world, "etcd-ca.key"));
    for file in files_under(&node.root) {
        let path = node.root.join(file);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let flat: String = text.lines().collect();
            assert!(!flat.contains(&body), "the CA key is in {}", path.display());
        }
    }
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

#[test]
fn cold_start_without_tls() {
    let world = World::start().unwrap();
    world.create_asg(ASG, "etcd", 3).unwrap();
    let config = world.config(
        "etcd",
        "[etcd]\ntls = false\ninsecure = true\njoin_timeout_seconds = 90\n",
    );
    let nodes: Vec<Node> = world
        .asg_instances(ASG)
        .unwrap()
        .iter()
        .map(|i| world.node(i, &config).unwrap())
        .collect();
    let all = refs(&nodes);
    let _etcd = boot_in_parallel(&all).unwrap();
    let env = std::fs::read_to_string(nodes[0].path("/etc/etcd/etcd.env")).unwrap();
    assert!(env.contains(&format!(
        "ETCD_LISTEN_CLIENT_URLS=http://{}:2379\n",
        nodes[0].ip
    )));
    assert!(!env.contains("CERT_FILE"), "{env}");
    assert!(!nodes[0].path("/etc/etcd/pki").exists());
    let check = Inspector::new(&world, &nodes[0], &all).unwrap();
    check.expect_nodes(&all, SETTLE).unwrap();
    check.put("/plain", "ok").unwrap();
    assert_eq!(check.get("/plain").unwrap().as_deref(), Some("ok"));
}

/// A booted cluster: the world, its nodes and their etcd processes.
struct Cluster {
    world: World,
    nodes: Vec<Node>,
    etcd: Vec<Option<EtcdProcess>>,
}

impl Cluster {
    fn boot(size: i32) -> Cluster {
        let (world, _ca, nodes) = world_with_etcd_asg(size);
        let etcd = boot_cluster(&world, &nodes).into_iter().map(Some).collect();
        let c = Cluster { world, nodes, etcd };
        c.check().put("/before", "v1").unwrap();
        c
    }

    fn running(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .zip(&self.etcd)
            .filter(|(_, e)| e.is_some())
            .map(|(n, _)| n)
            .collect()
    }

    fn check(&self) -> Inspector<'_> {
        let running = self.running();
        Inspector::new(&self.world, running[0], &running).unwrap()
    }

    /// Every node that runs etcd is a healthy voter, and nobody else is a member; data
    /// written at the start is still there.
    fn expect_healthy(&self) {
        self.check().expect_nodes(&self.running(), SETTLE).unwrap();
    }

    fn expect_data(&self) {
        assert_eq!(self.check().get("/before").unwrap().as_deref(), Some("v1"));
    }

    fn index_of(&self, id: &str) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    fn leader_name(&self) -> String {
        let view = self.check().view().unwrap();
        let leader = view.leader.unwrap();
        view.members
            .iter()
            .find(|m| m.id == leader)
            .unwrap()
            .name
            .clone()
    }

    /// SIGKILL a node's etcd (a crash, a power loss). While the others keep a quorum, waits
    /// until one of them leads (the killed one may have led: founders elect whichever wins),
    /// as an operator would before the next step, so that it does not race the election.
    fn kill(&mut self, i: usize) {
        self.etcd[i].take().unwrap().kill();
        if self.running().len() > self.nodes.len() / 2 {
            self.await_running_leader();
        }
    }

    /// Waits (at most [`SETTLE`]) until a running member leads.
    fn await_running_leader(&self) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let view = self.check().view();
            let led_by_running = view.as_ref().is_some_and(|v| {
                v.members.iter().any(|m| {
                    Some(m.id) == v.leader && self.running().iter().any(|n| n.id == m.name)
                })
            });
            if led_by_running {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no running member leads: {view:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Terminates node `i`'s instance (the ASG replaces it) and returns the replacement's node.
    fn terminate_and_replace(&mut self, i: usize, join_timeout: u32) -> Node {
        if self.etcd[i].is_some() {
            self.kill(i);
        }
        self.world.terminate(&self.nodes[i].id).unwrap();
        let newcomers = self.newcomers();
        let newcomer = newcomers.first().expect("the ASG launched a replacement");
        let node = self
            .world
            .node(newcomer, &self.world.etcd_config(join_timeout))
            .unwrap();
        self.nodes.remove(i);
        self.etcd.remove(i);
        node
    }

    /// The ASG's instances that are none of the cluster's nodes.
    fn newcomers(&self) -> Vec<Instance> {
        self.world.instances_besides(ASG, &self.nodes).unwrap()
    }

    fn add(&mut self, node: Node, etcd: EtcdProcess) {
        self.nodes.push(node);
        self.etcd.push(Some(etcd));
    }

    /// Boots `node` with the usual join timeout and adds it: the cluster must then be whole,
    /// with its data.
    fn join(&mut self, node: Node) {
        node.write_config(&self.world.etcd_config(JOIN_TIMEOUT))
            .unwrap();
        let etcd = node.boot_etcd().unwrap();
        self.add(node, etcd);
        self.expect_healthy();
        self.expect_data();
    }
}

fn replace(pick: impl Fn(&Cluster) -> String) {
    let mut c = Cluster::boot(3);
    let victim = pick(&c);
    let i = c.index_of(&victim);
    let newcomer = c.terminate_and_replace(i, JOIN_TIMEOUT);
    let etcd = newcomer.boot_etcd().unwrap();
    let made = decisions(&newcomer);
    assert!(made.contains(&"removed stale member".into()), "{made:?}");
    assert!(made.contains(&"joined as learner".into()), "{made:?}");
    let removed = why(&newcomer, "removed stale member");
    assert!(
        removed.contains(&format!("instance {victim} is gone from the ASG")),
        "{removed}"
    );
    // Its AWS calls: which group, the group, their addresses; the etcd CA and the marker. A
    // removal is decided only on a listing less than 1 s old: on a loaded machine the first
    // one can age past that before the members have answered, and the group is listed once
    // more (both calls).
    let state = newcomer.state().unwrap();
    let calls = &state.aws_calls_by_service;
    let relisted = u32::from(calls.get("ec2") == Some(&2));
    assert_eq!(
        *calls,
        BTreeMap::from([
            ("autoscaling".to_string(), 2 + relisted),
            ("ec2".to_string(), 1 + relisted),
            ("s3".to_string(), 3)
        ])
    );
    c.add(newcomer, etcd);
    c.expect_healthy();
    c.expect_data();
}

#[test]
fn replacement_of_a_member() {
    replace(|c| {
        let leader = c.leader_name();
        let seeder = c.nodes.iter().map(|n| n.id.clone()).min().unwrap();
        c.nodes
            .iter()
            .map(|n| n.id.clone())
            .find(|id| *id != leader && *id != seeder)
            .unwrap()
    });
}

#[test]
fn replacement_of_the_seeder() {
    replace(|c| c.nodes.iter().map(|n| n.id.clone()).min().unwrap());
}

#[test]
fn replacement_of_the_leader() {
    replace(|c| c.leader_name());
}

#[test]
fn reboot_of_a_member_changes_nothing() {
    let mut c = Cluster::boot(3);
    let before = c.check().view().unwrap();
    let i = 1;
    c.kill(i);
    // Written while the member is down: it must catch up after its restart.
    c.check().put("/during", "v2").unwrap();
    let node = &c.nodes[i];
    node.new_boot().unwrap();
    let calls_before = c.world.aws.seen().len();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        decisions(node),
        ["restart etcd with its data", "started as before"]
    );
    // Nothing needed deciding with AWS: not a single call.
    let state = node.state().unwrap();
    assert_eq!(state.aws_calls, 0, "{:?}", state.aws_calls_by_service);
    assert_eq!(c.world.aws.seen().len(), calls_before);
    let etcd = node.start_etcd().unwrap();
    let run = node.run(&["etcd", "promote"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("is a voter"), "{}", run.stdout);
    c.etcd[i] = Some(etcd);
    c.expect_healthy();
    let after = c.check().view().unwrap();
    let ids = |v: &tn_agent::etcd::model::ClusterView| {
        let mut ids: Vec<u64> = v.members.iter().map(|m| m.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&before), ids(&after), "no membership change");
    c.expect_data();
    // Read through the rebooted member only.
    let only = Inspector::new(&c.world, &c.nodes[i], &[&c.nodes[i]]).unwrap();
    assert_eq!(only.get("/during").unwrap().as_deref(), Some("v2"));
}

/// What a rebooted member cannot settle without AWS, it asks AWS: a run again within the same
/// boot (an operator's restart of the bootstrap), certificates within their renewal window
/// (renewed with the CA from the bucket), and a reboot that no member answers (the marker may
/// have changed: a restore).
#[test]
fn a_reboot_asks_aws_when_something_needs_it() {
    let mut c = Cluster::boot(3);
    let i = 1;
    c.kill(i);
    fn asks_aws(node: &Node, why: &str) {
        let run = node.run(&["bootstrap"]).unwrap();
        assert_eq!(run.code, 0, "{why}: {}", run.stderr);
        let state = node.state().unwrap();
        assert!(state.aws_calls > 0, "{why}: {:?}", state.decisions);
        assert!(
            !decisions(node).contains(&"started as before".to_string()),
            "{why}"
        );
        assert!(
            decisions(node).contains(&"restart etcd with its data".to_string()),
            "{why}"
        );
    }
    let node = &c.nodes[i];
    asks_aws(node, "the same boot");

    // A server certificate that expires in 10 days (renewed from 30 days before).
    let pem = |name: &str| pki_object(&c.world, name);
    let ca = Ca::from_pem(&pem("etcd-ca.crt"), &pem("etcd-ca.key")).unwrap();
    let cert = "/etc/etcd/pki/server.crt";
    crate::support::near_expiry(node, cert, &[ca], 10);
    let soon = std::fs::read_to_string(node.path(cert)).unwrap();
    node.new_boot().unwrap();
    asks_aws(node, "a certificate to renew");
    assert!(decisions(node).contains(&"issued etcd server certificate".to_string()));
    assert_ne!(std::fs::read_to_string(node.path(cert)).unwrap(), soon);

    // The whole cluster down: a reboot that no member answers.
    for j in [0, 2] {
        c.kill(j);
    }
    let node = &c.nodes[i];
    node.new_boot().unwrap();
    asks_aws(node, "no member answers");
}

#[test]
fn two_nodes_joining_at_once() {
    let mut c = Cluster::boot(1);
    c.world.set_desired_capacity(ASG, 3).unwrap();
    let newcomers: Vec<Node> = c
        .newcomers()
        .iter()
        .map(|i| c.world.node(i, &c.world.etcd_config(JOIN_TIMEOUT)).unwrap())
        .collect();
    assert_eq!(newcomers.len(), 2);
    let etcds = boot_in_parallel(&refs(&newcomers)).unwrap();
    for (node, etcd) in newcomers.into_iter().zip(etcds) {
        assert!(decisions(&node).contains(&"joined as learner".into()));
        c.add(node, etcd);
    }
    c.expect_healthy();
    c.expect_data();
}

#[test]
fn a_stale_data_dir_is_moved_aside_and_the_node_joins_fresh() {
    let mut c = Cluster::boot(3);
    let i = 2;
    c.kill(i);
    // While the node is away, an operator removes its member.
    let view = c.check().view().unwrap();
    let stale = view
        .members
        .iter()
        .find(|m| m.name == c.nodes[i].id)
        .unwrap()
        .id;
    let others: Vec<String> = c.running().iter().map(|n| n.client_url()).collect();
    let access = c.running()[0].etcd_access().unwrap();
    c.world.block_on(access.remove(&others, stale)).unwrap();

    let node = &c.nodes[i];
    let etcd = node.boot_etcd().unwrap();
    let made = decisions(node);
    assert!(made.contains(&"moved data dir aside".into()), "{made:?}");
    assert!(made.contains(&"joined as learner".into()), "{made:?}");
    let moved: Vec<String> = std::fs::read_dir(node.path("/var/lib/etcd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("moved-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    let kept = node.path(&format!("/var/lib/etcd/{}", moved[0]));
    assert!(
        kept.join("member/wal").is_dir(),
        "the old data is kept, not deleted"
    );
    assert!(kept.join("tn-agent-member.json").is_file());
    c.etcd[i] = Some(etcd);
    c.expect_healthy();
    let view = c.check().view().unwrap();
    assert!(
        view.members.iter().all(|m| m.id != stale),
        "a new member id"
    );
    c.expect_data();
}

#[test]
fn scale_in_with_leave() {
    let mut c = Cluster::boot(3);
    // The ASG's termination lifecycle hooks: etcd leave completes its own (etcd.leave_hook,
    // by default tn-etcd-leave) once the member is out, and leaves another team's alone.
    for hook in ["other-team-drain", "tn-etcd-leave"] {
        c.world
            .block_on(
                c.world
                    .autoscaling
                    .put_lifecycle_hook()
                    .auto_scaling_group_name(ASG)
                    .lifecycle_hook_name(hook)
                    .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
                    .heartbeat_timeout(600)
                    .send(),
            )
            .unwrap();
    }
    let lifecycle = &c.world.aws;
    let i = 2;
    let id = c.nodes[i].id.clone();
    c.nodes[i]
        .imds
        .set_target_lifecycle_state(Some("Terminated"));
    let run = c.nodes[i].run(&["etcd", "leave"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("removed member"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("completed lifecycle action tn-etcd-leave of demo-etcd"),
        "{}",
        run.stdout
    );
    let calls = lifecycle.calls_of("CompleteLifecycleAction");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["Action"], "CompleteLifecycleAction");
    assert_eq!(calls[0]["AutoScalingGroupName"], ASG);
    assert_eq!(calls[0]["LifecycleHookName"], "tn-etcd-leave");
    assert_eq!(calls[0]["InstanceId"], id);
    assert_eq!(calls[0]["LifecycleActionResult"], "CONTINUE");

    c.world.scale_in(&id).unwrap();
    c.kill(i);
    c.nodes.remove(i);
    c.etcd.remove(i);
    c.expect_healthy();
    c.expect_data();
}

#[test]
fn leave_is_refused_when_quorum_would_be_lost() {
    let mut c = Cluster::boot(3);
    c.kill(1);
    let run = c.nodes[2].run(&["etcd", "leave"]).unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("refusing to leave: removing member")
            && run
                .stderr
                .contains("would leave 1 healthy of 2 voters and quorum needs 2"),
        "{}",
        run.stderr
    );
    // Nothing changed: with the member back, the cluster is whole.
    let etcd = c.nodes[1].start_etcd().unwrap();
    c.etcd[1] = Some(etcd);
    c.expect_healthy();
    c.expect_data();
}

#[test]
fn a_replacement_that_would_lose_quorum_is_refused() {
    let mut c = Cluster::boot(3);
    // Two of three members down; one of them is terminated and replaced.
    c.kill(1);
    let newcomer = c.terminate_and_replace(2, 4);
    let run = newcomer.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("refusing to change membership: removing stale member")
            && run
                .stderr
                .contains("would leave 1 healthy of 2 voters and quorum needs 2"),
        "{}",
        run.stderr
    );
    assert!(
        !newcomer.path("/etc/etcd/etcd.env").exists(),
        "no env file: etcd must not start"
    );
    // Once the downed member is back, the same newcomer joins.
    c.etcd[1] = Some(c.nodes[1].start_etcd().unwrap());
    c.join(newcomer);
}

#[test]
fn the_marker_without_a_reachable_member_never_seeds_again() {
    let mut c = Cluster::boot(3);
    let marker = c.world.get_object("demo/etcd/cluster.json").unwrap();
    for i in 0..3 {
        c.kill(i);
    }
    c.world.set_desired_capacity(ASG, 4).unwrap();
    let inst = c.newcomers().into_iter().next().unwrap();
    let newcomer = c.world.node(&inst, &c.world.etcd_config(3)).unwrap();
    let run = newcomer.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("but no member answers; a new cluster is never started once it exists"),
        "{}",
        run.stderr
    );
    assert!(!decisions(&newcomer).contains(&"seeded cluster".into()));
    assert!(!newcomer.path("/etc/etcd/etcd.env").exists());
    assert_eq!(
        c.world.get_object("demo/etcd/cluster.json").unwrap(),
        marker
    );
    // The old members come back (a whole-cluster restart) and the newcomer joins them.
    for i in 0..3 {
        let node = &c.nodes[i];
        let run = node.run(&["bootstrap"]).unwrap();
        assert_eq!(run.code, 0, "{}", run.stderr);
        c.etcd[i] = Some(node.start_etcd().unwrap());
    }
    c.expect_healthy();
    c.join(newcomer);
}

#[test]
fn an_ip_reused_by_a_new_instance_replaces_the_old_member() {
    let mut c = Cluster::boot(3);
    let i = 2;
    let old_ip = c.nodes[i].ip;
    let replacement = c.terminate_and_replace(i, JOIN_TIMEOUT);
    // The new instance got the old one's private IP (EC2 reuses addresses of a subnet).
    drop(replacement);
    let newcomer = Instance {
        id: c.newcomers().into_iter().next().unwrap().id,
        ip: old_ip,
        lifecycle_state: "InService".into(),
    };
    let node = c
        .world
        .node(&newcomer, &c.world.etcd_config(JOIN_TIMEOUT))
        .unwrap();
    let etcd = node.boot_etcd().unwrap();
    let removed = why(&node, "removed stale member");
    assert!(
        removed.contains(&format!(
            "its peer URL https://{old_ip}:2380 now belongs to {}",
            newcomer.id
        )),
        "{removed}"
    );
    c.add(node, etcd);
    c.expect_healthy();
    c.expect_data();
}

#[test]
fn a_data_volume_that_is_not_mounted_yet_does_not_cost_the_member() {
    let mut c = Cluster::boot(3);
    let i = 1;
    c.kill(i);
    let before = c.check().view().unwrap();
    let node = &c.nodes[i];
    // The volume holding the data dir has not been mounted yet: the directory is empty.
    let data = node.path("/var/lib/etcd");
    let volume = node.path("/var/lib/etcd-volume");
    std::fs::rename(&data, &volume).unwrap();
    std::fs::create_dir(&data).unwrap();
    let dropin = node.path("/etc/tn-agent/config.d/50-quick.toml");
    std::fs::create_dir_all(dropin.parent().unwrap()).unwrap();
    std::fs::write(&dropin, "[etcd]\njoin_timeout_seconds = 5\n").unwrap();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("has no etcd data, but this node's member")
            && run
                .stderr
                .contains("if the data volume is not mounted yet, mount it"),
        "{}",
        run.stderr
    );
    assert_eq!(
        c.check().view().unwrap().members,
        before.members,
        "no member removed"
    );
    assert!(node.path("/var/lib/tn-agent/etcd-member.json").is_file());

    // Mounted: the member restarts as itself.
    std::fs::remove_dir(&data).unwrap();
    std::fs::rename(&volume, &data).unwrap();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        decisions(node).last().unwrap(),
        "restart etcd with its data"
    );
    c.etcd[i] = Some(node.start_etcd().unwrap());
    c.expect_healthy();
    c.expect_data();
}

/// The value of `KEY=` in the node's etcd env file.
fn env_value(node: &Node, key: &str) -> String {
    let env = std::fs::read_to_string(node.path("/etc/etcd/etcd.env")).unwrap();
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in etcd.env:\n{env}"))
        .to_string()
}

/// S3 stores the seeder's marker but the reply is lost on the way: the SDK's retry is answered
/// "already exists". The seeder recognises its own token and seeds instead of waiting forever
/// on its own marker.
#[test]
fn a_lost_reply_to_the_marker_put_still_seeds() {
    let (world, _ca, nodes) = world_with_etcd_asg(1);
    let proxy = &world.aws;
    proxy.drop_reply("PUT", "/etcd/cluster.json", 1);
    let node = &nodes[0];
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        proxy.replies_dropped(),
        1,
        "the put's reply was not dropped"
    );
    assert!(
        run.stderr
            .contains("the marker is this run's own (a lost reply)"),
        "{}",
        run.stderr
    );
    assert!(decisions(node).contains(&"seeded cluster".to_string()));
    let marker: serde_json::Value =
        serde_json::from_slice(&world.get_object("demo/etcd/cluster.json").unwrap().unwrap())
            .unwrap();
    assert_eq!(env_value(node, "ETCD_INITIAL_CLUSTER_STATE"), "new");
    assert_eq!(
        env_value(node, "ETCD_INITIAL_CLUSTER_TOKEN"),
        marker["token"].as_str().unwrap()
    );
    let _etcd = node.start_etcd().unwrap();
    Inspector::new(&world, node, &[node])
        .unwrap()
        .expect_nodes(&[node], SETTLE)
        .unwrap();
}

/// The seeder stored its marker and died before writing its files: its next run finishes the
/// seed with the marker's token. Anyone else finding that marker with nobody answering waits.
#[test]
fn a_seeder_that_died_after_its_marker_put_finishes_the_seed() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    let seeder = nodes.iter().min_by_key(|n| n.id.clone()).unwrap();
    let marker = serde_json::json!({
        "cluster": "demo",
        "token": "demo-00000000000000aa",
        "seeded_by": seeder.id,
        "seed_peer_url": tn_world::cluster::ETCD_PORTS.peer_url(seeder.ip),
        "seeded_at": "2026-12-02T00:00:00Z",
    });
    world
        .put_object("demo/etcd/cluster.json", marker.to_string().as_bytes())
        .unwrap();
    let other = nodes.iter().find(|n| n.id != seeder.id).unwrap();
    other.write_config(&world.etcd_config(3)).unwrap();
    let run = other.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!other.path("/etc/etcd/etcd.env").exists());
    other
        .write_config(&world.etcd_config(JOIN_TIMEOUT))
        .unwrap();

    let run = seeder.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        why(seeder, "seeded cluster").contains("finishing the seed"),
        "{}",
        why(seeder, "seeded cluster")
    );
    assert_eq!(env_value(seeder, "ETCD_INITIAL_CLUSTER_STATE"), "new");
    assert_eq!(
        env_value(seeder, "ETCD_INITIAL_CLUSTER_TOKEN"),
        "demo-00000000000000aa"
    );
    let mut etcd = vec![seeder.start_etcd().unwrap()];
    let rest: Vec<&Node> = nodes.iter().filter(|n| n.id != seeder.id).collect();
    etcd.extend(boot_in_parallel(&rest).unwrap());
    Inspector::new(&world, seeder, &refs(&nodes))
        .unwrap()
        .expect_nodes(&refs(&nodes), SETTLE)
        .unwrap();
}

/// A whole-cluster power loss while AWS is down: every member reboots with its data, record,
/// env file and certificates, cannot reach AWS, and restarts as itself; the cluster comes back
/// with the same members and its data. A member that has to join cannot do so without AWS.
#[test]
fn a_whole_cluster_restart_without_aws() {
    let mut c = Cluster::boot(3);
    let before = c.check().view().unwrap();
    for i in 0..3 {
        c.kill(i);
    }
    for node in &mut c.nodes {
        node.env
            .push(("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()));
    }
    // One by one, as boots come: the first finds nobody answering, the later ones find the
    // earlier ones listing them.
    for i in 0..3 {
        let node = &c.nodes[i];
        let run = node.run(&["bootstrap"]).unwrap();
        assert_eq!(run.code, 0, "{}", run.stderr);
        let state = node.state().unwrap();
        assert!(state.last_known_good.is_some(), "{:?}", state.decisions);
        assert!(
            decisions(node).contains(&"started with last-known-good files".to_string()),
            "{:?}",
            state.decisions
        );
        assert_eq!(state.asg, None);
        c.etcd[i] = Some(node.start_etcd().unwrap());
    }
    c.expect_healthy();
    c.expect_data();
    let mut ids: Vec<u64> = c
        .check()
        .view()
        .unwrap()
        .members
        .iter()
        .map(|m| m.id)
        .collect();
    let mut old: Vec<u64> = before.members.iter().map(|m| m.id).collect();
    ids.sort();
    old.sort();
    assert_eq!(ids, old, "no membership change");

    // A node with no data cannot join without AWS.
    c.world.set_desired_capacity(ASG, 4).unwrap();
    let inst = c.newcomers().into_iter().next().unwrap();
    let mut newcomer = c.world.node(&inst, &c.world.etcd_config(3)).unwrap();
    newcomer
        .env
        .push(("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()));
    let run = newcomer.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!newcomer.path("/etc/etcd/etcd.env").exists());
}

/// A member reboots while its instance metadata service does not answer: it comes back as
/// the node its last bootstrap recorded (saying so), and its timers (reconcile, backup) run.
/// Waiting for IMDS as a node with no record would (a minute) is not needed: a few seconds.
#[test]
fn a_member_reboots_while_imds_is_down() {
    let mut c = Cluster::boot(3);
    c.kill(1);
    c.nodes[1].imds.down();
    let node = &c.nodes[1];
    node.new_boot().unwrap();
    let started = std::time::Instant::now();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("going by the identity this node's last bootstrap recorded"),
        "{}",
        run.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    c.etcd[1] = Some(c.nodes[1].start_etcd().unwrap());
    c.expect_healthy();
    for args in [&["reconcile"][..], &["etcd", "backup", "--force"]] {
        let run = c.nodes[1].run(args).unwrap();
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    }
}

/// A node joins as a learner, starts, and dies before its promotion (its instance stays
/// alive): its learner blocks every join (etcd takes one at a time). The next joiner waits
/// `etcd.learner_timeout_seconds`, then removes it (a learner has no vote) and joins; the dead
/// node, back later, finds its member gone, moves its data aside and joins again.
#[test]
fn a_learner_that_stays_down_is_removed_by_the_next_joiner() {
    let mut c = Cluster::boot(1);
    c.world.set_desired_capacity(ASG, 3).unwrap();
    let mut newcomers: Vec<Node> = c
        .newcomers()
        .iter()
        .map(|i| c.world.node(i, &c.world.etcd_config(JOIN_TIMEOUT)).unwrap())
        .collect();
    let stuck = newcomers.remove(0);
    let run = stuck.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut etcd = stuck.start_etcd().unwrap();
    let deadline = std::time::Instant::now() + SETTLE;
    while !c
        .check()
        .view()
        .is_some_and(|v| v.members.iter().any(|m| m.name == stuck.id && m.is_learner))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the learner never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    etcd.kill();

    let joiner = newcomers.remove(0);
    joiner
        .write_config(&c.world.config(
            "etcd",
            "[etcd]\njoin_timeout_seconds = 60\nlearner_timeout_seconds = 3\n",
        ))
        .unwrap();
    let etcd = joiner.boot_etcd().unwrap();
    let removed = why(&joiner, "removed stale member");
    assert!(
        removed.contains(&format!("learner of {} has not answered for", stuck.id)),
        "{removed}"
    );
    c.add(joiner, etcd);
    c.expect_healthy();

    let etcd = stuck.boot_etcd().unwrap();
    assert!(decisions(&stuck).contains(&"moved data dir aside".to_string()));
    c.add(stuck, etcd);
    c.expect_healthy();
    c.expect_data();
}

/// A cold start of 3 in which founder `absent` has not booted: the other two form the cluster
/// (a quorum of the founders, SPEC §7.6), its member listed, never started (no client URL). Returns the
/// cluster (with `/before` written) and the founder that did not boot.
fn founders_without(absent: usize) -> (Cluster, Node, MemberInfo) {
    let (world, _ca, mut nodes) = world_with_etcd_asg(3);
    assert_ne!(absent, 0, "the lowest id seeds");
    let late = nodes.remove(absent);
    let etcd = boot_in_parallel(&refs(&nodes)).unwrap();
    let c = Cluster {
        world,
        nodes,
        etcd: etcd.into_iter().map(Some).collect(),
    };
    let deadline = Instant::now() + SETTLE;
    let view = loop {
        match c.check().view() {
            Some(v) if v.leader.is_some() => break v,
            other => assert!(Instant::now() < deadline, "no leader: {other:#?}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let unstarted = view
        .members
        .iter()
        .find(|m| m.peer_urls == [format!("https://{}:2380", late.ip)])
        .expect("the absent founder's member is listed")
        .clone();
    // etcd lists a founder under the name the initial cluster gives it; never started, it
    // has published no client URL.
    assert!(
        unstarted.name == late.id && unstarted.client_urls.is_empty() && !unstarted.is_learner,
        "{unstarted:?}"
    );
    assert_eq!(view.members.len(), 3);
    c.check().put("/before", "v1").unwrap();
    (c, late, unstarted)
}

fn member_ids(view: &tn_agent::etcd::model::ClusterView) -> BTreeSet<u64> {
    view.members.iter().map(|m| m.id).collect()
}

/// A founder that boots after the others formed the cluster takes its founding member: it
/// starts `new` with the founders, keeps the member id the founding gave it, and no member is
/// added or removed.
#[test]
fn a_founder_that_starts_late_takes_its_founding_member() {
    let (mut c, late, unstarted) = founders_without(1);
    let before = c.check().view().unwrap();
    let etcd = late.boot_etcd().unwrap();
    let found = why(&late, "founding member");
    assert!(found.contains("listed but never started"), "{found}");
    assert_eq!(env_value(&late, "ETCD_INITIAL_CLUSTER_STATE"), "new");
    assert!(!decisions(&late).contains(&"joined as learner".to_string()));
    let id = late.id.clone();
    c.add(late, etcd);
    c.expect_healthy();
    c.expect_data();
    let after = c.check().view().unwrap();
    assert_eq!(
        member_ids(&before),
        member_ids(&after),
        "no membership change"
    );
    assert!(
        after
            .members
            .iter()
            .any(|m| m.id == unstarted.id && m.name == id),
        "{after:#?}"
    );
}

/// The agent's clock shifted 340 days ahead, as a soak lives a year of the cluster in minutes:
/// reconcile judges the member's certificates (a year long by the system clock) by its own
/// clock, finds them within 30 days of expiry and renews them; the new ones are valid by both
/// clocks (etcd checks the system's) and the member keeps serving over them; a second run at the
/// same time renews nothing.
#[test]
fn certificates_go_by_the_agents_clock() {
    let mut c = Cluster::boot(1);
    let cert = "/etc/etcd/pki/server.crt";
    let read = |node: &Node| std::fs::read_to_string(node.path(cert)).unwrap();
    let issued = read(&c.nodes[0]);
    let run = c.nodes[0].run(&["reconcile"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(read(&c.nodes[0]), issued, "not due by the system clock");

    let ahead = time::Duration::days(340);
    c.nodes[0].env.push((
        "TN_AGENT_CLOCK_OFFSET_SECONDS".into(),
        ahead.whole_seconds().to_string(),
    ));
    let run = c.nodes[0].run(&["reconcile"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let renewed = read(&c.nodes[0]);
    assert_ne!(renewed, issued, "due by the agent's clock");
    let info = tn_agent::pki::inspect(&renewed).unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(
        info.not_before <= now,
        "valid now by the system clock: {info:?}"
    );
    assert!(
        info.not_after - (now + ahead) > time::Duration::days(360),
        "a year long by the agent's clock: {info:?}"
    );
    let run = c.nodes[0].run(&["reconcile"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(read(&c.nodes[0]), renewed, "renewed once");
    c.check().put("/after-renewal", "v").unwrap();
    c.expect_healthy();
}

/// A cold start seen from one founder: the seeder's etcd runs but cannot answer clients (one
/// founder of three is no quorum), and the founder founds at once on what the seeder's peer port
/// lists, its member never started, without waiting on the seeder's client port; the founders
/// then form the cluster.
#[test]
fn a_founder_founds_on_what_the_peer_ports_list() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    let (seeder, founder, last) = (&nodes[0], &nodes[1], &nodes[2]);
    let run = seeder.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(decisions(seeder).contains(&"seeded cluster".to_string()));
    let seeder_etcd = seeder.start_etcd().unwrap();
    let check = Inspector::new(&world, seeder, &[seeder]).unwrap();
    // The seeder's peer port runs (etcd serves it at once) while its client port says nothing.
    let deadline = Instant::now() + SETTLE;
    while std::net::TcpStream::connect((seeder.ip, 2380)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the seeder's etcd does not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        check.view().is_none(),
        "one founder of three answers clients"
    );

    let run = founder.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let found = why(founder, "founding member");
    assert!(found.contains("is listed but never started"), "{found}");
    assert_eq!(env_value(founder, "ETCD_INITIAL_CLUSTER_STATE"), "new");

    let etcd = vec![
        seeder_etcd,
        founder.start_etcd().unwrap(),
        last.boot_etcd().unwrap(),
    ];
    let c = Cluster {
        world,
        nodes,
        etcd: etcd.into_iter().map(Some).collect(),
    };
    c.expect_healthy();
}

/// A founder whose instance dies before it ever started etcd: the ASG's replacement removes the
/// founding member that never started (quorum kept: the others are healthy) and joins.
#[test]
fn a_founder_that_dies_before_starting_is_replaced() {
    let (mut c, dead, unstarted) = founders_without(2);
    c.world.terminate(&dead.id).unwrap();
    let replacement = c
        .newcomers()
        .into_iter()
        .find(|i| i.id != dead.id)
        .expect("the ASG launched a replacement");
    let node = c
        .world
        .node(&replacement, &c.world.etcd_config(JOIN_TIMEOUT))
        .unwrap();
    let etcd = node.boot_etcd().unwrap();
    let removed = why(&node, "removed stale member");
    assert!(removed.contains("never started"), "{removed}");
    assert!(decisions(&node).contains(&"joined as learner".to_string()));
    c.add(node, etcd);
    c.expect_healthy();
    c.expect_data();
    let after = c.check().view().unwrap();
    assert!(!member_ids(&after).contains(&unstarted.id), "{after:#?}");
}

/// A founder that ran and then lost its disk (data dir, the agent's record and env file): even
/// though the marker still names it as a founder, it never starts `new` again under its old
/// member id; the member list says its member ran, so that member is removed and it joins as a
/// new one.
#[test]
fn a_founder_that_lost_its_disk_after_the_formation_joins_as_a_new_member() {
    let mut c = Cluster::boot(3);
    let i = 1;
    c.kill(i);
    let node = &c.nodes[i];
    let old_id = c
        .check()
        .view()
        .unwrap()
        .members
        .iter()
        .find(|m| m.name == node.id)
        .unwrap()
        .id;
    std::fs::remove_dir_all(node.path("/var/lib/etcd")).unwrap();
    std::fs::create_dir(node.path("/var/lib/etcd")).unwrap();
    std::fs::remove_file(node.path("/var/lib/tn-agent/etcd-member.json")).unwrap();
    std::fs::remove_file(node.path("/etc/etcd/etcd.env")).unwrap();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!decisions(node).contains(&"founding member".to_string()));
    assert_eq!(env_value(node, "ETCD_INITIAL_CLUSTER_STATE"), "existing");
    let removed = why(node, "removed stale member");
    assert!(removed.contains("earlier member"), "{removed}");
    c.etcd[i] = Some(node.start_etcd().unwrap());
    let run = node.run(&["etcd", "promote"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    c.expect_healthy();
    c.expect_data();
    let view = c.check().view().unwrap();
    let new_id = view.members.iter().find(|m| m.name == node.id).unwrap().id;
    assert_ne!(new_id, old_id, "a new member, not the old one");
}

/// The AWS calls of a cold start of 3 whose config names the etcd ASG (`etcd.asg`), from each
/// node's `state.json`: one AutoScaling call (the group, with its instances' lifecycle states)
/// and one EC2 call (their addresses) per node; in S3 the etcd CA's certificate and key, the
/// marker (read until it exists: a founder may look before the seeder wrote it), and the
/// seeder's put.
#[test]
fn a_cold_start_stays_within_its_aws_call_budget() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    for node in &nodes {
        node.write_config(&world.config(
            "etcd",
            &format!("[etcd]\nasg = \"{ASG}\"\njoin_timeout_seconds = {JOIN_TIMEOUT}\n"),
        ))
        .unwrap();
    }
    let _etcd = boot_cluster(&world, &nodes);
    for node in &nodes {
        let state = node.state().unwrap();
        let calls = &state.aws_calls_by_service;
        let seeder = decisions(node).contains(&"seeded cluster".to_string());
        assert_eq!(calls.get("autoscaling"), Some(&1), "{}: {calls:?}", node.id);
        assert_eq!(calls.get("ec2"), Some(&1), "{}: {calls:?}", node.id);
        let s3 = calls.get("s3").copied().unwrap_or_default();
        assert_eq!(
            state.s3_keys_read,
            [
                "demo/pki/etcd-ca.crt",
                "demo/pki/etcd-ca.key",
                "demo/etcd/cluster.json"
            ]
        );
        match seeder {
            // The CA, the marker's absence, the put.
            true => assert_eq!(s3, 4, "{}: {calls:?}", node.id),
            // The CA, the marker: read until it is there (the seeder writes it in well under
            // a second; a look every 300 ms to 1 s).
            false => assert!((3..=5).contains(&s3), "{}: {calls:?}", node.id),
        }
        assert_eq!(state.aws_calls, calls.values().sum::<u32>());
    }
}

/// An etcd node whose `etcd.asg` names a group it is not in: exit 2 (bad input) naming both,
/// before anything is written.
#[test]
fn an_etcd_asg_that_is_not_the_nodes_own_group_is_bad_input() {
    let (world, _ca, nodes) = world_with_etcd_asg(1);
    world.create_asg("demo-other", "etcd", 1).unwrap();
    let node = &nodes[0];
    node.write_config(&world.config("etcd", "[etcd]\nasg = \"demo-other\"\n"))
        .unwrap();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "this instance {} is not in autoscaling group demo-other",
            node.id
        )),
        "{}",
        run.stderr
    );
    for file in [
        "/etc/etcd/etcd.env",
        "/etc/etcd/pki/ca.crt",
        "/etc/etcd/pki/server.key",
    ] {
        assert!(!node.path(file).exists(), "{file} was written");
    }
}
