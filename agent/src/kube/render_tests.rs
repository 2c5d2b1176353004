//! What the renderers write, parsed back and checked field by field.

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
        vars["KUBELET_NODE_LABELS"], "example.com/accelerator=nvidia,node.kubernetes.io/pool=gpu",
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
        encrypt_secrets: true,
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
        ("kubelet-certificate-authority", format!("{pki}/ca.crt")),
        (
            "encryption-provider-config",
            "/tmp/n1/etc/kubernetes/encryption-config.yaml".into(),
        ),
    ];
    for (k, v) in expect {
        assert_eq!(f.get(k), Some(&v), "--{k}");
    }
    let c = &doc["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], Yaml::from(6443));
    assert_eq!(s(&c["volumeMounts"][0]["mountPath"]), pki);

    assert_eq!(
        s(&c["volumeMounts"][1]["mountPath"]),
        "/tmp/n1/etc/kubernetes/encryption-config.yaml"
    );

    // Without etcd TLS: http URLs and no etcd certificates; without the key, no encryption.
    let plain = vec!["http://10.4.2.5:2379".to_string()];
    let mut cp = control_plane(&plan, &plain, false);
    cp.encrypt_secrets = false;
    let text = apiserver_pod(&cp, &root);
    let (doc, f) = pod_flags(&text, "kube-apiserver");
    assert!(!f.contains_key("encryption-provider-config"));
    assert_eq!(
        doc["spec"]["containers"][0]["volumeMounts"]
            .as_sequence()
            .unwrap()
            .len(),
        1
    );
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
fn the_encryption_config_encrypts_secrets_and_still_reads_old_ones() {
    let key: crate::pki::encryption::EncryptionKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
        .parse()
        .unwrap();
    let doc = parse(&encryption_config(&key));
    assert_eq!(s(&doc["apiVersion"]), "apiserver.config.k8s.io/v1");
    assert_eq!(s(&doc["kind"]), "EncryptionConfiguration");
    let r = &doc["resources"][0];
    assert_eq!(s(&r["resources"][0]), "secrets");
    let first = &r["providers"][0]["secretbox"]["keys"][0];
    assert_eq!(s(&first["name"]), "tn-1");
    assert_eq!(
        s(&first["secret"]),
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    );
    assert!(r["providers"][1]["identity"].is_mapping());
    assert_eq!(r["providers"].as_sequence().unwrap().len(), 2);
}

#[test]
fn the_addon_holds_the_token_secret_and_the_bootstrap_rbac() {
    let token: BootstrapToken = "abcdef.0123456789abcdef".parse().unwrap();
    let expires = time::macros::datetime!(2027-12-02 10:20:30.5 UTC);
    let text = tls_bootstrap_addon(&token, Some(expires));
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
    assert_eq!(
        s(&secret["stringData"]["expiration"]),
        "2027-12-02T10:20:30Z"
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

#[test]
fn the_etcd_servers_of_a_manifest_are_read_and_replaced_and_nothing_else_changes() {
    let plan = AddressPlan::for_vpc_number(4).unwrap();
    let root = Root::new(ROOT);
    let etcd = vec![
        "https://10.4.2.5:2379".to_string(),
        "https://10.4.3.5:2379".to_string(),
    ];
    let text = apiserver_pod(&control_plane(&plan, &etcd, true), &root);
    let servers = manifest_etcd_servers(&text).unwrap();
    assert_eq!(servers, etcd);
    assert_eq!(
        with_etcd_servers(&text, &servers).unwrap(),
        text,
        "a round trip"
    );
    let new = vec![
        "https://10.4.2.7:2379".to_string(),
        "https://10.4.2.8:2379".to_string(),
    ];
    assert_eq!(
        with_etcd_servers(&text, &new).unwrap(),
        apiserver_pod(&control_plane(&plan, &new, true), &root),
        "as if rendered with them"
    );
    let scheduler = scheduler_pod(&control_plane(&plan, &etcd, true), &root);
    assert!(manifest_etcd_servers(&scheduler)
        .unwrap_err()
        .contains("not a kube-apiserver"));
    assert!(manifest_etcd_servers("a: [")
        .unwrap_err()
        .contains("not YAML"));
}
