//! A fake kube-apiserver for the calls SPEC §9's reboots make as a node (the lock ConfigMap,
//! cordon, drain by eviction, Ready, uncordon) and for `kubectl` as an admin: the real HTTP
//! paths, JSON bodies and `Status` errors, over HTTPS with client certificates, and the rules a
//! real cluster enforces on who may do what. No kube-apiserver can run here; this one is checked
//! against the real `kubectl` (tests/kube_api.rs).
//!
//! **Authentication** is kube-apiserver's x509 authenticator with `--anonymous-auth=false` (as
//! tn-agent's apiserver manifest sets): the TLS layer asks for a client certificate and hints the
//! CA (Go's `tls.RequestClientCert`), the certificate is checked per connection against the CA
//! (chain, validity, extendedKeyUsage clientAuth), and the user is its CN, the groups its O values
//! plus `system:authenticated`. No certificate, one from another CA or one with an empty CN: 401
//! `Unauthorized` on every path, after a successful handshake (kubectl, through client-go's
//! `GetClientCertificate`, and rustls clients send their certificate whatever CAs are hinted).
//!
//! **Authorization** is `--authorization-mode=Node,RBAC` plus the privileged-group authorizer:
//! - group `system:masters`: everything (the admin kubeconfig). No admission checks.
//! - a node, user `system:node:<n>` in group `system:nodes` (nodeidentifier's rule: both), by the
//!   Node authorizer's static rules: get/list/watch/create/update/patch `nodes`, update/patch
//!   `nodes/status`, get/list/watch/create/delete `pods`, update/patch `pods/status`, create
//!   `pods/eviction`. ConfigMaps and Secrets only through the authorizer's graph (those a pod of
//!   the node uses; the fake has no graph, so none): the reason says "no relationship found
//!   between node '<n>' and this object" or "can only read resources of this type".
//!   With [`Policy::node_selectors`] (`AuthorizeNodeWithSelectors`, beta and on by default in
//!   Kubernetes 1.32, locked on in 1.34) a node may read only its own Node (a list needs
//!   `fieldSelector=metadata.name=<n>`), get only pods bound to it and list pods only with
//!   `fieldSelector=spec.nodeName=<n>`. Off by default: SPEC's example version is v1.31.
//! - then RBAC, as master bootstrap will install it for `system:nodes`: get and update the lock
//!   ConfigMaps in `kube-system` named by [`Policy::lock_names`] (RBAC `resourceNames` are exact
//!   names; a prefix is a fake-only shorthand), and create them per [`Policy::lock_create`] (RBAC
//!   cannot restrict create by name: the name is not known when it authorizes).
//! - anyone authenticated: the discovery paths (`/api`, `/apis`, `/version`, `/openapi/*`,
//!   `/healthz`...), as `system:discovery` and `system:public-info-viewer` allow. Anything else:
//!   403 with RBAC's message, `configmaps "x" is forbidden: User "system:node:n" cannot update
//!   resource "configmaps" in API group "" in the namespace "default"`, followed by `: <reason>`
//!   when the Node authorizer gave one (the union authorizer joins the reasons).
//!
//! **Admission** (NodeRestriction, for nodes only, with its messages): a node may patch only its
//! own Node and not change its taints, `configSource` or `kubernetes.io`/`k8s.io` labels outside
//! the kubelet's own; it may evict (`node <n> can only evict pods with spec.nodeName set to
//! itself`) and delete only pods bound to itself.
//!
//! **Objects**: Nodes, Pods, ConfigMaps and PodDisruptionBudgets in memory, each with
//! `metadata.uid`, `creationTimestamp` and `resourceVersion` (one global counter, as etcd's
//! revision). Endpoints:
//! - `GET /api/v1/nodes[/{name}]`, `PATCH /api/v1/nodes/{name}` (merge patch, strategic merge
//!   patch without `$` directives, which for Node and ConfigMap fields is the same, and JSON
//!   patch; `status` is ignored as on the real main resource; a `metadata.resourceVersion` in the
//!   patch is a precondition);
//! - `GET /api/v1/pods`, `GET /api/v1/namespaces/{ns}/pods[/{name}]`, `DELETE` a pod, and `POST
//!   .../pods/{name}/eviction` (policy/v1 or v1beta1 `Eviction`) with the eviction REST's rules:
//!   terminal, Pending and terminating pods go without a PodDisruptionBudget check; more than one
//!   matching budget is a 500; a budget with no disruption allowed is a 429 `TooManyRequests`
//!   "Cannot evict pod as it would violate the pod's disruption budget." with a
//!   `DisruptionBudget` cause; otherwise 201 with a `Success` Status. Budgets are computed as the
//!   disruption controller does: healthy = matching pods Running, Ready and not terminating;
//!   `minAvailable` N needs N healthy; `maxUnavailable` and percentages count against the
//!   expected pods (the controller's replicas: [`Pdb::expected`]).
//! - `GET/POST /api/v1/namespaces/{ns}/configmaps`, `GET/PUT/PATCH/DELETE .../configmaps/{name}`:
//!   create of an existing name 409 `AlreadyExists`; update with a `resourceVersion` that is not
//!   the current one 409 `Conflict`; update **without** one is unconditional, as ConfigMaps allow
//!   on a real apiserver (so a lock must always send it); an update that changes nothing keeps
//!   the resourceVersion; delete takes `preconditions`.
//! - `GET /apis/policy/v1[/namespaces/{ns}]/poddisruptionbudgets[/{name}]`, status computed.
//! - discovery for kubectl: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/policy`,
//!   `/apis/policy/v1` (legacy documents: kubectl falls back from aggregated discovery), and
//!   server-side printing (`Table`) when asked; `/openapi/v2` and `/openapi/v3` answer 404,
//!   which kubectl tolerates for get, cordon and uncordon.
//!
//! Lists take `fieldSelector` (the fields the real registry supports for the kind) and
//! `labelSelector`; `limit` is ignored (everything in one page, no `continue`). Not imitated:
//! watch (405), server-side apply, the node lifecycle controller (no `unschedulable` taint), the
//! graph of the Node authorizer, defaulting of pod specs, and audit. Evicted and deleted pods
//! are removed at once, or with [`Termination::Manual`] stay with a `deletionTimestamp` until
//! [`KubeApi::finish_terminating`], as a kubelet would take its grace period.
//!
//! Binds a loopback address only; the server thread stops when the [`KubeApi`] is dropped.

mod api;
mod authz;
mod discovery;
mod patch;
mod select;
mod status;
mod store;
mod tls;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::Value;
use tn_agent::kube::kubeconfig::{Credentials, Kubeconfig};
use tn_agent::pki::{Ca, Leaf, LeafRequest, Usage};

use self::store::Store;
use self::tls::Identity;

/// Group of the admin user: allowed everything.
pub const MASTERS_GROUP: &str = "system:masters";
/// Group of every kubelet's user.
pub const NODES_GROUP: &str = "system:nodes";
/// Prefix of a kubelet's user name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The namespace of the reboot locks (SPEC §9).
pub const LOCK_NAMESPACE: &str = "kube-system";
/// The address most tests serve on.
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Largest request body read (kube-apiserver's limit is 3 MiB).
const MAX_BODY: usize = 3 << 20;
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may do what beyond the fixed rules of the module's header.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The Node authorizer with `AuthorizeNodeWithSelectors` (Kubernetes 1.32 and later): nodes
    /// read only their own Node and list only their own pods.
    pub node_selectors: bool,
    /// The lock ConfigMaps in `kube-system` nodes may get and update.
    pub lock_names: LockNames,
    /// Which ConfigMaps in `kube-system` nodes may create.
    pub lock_create: LockCreate,
    /// What happens to a pod that is evicted or deleted.
    pub termination: Termination,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            node_selectors: false,
            lock_names: LockNames::Prefix("tn-reboot-".into()),
            lock_create: LockCreate::LockNames,
            termination: Termination::Immediate,
        }
    }
}

/// The ConfigMap names of an RBAC rule's `resourceNames`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockNames {
    /// Every name with this prefix (not expressible in RBAC, which has exact names only).
    Prefix(String),
    /// These names, as `resourceNames` lists them.
    Exact(Vec<String>),
}

impl LockNames {
    pub fn allows(&self, name: &str) -> bool {
        match self {
            LockNames::Prefix(prefix) => name.starts_with(prefix.as_str()),
            LockNames::Exact(names) => names.iter().any(|n| n == name),
        }
    }
}

/// Which ConfigMaps nodes may create in `kube-system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockCreate {
    /// Only names [`Policy::lock_names`] allows: stricter than RBAC alone can be (the name of
    /// a create is not known to the authorizer); what an admission policy would add.
    LockNames,
    /// Any name: an RBAC rule with verb create and no `resourceNames`.
    AnyInKubeSystem,
    /// None: the locks are created by an admin.
    Never,
}

/// What an eviction or a delete does to a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Removed from the store at once.
    Immediate,
    /// Kept with `metadata.deletionTimestamp` (and not counted healthy) until
    /// [`KubeApi::finish_terminating`].
    Manual,
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// The HTTP method.
    pub method: String,
    /// The Kubernetes verb (`get`, `list`, `create`, `update`, `patch`, `delete`, ...).
    pub verb: String,
    /// Path and query, as sent.
    pub path: String,
    /// The authenticated user; `None` for a request that got 401.
    pub user: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
    /// The status answered.
    pub status: u16,
}

/// A pod an eviction or a delete removed (or, with [`Termination::Manual`], started to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRemoval {
    pub namespace: String,
    pub name: String,
    /// The node the pod was bound to.
    pub node: String,
    /// Who asked.
    pub user: String,
}

/// A pod to seed with [`KubeApi::add_pod`]: by default a Running, Ready pod without owner.
#[derive(Debug, Clone)]
pub struct PodSeed {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub labels: BTreeMap<String, String>,
    /// The controller owning it: (kind, name), e.g. `("ReplicaSet", "web-5d4f8")`.
    pub owner: Option<(String, String)>,
    /// A mirror pod of a static pod (annotation `kubernetes.io/config.mirror`, owned by the
    /// Node).
    pub mirror: bool,
    /// `status.phase`: Pending, Running, Succeeded or Failed.
    pub phase: String,
    /// The Ready condition (false whenever the phase is not Running).
    pub ready: bool,
    /// More `metadata.annotations` (a mirror pod carries its static pod's).
    pub annotations: BTreeMap<String, String>,
}

impl PodSeed {
    pub fn new(namespace: &str, name: &str, node: &str) -> Self {
        PodSeed {
            namespace: namespace.into(),
            name: name.into(),
            node: node.into(),
            labels: BTreeMap::new(),
            owner: None,
            mirror: false,
            phase: "Running".into(),
            ready: true,
            annotations: BTreeMap::new(),
        }
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn owned_by(mut self, kind: &str, name: &str) -> Self {
        self.owner = Some((kind.into(), name.into()));
        self
    }

    pub fn daemonset(self, name: &str) -> Self {
        self.owned_by("DaemonSet", name)
    }

    pub fn replicaset(self, name: &str) -> Self {
        self.owned_by("ReplicaSet", name)
    }

    pub fn mirror(mut self) -> Self {
        self.mirror = true;
        self
    }

    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = phase.into();
        self
    }

    pub fn not_ready(mut self) -> Self {
        self.ready = false;
        self
    }
}

/// `minAvailable` or `maxUnavailable` of a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    MinAvailable(Amount),
    MaxUnavailable(Amount),
}

/// An IntOrString of a budget: a count or a percentage (rounded up, as the controller does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Count(u32),
    Percent(u32),
}

/// A PodDisruptionBudget to seed with [`KubeApi::add_pdb`].
#[derive(Debug, Clone)]
pub struct Pdb {
    pub namespace: String,
    pub name: String,
    /// `spec.selector.matchLabels`; empty matches no pod (as on a real apiserver).
    pub match_labels: BTreeMap<String, String>,
    pub budget: Budget,
    /// The pods the selected pods' controllers want (their `replicas`), for `maxUnavailable`
    /// and percentages; `None`: the pods matching when the budget is added.
    pub expected: Option<u32>,
}

impl Pdb {
    pub fn new(namespace: &str, name: &str, match_labels: &[(&str, &str)], budget: Budget) -> Self {
        Pdb {
            namespace: namespace.into(),
            name: name.into(),
            match_labels: match_labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            budget,
            expected: None,
        }
    }
}

/// What the server thread and the test share.
struct Shared {
    store: Mutex<Store>,
    /// Checks client certificates after the handshake.
    client_verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A test that panicked while holding the lock leaves consistent data behind.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake apiserver. Dropping it stops it.
pub struct KubeApi {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl KubeApi {
    /// Starts on `ip` (loopback), a port the OS picks, with the default [`Policy`]; serves a
    /// certificate `ca` signs and accepts client certificates `ca` signed.
    pub fn start(ca: &Ca, ip: IpAddr) -> Result<KubeApi> {
        KubeApi::start_with(ca, SocketAddr::new(ip, 0), Policy::default())
    }

    /// Starts on `addr` (loopback; port 0: the OS picks) with `policy`.
    pub fn start_with(ca: &Ca, addr: SocketAddr, policy: Policy) -> Result<KubeApi> {
        ensure!(
            addr.ip().is_loopback(),
            "the fake apiserver binds loopback addresses only, not {addr}"
        );
        let serving = ca.issue(&LeafRequest {
            common_name: "kube-apiserver".into(),
            organization: None,
            dns_names: [
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ]
            .map(String::from)
            .to_vec(),
            ips: vec![addr.ip()],
            usages: vec![Usage::ServerAuth],
        })?;
        let (config, client_verifier) = tls::server_config(ca.cert_pem(), &serving)?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(policy)),
            client_verifier,
        });
        let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = mpsc::channel::<std::io::Result<SocketAddr>>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-kube-api-{addr}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind(addr).await {
                        Ok(l) => {
                            let _ = bound_tx.send(l.local_addr());
                            l
                        }
                        Err(e) => {
                            let _ = bound_tx.send(Err(e));
                            return;
                        }
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    loop {
                        tokio::select! {
                            _ = &mut stop_rx => return,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                tokio::spawn(serve_connection(
                                    acceptor.clone(),
                                    stream,
                                    thread_shared.clone(),
                                ));
                            }
                        }
                    }
                });
            })
            .context("starting the fake apiserver thread")?;
        let addr = bound_rx
            .recv()
            .map_err(|_| anyhow!("fake apiserver thread died"))?
            .with_context(|| format!("binding the fake apiserver to {addr}"))?;
        Ok(KubeApi {
            addr,
            ca_pem: ca.cert_pem().to_string(),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://<ip>:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate the server's certificate chains to, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A kubeconfig for this server authenticating with `client` (see [`client_cert`]).
    pub fn kubeconfig(&self, client: &Leaf) -> String {
        Kubeconfig::embedded(
            "fake",
            &self.url(),
            &self.ca_pem,
            "user",
            Credentials::Cert {
                cert_pem: &client.cert_pem,
                key_pem: &client.key_pem,
            },
        )
        .to_yaml()
    }

    pub fn set_policy(&self, policy: Policy) {
        self.shared.store().policy = policy;
    }

    /// The version `/version` reports (default v1.31.4) and Nodes added later run, e.g.
    /// `v1.32.4`. `/usr/bin/kubectl` (Google Cloud SDK's dispatcher) runs the kubectl release
    /// matching it.
    pub fn set_version(&self, version: &str) {
        self.shared.store().version = version.to_string();
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.store().seen.clone()
    }

    /// Answers `status` (a Status object; 429 and 503 with `Retry-After: 1`) to the next
    /// `count` requests that authenticate, whatever they are.
    pub fn fail_next(&self, status: u16, count: u32) {
        self.shared.store().fail_next = Some((status, count));
    }

    /// Adds a Ready, schedulable Node with these labels besides the kubelet's own.
    pub fn add_node(&self, name: &str, labels: &[(&str, &str)]) -> Result<()> {
        self.shared.store().add_node(name, labels)
    }

    /// Sets the Node's Ready condition (as its kubelet would).
    pub fn set_ready(&self, node: &str, ready: bool) -> Result<()> {
        self.shared.store().set_ready(node, ready)
    }

    pub fn node(&self, name: &str) -> Option<Value> {
        self.shared.store().nodes.get(name).cloned()
    }

    /// `spec.unschedulable` of the Node (false when absent); panics if there is no such Node.
    pub fn unschedulable(&self, node: &str) -> bool {
        let store = self.shared.store();
        let node = store.nodes.get(node).expect("no such node");
        node["spec"]["unschedulable"].as_bool().unwrap_or(false)
    }

    pub fn add_pod(&self, pod: PodSeed) -> Result<()> {
        self.shared.store().add_pod(pod)
    }

    /// Replaces a pod by a new one of the same name (a new uid), as the kubelet replaces a
    /// static pod's mirror pod when its manifest changed.
    pub fn recreate_pod(&self, pod: PodSeed) -> Result<()> {
        let mut store = self.shared.store();
        store
            .pods
            .remove(&(pod.namespace.clone(), pod.name.clone()));
        store.add_pod(pod)
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        let key = (namespace.to_string(), name.to_string());
        self.shared.store().pods.get(&key).cloned()
    }

    /// `namespace/name` of the pods bound to `node`, terminating ones included.
    pub fn pods_on(&self, node: &str) -> Vec<String> {
        let store = self.shared.store();
        store
            .pods
            .iter()
            .filter(|(_, p)| p["spec"]["nodeName"] == node)
            .map(|((ns, name), _)| format!("{ns}/{name}"))
            .collect()
    }

    /// Pods evicted, in order.
    pub fn evictions(&self) -> Vec<PodRemoval> {
        self.shared.store().evictions.clone()
    }

    /// Pods deleted by `DELETE`, in order.
    pub fn deletions(&self) -> Vec<PodRemoval> {
        self.shared.store().deletions.clone()
    }

    /// Removes a terminating pod (with [`Termination::Manual`]), as its kubelet would once its
    /// containers stopped. Returns whether there was one.
    pub fn finish_terminating(&self, namespace: &str, name: &str) -> bool {
        self.shared.store().finish_terminating(namespace, name)
    }

    pub fn add_pdb(&self, pdb: Pdb) -> Result<()> {
        self.shared.store().add_pdb(pdb)
    }

    /// Changes a budget, e.g. to let a drain go on.
    pub fn set_pdb_budget(&self, namespace: &str, name: &str, budget: Budget) -> Result<()> {
        self.shared.store().set_pdb_budget(namespace, name, budget)
    }

    pub fn configmap(&self, namespace: &str, name: &str) -> Option<Value> {
        let key = (namespace.to_string(), name.to_string());
        self.shared.store().configmaps.get(&key).cloned()
    }

    /// One `data` value of a ConfigMap.
    pub fn configmap_value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let cm = self.configmap(namespace, name)?;
        cm["data"][key].as_str().map(str::to_string)
    }

    /// Creates a ConfigMap or sets one `data` value of it, as another writer would: a new
    /// resourceVersion, so an update sent with the old one conflicts.
    pub fn put_configmap_value(&self, namespace: &str, name: &str, key: &str, value: &str) {
        self.shared
            .store()
            .put_configmap_value(namespace, name, key, value);
    }
}

impl KubeApi {
    /// Applies a master's reboot-locks addon as an admin's `kubectl apply` would, for what the
    /// fake models: its ConfigMaps are created (empty, an existing one left as it is) and its
    /// Role becomes the RBAC rule nodes get ([`Policy::lock_names`] exactly the Role's
    /// `resourceNames`, no create). The Role must grant `system:nodes` get and update on
    /// ConfigMaps and nothing else, or this fails: the addon is checked, not trusted.
    pub fn apply_reboot_locks_addon(&self, yaml: &str) -> Result<()> {
        let mut names = None;
        let mut bound = false;
        let mut configmaps = Vec::new();
        for doc in yaml.split("\n---\n") {
            let v: Value = yaml_serde::from_str(doc).context("an addon document")?;
            match v["kind"].as_str() {
                Some("ConfigMap") => {
                    ensure!(
                        v["metadata"]["namespace"] == LOCK_NAMESPACE && v.get("data").is_none(),
                        "a lock ConfigMap outside {LOCK_NAMESPACE} or with data: {v}"
                    );
                    configmaps.push(v);
                }
                Some("Role") => {
                    let rules = v["rules"].as_array().context("rules")?;
                    ensure!(rules.len() == 1, "one rule, not {rules:?}");
                    let rule = &rules[0];
                    ensure!(
                        rule["apiGroups"] == serde_json::json!([""])
                            && rule["resources"] == serde_json::json!(["configmaps"])
                            && rule["verbs"] == serde_json::json!(["get", "update"]),
                        "the Role grants more than get and update on ConfigMaps: {rule}"
                    );
                    let list: Vec<String> = rule["resourceNames"]
                        .as_array()
                        .context("resourceNames")?
                        .iter()
                        .map(|n| n.as_str().map(str::to_string).context("a name"))
                        .collect::<Result<_>>()?;
                    names = Some(list);
                }
                Some("RoleBinding") => {
                    ensure!(
                        v["subjects"]
                            == serde_json::json!([{"apiGroup": "rbac.authorization.k8s.io",
                                "kind": "Group", "name": NODES_GROUP}]),
                        "the binding is not to {NODES_GROUP} alone: {v}"
                    );
                    bound = true;
                }
                other => anyhow::bail!("unexpected kind {other:?} in the addon"),
            }
        }
        let names = names.context("no Role in the addon")?;
        ensure!(bound, "no RoleBinding in the addon");
        let mut store = self.shared.store();
        for cm in configmaps {
            let name = cm["metadata"]["name"].as_str().context("a name")?;
            ensure!(names.iter().any(|n| n == name), "{name} is not in the Role");
            store.ensure_configmap(LOCK_NAMESPACE, name, cm["metadata"]["labels"].clone());
        }
        store.policy.lock_names = LockNames::Exact(names);
        store.policy.lock_create = LockCreate::Never;
        Ok(())
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A client certificate for `user` in `group`, as kube-apiserver's x509 authenticator reads it.
pub fn client_cert(ca: &Ca, user: &str, group: Option<&str>) -> Result<Leaf> {
    Ok(ca.issue(&LeafRequest {
        common_name: user.into(),
        organization: group.map(str::to_string),
        dns_names: Vec::new(),
        ips: Vec::new(),
        usages: vec![Usage::ClientAuth],
    })?)
}

/// The kubelet's client certificate of `node`: `system:node:<node>` in `system:nodes`.
pub fn node_cert(ca: &Ca, node: &str) -> Result<Leaf> {
    client_cert(ca, &format!("{NODE_USER_PREFIX}{node}"), Some(NODES_GROUP))
}

/// An admin's client certificate: CN `admin`, O `system:masters`.
pub fn admin_cert(ca: &Ca) -> Result<Leaf> {
    client_cert(ca, "admin", Some(MASTERS_GROUP))
}

/// Handshake, identify the client once, then serve HTTP/1.1 on the connection.
async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
) {
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
        return;
    };
    let identity = Arc::new(tls::identify(
        shared.client_verifier.as_ref(),
        tls.get_ref().1.peer_certificates(),
    ));
    let io = hyper_util::rt::TokioIo::new(tls);
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        let identity = identity.clone();
        async move { Ok::<_, Infallible>(answer(&shared, &identity, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await;
}

async fn answer(
    shared: &Shared,
    identity: &Identity,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let (body, too_large) = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(_) => (Bytes::new(), true),
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let request = api::ApiRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        content_type: header("content-type"),
        accept: header("accept").unwrap_or_default(),
        body: body.to_vec(),
    };
    let reply = {
        let mut store = shared.store();
        let reply = match too_large {
            false => api::handle(&mut store, identity, &request),
            true => api::too_large(),
        };
        store.seen.push(SeenRequest {
            method: request.method.clone(),
            verb: reply.verb.clone(),
            path: match request.query.as_str() {
                "" => request.path.clone(),
                q => format!("{}?{q}", request.path),
            },
            user: identity.user().map(|u| u.name.clone()),
            content_type: request.content_type.clone(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status: reply.status,
        });
        reply
    };
    let mut resp = Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type);
    if let Some(seconds) = reply.retry_after {
        resp = resp.header("retry-after", seconds.to_string());
    }
    resp.body(Full::new(Bytes::from(reply.body)))
        .expect("a valid response")
}
