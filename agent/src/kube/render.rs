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
    let probe = json!({ "tcpSocket": { "host": "127.0.0.1", "port": cp.secure_port } });
    static_pod(&Pod {
        name: "kube-apiserver",
        version: cp.version,
        flags,
        probe,
        cpu: "250m",
        mounts: vec![("k8s-certs", pki(files::KUBE_PKI_DIR), "DirectoryOrCreate")],
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
pub fn tls_bootstrap_addon(token: &BootstrapToken) -> String {
    let secret = json!({
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
mod tests {
    use super::*;
    use crate::config::AddressPlan;
    use base64::Engine as _;
    use yaml_serde::Value as Yaml;

    const ROOT: &str = "/tmp/n1";

    fn parse(text: &str) -> Yaml {
        yaml_serde::from_str(text).unwrap()
    }

    fn s(v: &Yaml) -> &str {
        v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
    }

    fn taints(list: &[&str]) -> Vec<Taint> {
        list.iter().map(|t| t.parse().unwrap()).collect()
    }

    fn labels(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn kubelet<'a>(
        master: bool,
        labels: &'a BTreeMap<String, String>,
        taints: &'a [Taint],
    ) -> Kubelet<'a> {
        Kubelet {
            master,
            node_ip: "10.4.1.12".parse().unwrap(),
            node_name: "ip-10-4-1-12.ec2.internal",
            provider_id: "aws:///eu-west-1b/i-0abc",
            labels,
            taints,
            dns_ip: "10.5.128.10".parse().unwrap(),
            cluster_domain: "cluster.local",
        }
    }

    #[test]
    fn provider_ids_name_the_zone_and_instance() {
        assert_eq!(
            provider_id("eu-west-1b", "i-0abc"),
            "aws:///eu-west-1b/i-0abc"
        );
    }

    #[test]
    fn kubelet_config_has_secure_defaults() {
        let none = BTreeMap::new();
        let root = Root::new(ROOT);
        let doc = parse(&kubelet_config(&kubelet(false, &none, &[]), &root));
        assert_eq!(s(&doc["apiVersion"]), "kubelet.config.k8s.io/v1beta1");
        assert_eq!(s(&doc["kind"]), "KubeletConfiguration");
        let authn = &doc["authentication"];
        assert_eq!(authn["anonymous"]["enabled"], Yaml::Bool(false));
        assert_eq!(authn["webhook"]["enabled"], Yaml::Bool(true));
        assert_eq!(
            s(&authn["x509"]["clientCAFile"]),
            "/tmp/n1/etc/kubernetes/pki/ca.crt"
        );
        assert_eq!(s(&doc["authorization"]["mode"]), "Webhook");
        assert_eq!(doc["clusterDNS"], parse("[10.5.128.10]"));
        assert_eq!(s(&doc["clusterDomain"]), "cluster.local");
        assert_eq!(doc["rotateCertificates"], Yaml::Bool(true));
        assert_eq!(doc["serverTLSBootstrap"], Yaml::Bool(true));
        assert_eq!(s(&doc["cgroupDriver"]), "systemd");
        assert_eq!(doc["readOnlyPort"], Yaml::from(0));
        assert_eq!(s(&doc["providerID"]), "aws:///eu-west-1b/i-0abc");
        assert!(
            doc.get("staticPodPath").is_none(),
            "workers run no static pods"
        );

        let doc = parse(&kubelet_config(&kubelet(true, &none, &[]), &root));
        assert_eq!(s(&doc["staticPodPath"]), "/tmp/n1/etc/kubernetes/manifests");
    }

    #[test]
    fn kubelet_env_carries_the_flags() {
        let l = labels(&[
            ("node.kubernetes.io/pool", "gpu"),
            ("example.com/accelerator", "nvidia"),
        ]);
        let t = taints(&["nvidia.com/gpu=present:NoSchedule", "dedicated:NoExecute"]);
        let env = kubelet_env(&kubelet(false, &l, &t), &Root::new(ROOT));
        let vars: BTreeMap<&str, &str> = env
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_once('=').unwrap())
            .collect();
        assert_eq!(vars["KUBELET_NODE_IP"], "10.4.1.12");
        assert_eq!(vars["KUBELET_HOSTNAME"], "ip-10-4-1-12.ec2.internal");
        assert_eq!(
            vars["KUBELET_NODE_LABELS"],
            "example.com/accelerator=nvidia,node.kubernetes.io/pool=gpu",
            "sorted by key"
        );
        assert_eq!(
            vars["KUBELET_NODE_TAINTS"],
            "nvidia.com/gpu=present:NoSchedule,dedicated:NoExecute"
        );
        assert_eq!(vars["KUBELET_PROVIDER_ID"], "aws:///eu-west-1b/i-0abc");
        let args: Vec<&str> = vars["KUBELET_ARGS"].split(' ').collect();
        assert_eq!(
            args,
            [
                "--config=/tmp/n1/var/lib/kubelet/config.yaml",
                "--kubeconfig=/tmp/n1/etc/kubernetes/kubelet.conf",
                "--bootstrap-kubeconfig=/tmp/n1/etc/kubernetes/bootstrap-kubelet.conf",
                "--node-ip=10.4.1.12",
                "--hostname-override=ip-10-4-1-12.ec2.internal",
                "--node-labels=example.com/accelerator=nvidia,node.kubernetes.io/pool=gpu",
                "--register-with-taints=nvidia.com/gpu=present:NoSchedule,dedicated:NoExecute",
            ]
        );
        let values = env.lines().filter(|l| !l.starts_with('#'));
        assert!(
            values.clone().all(|l| !l.contains(['"', '\'', '$', '\\'])),
            "no shell syntax: {env}"
        );
        assert_eq!(values.count(), 6, "{env}");
    }

    #[test]
    fn a_master_kubelet_has_no_bootstrap_and_empty_lists_no_flags() {
        let none = BTreeMap::new();
        let env = kubelet_env(&kubelet(true, &none, &[]), &Root::new("/"));
        assert!(env.contains("\nKUBELET_NODE_LABELS=\n"), "{env}");
        assert!(env.contains("\nKUBELET_NODE_TAINTS=\n"), "{env}");
        let args = env
            .lines()
            .find_map(|l| l.strip_prefix("KUBELET_ARGS="))
            .unwrap();
        assert_eq!(
            args,
            "--config=/var/lib/kubelet/config.yaml --kubeconfig=/etc/kubernetes/kubelet.conf \
             --node-ip=10.4.1.12 --hostname-override=ip-10-4-1-12.ec2.internal"
        );
    }

    #[test]
    fn kubeconfigs_embed_the_ca_and_the_credentials() {
        let decode = |v: &Yaml| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(s(v))
                    .unwrap(),
            )
            .unwrap()
        };
        let text = kubeconfig(
            "prod",
            "https://127.0.0.1:443",
            "CA PEM\n",
            "system:kube-scheduler",
            Credentials::Cert {
                cert_pem: "CERT PEM\n",
                key_pem: "KEY PEM\n",
            },
        );
        let doc = parse(&text);
        assert_eq!(s(&doc["apiVersion"]), "v1");
        assert_eq!(s(&doc["kind"]), "Config");
        let cluster = &doc["clusters"][0];
        assert_eq!(s(&cluster["name"]), "prod");
        assert_eq!(s(&cluster["cluster"]["server"]), "https://127.0.0.1:443");
        assert_eq!(
            decode(&cluster["cluster"]["certificate-authority-data"]),
            "CA PEM\n"
        );
        let user = &doc["users"][0];
        assert_eq!(s(&user["name"]), "system:kube-scheduler");
        assert_eq!(
            decode(&user["user"]["client-certificate-data"]),
            "CERT PEM\n"
        );
        assert_eq!(decode(&user["user"]["client-key-data"]), "KEY PEM\n");
        assert_eq!(s(&doc["current-context"]), "system:kube-scheduler@prod");
        let ctx = &doc["contexts"][0];
        assert_eq!(s(&ctx["name"]), "system:kube-scheduler@prod");
        assert_eq!(s(&ctx["context"]["cluster"]), "prod");
        assert_eq!(s(&ctx["context"]["user"]), "system:kube-scheduler");

        let doc = parse(&kubeconfig(
            "prod",
            "https://kubernetes.prod.int:443",
            "CA PEM\n",
            "kubelet-bootstrap",
            Credentials::Token("abcdef.0123456789abcdef"),
        ));
        assert_eq!(
            s(&doc["users"][0]["user"]["token"]),
            "abcdef.0123456789abcdef"
        );
        assert!(doc["users"][0]["user"].get("client-key-data").is_none());
    }

    fn control_plane<'a>(plan: &'a AddressPlan, etcd: &'a [String], tls: bool) -> ControlPlane<'a> {
        ControlPlane {
            cluster: "prod",
            version: "v1.31.4",
            advertise_ip: "10.4.1.12".parse().unwrap(),
            secure_port: 6443,
            etcd_servers: etcd,
            etcd_tls: tls,
            plan,
            cluster_domain: "cluster.local",
        }
    }

    /// The container's flags as a map, after checking the pod's shape.
    fn pod_flags(text: &str, name: &str) -> (Yaml, BTreeMap<String, String>) {
        let doc = parse(text);
        assert_eq!(s(&doc["apiVersion"]), "v1");
        assert_eq!(s(&doc["kind"]), "Pod");
        assert_eq!(s(&doc["metadata"]["name"]), name);
        assert_eq!(s(&doc["metadata"]["namespace"]), "kube-system");
        assert_eq!(doc["spec"]["hostNetwork"], Yaml::Bool(true));
        let c = &doc["spec"]["containers"][0];
        assert_eq!(s(&c["image"]), format!("registry.k8s.io/{name}:v1.31.4"));
        let command: Vec<&str> = c["command"].as_sequence().unwrap().iter().map(s).collect();
        assert_eq!(command[0], name);
        let flags = command[1..]
            .iter()
            .map(|f| {
                let (k, v) = f.strip_prefix("--").unwrap().split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        // Every mount is a host path at the same place.
        let mounts = c["volumeMounts"].as_sequence().unwrap();
        let volumes = doc["spec"]["volumes"].as_sequence().unwrap();
        assert_eq!(mounts.len(), volumes.len());
        for (m, v) in mounts.iter().zip(volumes) {
            assert_eq!(m["name"], v["name"]);
            assert_eq!(m["mountPath"], v["hostPath"]["path"]);
            assert_eq!(m["readOnly"], Yaml::Bool(true));
        }
        (doc, flags)
    }

    #[test]
    fn the_apiserver_pod_uses_tls_everywhere() {
        let plan = AddressPlan::for_vpc_number(4).unwrap();
        let etcd = vec![
            "https://10.4.2.5:2379".to_string(),
            "https://10.4.3.5:2379".to_string(),
        ];
        let root = Root::new(ROOT);
        let text = apiserver_pod(&control_plane(&plan, &etcd, true), &root);
        let (doc, f) = pod_flags(&text, "kube-apiserver");
        let pki = "/tmp/n1/etc/kubernetes/pki";
        let expect = [
            ("advertise-address", "10.4.1.12".to_string()),
            ("anonymous-auth", "false".into()),
            ("authorization-mode", "Node,RBAC".into()),
            ("enable-admission-plugins", "NodeRestriction".into()),
            ("enable-bootstrap-token-auth", "true".into()),
            (
                "etcd-servers",
                "https://10.4.2.5:2379,https://10.4.3.5:2379".into(),
            ),
            ("etcd-cafile", format!("{pki}/etcd/ca.crt")),
            ("etcd-certfile", format!("{pki}/apiserver-etcd-client.crt")),
            ("etcd-keyfile", format!("{pki}/apiserver-etcd-client.key")),
            ("service-cluster-ip-range", "10.5.128.0/17".into()),
            ("service-account-key-file", format!("{pki}/sa.pub")),
            ("service-account-signing-key-file", format!("{pki}/sa.key")),
            (
                "service-account-issuer",
                "https://kubernetes.default.svc.cluster.local".into(),
            ),
            ("client-ca-file", format!("{pki}/ca.crt")),
            ("tls-cert-file", format!("{pki}/apiserver.crt")),
            ("tls-private-key-file", format!("{pki}/apiserver.key")),
            (
                "kubelet-client-certificate",
                format!("{pki}/apiserver-kubelet-client.crt"),
            ),
            (
                "kubelet-client-key",
                format!("{pki}/apiserver-kubelet-client.key"),
            ),
            (
                "requestheader-client-ca-file",
                format!("{pki}/front-proxy-ca.crt"),
            ),
            ("requestheader-allowed-names", "front-proxy-client".into()),
            (
                "proxy-client-cert-file",
                format!("{pki}/front-proxy-client.crt"),
            ),
            (
                "proxy-client-key-file",
                format!("{pki}/front-proxy-client.key"),
            ),
            ("secure-port", "6443".into()),
        ];
        for (k, v) in expect {
            assert_eq!(f.get(k), Some(&v), "--{k}");
        }
        let c = &doc["spec"]["containers"][0];
        assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], Yaml::from(6443));
        assert_eq!(s(&c["volumeMounts"][0]["mountPath"]), pki);

        // Without etcd TLS: http URLs and no etcd certificates.
        let plain = vec!["http://10.4.2.5:2379".to_string()];
        let text = apiserver_pod(&control_plane(&plan, &plain, false), &root);
        let (_, f) = pod_flags(&text, "kube-apiserver");
        assert_eq!(f["etcd-servers"], "http://10.4.2.5:2379");
        assert!(!f
            .keys()
            .any(|k| k.starts_with("etcd-c") || k == "etcd-keyfile"));
    }

    #[test]
    fn the_controller_manager_signs_with_the_cluster_ca() {
        let plan = AddressPlan::for_vpc_number(4).unwrap();
        let root = Root::new(ROOT);
        let text = controller_manager_pod(&control_plane(&plan, &[], true), &root);
        let (doc, f) = pod_flags(&text, "kube-controller-manager");
        let pki = "/tmp/n1/etc/kubernetes/pki";
        let conf = "/tmp/n1/etc/kubernetes/controller-manager.conf";
        let expect = [
            ("cluster-signing-cert-file", format!("{pki}/ca.crt")),
            ("cluster-signing-key-file", format!("{pki}/ca.key")),
            ("service-account-private-key-file", format!("{pki}/sa.key")),
            ("root-ca-file", format!("{pki}/ca.crt")),
            ("cluster-cidr", "10.5.0.0/17".into()),
            ("service-cluster-ip-range", "10.5.128.0/17".into()),
            ("allocate-node-cidrs", "true".into()),
            ("use-service-account-credentials", "true".into()),
            ("controllers", "*,bootstrapsigner,tokencleaner".into()),
            ("kubeconfig", conf.into()),
            ("bind-address", "127.0.0.1".into()),
        ];
        for (k, v) in expect {
            assert_eq!(f.get(k), Some(&v), "--{k}");
        }
        let c = &doc["spec"]["containers"][0];
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], Yaml::from(10257));
        assert_eq!(s(&c["livenessProbe"]["httpGet"]["scheme"]), "HTTPS");

        let text = scheduler_pod(&control_plane(&plan, &[], true), &root);
        let (_, f) = pod_flags(&text, "kube-scheduler");
        assert_eq!(f["kubeconfig"], "/tmp/n1/etc/kubernetes/scheduler.conf");
        assert_eq!(f["leader-elect"], "true");
    }

    #[test]
    fn the_addon_holds_the_token_secret_and_the_bootstrap_rbac() {
        let token: BootstrapToken = "abcdef.0123456789abcdef".parse().unwrap();
        let text = tls_bootstrap_addon(&token);
        let docs: Vec<Yaml> = yaml_serde::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 4);
        let secret = &docs[0];
        assert_eq!(s(&secret["kind"]), "Secret");
        assert_eq!(s(&secret["metadata"]["name"]), "bootstrap-token-abcdef");
        assert_eq!(s(&secret["metadata"]["namespace"]), "kube-system");
        assert_eq!(s(&secret["type"]), "bootstrap.kubernetes.io/token");
        assert_eq!(s(&secret["stringData"]["token-secret"]), "0123456789abcdef");
        assert_eq!(
            s(&secret["stringData"]["usage-bootstrap-authentication"]),
            "true"
        );
        let bindings: Vec<(&str, &str)> = docs[1..]
            .iter()
            .map(|d| {
                assert_eq!(s(&d["kind"]), "ClusterRoleBinding");
                (s(&d["roleRef"]["name"]), s(&d["subjects"][0]["name"]))
            })
            .collect();
        assert_eq!(
            bindings,
            [
                ("system:node-bootstrapper", "system:bootstrappers"),
                (
                    "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                    "system:bootstrappers"
                ),
                (
                    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                    "system:nodes"
                ),
            ]
        );
    }
}
