//! Who may do what: the privileged group, the Node authorizer, the RBAC rule for the reboot
//! locks, and the NodeRestriction admission checks, with their real messages (module header
//! of `kube_api`).

use serde_json::Value;

use super::select::{field_equals, FieldReq};
use super::status::Status;
use super::store::Store;
use super::tls::User;
use super::{LockCreate, LOCK_NAMESPACE, MASTERS_GROUP, NODES_GROUP, NODE_USER_PREFIX};

/// A request as the authorizer sees it (kube-apiserver's `RequestInfo`).
#[derive(Debug, Clone, Default)]
pub(super) struct RequestInfo {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; for a
    /// non-resource path the lowercased method.
    pub verb: String,
    pub path: String,
    /// `None` for a non-resource path (discovery, `/version`, ...).
    pub resource: Option<ResourceInfo>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for a create and a list (but a list with `metadata.name=` names it, as the real
    /// RequestInfo does).
    pub name: String,
    /// The field selector, whatever its fields (the handlers check those).
    pub fields: Vec<FieldReq>,
    /// The name in a ConfigMap create's body, for [`LockCreate::LockNames`] (the authorizer
    /// proper never sees it: a denied create's message names no object).
    pub create_name: Option<String>,
}

/// The node a user is, by nodeidentifier's rule: name `system:node:<n>` and group
/// `system:nodes`.
pub(super) fn node_of(user: &User) -> Option<&str> {
    let node = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.groups.iter().any(|g| g == NODES_GROUP).then_some(node)
}

pub(super) fn is_master(user: &User) -> bool {
    user.groups.iter().any(|g| g == MASTERS_GROUP)
}

/// Non-resource paths every authenticated user may get.
fn discovery_path(path: &str) -> bool {
    matches!(
        path,
        "/api" | "/apis" | "/version" | "/healthz" | "/livez" | "/readyz" | "/openapi/v2"
    ) || [
        "/api/",
        "/apis/",
        "/openapi/v3",
        "/healthz/",
        "/livez/",
        "/readyz/",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// Allows the request or answers RBAC's 403.
pub(super) fn authorize(store: &Store, user: &User, info: &RequestInfo) -> Result<(), Status> {
    if is_master(user) {
        return Ok(());
    }
    let Some(r) = &info.resource else {
        if info.verb == "get" && discovery_path(&info.path) {
            return Ok(());
        }
        return Err(Status::forbidden(
            "",
            "",
            "",
            &format!(
                "User {:?} cannot {} path {:?}",
                user.name, info.verb, info.path
            ),
        ));
    };
    let mut reason = String::new();
    if let Some(node) = node_of(user) {
        match node_authorizer(store, node, &info.verb, r) {
            Ok(()) => return Ok(()),
            Err(why) => reason = why,
        }
        if rbac_lock_rule(store, &info.verb, r) {
            return Ok(());
        }
    }
    let resource = match r.subresource.as_str() {
        "" => r.resource.clone(),
        sub => format!("{}/{sub}", r.resource),
    };
    let scope = match r.namespace.as_str() {
        "" => "at the cluster scope".to_string(),
        ns => format!("in the namespace {ns:?}"),
    };
    let mut why = format!(
        "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        user.name, info.verb, r.group
    );
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    Err(Status::forbidden(&r.group, &r.resource, &r.name, &why))
}

/// The Node authorizer: `Err(reason)` is its no-opinion with the reason it gives (maybe
/// empty).
fn node_authorizer(store: &Store, node: &str, verb: &str, r: &ResourceInfo) -> Result<(), String> {
    let selectors = store.policy.node_selectors;
    let sub = r.subresource.as_str();
    match (r.group.as_str(), r.resource.as_str()) {
        ("", "configmaps") | ("", "secrets") => {
            if !matches!(verb, "get" | "list" | "watch") {
                Err("can only read resources of this type".into())
            } else if !sub.is_empty() {
                Err("cannot read subresource".into())
            } else if r.namespace.is_empty() {
                Err("can only read namespaced object of this type".into())
            } else if r.name.is_empty() {
                Err("No Object name found".into())
            } else {
                // The fake keeps no graph of what pods use.
                Err(format!(
                    "no relationship found between node '{node}' and this object"
                ))
            }
        }
        ("", "nodes") if selectors => match (sub, verb) {
            ("", "create" | "update" | "patch") | ("status", "update" | "patch") => Ok(()),
            ("", "get" | "list" | "watch") => match r.name.as_str() {
                n if n == node => Ok(()),
                "" => Err(format!(
                    "node '{node}' cannot read all nodes, only its own Node object"
                )),
                other => Err(format!(
                    "node '{node}' cannot read '{other}', only its own Node object"
                )),
            },
            _ => Err(String::new()),
        },
        ("", "pods") if selectors => match (sub, verb) {
            ("", "get") => pod_related(store, node, r),
            ("", "list" | "watch") => {
                if field_equals(&r.fields, "spec.nodeName") == Some(node) {
                    Ok(())
                } else if !r.name.is_empty() {
                    pod_related(store, node, r)
                } else {
                    Err("can only list/watch pods with spec.nodeName field selector".into())
                }
            }
            ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => {
                Ok(())
            }
            _ => Err(String::new()),
        },
        ("", resource) => {
            let allowed: &[&str] = match (resource, sub) {
                ("nodes", "") => &["create", "get", "list", "watch", "update", "patch"],
                ("nodes", "status") => &["update", "patch"],
                ("pods", "") => &["get", "list", "watch", "create", "delete"],
                ("pods", "status") => &["update", "patch"],
                ("pods", "eviction") => &["create"],
                ("services" | "endpoints", "") => &["get", "list", "watch"],
                ("events", "") => &["create", "update", "patch"],
                _ => &[],
            };
            if allowed.contains(&verb) {
                Ok(())
            } else {
                Err(String::new())
            }
        }
        _ => Err(String::new()),
    }
}

/// The graph's answer for a pod: related when bound to the node.
fn pod_related(store: &Store, node: &str, r: &ResourceInfo) -> Result<(), String> {
    let key = (r.namespace.clone(), r.name.clone());
    if r.name.is_empty() {
        return Err("No Object name found".into());
    }
    match store.pods.get(&key) {
        Some(pod) if pod["spec"]["nodeName"] == node => Ok(()),
        _ => Err(format!(
            "no relationship found between node '{node}' and this object"
        )),
    }
}

/// The RBAC Role master bootstrap installs for `system:nodes`: the reboot locks in
/// `kube-system`.
fn rbac_lock_rule(store: &Store, verb: &str, r: &ResourceInfo) -> bool {
    if !r.group.is_empty() || r.resource != "configmaps" || !r.subresource.is_empty() {
        return false;
    }
    if r.namespace != LOCK_NAMESPACE {
        return false;
    }
    let policy = &store.policy;
    match verb {
        "get" | "update" => !r.name.is_empty() && policy.lock_names.allows(&r.name),
        "create" => match policy.lock_create {
            LockCreate::AnyInKubeSystem => true,
            LockCreate::LockNames => r
                .create_name
                .as_deref()
                .is_some_and(|n| policy.lock_names.allows(n)),
            LockCreate::Never => false,
        },
        _ => false,
    }
}

/// NodeRestriction on a node's update of Node `name` from `old` to `new`.
pub(super) fn admit_node_update(
    node: &str,
    name: &str,
    old: &Value,
    new: &Value,
) -> Result<(), Status> {
    let forbid = |why: String| Err(Status::forbidden("", "nodes", name, &why));
    if name != node {
        return forbid(format!(
            "node {node:?} is not allowed to modify node {name:?}"
        ));
    }
    let config_source = &new["spec"]["configSource"];
    if !config_source.is_null() && config_source != &old["spec"]["configSource"] {
        return forbid(format!(
            "node {node:?} is not allowed to update configSource to a new non-nil configSource"
        ));
    }
    let taints = |v: &Value| match &v["spec"]["taints"] {
        Value::Array(a) if !a.is_empty() => Some(a.clone()),
        _ => None,
    };
    if taints(old) != taints(new) {
        return forbid(format!("node {node:?} is not allowed to modify taints"));
    }
    let labels = |v: &Value| {
        v["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let (before, after) = (labels(old), labels(new));
    let mut forbidden: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .filter(|k| forbidden_label(k))
        .collect();
    forbidden.sort();
    forbidden.dedup();
    if !forbidden.is_empty() {
        let list: Vec<&str> = forbidden.iter().map(|s| s.as_str()).collect();
        return forbid(format!(
            "is not allowed to modify labels: {}",
            list.join(", ")
        ));
    }
    Ok(())
}

/// A label a kubelet may not add, change or remove: `node-restriction.kubernetes.io/`, and
/// `kubernetes.io`/`k8s.io` labels other than the kubelet's own.
fn forbidden_label(key: &str) -> bool {
    let Some((ns, _)) = key.split_once('/') else {
        return false;
    };
    if ns == "node-restriction.kubernetes.io" || ns.ends_with(".node-restriction.kubernetes.io") {
        return true;
    }
    let kubernetes = ns == "kubernetes.io"
        || ns.ends_with(".kubernetes.io")
        || ns == "k8s.io"
        || ns.ends_with(".k8s.io");
    kubernetes && !kubelet_label(key, ns)
}

/// `kubeletapis.IsKubeletLabel`.
fn kubelet_label(key: &str, ns: &str) -> bool {
    const LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    const NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];
    LABELS.contains(&key)
        || NAMESPACES
            .iter()
            .any(|n| ns == *n || ns.ends_with(&format!(".{n}")))
}

/// NodeRestriction on a node's eviction of `pod`.
pub(super) fn admit_pod_eviction(node: &str, name: &str, pod: &Value) -> Result<(), Status> {
    if pod["spec"]["nodeName"] != node {
        return Err(Status::forbidden(
            "",
            "pods",
            name,
            &format!("node {node} can only evict pods with spec.nodeName set to itself"),
        ));
    }
    Ok(())
}

/// NodeRestriction on a node's delete of `pod`.
pub(super) fn admit_pod_delete(node: &str, name: &str, pod: &Value) -> Result<(), Status> {
    if pod["spec"]["nodeName"] != node {
        return Err(Status::forbidden(
            "",
            "pods",
            name,
            &format!("node {node:?} can only delete pods with spec.nodeName set to itself"),
        ));
    }
    Ok(())
}
