//! Masters' and workers' reboots (SPEC §9) against the fake kube-apiserver, which enforces what
//! a real one would (RBAC from the masters' addon, the Node authorizer, NodeRestriction,
//! PodDisruptionBudgets on eviction): the lock ConfigMap taken and released by update with its
//! resourceVersion, cordon only when the node was schedulable, drain by eviction, reboot, Ready,
//! uncordon, release; a pool's max; a budget that refuses; a crash in the middle of a drain; what
//! a node's credentials cannot do; a master waiting for the other apiservers; and masters
//! restarting their apiservers one at a time after a renewal.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tn_agent::files;
use tn_agent::fsutil::Root;
use tn_agent::kube::apiserver_restart;
use tn_agent::kube::client::KubeClient;
use tn_agent::kube::render::reboot_locks_addon;
use tn_agent::pki::Ca;
use tn_agent::reboot::semaphore::Semaphore;
use tn_world::kube_api::{admin_cert, Amount, Budget, KubeApi, Pdb, PodSeed, Policy, Termination};
use tn_world::kube_reboot::{kube_node, node_name, request_reboot, simulate_kube_reboot};
use tn_world::reboot::{reboot_mark, reboot_state, Watch};
use tn_world::{Node, World};

/// A world with a fake apiserver whose CA signs the nodes' certificates, and the masters'
/// reboot-locks addon for `groups` (besides `master`) applied.
struct Cluster {
    world: World,
    ca: Ca,
    api: KubeApi,
}

impl Cluster {
    fn start(worker_groups: &[&str], policy: Policy) -> Cluster {
        let world = World::start().unwrap();
        let ca = Ca::generate("kubernetes").unwrap();
        let api = KubeApi::start_with(&ca, world.apiserver_addr(), policy).unwrap();
        let mut groups = vec!["master".to_string()];
        groups.extend(worker_groups.iter().map(|g| g.to_string()));
        api.apply_reboot_locks_addon(&reboot_locks_addon(&groups))
            .unwrap();
        Cluster { world, ca, api }
    }

    /// An ASG of `n` nodes of `role`, each with `reboot_extra` in its `[reboot]`.
    fn pool(&self, asg: &str, role: &str, n: i32, reboot_extra: &str) -> Vec<Node> {
        self.world.create_asg(asg, role, n).unwrap();
        self.world
            .asg_instances(asg)
            .unwrap()
            .iter()
            .map(|i| kube_node(&self.world, &self.api, &self.ca, i, role, reboot_extra).unwrap())
            .collect()
    }

    /// The group's document as stored (a group nobody used yet: one free slot).
    fn lock(&self, group: &str) -> Semaphore {
        let name = format!("tn-reboot-{group}");
        match self.api.configmap_value("kube-system", &name, "semaphore") {
            Some(doc) => Semaphore::parse(doc.as_bytes()).unwrap(),
            None => {
                assert!(self.api.configmap("kube-system", &name).is_some(), "{name}");
                Semaphore::new(1)
            }
        }
    }

    /// Runs the real kubectl with `kubeconfig`.
    fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .env("HOME", self.world.dir())
            .env("KUBECACHEDIR", self.world.dir().join("kubectl-cache"))
            .output()
            .expect("run kubectl")
    }
}

/// Waits up to `within` until `done`; fails saying `what` did not happen, with the node's
/// state and the watch's log.
fn await_node(node: &Node, watch: &Watch, within: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{} {what}: {:?}\n{}",
            node.id,
            reboot_state(node),
            watch.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `within` until the node's `reboot.json` satisfies `ok`.
fn await_state(
    node: &Node,
    watch: &Watch,
    within: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) {
    await_node(node, watch, within, "did not reach the state", || {
        reboot_state(node).is_some_and(|s| ok(&s))
    });
}

/// The nodes' reboot states and their watches' logs, for a failure message.
fn states_and_logs(nodes: &[Node], watches: &[Watch]) -> String {
    let states: Vec<_> = nodes.iter().map(reboot_state).collect();
    let logs: Vec<String> = watches.iter().map(Watch::log).collect();
    format!("{states:?}\n{}", logs.join("\n"))
}

fn why_has(s: &serde_json::Value, text: &str) -> bool {
    s["why"].as_str().is_some_and(|w| w.contains(text))
}

/// Done with its reboot: idle again, with a last reboot recorded.
fn idle_after_reboot(s: &serde_json::Value) -> bool {
    s["phase"] == "idle" && s["last_reboot"].is_string()
}

/// Waits until the node's reboot command has run; fails after `within`.
fn await_mark(node: &Node, watch: &Watch, within: Duration) {
    await_node(node, watch, within, "did not reboot", || {
        reboot_mark(node).exists()
    });
}

/// PATCHes of `node`'s Node by the node itself that cordon it.
fn own_cordons(api: &KubeApi, node: &str) -> usize {
    api.requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path == format!("/api/v1/nodes/{node}")
                && r.user.as_deref() == Some(&format!("system:node:{node}"))
                && r.body.contains(r#""unschedulable":true"#)
        })
        .count()
}

/// A pool of 4 with max 2, all needing a reboot: never more than 2 cordoned or holding a slot,
/// and 2 at once at some point; each node drained (only its DaemonSet pod left) when its reboot
/// command runs; at the end all Ready and schedulable, the lock free with max 2 kept, every
/// workload pod evicted and none deleted. Under the Node authorizer of Kubernetes 1.32 and later
/// (a node reads only its own Node and lists only its own pods).
#[test]
fn a_pool_of_four_reboots_two_at_a_time_each_drained_first() {
    let policy = Policy {
        node_selectors: true,
        ..Policy::default()
    };
    let c = Cluster::start(&["pool-a"], policy);
    let nodes = c.pool("pool-a", "worker", 4, "");
    let names: Vec<String> = nodes.iter().map(node_name).collect();
    for (i, name) in names.iter().enumerate() {
        let web = PodSeed::new("default", &format!("web-{i}"), name)
            .label("app", "web")
            .replicaset("web-5d4f8");
        c.api.add_pod(web).unwrap();
        let proxy =
            PodSeed::new("kube-system", &format!("kube-proxy-{i}"), name).daemonset("kube-proxy");
        c.api.add_pod(proxy).unwrap();
    }
    let run = nodes[0].run(&["reboot", "set-max", "2"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("group pool-a: max 2"), "{}", run.stdout);
    for node in &nodes {
        request_reboot(node).unwrap();
    }
    let mut watches: Vec<Watch> = nodes.iter().map(|n| Watch::start(n, 1).unwrap()).collect();
    let mut rebooted = [false; 4];
    let (mut most_cordoned, mut most_holders) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let cordoned = names.iter().filter(|n| c.api.unschedulable(n)).count();
        let holders = c.lock("pool-a").holders.len();
        assert!(
            cordoned <= 2 && holders <= 2,
            "{cordoned} cordoned, {holders} holders"
        );
        most_cordoned = most_cordoned.max(cordoned);
        most_holders = most_holders.max(holders);
        for (i, node) in nodes.iter().enumerate() {
            if rebooted[i] || !reboot_mark(node).exists() {
                continue;
            }
            assert_eq!(
                c.api.pods_on(&names[i]),
                [format!("kube-system/kube-proxy-{i}")],
                "drained before its reboot"
            );
            assert!(c.api.unschedulable(&names[i]), "cordoned during its reboot");
            simulate_kube_reboot(node, &c.api, &mut watches[i]).unwrap();
            watches[i] = Watch::start(node, 2).unwrap();
            rebooted[i] = true;
        }
        let done = nodes
            .iter()
            .all(|n| reboot_state(n).is_some_and(|s| idle_after_reboot(&s)));
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all rebooted: {}",
            states_and_logs(&nodes, &watches)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rebooted, [true; 4]);
    assert_eq!((most_cordoned, most_holders), (2, 2), "two at a time");
    for name in &names {
        let node = c.api.node(name).unwrap();
        assert!(!c.api.unschedulable(name), "{name} uncordoned");
        assert!(
            node["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"),
            "{name} Ready"
        );
    }
    let lock = c.lock("pool-a");
    assert_eq!((lock.max, lock.holders.len()), (2, 0), "{lock}");
    let mut evicted: Vec<String> = c.api.evictions().iter().map(|e| e.name.clone()).collect();
    evicted.sort();
    assert_eq!(evicted, ["web-0", "web-1", "web-2", "web-3"]);
    assert!(c.api.deletions().is_empty());
    // Every lock write was an update carrying the resourceVersion read.
    for r in c.api.requests() {
        if r.path.contains("/configmaps/") && r.method == "PUT" {
            assert!(r.body.contains(r#""resourceVersion""#), "{}", r.body);
        }
        assert!(
            r.method != "POST" || !r.path.ends_with("/configmaps"),
            "no create"
        );
    }
}

/// A budget that refuses the eviction: the drain gives up after `drain_timeout`, uncordons the
/// node, frees the slot and waits as long before trying again; the pod is never deleted. Once
/// the budget allows it, the node drains and reboots.
#[test]
fn a_disruption_budget_that_refuses_holds_the_reboot_back_until_it_allows_it() {
    let c = Cluster::start(&["pool-b"], Policy::default());
    let node = c
        .pool("pool-b", "worker", 1, "drain_timeout = \"3s\"")
        .remove(0);
    let name = node_name(&node);
    let db = PodSeed::new("default", "db-0", &name)
        .label("app", "db")
        .owned_by("StatefulSet", "db");
    c.api.add_pod(db).unwrap();
    let budget = Pdb::new(
        "default",
        "db",
        &[("app", "db")],
        Budget::MinAvailable(Amount::Count(1)),
    );
    c.api.add_pdb(budget).unwrap();
    request_reboot(&node).unwrap();
    let mut watch = Watch::start(&node, 1).unwrap();
    await_state(&node, &watch, Duration::from_secs(30), |s| {
        s["phase"] == "draining" && why_has(s, "refused by a PodDisruptionBudget: default/db-0")
    });
    assert!(c.api.unschedulable(&name), "cordoned while it drains");
    await_state(&node, &watch, Duration::from_secs(30), |s| {
        s["phase"] == "waiting" && why_has(s, "the drain did not finish within 3s")
    });
    let s = reboot_state(&node).unwrap();
    assert!(why_has(&s, "uncordoned, slot released"), "{s}");
    // The pause after giving up (as long as the drain): uncordoned, the slot free.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !c.api.unschedulable(&name),
        "uncordoned after the drain gave up"
    );
    assert!(c.lock("pool-b").holders.is_empty(), "the slot is free");
    assert!(!reboot_mark(&node).exists());
    assert!(c.api.pod("default", "db-0").is_some(), "never deleted");
    assert!(c.api.deletions().is_empty() && c.api.evictions().is_empty());

    c.api
        .set_pdb_budget("default", "db", Budget::MaxUnavailable(Amount::Count(1)))
        .unwrap();
    await_mark(&node, &watch, Duration::from_secs(30));
    assert!(c.api.unschedulable(&name));
    assert_eq!(c.api.evictions().len(), 1);
    assert!(c.api.deletions().is_empty());
    simulate_kube_reboot(&node, &c.api, &mut watch).unwrap();
    let watch = Watch::start(&node, 2).unwrap();
    await_state(&node, &watch, Duration::from_secs(30), idle_after_reboot);
    assert!(!c.api.unschedulable(&name));
    assert!(c.lock("pool-b").holders.is_empty());
}

/// A node an operator cordoned (with the real kubectl) is drained and rebooted, and stays
/// cordoned: the agent never touched `unschedulable`.
#[test]
fn a_node_an_operator_cordoned_stays_cordoned_after_its_reboot() {
    let c = Cluster::start(&["pool-c"], Policy::default());
    let node = c.pool("pool-c", "worker", 1, "").remove(0);
    let name = node_name(&node);
    let admin = c.world.dir().join("admin.conf");
    std::fs::write(&admin, c.api.kubeconfig(&admin_cert(&c.ca).unwrap())).unwrap();
    let out = c.kubectl(&admin, &["cordon", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.api
        .add_pod(PodSeed::new("default", "web-0", &name).replicaset("web-1"))
        .unwrap();
    request_reboot(&node).unwrap();
    let mut watch = Watch::start(&node, 1).unwrap();
    await_mark(&node, &watch, Duration::from_secs(30));
    assert_eq!(c.api.evictions().len(), 1, "drained all the same");
    let s = reboot_state(&node).unwrap();
    assert!(s.get("cordoned").is_none(), "not its cordon: {s}");
    simulate_kube_reboot(&node, &c.api, &mut watch).unwrap();
    let watch = Watch::start(&node, 2).unwrap();
    await_state(&node, &watch, Duration::from_secs(30), idle_after_reboot);
    assert!(c.api.unschedulable(&name), "still cordoned");
    assert_eq!(own_cordons(&c.api, &name), 0);
    let uncordons = c
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.user.as_deref() != Some("admin"))
        .count();
    assert_eq!(uncordons, 0, "the node never patched its Node");
    assert!(c.lock("pool-c").holders.is_empty());
}

/// The watch killed in the middle of a drain (a pod still terminating): restarted, it goes on
/// with the drain without cordoning again or taking its cordon for an operator's, holds one
/// slot throughout, and uncordons and releases after the boot.
#[test]
fn a_crash_during_the_drain_resumes_it_without_a_second_cordon_or_a_leaked_slot() {
    let policy = Policy {
        termination: Termination::Manual,
        ..Policy::default()
    };
    let c = Cluster::start(&["pool-d"], policy);
    let node = c.pool("pool-d", "worker", 1, "").remove(0);
    let name = node_name(&node);
    c.api
        .add_pod(PodSeed::new("default", "web-0", &name).replicaset("web-1"))
        .unwrap();
    request_reboot(&node).unwrap();
    let watch = Watch::start(&node, 1).unwrap();
    await_state(&node, &watch, Duration::from_secs(30), |s| {
        s["phase"] == "draining" && why_has(s, "1 terminating")
    });
    assert_eq!(reboot_state(&node).unwrap()["cordoned"], true);
    drop(watch); // SIGKILL: a crash
    assert_eq!(c.lock("pool-d").holders, [node.id.as_str()]);

    let mut watch = Watch::start(&node, 2).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let s = reboot_state(&node).unwrap();
    assert_eq!(
        (&s["phase"], &s["cordoned"]),
        (&"draining".into(), &true.into()),
        "{s}"
    );
    assert!(
        !reboot_mark(&node).exists(),
        "waits for the terminating pod"
    );
    assert!(c.api.finish_terminating("default", "web-0"));
    await_mark(&node, &watch, Duration::from_secs(30));
    assert_eq!(
        c.lock("pool-d").holders,
        [node.id.as_str()],
        "one slot, held"
    );
    simulate_kube_reboot(&node, &c.api, &mut watch).unwrap();
    let watch = Watch::start(&node, 3).unwrap();
    await_state(&node, &watch, Duration::from_secs(30), idle_after_reboot);
    assert!(!c.api.unschedulable(&name), "its own cordon undone");
    assert_eq!(own_cordons(&c.api, &name), 1, "cordoned once");
    assert_eq!(c.api.evictions().len(), 1, "evicted once");
    assert!(c.lock("pool-d").holders.is_empty());
}

/// What a node's own credentials (the kubelet's) cannot do, the fake enforcing the addon's RBAC,
/// the Node authorizer and NodeRestriction: read or write a group's lock the addon does not
/// name, create a ConfigMap, change another ConfigMap of kube-system, evict another node's pod
/// or cordon another node. `reboot` commands on a group outside the addon fail saying so.
#[test]
fn a_nodes_credentials_reach_only_the_named_locks_and_its_own_node() {
    let c = Cluster::start(&["pool-e"], Policy::default());
    let a = c.pool("pool-e", "worker", 1, "").remove(0);
    let b = c.pool("pool-f", "worker", 1, "").remove(0);
    let (a_name, b_name) = (node_name(&a), node_name(&b));
    c.api
        .add_pod(PodSeed::new("default", "web-b", &b_name).replicaset("web-1"))
        .unwrap();
    c.api
        .put_configmap_value("kube-system", "kube-proxy", "config.conf", "mode: iptables");

    // Its own group: fine, as the operator on that node.
    let run = a.run(&["reboot", "set-max", "1"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A group the addon does not name: forbidden, and said how to fix.
    let run = b.run(&["reboot", "set-max", "2"]).unwrap();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("forbidden")
            && run
                .stderr
                .contains("list group \"pool-f\" in the masters' `[reboot] worker_groups`"),
        "{}",
        run.stderr
    );
    let run = a
        .run(&["reboot", "unlock", &a.id, "--group", "pool-f"])
        .unwrap();
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("forbidden"), "{}", run.stderr);
    let run = b.run(&["reboot", "status"]).unwrap();
    assert!(
        run.stdout.contains("pool-f: unreadable") && run.stdout.contains("master: max 1"),
        "{}",
        run.stdout
    );

    let kubelet_conf = a.path("/etc/kubernetes/kubelet.conf");
    let denied = |args: &[&str]| {
        let out = c.kubectl(&kubelet_conf, args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success() && err.contains("forbidden"),
            "{args:?}: {err}"
        );
    };
    denied(&["-n", "kube-system", "create", "configmap", "tn-reboot-mine"]);
    denied(&["-n", "kube-system", "get", "configmap", "tn-reboot-pool-f"]);
    denied(&["-n", "kube-system", "get", "configmap", "kube-proxy"]);
    // kubectl cordon reports the refusal (its exit status is 0 whatever the patch answered).
    let out = c.kubectl(&kubelet_conf, &["cordon", &b_name]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "node \"{a_name}\" is not allowed to modify node \"{b_name}\""
        )),
        "{err}"
    );

    let client = KubeClient::from_kubeconfig(&kubelet_conf).unwrap();
    let err = c
        .world
        .block_on(client.evict("default", "web-b"))
        .unwrap_err();
    assert_eq!(err.code(), Some(403), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "node {a_name} can only evict pods with spec.nodeName set to itself"
        )),
        "{err}"
    );
    let err = c
        .world
        .block_on(client.set_unschedulable(&b_name, true))
        .unwrap_err();
    assert_eq!(err.code(), Some(403), "{err}");
    assert!(!c.api.unschedulable(&b_name));
    assert!(c.api.pod("default", "web-b").is_some());
    assert!(c.api.configmap("kube-system", "tn-reboot-mine").is_none());
}

/// A master reboots only while every other master's apiserver answers `/readyz`: with the
/// other one down it waits saying which; once it answers, it goes.
#[test]
fn a_master_waits_for_the_other_apiservers() {
    let c = Cluster::start(&[], Policy::default());
    let masters = c.pool("masters", "master", 2, "");
    let (me, other) = (&masters[0], &masters[1]);
    request_reboot(me).unwrap();
    let watch = Watch::start(me, 1).unwrap();
    await_state(me, &watch, Duration::from_secs(30), |s| {
        s["phase"] == "waiting" && why_has(s, &format!("the apiserver of master {}", other.id))
    });
    assert!(c.lock("master").holders.is_empty(), "no slot taken");
    // The other master's apiserver comes up, on its own address and the cluster's port.
    let port = c.api.addr().port();
    let _other_api = KubeApi::start_with(
        &c.ca,
        SocketAddr::new(other.ip.into(), port),
        Policy::default(),
    )
    .unwrap();
    await_mark(me, &watch, Duration::from_secs(30));
    assert_eq!(c.lock("master").holders, [me.id.as_str()]);
}

/// A worker terminated while it held its pool's only slot (a spot instance reclaimed in the
/// middle of its reboot): the next worker finds every slot held, asks EC2, frees the slot of the
/// instance that is gone, and reboots. A live holder's slot is never freed.
#[test]
fn the_slot_of_a_terminated_worker_is_freed_and_only_that() {
    let c = Cluster::start(&["pool-g"], Policy::default());
    let nodes = c.pool("pool-g", "worker", 3, "");
    let (gone, live, next) = (&nodes[0], &nodes[1], &nodes[2]);
    let held = |ids: &[&str]| {
        format!(
            r#"{{"semaphore":{},"max":1,"holders":{}}}"#,
            1 - ids.len() as i64,
            serde_json::to_string(ids).unwrap()
        )
    };
    // A live holder: the next one waits.
    c.api.put_configmap_value(
        "kube-system",
        "tn-reboot-pool-g",
        "semaphore",
        &held(&[&live.id]),
    );
    request_reboot(next).unwrap();
    let watch = Watch::start(next, 1).unwrap();
    await_state(next, &watch, Duration::from_secs(30), |s| {
        s["phase"] == "waiting" && why_has(s, &format!("held (by {})", live.id))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.lock("pool-g").holders,
        [live.id.as_str()],
        "a live holder keeps it"
    );
    // A holder whose instance is gone: freed, and the next one goes.
    c.api.put_configmap_value(
        "kube-system",
        "tn-reboot-pool-g",
        "semaphore",
        &held(&[&gone.id]),
    );
    c.world.terminate(&gone.id).unwrap();
    await_mark(next, &watch, Duration::from_secs(30));
    assert_eq!(c.lock("pool-g").holders, [next.id.as_str()]);
}

/// Client certificates as a master's bootstrap leaves them (`generation` tells renewals apart),
/// and its apiserver's manifest marked with them; the mark.
fn master_files(node: &Node, generation: u32) -> String {
    for cert in [
        files::APISERVER_ETCD_CLIENT.cert,
        files::APISERVER_KUBELET_CLIENT.cert,
        files::FRONT_PROXY_CLIENT.cert,
    ] {
        let path = node.path(cert);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{cert} generation {generation}\n")).unwrap();
    }
    apiserver_restart::client_certs_mark(&Root::new(&node.root)).unwrap()
}

/// The mark the master's apiserver manifest carries.
fn manifest_mark(node: &Node) -> Option<String> {
    apiserver_restart::manifest_mark(&Root::new(&node.root)).unwrap()
}

/// The apiserver's mirror pod as the kubelet keeps it: the manifest's mark, Ready or not.
fn mirror_pod(node: &Node, mark: &str, ready: bool) -> PodSeed {
    let name = node_name(node);
    let pod = PodSeed::new(
        "kube-system",
        &apiserver_restart::mirror_pod_name(&name),
        &name,
    )
    .mirror()
    .annotation(apiserver_restart::CLIENT_CERTS_MARK, mark);
    match ready {
        true => pod,
        false => pod.not_ready(),
    }
}

/// Both masters' client certificates renewed (as reconcile does 30 days before expiry): each
/// master's reboot manager restarts its apiserver, never both at once (each waits for the
/// master group's slot and for the other apiserver's `/readyz`), without a drain or a reboot;
/// a slot is released only when the mirror pod carries the renewed certificates' mark and is
/// Ready. The kubelet is played by the test: a changed manifest takes that master's apiserver
/// down for a while, then brings it back with the manifest's mark.
#[test]
fn masters_restart_their_apiservers_one_at_a_time_after_a_renewal() {
    let c = Cluster::start(&[], Policy::default());
    let masters = c.pool("masters", "master", 2, "");
    let port = c.api.addr().port();
    let start_api = |node: &Node| {
        KubeApi::start_with(
            &c.ca,
            SocketAddr::new(node.ip.into(), port),
            Policy::default(),
        )
        .unwrap()
    };
    // Booted: manifests written and marked as bootstrap does, apiservers up, mirror pods Ready.
    let mut apis: Vec<Option<KubeApi>> = Vec::new();
    for node in &masters {
        let path = node.path(files::APISERVER_MANIFEST);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: \
             kube-system\nspec:\n  containers:\n  - name: kube-apiserver\n",
        )
        .unwrap();
        let mark = master_files(node, 1);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = tn_agent::kube::render::with_annotation(
            &text,
            apiserver_restart::CLIENT_CERTS_MARK,
            &mark,
        )
        .unwrap();
        std::fs::write(&path, text).unwrap();
        c.api.add_pod(mirror_pod(node, &mark, true)).unwrap();
        apis.push(Some(start_api(node)));
    }
    let mut watches: Vec<Watch> = masters
        .iter()
        .map(|n| Watch::start(n, 1).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        masters
            .iter()
            .all(|n| reboot_state(n).is_none_or(|s| s["phase"] == "idle")),
        "nothing to do before the renewal"
    );

    let renewed: Vec<String> = masters.iter().map(|n| master_files(n, 2)).collect();
    // The kubelet: when a manifest's mark is not the running pod's, the apiserver goes down
    // (its mirror pod NotReady with the new mark), and is back 2 s later.
    let mut down_since: Vec<Option<Instant>> = vec![None; 2];
    let mut running: Vec<String> = masters.iter().map(|n| manifest_mark(n).unwrap()).collect();
    let mut restarts: Vec<(usize, Instant, Instant)> = Vec::new();
    let mut waited = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let holders = c.lock("master").holders;
        assert!(holders.len() <= 1, "{holders:?}");
        for (i, node) in masters.iter().enumerate() {
            waited |= reboot_state(node).is_some_and(|s| {
                s["phase"] == "waiting" && (why_has(&s, "held (by") || why_has(&s, "is not ready"))
            });
            if down_since[i].is_some() {
                assert_eq!(
                    holders,
                    [node.id.as_str()],
                    "held while its apiserver is down"
                );
            }
            let mark = manifest_mark(node).unwrap();
            if mark != running[i] && down_since[i].is_none() {
                assert_eq!(holders, [node.id.as_str()], "restarted holding the slot");
                assert!(
                    down_since.iter().all(Option::is_none),
                    "the other apiserver is down"
                );
                apis[i] = None;
                c.api.recreate_pod(mirror_pod(node, &mark, false)).unwrap();
                down_since[i] = Some(Instant::now());
            }
            if let Some(since) = down_since[i] {
                if since.elapsed() > Duration::from_secs(2) {
                    apis[i] = Some(start_api(node));
                    c.api.recreate_pod(mirror_pod(node, &mark, true)).unwrap();
                    running[i] = mark;
                    restarts.push((i, since, Instant::now()));
                    down_since[i] = None;
                }
            }
        }
        let done = masters.iter().enumerate().all(|(i, n)| {
            running[i] == renewed[i] && reboot_state(n).is_some_and(|s| s["phase"] == "idle")
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not both restarted: {}",
            states_and_logs(&masters, &watches)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(restarts.len(), 2, "one restart each");
    assert_ne!(restarts[0].0, restarts[1].0);
    assert!(restarts[0].2 <= restarts[1].1, "one after the other");
    assert!(waited, "the second master waited for the first");
    assert!(c.lock("master").holders.is_empty(), "slot released");
    for (node, watch) in masters.iter().zip(&mut watches) {
        assert!(!reboot_mark(node).exists(), "{} did not reboot", node.id);
        assert_eq!(watch.exited().unwrap(), None, "{}", watch.log());
        assert!(!c.api.unschedulable(&node_name(node)), "no cordon");
        let state = reboot_state(node).unwrap();
        assert!(state.get("restart").is_none(), "{state}");
    }
    // Nothing more to do: a second look changes nothing.
    std::thread::sleep(Duration::from_secs(2));
    assert!(c.lock("master").holders.is_empty());
    assert_eq!(
        masters
            .iter()
            .map(|n| manifest_mark(n).unwrap())
            .collect::<Vec<_>>(),
        renewed
    );
}
