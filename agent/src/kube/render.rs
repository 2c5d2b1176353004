//! The Kubernetes files' contents, rendered from plain data (SPEC §6): the kubelet's config and
//! flags, kubeconfigs, the control plane's static pods and the TLS bootstrap addon. Pure: no I/O.
//! Paths are node paths taken under the root, as the files are (SPEC §2 `--root`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

pub use super::kubeconfig::Credentials;
use super::kubeconfig::Kubeconfig;
use super::kubelet_config::{
    Authentication, Authorization, Enabled, KubeletConfiguration, WebhookAuthentication,
    WebhookAuthorization, X509Authentication,
};
use crate::config::{AddressPlan, Taint};
use crate::files;
use crate::fsutil::Root;
use crate::pki::encryption::{EncryptionKey, KEY_NAME};
use crate::pki::token::BootstrapToken;

/// Where the control-plane images come from.
const REGISTRY: &str = "registry.k8s.io";
/// Ports the controller-manager and the scheduler serve `/healthz` on (their defaults).
const CONTROLLER_MANAGER_PORT: u16 = 10257;
const SCHEDULER_PORT: u16 = 10259;

/// The group the bootstrap token authenticates as, besides `system:bootstrappers`.
pub const BOOTSTRAP_GROUP: &str = "system:bootstrappers:tn-agent:default-node-token";

/// `aws:///<az>/<instance-id>`, the form the AWS cloud provider expects.
pub fn provider_id(availability_zone: &str, instance_id: &str) -> String {
    format!("aws:///{availability_zone}/{instance_id}")
}

/// What a node's kubelet is told, master or worker.
#[derive(Debug, Clone, Copy)]
pub struct Kubelet<'a> {
    /// Masters run static pods and have a client certificate; workers TLS-bootstrap.
    pub master: bool,
    pub node_ip: Ipv4Addr,
    pub node_name: &'a str,
    pub provider_id: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub taints: &'a [Taint],
    pub dns_ip: Ipv4Addr,
    pub cluster_domain: &'a str,
}

/// `/var/lib/kubelet/config.yaml`: a KubeletConfiguration with secure defaults (no anonymous
/// access, webhook authentication and authorization, client certificates checked against the
/// cluster CA, rotated client and serving certificates, no read-only port).
pub fn kubelet_config(k: &Kubelet, root: &Root) -> String {
    KubeletConfiguration {
        api_version: "kubelet.config.k8s.io/v1beta1".into(),
        kind: "KubeletConfiguration".into(),
        authentication: Authentication {
            anonymous: Enabled { enabled: false },
            webhook: WebhookAuthentication {
                enabled: true,
                cache_ttl: "2m0s".into(),
            },
            x509: X509Authentication {
                client_ca_file: path(root, files::CA_CERT),
            },
        },
        authorization: Authorization {
            mode: "Webhook".into(),
            webhook: WebhookAuthorization {
                cache_authorized_ttl: "5m0s".into(),
                cache_unauthorized_ttl: "30s".into(),
            },
        },
        cgroup_driver: "systemd".into(),
        cluster_dns: vec![k.dns_ip.to_string()],
        cluster_domain: k.cluster_domain.into(),
        provider_id: k.provider_id.into(),
        read_only_port: 0,
        rotate_certificates: true,
        server_tls_bootstrap: true,
        static_pod_path: k.master.then(|| path(root, files::MANIFESTS_DIR)),
        tls_min_version: "VersionTLS12".into(),
    }
    .to_yaml()
}

/// `/etc/kubernetes/kubelet.env`, the kubelet unit's `EnvironmentFile=`: one `KEY=value` per
/// line, no quotes. The unit runs `kubelet $KUBELET_ARGS`; the other variables are the same
/// facts one by one, for people and scripts. Labels are comma-joined in key order, taints in
/// configured order; an empty list leaves its flag out.
pub fn kubelet_env(k: &Kubelet, root: &Root) -> String {
    let labels = k
        .labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    let taints = k
        .taints
        .iter()
        .map(Taint::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec![
        format!("--config={}", path(root, files::KUBELET_CONFIG)),
        format!("--kubeconfig={}", path(root, files::KUBELET_KUBECONFIG)),
    ];
    if !k.master {
        args.push(format!(
            "--bootstrap-kubeconfig={}",
            path(root, files::BOOTSTRAP_KUBECONFIG)
        ));
    }
    args.push(format!("--node-ip={}", k.node_ip));
    args.push(format!("--hostname-override={}", k.node_name));
    if !labels.is_empty() {
        args.push(format!("--node-labels={labels}"));
    }
    if !taints.is_empty() {
        args.push(format!("--register-with-taints={taints}"));
    }
    format!(
        "# Written by tn-agent bootstrap. The kubelet unit reads it with EnvironmentFile= and runs\n\
         # `kubelet $KUBELET_ARGS`.\n\
         KUBELET_NODE_IP={}\n\
         KUBELET_HOSTNAME={}\n\
         KUBELET_NODE_LABELS={labels}\n\
         KUBELET_NODE_TAINTS={taints}\n\
         KUBELET_PROVIDER_ID={}\n\
         KUBELET_ARGS={}\n",
        k.node_ip,
        k.node_name,
        k.provider_id,
        args.join(" ")
    )
}

/// A kubeconfig with one cluster, one user and one context, certificates embedded (base64).
pub fn kubeconfig(
    cluster: &str,
    server: &str,
    ca_pem: &str,
    user: &str,
    credentials: Credentials,
) -> String {
    Kubeconfig::embedded(cluster, server, ca_pem, user, credentials).to_yaml()
}

/// What the control plane's static pods are told.
#[derive(Debug, Clone, Copy)]
pub struct ControlPlane<'a> {
    pub cluster: &'a str,
    /// Kubernetes version, the images' tag.
    pub version: &'a str,
    pub advertise_ip: Ipv4Addr,
    /// The apiserver's port: the apiserver URL's.
    pub secure_port: u16,
    /// etcd client URLs.
    pub etcd_servers: &'a [String],
    pub etcd_tls: bool,
    pub plan: &'a AddressPlan,
    pub cluster_domain: &'a str,
    /// Whether the apiserver encrypts Secrets at rest ([`files::ENCRYPTION_CONFIG`] is written).
    pub encrypt_secrets: bool,
}

/// The kube-apiserver static pod: etcd over TLS, Node and RBAC authorization, NodeRestriction,
/// bootstrap tokens, no anonymous access, the front proxy. Its probes are TCP: with anonymous
/// access off, the kubelet's unauthenticated `/livez` requests would get 401.
pub fn apiserver_pod(cp: &ControlPlane, root: &Root) -> String {
    let pki = |p: &str| path(root, p);
    let mut flags: BTreeMap<&str, String> = BTreeMap::from([
        ("advertise-address", cp.advertise_ip.to_string()),
        ("allow-privileged", "true".into()),
        ("anonymous-auth", "false".into()),
        ("authorization-mode", "Node,RBAC".into()),
        ("client-ca-file", pki(files::CA_CERT)),
        ("enable-admission-plugins", "NodeRestriction".into()),
        ("enable-bootstrap-token-auth", "true".into()),
        ("etcd-servers", cp.etcd_servers.join(",")),
        (
            "kubelet-client-certificate",
            pki(files::APISERVER_KUBELET_CLIENT.cert),
        ),
        (
            "kubelet-client-key",
            pki(files::APISERVER_KUBELET_CLIENT.key),
        ),
        // The kubelets' serving certificates come from CSRs signed by the cluster CA
        // (serverTLSBootstrap): the apiserver checks them when it calls a kubelet.
        ("kubelet-certificate-authority", pki(files::CA_CERT)),
        (
            "kubelet-preferred-address-types",
            "InternalIP,Hostname,ExternalIP".into(),
        ),
        (
            "proxy-client-cert-file",
            pki(files::FRONT_PROXY_CLIENT.cert),
        ),
        ("proxy-client-key-file", pki(files::FRONT_PROXY_CLIENT.key)),
        ("requestheader-allowed-names", "front-proxy-client".into()),
        (
            "requestheader-client-ca-file",
            pki(files::FRONT_PROXY_CA_CERT),
        ),
        (
            "requestheader-extra-headers-prefix",
            "X-Remote-Extra-".into(),
        ),
        ("requestheader-group-headers", "X-Remote-Group".into()),
        ("requestheader-username-headers", "X-Remote-User".into()),
        ("secure-port", cp.secure_port.to_string()),
        (
            "service-account-issuer",
            service_account_issuer(cp.cluster_domain),
        ),
        ("service-account-key-file", pki(files::SA_PUB)),
        ("service-account-signing-key-file", pki(files::SA_KEY)),
        ("service-cluster-ip-range", cp.plan.service_cidr.to_string()),
        ("tls-cert-file", pki(files::APISERVER.cert)),
        ("tls-private-key-file", pki(files::APISERVER.key)),
    ]);
    if cp.etcd_tls {
        flags.insert("etcd-cafile", pki(files::ETCD_CA_CERT));
        flags.insert("etcd-certfile", pki(files::APISERVER_ETCD_CLIENT.cert));
        flags.insert("etcd-keyfile", pki(files::APISERVER_ETCD_CLIENT.key));
    }
    let mut mounts = vec![("k8s-certs", pki(files::KUBE_PKI_DIR), "DirectoryOrCreate")];
    if cp.encrypt_secrets {
        flags.insert("encryption-provider-config", pki(files::ENCRYPTION_CONFIG));
        mounts.push(("encryption-config", pki(files::ENCRYPTION_CONFIG), "File"));
    }
    let probe = json!({ "tcpSocket": { "host": "127.0.0.1", "port": cp.secure_port } });
    static_pod(&Pod {
        name: "kube-apiserver",
        version: cp.version,
        flags,
        probe,
        cpu: "250m",
        mounts,
    })
}

/// The kube-controller-manager static pod: it signs the kubelets' CSRs with the cluster CA (the
/// one CA key on disk, masters only), allocates node pod CIDRs from the plan, runs the
/// bootstrap-token controllers.
pub fn controller_manager_pod(cp: &ControlPlane, root: &Root) -> String {
    let p = |node_path: &str| path(root, node_path);
    let kubeconfig = p(files::CONTROLLER_MANAGER_KUBECONFIG);
    let flags = BTreeMap::from([
        ("allocate-node-cidrs", "true".into()),
        ("authentication-kubeconfig", kubeconfig.clone()),
        ("authorization-kubeconfig", kubeconfig.clone()),
        ("bind-address", "127.0.0.1".into()),
        ("client-ca-file", p(files::CA_CERT)),
        ("cluster-cidr", cp.plan.pod_cidr.to_string()),
        ("cluster-name", cp.cluster.to_string()),
        ("cluster-signing-cert-file", p(files::CA_CERT)),
        ("cluster-signing-key-file", p(files::CA_KEY)),
        ("controllers", "*,bootstrapsigner,tokencleaner".into()),
        ("kubeconfig", kubeconfig.clone()),
        ("leader-elect", "true".into()),
        (
            "requestheader-client-ca-file",
            p(files::FRONT_PROXY_CA_CERT),
        ),
        ("root-ca-file", p(files::CA_CERT)),
        ("service-account-private-key-file", p(files::SA_KEY)),
        ("service-cluster-ip-range", cp.plan.service_cidr.to_string()),
        ("use-service-account-credentials", "true".into()),
    ]);
    static_pod(&Pod {
        name: "kube-controller-manager",
        version: cp.version,
        flags,
        probe: healthz(CONTROLLER_MANAGER_PORT),
        cpu: "200m",
        mounts: vec![
            ("k8s-certs", p(files::KUBE_PKI_DIR), "DirectoryOrCreate"),
            ("kubeconfig", kubeconfig, "FileOrCreate"),
        ],
    })
}

/// The kube-scheduler static pod.
pub fn scheduler_pod(cp: &ControlPlane, root: &Root) -> String {
    let kubeconfig = path(root, files::SCHEDULER_KUBECONFIG);
    let flags = BTreeMap::from([
        ("authentication-kubeconfig", kubeconfig.clone()),
        ("authorization-kubeconfig", kubeconfig.clone()),
        ("bind-address", "127.0.0.1".into()),
        ("kubeconfig", kubeconfig.clone()),
        ("leader-elect", "true".into()),
    ]);
    static_pod(&Pod {
        name: "kube-scheduler",
        version: cp.version,
        flags,
        probe: healthz(SCHEDULER_PORT),
        cpu: "100m",
        mounts: vec![("kubeconfig", kubeconfig, "FileOrCreate")],
    })
}

/// What workers need in the API to join by TLS bootstrap, for an operator (or an addon unit)
/// to apply once: the bootstrap token's Secret, the right of `system:bootstrappers` to create
/// CSRs, and the automatic approval of new nodes' client CSRs and of their renewals.
pub fn tls_bootstrap_addon(
    token: &BootstrapToken,
    expires: Option<time::OffsetDateTime>,
) -> String {
    let mut secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": format!("bootstrap-token-{}", token.id()), "namespace": "kube-system" },
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "description": "Workers' kubelet TLS bootstrap token, from tn-agent's state bucket",
            "token-id": token.id(),
            "token-secret": token.secret(),
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": BOOTSTRAP_GROUP,
        },
    });
    if let Some(at) = expires {
        // The token cleaner deletes the Secret at this time (RFC 3339, UTC).
        secret["stringData"]["expiration"] = json!(crate::state::rfc3339(at));
    }
    let binding = |name: &str, role: &str, group: &str| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group }],
        })
    };
    let docs = [
        secret,
        binding(
            "tn-agent:kubelet-bootstrap",
            "system:node-bootstrapper",
            "system:bootstrappers",
        ),
        binding(
            "tn-agent:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "system:bootstrappers",
        ),
        binding(
            "tn-agent:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "system:nodes",
        ),
    ];
    docs.iter().map(yaml).collect::<Vec<_>>().join("---\n")
}

/// The reboot locks' addon (SPEC §9): one empty ConfigMap `kube-system/tn-reboot-<group>` per
/// group (nodes write the `semaphore` key at first use; an apply leaves a written key alone), and
/// a Role letting group `system:nodes` get and update exactly those ConfigMaps, bound to it.
/// Nothing else: cordoning its own Node, listing its own pods and evicting them, a node may do
/// already (the Node authorizer), and NodeRestriction keeps it to its own.
pub fn reboot_locks_addon(groups: &[String]) -> String {
    use crate::reboot::kube_lock::{configmap_name, NAMESPACE};
    let names: Vec<String> = groups.iter().map(|g| configmap_name(g)).collect();
    let labels = json!({ "app.kubernetes.io/managed-by": "tn-agent" });
    let mut docs: Vec<serde_json::Value> = names
        .iter()
        .map(|name| {
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": { "name": name, "namespace": NAMESPACE, "labels": labels },
            })
        })
        .collect();
    docs.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": { "name": "tn-agent:reboot-locks", "namespace": NAMESPACE, "labels": labels },
        "rules": [{
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": names,
            "verbs": ["get", "update"],
        }],
    }));
    docs.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": { "name": "tn-agent:reboot-locks", "namespace": NAMESPACE, "labels": labels },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tn-agent:reboot-locks" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes" }],
    }));
    docs.iter().map(yaml).collect::<Vec<_>>().join("---\n")
}

/// The apiserver's EncryptionConfiguration: Secrets written with secretbox (XSalsa20-Poly1305)
/// under the cluster's key; `identity` second, so Secrets written before encryption was on
/// stay readable (they are encrypted when next written).
pub fn encryption_config(key: &EncryptionKey) -> String {
    yaml(&json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{
            "resources": ["secrets"],
            "providers": [
                { "secretbox": { "keys": [{ "name": KEY_NAME, "secret": key.base64() }] } },
                { "identity": {} },
            ],
        }],
    }))
}

/// `https://kubernetes.default.svc.<cluster_domain>`, as kubeadm sets it.
fn service_account_issuer(cluster_domain: &str) -> String {
    format!("https://kubernetes.default.svc.{cluster_domain}")
}

/// One control-plane component as a static pod.
struct Pod<'a> {
    name: &'a str,
    version: &'a str,
    flags: BTreeMap<&'a str, String>,
    /// Liveness and readiness probe handler.
    probe: Value,
    /// CPU request.
    cpu: &'a str,
    /// Host paths mounted at the same path in the container: volume name, path, hostPath type.
    mounts: Vec<(&'a str, String, &'a str)>,
}

fn static_pod(pod: &Pod) -> String {
    let mut command = vec![pod.name.to_string()];
    command.extend(pod.flags.iter().map(|(k, v)| format!("--{k}={v}")));
    let probe = |delay: u32, period: u32, failures: u32| {
        let mut p = pod.probe.clone();
        p["initialDelaySeconds"] = delay.into();
        p["periodSeconds"] = period.into();
        p["timeoutSeconds"] = 15.into();
        p["failureThreshold"] = failures.into();
        p
    };
    let mounts: Vec<Value> = pod
        .mounts
        .iter()
        .map(|(name, path, _)| json!({ "name": name, "mountPath": path, "readOnly": true }))
        .collect();
    let volumes: Vec<Value> = pod
        .mounts
        .iter()
        .map(|(name, path, kind)| json!({ "name": name, "hostPath": { "path": path, "type": kind } }))
        .collect();
    yaml(&json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name,
            "namespace": "kube-system",
            "labels": { "component": pod.name, "tier": "control-plane" },
        },
        "spec": {
            "hostNetwork": true,
            "priorityClassName": "system-node-critical",
            "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{
                "name": pod.name,
                "image": format!("{REGISTRY}/{}:{}", pod.name, pod.version),
                "imagePullPolicy": "IfNotPresent",
                "command": command,
                "livenessProbe": probe(10, 10, 8),
                "readinessProbe": probe(0, 1, 3),
                "resources": { "requests": { "cpu": pod.cpu } },
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    }))
}

/// The `--etcd-servers` of an apiserver manifest [`apiserver_pod`] wrote.
pub fn manifest_etcd_servers(manifest: &str) -> Result<Vec<String>, String> {
    let pod: Value = yaml_serde::from_str(manifest).map_err(|e| format!("not YAML: {e}"))?;
    let flag = etcd_servers_flag(&pod)?;
    let (_, servers) = pod["spec"]["containers"][0]["command"][flag]
        .as_str()
        .and_then(|a| a.split_once('='))
        .ok_or("no --etcd-servers")?;
    Ok(servers.split(',').map(str::to_string).collect())
}

/// The manifest with `--etcd-servers` set to `servers`, everything else as it was written.
pub fn with_etcd_servers(manifest: &str, servers: &[String]) -> Result<String, String> {
    let mut pod: Value = yaml_serde::from_str(manifest).map_err(|e| format!("not YAML: {e}"))?;
    let flag = etcd_servers_flag(&pod)?;
    pod["spec"]["containers"][0]["command"][flag] =
        json!(format!("--etcd-servers={}", servers.join(",")));
    Ok(yaml(&pod))
}

/// A static pod's manifest with the annotation `key` set to `value`, everything else as it was.
pub fn with_annotation(manifest: &str, key: &str, value: &str) -> Result<String, String> {
    let mut pod: Value = yaml_serde::from_str(manifest).map_err(|e| format!("not YAML: {e}"))?;
    if pod["kind"] != "Pod" {
        return Err("not a Pod".into());
    }
    pod["metadata"]["annotations"][key] = json!(value);
    Ok(yaml(&pod))
}

/// A static pod manifest's annotation `key`, if it has one.
pub fn annotation(manifest: &str, key: &str) -> Result<Option<String>, String> {
    let pod: Value = yaml_serde::from_str(manifest).map_err(|e| format!("not YAML: {e}"))?;
    if pod["kind"] != "Pod" {
        return Err("not a Pod".into());
    }
    Ok(pod["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_string))
}

/// Where `--etcd-servers=` is in the kube-apiserver container's command: exactly once.
fn etcd_servers_flag(pod: &Value) -> Result<usize, String> {
    let container = &pod["spec"]["containers"][0];
    if container["name"] != "kube-apiserver" {
        return Err("not a kube-apiserver static pod".into());
    }
    let command = container["command"].as_array().ok_or("no command")?;
    let found: Vec<usize> = command
        .iter()
        .enumerate()
        .filter(|(_, a)| a.as_str().is_some_and(|a| a.starts_with("--etcd-servers=")))
        .map(|(i, _)| i)
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        _ => Err(format!("{} --etcd-servers flags, not one", found.len())),
    }
}

/// An HTTPS `/healthz` probe on the loopback (those components allow it unauthenticated).
fn healthz(port: u16) -> Value {
    json!({ "httpGet": { "host": "127.0.0.1", "path": "/healthz", "port": port, "scheme": "HTTPS" } })
}

/// A node path under the root, as text for a generated file.
fn path(root: &Root, node_path: &str) -> String {
    root.path(node_path).display().to_string()
}

fn yaml(doc: &Value) -> String {
    yaml_serde::to_string(doc).expect("a JSON value serialises as YAML")
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
