//! The fake kube-apiserver (`tn_world::kube_api`) kept honest: the real kubectl (v1.31 and
//! v1.32, as Google Cloud SDK's dispatcher picks them by the server's version) gets, cordons
//! and uncordons through it, and a rustls client with the certificates a node and an admin
//! hold meets the rules SPEC §9's reboots rely on: NodeRestriction, the lock ConfigMaps'
//! RBAC and resourceVersion, PodDisruptionBudgets on eviction, and 401 without a valid
//! client certificate.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};
use tn_agent::http::{HttpClient, HttpError, Timeouts};
use tn_agent::pki::{Ca, Leaf};
use tn_world::kube_api::{
    admin_cert, client_cert, node_cert, Amount, Budget, KubeApi, LockCreate, LockNames, Pdb,
    PodSeed, Policy, Termination, LOCALHOST,
};

const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const JSON: &str = "application/json";
const LOCK: &str = "/api/v1/namespaces/kube-system/configmaps/tn-reboot-workers";
const LOCKS: &str = "/api/v1/namespaces/kube-system/configmaps";

/// A fake with the baseline the tests change one thing of: nodes n1 and n2, a ReplicaSet's
/// pods `default/web-1` (n1) and `default/web-2` (n2) labelled `app=web`, on n1 a DaemonSet
/// pod, a mirror pod and a finished pod, and the ConfigMap `kube-system/kube-proxy`.
struct Fake {
    ca: Ca,
    api: KubeApi,
    dir: tempfile::TempDir,
}

impl Fake {
    fn start() -> Fake {
        Fake::with_policy(Policy::default())
    }

    fn with_policy(policy: Policy) -> Fake {
        let ca = Ca::generate("kubernetes").unwrap();
        let api = KubeApi::start_with(&ca, SocketAddr::new(LOCALHOST, 0), policy).unwrap();
        api.add_node("n1", &[]).unwrap();
        api.add_node("n2", &[("node-role.kubernetes.io/worker", "")])
            .unwrap();
        for (name, node) in [("web-1", "n1"), ("web-2", "n2")] {
            let pod = PodSeed::new("default", name, node)
                .label("app", "web")
                .replicaset("web-5d4f8");
            api.add_pod(pod).unwrap();
        }
        let on_n1 = [
            PodSeed::new("kube-system", "kube-proxy-n1", "n1").daemonset("kube-proxy"),
            PodSeed::new("kube-system", "kube-apiserver-n1", "n1").mirror(),
            PodSeed::new("default", "job-done", "n1")
                .owned_by("Job", "job")
                .phase("Succeeded"),
        ];
        for pod in on_n1 {
            api.add_pod(pod).unwrap();
        }
        api.put_configmap_value("kube-system", "kube-proxy", "config.conf", "mode: iptables");
        let dir = tempfile::tempdir().unwrap();
        Fake { ca, api, dir }
    }

    fn admin(&self) -> Client {
        Client::new(&self.api, Some(&admin_cert(&self.ca).unwrap()))
    }

    fn node(&self, name: &str) -> Client {
        Client::new(&self.api, Some(&node_cert(&self.ca, name).unwrap()))
    }

    /// Writes a kubeconfig for `user` and returns its path.
    fn kubeconfig(&self, name: &str, user: &Leaf) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, self.api.kubeconfig(user)).unwrap();
        path
    }

    /// Runs `/usr/bin/kubectl` with `kubeconfig`; its cache under the test's directory.
    fn kubectl(&self, kubeconfig: &PathBuf, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .env("HOME", self.dir.path())
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .output()
            .expect("run kubectl")
    }
}

/// kubectl's stdout, asserting it succeeded.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The agent's TLS client holding a certificate (or none), trusting only the fake's CA.
struct Client {
    rt: tokio::runtime::Runtime,
    http: HttpClient,
    base: String,
}

impl Client {
    fn new(api: &KubeApi, identity: Option<&Leaf>) -> Client {
        Client::trusting(api, identity, api.ca_pem())
    }

    fn trusting(api: &KubeApi, identity: Option<&Leaf>, ca_pem: &str) -> Client {
        let pem = identity.map(|leaf| format!("{}{}", leaf.cert_pem, leaf.key_pem));
        let timeouts = Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(15),
        };
        Client {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: HttpClient::tls(
                ca_pem.as_bytes(),
                pem.as_ref().map(|p| p.as_bytes()),
                timeouts,
            )
            .unwrap(),
            base: api.url(),
        }
    }

    /// Sends a request; the status and the JSON answered (`Null` if not JSON).
    fn send(&self, method: &str, path: &str, body: Option<(&str, Value)>) -> (u16, Value) {
        self.try_send(method, path, body).unwrap()
    }

    fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Value)>,
    ) -> Result<(u16, Value), HttpError> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        let body = match body {
            Some((content_type, body)) => {
                req = req.header("content-type", content_type);
                body.to_string().into()
            }
            None => Default::default(),
        };
        let resp = self.rt.block_on(self.http.send(req.body(body).unwrap()))?;
        let status = resp.status().as_u16();
        Ok((
            status,
            serde_json::from_slice(resp.body()).unwrap_or(Value::Null),
        ))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }
}

fn eviction(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    })
}

fn evict(client: &Client, namespace: &str, name: &str) -> (u16, Value) {
    client.send(
        "POST",
        &format!("/api/v1/namespaces/{namespace}/pods/{name}/eviction"),
        Some((JSON, eviction(namespace, name))),
    )
}

/// Asserts a failure Status: its code, reason and message.
fn assert_status(answer: &(u16, Value), code: u16, reason: &str, message: &str) {
    let (status, body) = answer;
    assert_eq!(*status, code, "{body:#}");
    assert_eq!(body["kind"], "Status", "{body:#}");
    assert_eq!(body["apiVersion"], "v1", "{body:#}");
    assert_eq!(body["status"], "Failure", "{body:#}");
    assert_eq!(body["code"], code, "{body:#}");
    assert_eq!(body["reason"], reason, "{body:#}");
    assert_eq!(body["message"], message, "{body:#}");
}

fn lock_body(rv: Option<&str>, semaphore: &str) -> Value {
    let mut cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "tn-reboot-workers", "namespace": "kube-system"},
        "data": {"semaphore": semaphore},
    });
    if let Some(rv) = rv {
        cm["metadata"]["resourceVersion"] = rv.into();
    }
    cm
}

fn rv(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn kubectl_gets_cordons_and_uncordons_through_the_fake() {
    for version in ["v1.31.4", "v1.32.4"] {
        let fake = Fake::start();
        fake.api.set_version(version);
        fake.api.put_configmap_value(
            "kube-system",
            "tn-reboot-workers",
            "semaphore",
            r#"{"semaphore":1,"max":1,"holders":null}"#,
        );
        let admin = fake.kubeconfig("admin", &admin_cert(&fake.ca).unwrap());

        let nodes = ok(fake.kubectl(&admin, &["get", "nodes"]));
        let rows: Vec<Vec<&str>> = nodes
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0],
            ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            "{nodes}"
        );
        assert_eq!(rows[1][..3], ["n1", "Ready", "<none>"], "{nodes}");
        assert_eq!(rows[2][..3], ["n2", "Ready", "worker"], "{nodes}");

        let pods = ok(fake.kubectl(&admin, &["get", "pods", "-A"]));
        let pods: Vec<(&str, &str, &str)> = pods
            .lines()
            .skip(1)
            .map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols[0], cols[1], cols[3])
            })
            .collect();
        assert_eq!(
            pods,
            [
                ("default", "job-done", "Completed"),
                ("default", "web-1", "Running"),
                ("default", "web-2", "Running"),
                ("kube-system", "kube-apiserver-n1", "Running"),
                ("kube-system", "kube-proxy-n1", "Running"),
            ]
        );

        let cm: Value = serde_json::from_str(&ok(fake.kubectl(
            &admin,
            &[
                "get",
                "configmap",
                "-n",
                "kube-system",
                "tn-reboot-workers",
                "-o",
                "json",
            ],
        )))
        .unwrap();
        assert_eq!(cm["kind"], "ConfigMap");
        assert_eq!(
            cm["data"]["semaphore"],
            r#"{"semaphore":1,"max":1,"holders":null}"#
        );
        assert_eq!(
            cm["metadata"]["resourceVersion"],
            fake.api
                .configmap("kube-system", "tn-reboot-workers")
                .unwrap()["metadata"]["resourceVersion"]
        );

        assert_eq!(
            ok(fake.kubectl(&admin, &["cordon", "n1"])),
            "node/n1 cordoned\n"
        );
        assert!(fake.api.unschedulable("n1"));
        assert!(!fake.api.unschedulable("n2"));
        let nodes = ok(fake.kubectl(&admin, &["get", "nodes"]));
        assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
        assert_eq!(
            ok(fake.kubectl(&admin, &["cordon", "n1"])),
            "node/n1 already cordoned\n"
        );
        assert_eq!(
            ok(fake.kubectl(&admin, &["uncordon", "n1"])),
            "node/n1 uncordoned\n"
        );
        assert!(!fake.api.unschedulable("n1"));
        // As a real apiserver, `unschedulable: false` is not written (omitempty).
        assert_eq!(fake.api.node("n1").unwrap()["spec"], json!({}));

        let seen = fake.api.requests();
        let patches: Vec<(&str, &str)> = seen
            .iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| (r.content_type.as_deref().unwrap(), r.body.as_str()))
            .collect();
        assert_eq!(
            patches,
            [
                (
                    "application/strategic-merge-patch+json",
                    r#"{"spec":{"unschedulable":true}}"#
                ),
                (
                    "application/strategic-merge-patch+json",
                    r#"{"spec":{"unschedulable":null}}"#
                ),
            ],
            "{version}"
        );
        assert!(
            seen.iter()
                .all(|r| r.status < 400 && r.user.as_deref() == Some("admin")),
            "{version}: {seen:#?}"
        );
        // kubectl asked for the discovery documents and for tables, never for OpenAPI.
        let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
        assert!(paths.contains(&"/api/v1?timeout=32s"), "{paths:?}");
        assert!(
            !paths.iter().any(|p| p.starts_with("/openapi")),
            "{paths:?}"
        );

        // client-go sends its certificate whatever CAs the server hints; the authenticator
        // refuses it.
        let other_ca = Ca::generate("kubernetes").unwrap();
        let foreign = fake.kubeconfig("foreign", &admin_cert(&other_ca).unwrap());
        let before = fake.api.requests().len();
        let out = fake.kubectl(&foreign, &["get", "nodes"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("You must be logged in to the server (Unauthorized)"),
            "{err}"
        );
        let refused = &fake.api.requests()[before..];
        assert!(!refused.is_empty());
        assert!(
            refused.iter().all(|r| r.status == 401 && r.user.is_none()),
            "{refused:#?}"
        );
    }
}

#[test]
fn a_node_patches_its_own_node_only() {
    let fake = Fake::start();
    let n1 = fake.node("n1");
    let cordon = json!({"spec": {"unschedulable": true}});

    let (status, node) = n1.send("PATCH", "/api/v1/nodes/n1", Some((MERGE, cordon.clone())));
    assert_eq!(status, 200, "{node:#}");
    assert_eq!(node["spec"]["unschedulable"], true);
    assert!(fake.api.unschedulable("n1"));

    let other = n1.send("PATCH", "/api/v1/nodes/n2", Some((MERGE, cordon.clone())));
    assert_status(
        &other,
        403,
        "Forbidden",
        r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#,
    );
    assert_eq!(other.1["details"], json!({"name": "n2", "kind": "nodes"}));
    assert!(!fake.api.unschedulable("n2"));

    // Each change one thing from the Node n1 may patch.
    let cases: &[(&str, &str, Value, u16, &str)] = &[
        (
            "uncordon by JSON patch",
            JSON_PATCH,
            json!([{"op": "remove", "path": "/spec/unschedulable"}]),
            200,
            "",
        ),
        (
            "taints are the node controller's",
            MERGE,
            json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
            403,
            r#"nodes "n1" is forbidden: node "n1" is not allowed to modify taints"#,
        ),
        (
            "no role labels",
            MERGE,
            json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}}),
            403,
            r#"nodes "n1" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/control-plane"#,
        ),
        (
            "a stale resourceVersion in the patch is a precondition",
            MERGE,
            json!({"metadata": {"resourceVersion": "1"}, "spec": {"unschedulable": true}}),
            409,
            r#"Operation cannot be fulfilled on nodes "n1": the object has been modified; please apply your changes to the latest version and try again"#,
        ),
        (
            "no server-side apply",
            "application/apply-patch+yaml",
            json!({}),
            415,
            "server-side apply is not implemented by the fake apiserver",
        ),
    ];
    for (what, content_type, patch, code, message) in cases {
        let answer = n1.send(
            "PATCH",
            "/api/v1/nodes/n1",
            Some((content_type, patch.clone())),
        );
        assert_eq!(answer.0, *code, "{what}: {:#}", answer.1);
        if *code >= 400 {
            assert_eq!(answer.1["message"], *message, "{what}");
        }
    }
    assert!(!fake.api.unschedulable("n1"), "the JSON patch uncordoned");
    assert!(fake.api.node("n1").unwrap()["spec"]["taints"].is_null());

    // A patch of status through the main resource changes nothing, as on a real apiserver.
    let before = fake.api.node("n1").unwrap();
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    let (status, after) = n1.send("PATCH", "/api/v1/nodes/n1", Some((MERGE, not_ready)));
    assert_eq!(status, 200);
    assert_eq!(after, before, "same object, same resourceVersion");

    // The admin may patch any Node.
    let (status, _) = fake
        .admin()
        .send("PATCH", "/api/v1/nodes/n2", Some((MERGE, cordon)));
    assert_eq!(status, 200);
    assert!(fake.api.unschedulable("n2"));
}

#[test]
fn a_node_evicts_only_pods_bound_to_it() {
    let fake = Fake::start();
    let n1 = fake.node("n1");

    let (status, body) = evict(&n1, "default", "web-1");
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    assert!(fake.api.pod("default", "web-1").is_none());
    let evictions = fake.api.evictions();
    assert_eq!(evictions.len(), 1);
    assert_eq!(
        (evictions[0].name.as_str(), evictions[0].node.as_str()),
        ("web-1", "n1")
    );
    assert_eq!(evictions[0].user, "system:node:n1");

    assert_status(
        &evict(&n1, "default", "web-2"),
        403,
        "Forbidden",
        r#"pods "web-2" is forbidden: node n1 can only evict pods with spec.nodeName set to itself"#,
    );
    assert!(fake.api.pod("default", "web-2").is_some());
    assert_status(
        &n1.send("DELETE", "/api/v1/namespaces/default/pods/web-2", None),
        403,
        "Forbidden",
        r#"pods "web-2" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself"#,
    );
    assert!(fake.api.pod("default", "web-2").is_some());
    assert!(fake.api.deletions().is_empty());

    assert_status(
        &evict(&n1, "default", "gone"),
        404,
        "NotFound",
        r#"pods "gone" not found"#,
    );
    let mismatch = n1.send(
        "POST",
        "/api/v1/namespaces/kube-system/pods/kube-proxy-n1/eviction",
        Some((JSON, eviction("kube-system", "other"))),
    );
    assert_status(
        &mismatch,
        400,
        "BadRequest",
        "name in URL does not match name in Eviction object",
    );

    // The node lists its pods by field selector: the items a drain looks at.
    let (status, list) = n1.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1");
    assert_eq!(status, 200);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(list["metadata"]["resourceVersion"].is_string());
    let items = list["items"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str, &str)> = items
        .iter()
        .map(|p| {
            assert!(p["kind"].is_null(), "list items carry no kind");
            (
                p["metadata"]["name"].as_str().unwrap(),
                p["metadata"]["ownerReferences"][0]["kind"]
                    .as_str()
                    .unwrap_or("-"),
                p["metadata"]["annotations"]["kubernetes.io/config.mirror"]
                    .as_str()
                    .map_or("-", |_| "mirror"),
                p["status"]["phase"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("job-done", "Job", "-", "Succeeded"),
            ("kube-apiserver-n1", "Node", "mirror", "Running"),
            ("kube-proxy-n1", "DaemonSet", "-", "Running"),
        ]
    );
    let unsupported = n1.get("/api/v1/pods?fieldSelector=spec.host%3Dn1");
    assert_status(
        &unsupported,
        400,
        "BadRequest",
        "field label not supported: spec.host",
    );
}

#[test]
fn a_disruption_budget_refuses_an_eviction_until_relaxed() {
    let fake = Fake::start();
    let pdb = Pdb::new(
        "default",
        "web",
        &[("app", "web")],
        Budget::MinAvailable(Amount::Count(2)),
    );
    fake.api.add_pdb(pdb).unwrap();
    let n1 = fake.node("n1");

    let refused = evict(&n1, "default", "web-1");
    assert_status(
        &refused,
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    assert_eq!(
        refused.1["details"]["causes"],
        json!([{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}])
    );
    assert!(fake.api.pod("default", "web-1").is_some());
    assert!(fake.api.evictions().is_empty());

    // A finished pod goes without a budget check; so would one the budget does not select.
    assert_eq!(evict(&n1, "default", "job-done").0, 201);

    fake.api
        .set_pdb_budget("default", "web", Budget::MinAvailable(Amount::Count(1)))
        .unwrap();
    let (status, pdb) = fake
        .admin()
        .get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/web");
    assert_eq!(status, 200);
    assert_eq!(pdb["status"]["disruptionsAllowed"], 1, "{pdb:#}");
    assert_eq!(evict(&n1, "default", "web-1").0, 201);
    assert!(fake.api.pod("default", "web-1").is_none());

    // One healthy pod left and one needed: n2's eviction waits.
    assert_eq!(evict(&fake.node("n2"), "default", "web-2").0, 429);
    assert!(fake.api.pod("default", "web-2").is_some());
}

#[test]
fn max_unavailable_counts_the_pods_the_controller_wants() {
    let fake = Fake::with_policy(Policy {
        termination: Termination::Manual,
        ..Policy::default()
    });
    for (name, ready) in [("web-3", true), ("web-4", false)] {
        let mut pod = PodSeed::new("default", name, "n1")
            .label("app", "web")
            .replicaset("web-5d4f8");
        if !ready {
            pod = pod.not_ready();
        }
        fake.api.add_pod(pod).unwrap();
    }
    let pdb = Pdb::new(
        "default",
        "web",
        &[("app", "web")],
        Budget::MaxUnavailable(Amount::Percent(50)),
    );
    fake.api.add_pdb(pdb).unwrap();
    // 4 pods expected, at most 2 unavailable: 3 healthy, 2 needed.
    let n1 = fake.node("n1");

    assert_eq!(evict(&n1, "default", "web-1").0, 201);
    // Terminating, not gone, and no longer healthy.
    let pod = fake.api.pod("default", "web-1").unwrap();
    assert!(pod["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(evict(&n1, "default", "web-3").0, 429);
    // The unready pod may go: it is not counted healthy and the budget holds without it.
    assert_eq!(evict(&n1, "default", "web-4").0, 201);

    assert!(fake.api.finish_terminating("default", "web-1"));
    assert!(!fake.api.finish_terminating("default", "web-3"));
    assert!(fake.api.pod("default", "web-1").is_none());
    let (_, pdb) = fake
        .admin()
        .get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/web");
    assert_eq!(pdb["status"]["expectedPods"], 4, "{pdb:#}");
    assert_eq!(pdb["status"]["currentHealthy"], 2, "{pdb:#}");
    assert_eq!(pdb["status"]["desiredHealthy"], 2, "{pdb:#}");
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0, "{pdb:#}");
}

#[test]
fn the_lock_configmap_changes_only_at_its_resource_version() {
    let fake = Fake::start();
    let n1 = fake.node("n1");
    let free = r#"{"semaphore":1,"max":1,"holders":null}"#;
    let held = r#"{"semaphore":0,"max":1,"holders":["i-1"]}"#;

    assert_status(
        &n1.get(LOCK),
        404,
        "NotFound",
        r#"configmaps "tn-reboot-workers" not found"#,
    );
    let (status, created) = n1.send("POST", LOCKS, Some((JSON, lock_body(None, free))));
    assert_eq!(status, 201, "{created:#}");
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let v1 = rv(&created);
    assert_status(
        &n1.send("POST", LOCKS, Some((JSON, lock_body(None, free)))),
        409,
        "AlreadyExists",
        r#"configmaps "tn-reboot-workers" already exists"#,
    );

    let (status, taken) = n1.send("PUT", LOCK, Some((JSON, lock_body(Some(&v1), held))));
    assert_eq!(status, 200, "{taken:#}");
    let v2 = rv(&taken);
    assert!(v2.parse::<u64>().unwrap() > v1.parse::<u64>().unwrap());
    assert_eq!(
        fake.api
            .configmap_value("kube-system", "tn-reboot-workers", "semaphore")
            .as_deref(),
        Some(held)
    );

    let stale = n1.send("PUT", LOCK, Some((JSON, lock_body(Some(&v1), free))));
    assert_status(
        &stale,
        409,
        "Conflict",
        r#"Operation cannot be fulfilled on configmaps "tn-reboot-workers": the object has been modified; please apply your changes to the latest version and try again"#,
    );
    assert_eq!(
        stale.1["details"],
        json!({"name": "tn-reboot-workers", "kind": "configmaps"})
    );

    // Another writer between this node's read and its write.
    let (_, read) = n1.get(LOCK);
    fake.api
        .put_configmap_value("kube-system", "tn-reboot-workers", "semaphore", free);
    let raced = n1.send("PUT", LOCK, Some((JSON, lock_body(Some(&rv(&read)), held))));
    assert_eq!(raced.0, 409, "{:#}", raced.1);

    // An update that changes nothing keeps the resourceVersion.
    let (_, current) = n1.get(LOCK);
    let (status, same) = n1.send(
        "PUT",
        LOCK,
        Some((JSON, lock_body(Some(&rv(&current)), free))),
    );
    assert_eq!((status, rv(&same)), (200, rv(&current)));

    // Without a resourceVersion an update is unconditional, as ConfigMaps allow on a real
    // apiserver: a lock must always send it.
    let (status, forced) = n1.send("PUT", LOCK, Some((JSON, lock_body(None, held))));
    assert_eq!(status, 200);
    assert_ne!(rv(&forced), rv(&current));

    let created_with_rv = fake.admin().send(
        "POST",
        LOCKS,
        Some((
            JSON,
            json!({"metadata": {"name": "x", "resourceVersion": "5"}}),
        )),
    );
    assert_status(
        &created_with_rv,
        500,
        "InternalError",
        "Internal error occurred: resourceVersion should not be set on objects to be created",
    );
}

#[test]
fn a_node_reaches_no_configmap_but_the_locks() {
    let fake = Fake::start();
    let n1 = fake.node("n1");
    let cm = |ns: &str, name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {}});
    let denied = |verb: &str, ns: &str, reason: &str| {
        format!(
            r#"User "system:node:n1" cannot {verb} resource "configmaps" in API group "" in the namespace "{ns}": {reason}"#
        )
    };
    let cases: Vec<(&str, &str, &str, Option<Value>, String)> = vec![
        (
            "create outside kube-system",
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(cm("default", "tn-reboot-workers")),
            format!(
                "configmaps is forbidden: {}",
                denied("create", "default", "can only read resources of this type")
            ),
        ),
        (
            "create of another name",
            "POST",
            LOCKS,
            Some(cm("kube-system", "coredns")),
            format!(
                "configmaps is forbidden: {}",
                denied(
                    "create",
                    "kube-system",
                    "can only read resources of this type"
                )
            ),
        ),
        (
            "get of another ConfigMap",
            "GET",
            "/api/v1/namespaces/kube-system/configmaps/kube-proxy",
            None,
            format!(
                "configmaps \"kube-proxy\" is forbidden: {}",
                denied(
                    "get",
                    "kube-system",
                    "no relationship found between node 'n1' and this object"
                )
            ),
        ),
        (
            "update of another ConfigMap",
            "PUT",
            "/api/v1/namespaces/kube-system/configmaps/kube-proxy",
            Some(cm("kube-system", "kube-proxy")),
            format!(
                "configmaps \"kube-proxy\" is forbidden: {}",
                denied(
                    "update",
                    "kube-system",
                    "can only read resources of this type"
                )
            ),
        ),
        (
            "get of a lock name outside kube-system",
            "GET",
            "/api/v1/namespaces/default/configmaps/tn-reboot-workers",
            None,
            format!(
                "configmaps \"tn-reboot-workers\" is forbidden: {}",
                denied(
                    "get",
                    "default",
                    "no relationship found between node 'n1' and this object"
                )
            ),
        ),
        (
            "delete of the lock",
            "DELETE",
            LOCK,
            None,
            format!(
                "configmaps \"tn-reboot-workers\" is forbidden: {}",
                denied(
                    "delete",
                    "kube-system",
                    "can only read resources of this type"
                )
            ),
        ),
        (
            "list of the locks",
            "GET",
            LOCKS,
            None,
            format!(
                "configmaps is forbidden: {}",
                denied("list", "kube-system", "No Object name found")
            ),
        ),
    ];
    fake.api
        .put_configmap_value("kube-system", "tn-reboot-workers", "semaphore", "{}");
    for (what, method, path, body, message) in cases {
        let (status, body) = n1.send(method, path, body.map(|b| (JSON, b)));
        assert_eq!(
            (status, &body["reason"]),
            (403, &json!("Forbidden")),
            "{what}"
        );
        assert_eq!(body["message"], message, "{what}");
    }
    assert!(fake.api.configmap("default", "tn-reboot-workers").is_none());
    assert!(fake.api.configmap("kube-system", "coredns").is_none());

    // Exact names, as RBAC's resourceNames, and locks an admin creates.
    fake.api.set_policy(Policy {
        lock_names: LockNames::Exact(vec!["tn-reboot-workers".into()]),
        lock_create: LockCreate::Never,
        ..Policy::default()
    });
    assert_eq!(n1.get(LOCK).0, 200);
    assert_eq!(
        n1.get("/api/v1/namespaces/kube-system/configmaps/tn-reboot-master")
            .0,
        403
    );
    let other_lock = cm("kube-system", "tn-reboot-master");
    assert_eq!(
        n1.send("POST", LOCKS, Some((JSON, other_lock.clone()))).0,
        403
    );
    // RBAC cannot restrict a create by name: allowed, any name is.
    fake.api.set_policy(Policy {
        lock_create: LockCreate::AnyInKubeSystem,
        ..Policy::default()
    });
    assert_eq!(n1.send("POST", LOCKS, Some((JSON, other_lock))).0, 201);
    assert_eq!(
        n1.send("POST", LOCKS, Some((JSON, cm("kube-system", "coredns"))))
            .0,
        201
    );
}

#[test]
fn the_node_authorizer_with_selectors_limits_reads_to_the_node() {
    let cases: &[(&str, u16, u16, &str)] = &[
        (
            "/api/v1/nodes",
            200,
            403,
            "node 'n1' cannot read all nodes, only its own Node object",
        ),
        (
            "/api/v1/nodes?fieldSelector=metadata.name%3Dn1",
            200,
            200,
            "",
        ),
        ("/api/v1/nodes/n1", 200, 200, ""),
        (
            "/api/v1/nodes/n2",
            200,
            403,
            "node 'n1' cannot read 'n2', only its own Node object",
        ),
        (
            "/api/v1/pods",
            200,
            403,
            "can only list/watch pods with spec.nodeName field selector",
        ),
        (
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1",
            200,
            200,
            "",
        ),
        ("/api/v1/namespaces/default/pods/web-1", 200, 200, ""),
        (
            "/api/v1/namespaces/default/pods/web-2",
            200,
            403,
            "no relationship found between node 'n1' and this object",
        ),
    ];
    for selectors in [false, true] {
        let fake = Fake::with_policy(Policy {
            node_selectors: selectors,
            ..Policy::default()
        });
        let n1 = fake.node("n1");
        for (path, without, with, reason) in cases {
            let (status, body) = n1.get(path);
            let want = if selectors { *with } else { *without };
            assert_eq!(status, want, "selectors {selectors}: {path}: {body:#}");
            if status == 403 {
                let message = body["message"].as_str().unwrap();
                assert!(message.ends_with(&format!(": {reason}")), "{message}");
            }
        }
    }
}

#[test]
fn only_valid_client_certificates_authenticate() {
    let fake = Fake::start();
    let other_ca = Ca::generate("kubernetes").unwrap();
    let unauthorized = |answer: (u16, Value)| {
        assert_status(&answer, 401, "Unauthorized", "Unauthorized");
    };

    unauthorized(Client::new(&fake.api, None).get("/api/v1/nodes"));
    unauthorized(Client::new(&fake.api, None).get("/version"));
    // A rustls client sends its certificate whatever CAs the server hints: the handshake
    // succeeds, the authenticator refuses.
    let foreign = node_cert(&other_ca, "n1").unwrap();
    unauthorized(Client::new(&fake.api, Some(&foreign)).get("/api/v1/nodes"));
    let no_cn = client_cert(&fake.ca, "", Some("system:masters")).unwrap();
    unauthorized(Client::new(&fake.api, Some(&no_cn)).get("/api/v1/nodes"));
    assert!(fake
        .api
        .requests()
        .iter()
        .all(|r| r.status == 401 && r.user.is_none()));

    // The server's certificate chains to the cluster CA only.
    let wrong_trust = Client::trusting(&fake.api, None, other_ca.cert_pem());
    assert!(wrong_trust.try_send("GET", "/version", None).is_err());

    // Authenticated but in no known group: discovery only.
    let bob = Client::new(
        &fake.api,
        Some(&client_cert(&fake.ca, "bob", Some("devs")).unwrap()),
    );
    assert_eq!(bob.get("/version").0, 200);
    assert_eq!(bob.get("/api/v1").0, 200);
    assert_status(
        &bob.get("/api/v1/nodes"),
        403,
        "Forbidden",
        r#"nodes is forbidden: User "bob" cannot list resource "nodes" in API group "" at the cluster scope"#,
    );
    assert_status(
        &bob.get("/metrics"),
        403,
        "Forbidden",
        r#"forbidden: User "bob" cannot get path "/metrics""#,
    );
    // A node name without the nodes group is no node.
    let impostor = Client::new(
        &fake.api,
        Some(&client_cert(&fake.ca, "system:node:n1", Some("devs")).unwrap()),
    );
    assert_eq!(impostor.get("/api/v1/nodes/n1").0, 403);
}

#[test]
fn failures_can_be_injected_and_the_server_stops_when_dropped() {
    let fake = Fake::start();
    let admin = fake.admin();
    fake.api.fail_next(503, 2);
    for _ in 0..2 {
        let answer = admin.get("/api/v1/nodes/n1");
        assert_eq!(answer.0, 503);
        assert_eq!(answer.1["reason"], "ServiceUnavailable");
    }
    assert_eq!(admin.get("/api/v1/nodes/n1").0, 200);

    let (status, body) = admin.get("/api/v1/namespaces/default/secrets");
    assert_eq!((status, &body["reason"]), (404, &json!("NotFound")));
    assert_eq!(admin.get("/api/v1/nodes?watch=true").0, 405);

    assert!(KubeApi::start(&fake.ca, "10.0.0.1".parse().unwrap()).is_err());
    let addr = fake.api.addr();
    drop(fake);
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening on {addr}"
    );
}

#[test]
fn configmap_patches_and_deletes_take_preconditions() {
    let fake = Fake::start();
    let admin = fake.admin();
    let path = "/api/v1/namespaces/kube-system/configmaps/kube-proxy";
    let (_, cm) = admin.get(path);
    let v1 = rv(&cm);

    let stale = json!({"metadata": {"resourceVersion": "1"}, "data": {"k": "v"}});
    assert_eq!(admin.send("PATCH", path, Some((MERGE, stale))).0, 409);
    let current = json!({"metadata": {"resourceVersion": v1}, "data": {"k": "v"}});
    let (status, patched) = admin.send("PATCH", path, Some((MERGE, current)));
    assert_eq!(status, 200, "{patched:#}");
    assert_eq!(
        patched["data"],
        json!({"config.conf": "mode: iptables", "k": "v"})
    );
    let v2 = rv(&patched);
    assert_ne!(v1, v2);
    let test_fails = json!([{"op": "test", "path": "/data/k", "value": "w"}]);
    assert_eq!(
        admin.send("PATCH", path, Some((JSON_PATCH, test_fails))).0,
        422
    );
    let bad_key = json!({"data": {"a b": "c"}});
    assert_eq!(admin.send("PATCH", path, Some((MERGE, bad_key))).0, 422);

    let delete = |rv: &str| json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": rv}});
    let refused = admin.send("DELETE", path, Some((JSON, delete(&v1))));
    assert_status(
        &refused,
        409,
        "Conflict",
        &format!(
            r#"Operation cannot be fulfilled on configmaps "kube-proxy": Precondition failed: ResourceVersion in precondition: {v1}, ResourceVersion in object meta: {v2}"#
        ),
    );
    let (status, deleted) = admin.send("DELETE", path, Some((JSON, delete(&v2))));
    assert_eq!(status, 200);
    assert_eq!(deleted["status"], "Success");
    assert_eq!(deleted["details"]["name"], "kube-proxy");
    assert!(fake.api.configmap("kube-system", "kube-proxy").is_none());
    assert_eq!(admin.send("DELETE", path, None).0, 404);
}

#[test]
fn kubectl_as_a_node_sees_what_the_node_authorizer_allows() {
    let fake = Fake::with_policy(Policy {
        node_selectors: true,
        ..Policy::default()
    });
    fake.api.set_version("v1.32.4");
    let n1 = fake.kubeconfig("n1", &node_cert(&fake.ca, "n1").unwrap());

    let pods = ok(fake.kubectl(
        &n1,
        &[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "spec.nodeName=n1",
            "-o",
            "name",
        ],
    ));
    assert_eq!(
        pods,
        "pod/job-done\npod/web-1\npod/kube-apiserver-n1\npod/kube-proxy-n1\n"
    );
    let out = fake.kubectl(&n1, &["get", "nodes"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        r#"Error from server (Forbidden): nodes is forbidden: User "system:node:n1" cannot list resource "nodes" in API group "" at the cluster scope: node 'n1' cannot read all nodes, only its own Node object"#
    );
    assert_eq!(
        ok(fake.kubectl(&n1, &["cordon", "n1"])),
        "node/n1 cordoned\n"
    );
    let out = fake.kubectl(&n1, &["cordon", "n2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            r#"nodes "n2" is forbidden: User "system:node:n1" cannot get resource "nodes""#
        ),
        "{err}"
    );
    assert!(fake.api.unschedulable("n1"));
    assert!(!fake.api.unschedulable("n2"));
}
