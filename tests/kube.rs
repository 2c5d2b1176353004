//! Master and worker bootstrap (SPEC §4–§6) against moto, fake IMDS and real etcd: the files a
//! master and the workers of two pools write, their certificates checked with openssl, the
//! apiserver's etcd client certificate used against the running etcd, re-runs that keep what
//! still fits, and bad or missing PKI in S3 that leaves the node's files untouched.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use tn_agent::etcd::client::{ClientTls, EtcdAccess};
use tn_agent::fsutil::Root;
use tn_agent::kube::apiserver_restart;
use tn_agent::pki::Ca;
use tn_agent::state::Decision;
use tn_world::iam::role_key;
use tn_world::{EtcdProcess, Node, Run, World};
use yaml_serde::Value as Yaml;

use crate::support::files::{files_under, pem_body, pki_object};
use crate::support::state::{decisions, why};

const ETCD_ASG: &str = "demo-etcd";
const MASTER_ASG: &str = "demo-master";
const VERSION: &str = "v1.31.4";
const TOKEN: &str = "abcdef.0123456789abcdef";
/// With `vpc_number = 0`: pods 10.1.0.0/17, services 10.1.128.0/17.
const POD_CIDR: &str = "10.1.0.0/17";
const SERVICE_CIDR: &str = "10.1.128.0/17";

/// The cluster's PKI objects in the state bucket (SPEC §5), as `pki init --upload` or Terraform
/// would put them; made here so that these tests depend on neither.
struct ClusterPki {
    etcd_ca_key: String,
    front_proxy_ca_key: String,
    ca_key: String,
}

fn upload_pki(world: &World) -> ClusterPki {
    let dir = tempfile::tempdir().unwrap();
    tn_world::openssl(
        dir.path(),
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "sa.key",
        ],
    );
    tn_world::openssl(
        dir.path(),
        &["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
    );
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
    let (ca, etcd_ca, front_proxy_ca) = (
        Ca::generate("kubernetes").unwrap(),
        Ca::generate("etcd-ca").unwrap(),
        Ca::generate("front-proxy-ca").unwrap(),
    );
    let objects = [
        ("ca.crt", ca.cert_pem().to_string()),
        ("ca.key", ca.key_pem()),
        ("etcd-ca.crt", etcd_ca.cert_pem().to_string()),
        ("etcd-ca.key", etcd_ca.key_pem()),
        ("front-proxy-ca.crt", front_proxy_ca.cert_pem().to_string()),
        ("front-proxy-ca.key", front_proxy_ca.key_pem()),
        ("sa.key", read("sa.key")),
        ("sa.pub", read("sa.pub")),
        ("bootstrap-token", format!("{TOKEN}\n")),
        (
            "secrets-encryption-key",
            tn_world::openssl(dir.path(), &["rand", "-base64", "32"]),
        ),
    ];
    for (name, body) in &objects {
        put_pki(world, name, body);
    }
    ClusterPki {
        etcd_ca_key: etcd_ca.key_pem(),
        front_proxy_ca_key: front_proxy_ca.key_pem(),
        ca_key: ca.key_pem(),
    }
}

fn put_pki(world: &World, name: &str, body: &str) {
    world
        .put_object(&format!("demo/pki/{name}"), body.as_bytes())
        .unwrap();
}

fn delete_pki(world: &World, name: &str) {
    world
        .block_on(
            world
                .s3
                .delete_object()
                .bucket(&world.bucket)
                .key(format!("demo/pki/{name}"))
                .send(),
        )
        .unwrap();
}

fn master_config(world: &World) -> String {
    world.config(
        "master",
        &format!("[etcd]\nasg = \"{ETCD_ASG}\"\n[kubernetes]\nversion = \"{VERSION}\"\n"),
    )
}

/// The etcd ASG with one member running, for the masters to reach.
fn running_etcd(world: &World) -> (Node, EtcdProcess) {
    world.create_asg(ETCD_ASG, "etcd", 1).unwrap();
    let node = world.etcd_nodes(ETCD_ASG, 60).unwrap().remove(0);
    let etcd = node.boot_etcd().unwrap();
    (node, etcd)
}

/// A node for the first instance of a new ASG.
fn node_of_new_asg(world: &World, asg: &str, role: &str, config: &str) -> Node {
    world.create_asg(asg, role, 1).unwrap();
    let inst = &world.asg_instances(asg).unwrap()[0];
    world.node(inst, config).unwrap()
}

fn bootstrap(node: &Node) -> Run {
    node.run(&["bootstrap"]).unwrap()
}

fn bootstrap_ok(node: &Node) {
    let run = bootstrap(node);
    assert_eq!(run.code, 0, "bootstrap on {}:\n{}", node.id, run.stderr);
}

/// `openssl` run in the node's PKI directory.
fn openssl(node: &Node, args: &[&str]) -> String {
    tn_world::openssl(&node.path("/etc/kubernetes/pki"), args)
}

fn mode(node: &Node, path: &str) -> u32 {
    crate::support::files::mode(&node.path(path))
}

fn read(node: &Node, path: &str) -> String {
    std::fs::read_to_string(node.path(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(node: &Node, path: &str) -> Yaml {
    yaml_serde::from_str(&read(node, path)).unwrap()
}

fn text(v: &Yaml) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn decode(v: &Yaml) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text(v))
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// A static pod's container flags, `--key=value`, after checking its image.
fn pod_flags(node: &Node, component: &str) -> BTreeMap<String, String> {
    let pod = yaml(node, &format!("/etc/kubernetes/manifests/{component}.yaml"));
    assert_eq!(text(&pod["kind"]), "Pod");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(
        text(&c["image"]),
        format!("registry.k8s.io/{component}:{VERSION}")
    );
    c["command"].as_sequence().unwrap()[1..]
        .iter()
        .map(|f| {
            let (k, v) = text(f).strip_prefix("--").unwrap().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `KEY=value` lines of an env file.
fn env_vars(node: &Node) -> BTreeMap<String, String> {
    read(node, "/etc/kubernetes/kubelet.env")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Every file under the node's root but the agent's own state and config: path → (bytes, mode).
fn snapshot(node: &Node) -> BTreeMap<String, (Vec<u8>, u32)> {
    files_under(&node.root)
        .into_iter()
        .map(|rel| rel.display().to_string())
        .filter(|rel| !rel.starts_with("var/lib/tn-agent/") && !rel.starts_with("etc/tn-agent/"))
        .map(|rel| {
            let path = node.root.join(&rel);
            let meta = std::fs::metadata(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            (rel, (bytes, meta.permissions().mode() & 0o7777))
        })
        .collect()
}

/// The paths of files under the node's root that hold `key` (a PEM key), as PEM or base64.
fn files_holding(node: &Node, key: &str) -> Vec<String> {
    let body = pem_body(key);
    let encoded = base64::engine::general_purpose::STANDARD.encode(key);
    snapshot(node)
        .into_iter()
        .filter(|(_, (bytes, _))| {
            let flat: String = String::from_utf8_lossy(bytes).lines().collect();
            flat.contains(&body) || flat.contains(&encoded)
        })
        .map(|(path, _)| path)
        .collect()
}

/// The certificate is signed by the CA, fits its key, and has the usage asked for.
fn expect_leaf(node: &Node, name: &str, ca: &str, usage: &str) {
    let crt = format!("{name}.crt");
    let key = format!("{name}.key");
    let purpose = match usage {
        "TLS Web Server Authentication" => "sslserver",
        _ => "sslclient",
    };
    let verified = openssl(
        node,
        &["verify", "-purpose", purpose, "-CAfile", ca, crt.as_str()],
    );
    assert_eq!(verified.trim(), format!("{crt}: OK"));
    let from_key = openssl(node, &["pkey", "-in", &key, "-pubout"]);
    let from_cert = openssl(node, &["x509", "-in", &crt, "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert, "{key} is the key of {crt}");
    let eku = openssl(
        node,
        &["x509", "-in", &crt, "-noout", "-ext", "extendedKeyUsage"],
    );
    assert!(eku.contains(usage), "{crt}: {eku}");
    assert_eq!(mode(node, &format!("/etc/kubernetes/pki/{key}")), 0o600);
    assert_eq!(mode(node, &format!("/etc/kubernetes/pki/{crt}")), 0o644);
}

fn subject(node: &Node, crt: &str) -> String {
    openssl(
        node,
        &[
            "x509", "-in", crt, "-noout", "-subject", "-nameopt", "RFC2253",
        ],
    )
    .trim()
    .to_string()
}

fn sans(node: &Node, crt: &str) -> Vec<String> {
    let out = openssl(
        node,
        &["x509", "-in", crt, "-noout", "-ext", "subjectAltName"],
    );
    let mut names: Vec<String> = out
        .lines()
        .skip(1)
        .flat_map(|l| l.split(','))
        .map(|s| s.trim().to_string())
        .collect();
    names.sort();
    names
}

/// The master's etcd access with the apiserver's own etcd client certificate (or another).
fn etcd_access(node: &Node, cert: &str, key: &str) -> EtcdAccess {
    EtcdAccess::new(
        Some(ClientTls {
            ca_pem: read(node, "/etc/kubernetes/pki/etcd/ca.crt"),
            cert_pem: read(node, &format!("/etc/kubernetes/pki/{cert}")),
            key_pem: read(node, &format!("/etc/kubernetes/pki/{key}")),
        }),
        tn_world::cluster::ETCD_PORTS,
    )
}

#[test]
fn a_master_writes_a_control_plane_that_reaches_etcd() {
    let world = World::start().unwrap();
    let pki = upload_pki(&world);
    let (etcd_node, _etcd) = running_etcd(&world);
    let master = node_of_new_asg(&world, MASTER_ASG, "master", &master_config(&world));
    bootstrap_ok(&master);
    let hostname = format!(
        "ip-{}.ec2.internal",
        master.ip.to_string().replace('.', "-")
    );

    // Files and modes.
    for (path, want) in [
        ("/etc/kubernetes/pki/ca.crt", 0o644),
        ("/etc/kubernetes/pki/ca.key", 0o600),
        ("/etc/kubernetes/pki/etcd/ca.crt", 0o644),
        ("/etc/kubernetes/pki/front-proxy-ca.crt", 0o644),
        ("/etc/kubernetes/pki/sa.key", 0o600),
        ("/etc/kubernetes/pki/sa.pub", 0o644),
        ("/etc/kubernetes/controller-manager.conf", 0o600),
        ("/etc/kubernetes/scheduler.conf", 0o600),
        ("/etc/kubernetes/kubelet.conf", 0o600),
        ("/etc/kubernetes/addons/tls-bootstrap.yaml", 0o600),
        ("/etc/kubernetes/addons/reboot-locks.yaml", 0o644),
        ("/etc/kubernetes/encryption-config.yaml", 0o600),
        ("/etc/kubernetes/manifests/kube-apiserver.yaml", 0o644),
        (
            "/etc/kubernetes/manifests/kube-controller-manager.yaml",
            0o644,
        ),
        ("/etc/kubernetes/manifests/kube-scheduler.yaml", 0o644),
        ("/var/lib/kubelet/config.yaml", 0o644),
        ("/etc/kubernetes/kubelet.env", 0o644),
    ] {
        assert_eq!(mode(&master, path), want, "{path}");
    }
    assert!(!master
        .path("/etc/kubernetes/bootstrap-kubelet.conf")
        .exists());

    // Certificates: chains, usages, keys, subjects, SANs.
    let server = "TLS Web Server Authentication";
    let client = "TLS Web Client Authentication";
    expect_leaf(&master, "apiserver", "ca.crt", server);
    expect_leaf(&master, "apiserver-etcd-client", "etcd/ca.crt", client);
    expect_leaf(&master, "apiserver-kubelet-client", "ca.crt", client);
    expect_leaf(&master, "front-proxy-client", "front-proxy-ca.crt", client);
    expect_leaf(&master, "controller-manager", "ca.crt", client);
    expect_leaf(&master, "scheduler", "ca.crt", client);
    expect_leaf(&master, "kubelet-client", "ca.crt", client);
    // Signed by the right CA only: the front-proxy client does not chain to the cluster CA.
    let out = Command::new("openssl")
        .args(["verify", "-CAfile", "ca.crt", "front-proxy-client.crt"])
        .current_dir(master.path("/etc/kubernetes/pki"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    for (crt, want) in [
        ("apiserver.crt", "subject=CN=kube-apiserver".to_string()),
        (
            "apiserver-kubelet-client.crt",
            "subject=O=system:masters,CN=kube-apiserver-kubelet-client".into(),
        ),
        (
            "controller-manager.crt",
            "subject=CN=system:kube-controller-manager".into(),
        ),
        ("scheduler.crt", "subject=CN=system:kube-scheduler".into()),
        (
            "kubelet-client.crt",
            format!("subject=O=system:nodes,CN=system:node:{hostname}"),
        ),
    ] {
        assert_eq!(subject(&master, crt), want);
    }
    let mut want_sans = vec![
        "DNS:kubernetes".to_string(),
        "DNS:kubernetes.default".into(),
        "DNS:kubernetes.default.svc".into(),
        "DNS:kubernetes.default.svc.cluster.local".into(),
        "DNS:kubernetes.demo.int".into(),
        format!("DNS:{hostname}"),
        "DNS:localhost".into(),
        "IP Address:10.1.128.1".into(),
        format!("IP Address:{}", master.ip),
        "IP Address:127.0.0.1".into(),
    ];
    want_sans.sort();
    assert_eq!(sans(&master, "apiserver.crt"), want_sans);

    // The apiserver's etcd client certificate works against the running etcd; a certificate of
    // the cluster CA does not.
    let etcd_url = etcd_node.client_url();
    let access = etcd_access(
        &master,
        "apiserver-etcd-client.crt",
        "apiserver-etcd-client.key",
    );
    world.block_on(access.status(&etcd_url)).unwrap();
    let wrong = etcd_access(
        &master,
        "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key",
    );
    assert!(world.block_on(wrong.status(&etcd_url)).is_err());

    // Static pods.
    let pki_dir = master.path("/etc/kubernetes/pki").display().to_string();
    let api = pod_flags(&master, "kube-apiserver");
    assert_eq!(api["etcd-servers"], etcd_url);
    assert_eq!(api["etcd-cafile"], format!("{pki_dir}/etcd/ca.crt"));
    assert_eq!(
        api["etcd-certfile"],
        format!("{pki_dir}/apiserver-etcd-client.crt")
    );
    assert_eq!(api["service-cluster-ip-range"], SERVICE_CIDR);
    assert_eq!(api["secure-port"], "443");
    assert_eq!(api["advertise-address"], master.ip.to_string());
    assert_eq!(api["anonymous-auth"], "false");
    assert_eq!(api["enable-bootstrap-token-auth"], "true");
    assert_eq!(api["authorization-mode"], "Node,RBAC");
    assert_eq!(api["enable-admission-plugins"], "NodeRestriction");
    assert_eq!(api["tls-cert-file"], format!("{pki_dir}/apiserver.crt"));
    assert_eq!(api["service-account-key-file"], format!("{pki_dir}/sa.pub"));
    // Every path the apiserver is given is there.
    let root = master.root.display().to_string();
    for (flag, value) in api.iter().filter(|(_, v)| v.starts_with(&root)) {
        assert!(Path::new(value).is_file(), "--{flag}={value}");
    }
    let cm = pod_flags(&master, "kube-controller-manager");
    assert_eq!(cm["cluster-cidr"], POD_CIDR);
    assert_eq!(cm["service-cluster-ip-range"], SERVICE_CIDR);
    assert_eq!(cm["cluster-signing-key-file"], format!("{pki_dir}/ca.key"));
    assert_eq!(cm["controllers"], "*,bootstrapsigner,tokencleaner");
    for flag in [
        "kubeconfig",
        "service-account-private-key-file",
        "root-ca-file",
    ] {
        assert!(Path::new(&cm[flag]).exists(), "--{flag}={}", cm[flag]);
    }
    let sched = pod_flags(&master, "kube-scheduler");
    assert_eq!(
        sched["kubeconfig"],
        master
            .path("/etc/kubernetes/scheduler.conf")
            .display()
            .to_string()
    );

    // Kubeconfigs: the local apiserver for the control plane, the configured URL for the kubelet.
    let ca_pem = read(&master, "/etc/kubernetes/pki/ca.crt");
    for (conf, server, cert) in [
        (
            "controller-manager.conf",
            "https://127.0.0.1:443",
            "controller-manager",
        ),
        ("scheduler.conf", "https://127.0.0.1:443", "scheduler"),
        (
            "kubelet.conf",
            "https://kubernetes.demo.int:443",
            "kubelet-client",
        ),
    ] {
        let doc = yaml(&master, &format!("/etc/kubernetes/{conf}"));
        let cluster = &doc["clusters"][0]["cluster"];
        assert_eq!(text(&cluster["server"]), server, "{conf}");
        assert_eq!(decode(&cluster["certificate-authority-data"]), ca_pem);
        let user = &doc["users"][0]["user"];
        let pki_file = |ext: &str| read(&master, &format!("/etc/kubernetes/pki/{cert}.{ext}"));
        assert_eq!(decode(&user["client-certificate-data"]), pki_file("crt"));
        assert_eq!(decode(&user["client-key-data"]), pki_file("key"));
    }

    // Kubelet.
    let kc = yaml(&master, "/var/lib/kubelet/config.yaml");
    assert_eq!(
        text(&kc["staticPodPath"]),
        master
            .path("/etc/kubernetes/manifests")
            .display()
            .to_string()
    );
    assert_eq!(
        text(&kc["providerID"]),
        format!("aws:///us-east-1a/{}", master.id)
    );
    assert_eq!(kc["clusterDNS"][0], Yaml::from("10.1.128.10"));
    let env = env_vars(&master);
    assert!(!env["KUBELET_ARGS"].contains("--bootstrap-kubeconfig"));
    assert!(env["KUBELET_ARGS"].contains(&format!("--hostname-override={hostname}")));

    // Only the cluster CA key is on disk, only where the controller-manager reads it.
    assert_eq!(
        files_holding(&master, &pki.ca_key),
        ["etc/kubernetes/pki/ca.key"]
    );
    assert!(files_holding(&master, &pki.etcd_ca_key).is_empty());
    assert!(files_holding(&master, &pki.front_proxy_ca_key).is_empty());
    let read_keys = master.state().unwrap().s3_keys_read;
    for name in [
        "ca.key",
        "etcd-ca.key",
        "front-proxy-ca.key",
        "sa.key",
        "bootstrap-token",
    ] {
        assert!(
            read_keys.contains(&format!("demo/pki/{name}")),
            "{read_keys:?}"
        );
    }
    let chose = why(&master, "chose etcd servers");
    assert!(chose.contains("voting etcd members"), "{chose}");

    // A re-run keeps everything as it is and writes nothing.
    let before = snapshot(&master);
    bootstrap_ok(&master);
    assert_eq!(snapshot(&master), before, "a re-run changes nothing");
    assert_eq!(master.state().unwrap().files_written, Vec::<String>::new());

    // A new internal domain: the apiserver certificate is reissued with the new name, the etcd
    // client certificate is kept.
    master
        .write_config(&master_config(&world).replace("demo.int", "corp.int"))
        .unwrap();
    bootstrap_ok(&master);
    let after = snapshot(&master);
    let changed = |p: &str| before[p] != after[p];
    assert!(changed("etc/kubernetes/pki/apiserver.crt"));
    assert!(changed("etc/kubernetes/pki/apiserver.key"));
    assert!(!changed("etc/kubernetes/pki/apiserver-etcd-client.crt"));
    assert!(!changed("etc/kubernetes/pki/apiserver-etcd-client.key"));
    assert!(!changed("etc/kubernetes/pki/controller-manager.crt"));
    let names = sans(&master, "apiserver.crt");
    assert!(
        names.contains(&"DNS:kubernetes.corp.int".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"DNS:kubernetes.demo.int".to_string()),
        "{names:?}"
    );
    assert!(master.state().unwrap().decisions.contains(&Decision {
        what: "issued apiserver serving certificate".to_string(),
        why: "SANs changed: +kubernetes.corp.int -kubernetes.demo.int".to_string()
    }));
    let kubelet_conf = yaml(&master, "/etc/kubernetes/kubelet.conf");
    assert_eq!(
        text(&kubelet_conf["clusters"][0]["cluster"]["server"]),
        "https://kubernetes.corp.int:443"
    );
}

/// Config for a worker of a pool.
fn worker_config(world: &World, labels: &str, taints: &str) -> String {
    world.config(
        "worker",
        &format!(
            "[kubernetes]\nversion = \"{VERSION}\"\nnode_labels = {{ {labels} }}\nnode_taints = [{taints}]\n"
        ),
    )
}

#[test]
fn workers_of_two_pools_join_by_tls_bootstrap_without_a_ca_key() {
    let world = World::start().unwrap();
    let pki = upload_pki(&world);
    let general = node_of_new_asg(
        &world,
        "demo-worker-general",
        "worker",
        &worker_config(&world, "\"node.kubernetes.io/pool\" = \"general\"", ""),
    );
    let gpu = node_of_new_asg(
        &world,
        "demo-worker-gpu",
        "worker",
        &worker_config(
            &world,
            "\"node.kubernetes.io/pool\" = \"gpu\", \"example.com/accelerator\" = \"nvidia\"",
            "\"nvidia.com/gpu=present:NoSchedule\"",
        ),
    );
    for node in [&general, &gpu] {
        bootstrap_ok(node);
        for (path, want) in [
            ("/etc/kubernetes/pki/ca.crt", 0o644),
            ("/etc/kubernetes/bootstrap-kubelet.conf", 0o600),
            ("/var/lib/kubelet/config.yaml", 0o644),
            ("/etc/kubernetes/kubelet.env", 0o644),
        ] {
            assert_eq!(mode(node, path), want, "{path}");
        }
        // The kubelet writes kubelet.conf itself once its CSR is approved.
        assert!(!node.path("/etc/kubernetes/kubelet.conf").exists());
        assert!(!node.path("/etc/kubernetes/manifests").exists());
        let ca_pem = read(node, "/etc/kubernetes/pki/ca.crt");
        assert_eq!(
            tn_agent::pki::inspect(&ca_pem).unwrap().subject_cn.unwrap(),
            "kubernetes"
        );

        let conf = yaml(node, "/etc/kubernetes/bootstrap-kubelet.conf");
        let cluster = &conf["clusters"][0]["cluster"];
        assert_eq!(text(&cluster["server"]), "https://kubernetes.demo.int:443");
        assert_eq!(decode(&cluster["certificate-authority-data"]), ca_pem);
        assert_eq!(text(&conf["users"][0]["user"]["token"]), TOKEN);

        let kc = yaml(node, "/var/lib/kubelet/config.yaml");
        assert_eq!(text(&kc["kind"]), "KubeletConfiguration");
        assert_eq!(
            kc["authentication"]["anonymous"]["enabled"],
            Yaml::Bool(false)
        );
        assert_eq!(
            text(&kc["authentication"]["x509"]["clientCAFile"]),
            node.path("/etc/kubernetes/pki/ca.crt")
                .display()
                .to_string()
        );
        assert_eq!(kc["serverTLSBootstrap"], Yaml::Bool(true));
        assert!(kc.get("staticPodPath").is_none());
        let provider = format!("aws:///us-east-1a/{}", node.id);
        assert_eq!(text(&kc["providerID"]), provider);
        let env = env_vars(node);
        assert_eq!(env["KUBELET_PROVIDER_ID"], provider);
        assert_eq!(env["KUBELET_NODE_IP"], node.ip.to_string());
        let args = &env["KUBELET_ARGS"];
        assert!(args.contains(&format!(
            "--bootstrap-kubeconfig={}",
            node.path("/etc/kubernetes/bootstrap-kubelet.conf")
                .display()
        )));
        assert!(args.contains(&format!("--node-ip={}", node.ip)));

        // Exactly the CA certificate and the token were read; no CA key is anywhere.
        assert_eq!(
            node.state().unwrap().s3_keys_read,
            ["demo/pki/ca.crt", "demo/pki/bootstrap-token"]
        );
        for key in [&pki.ca_key, &pki.etcd_ca_key, &pki.front_proxy_ca_key] {
            assert!(files_holding(node, key).is_empty());
        }
    }
    let (g, x) = (env_vars(&general), env_vars(&gpu));
    assert_eq!(g["KUBELET_NODE_LABELS"], "node.kubernetes.io/pool=general");
    assert_eq!(g["KUBELET_NODE_TAINTS"], "");
    assert!(g["KUBELET_ARGS"].contains("--node-labels=node.kubernetes.io/pool=general"));
    assert!(!g["KUBELET_ARGS"].contains("--register-with-taints"));
    assert_eq!(
        x["KUBELET_NODE_LABELS"],
        "example.com/accelerator=nvidia,node.kubernetes.io/pool=gpu"
    );
    assert_eq!(
        x["KUBELET_NODE_TAINTS"],
        "nvidia.com/gpu=present:NoSchedule"
    );
    assert!(x["KUBELET_ARGS"].contains("--register-with-taints=nvidia.com/gpu=present:NoSchedule"));

    // A re-run changes nothing; a malformed token or CA certificate is exit 1 (it may be half-way
    // through an update: retried), naming the key, and leaves the files as they were.
    let before = snapshot(&gpu);
    bootstrap_ok(&gpu);
    assert_eq!(snapshot(&gpu), before);
    put_pki(&world, "bootstrap-token", "not a token\n");
    let run = bootstrap(&gpu);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("s3://demo-tn-state/demo/pki/bootstrap-token is malformed"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("not a token"),
        "the token is never shown"
    );
    assert_eq!(snapshot(&gpu), before);
    put_pki(&world, "bootstrap-token", TOKEN);
    put_pki(&world, "ca.crt", &pki.ca_key);
    let run = bootstrap(&gpu);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("s3://demo-tn-state/demo/pki/ca.crt is not a CA certificate"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&gpu), before);
}

#[test]
fn bad_or_missing_pki_leaves_a_master_untouched() {
    let world = World::start().unwrap();
    upload_pki(&world);
    // etcd is not running: the master takes the etcd servers from the ASG.
    world.create_asg(ETCD_ASG, "etcd", 1).unwrap();
    let etcd_ip = world.asg_instances(ETCD_ASG).unwrap()[0].ip;
    let master = node_of_new_asg(&world, MASTER_ASG, "master", &master_config(&world));
    bootstrap_ok(&master);
    assert_eq!(
        pod_flags(&master, "kube-apiserver")["etcd-servers"],
        format!("https://{etcd_ip}:2379")
    );
    let chose = why(&master, "chose etcd servers");
    assert!(chose.contains("no etcd member answered"), "{chose}");
    let before = snapshot(&master);
    let good_ca = pki_object(&world, "ca.crt");

    put_pki(
        &world,
        "ca.crt",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    );
    let run = bootstrap(&master);
    assert_eq!(
        run.code, 1,
        "malformed: it may be half-way through an update, a retry may succeed\n{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("s3://demo-tn-state/demo/pki/ca.crt is not a usable CA certificate"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&master), before);
    assert!(!master.state().unwrap().ok);
    put_pki(&world, "ca.crt", &good_ca);

    let good_key = world
        .get_object("demo/pki/front-proxy-ca.key")
        .unwrap()
        .unwrap();
    delete_pki(&world, "front-proxy-ca.key");
    let run = bootstrap(&master);
    assert_eq!(run.code, 1, "missing: a retry may succeed\n{}", run.stderr);
    assert!(
        run.stderr
            .contains("s3://demo-tn-state/demo/pki/front-proxy-ca.key does not exist"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&master), before);
    put_pki(
        &world,
        "front-proxy-ca.key",
        &String::from_utf8(good_key).unwrap(),
    );

    // A service-account public key that is not sa.key's.
    let good_pub = pki_object(&world, "sa.pub");
    let other = tempfile::tempdir().unwrap();
    tn_world::openssl(
        other.path(),
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "k",
        ],
    );
    put_pki(
        &world,
        "sa.pub",
        &tn_world::openssl(other.path(), &["pkey", "-in", "k", "-pubout"]),
    );
    let run = bootstrap(&master);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "s3://demo-tn-state/demo/pki/sa.pub is not the public key of s3://demo-tn-state/demo/pki/sa.key"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&master), before);
    put_pki(&world, "sa.pub", &good_pub);

    // Access denied (an IAM policy without the key): a retry may help once the policy is fixed.
    let proxy = &world.aws;
    proxy.fail_path("/demo/pki/front-proxy-ca.key", 403, "AccessDenied", 10);
    let run = bootstrap(&master);
    assert_eq!(run.code, 1, "access denied\n{}", run.stderr);
    assert!(
        run.stderr
            .contains("s3://demo-tn-state/demo/pki/front-proxy-ca.key")
            && run.stderr.contains("AccessDenied"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&master), before);
    proxy.clear_faults();

    // Everything back: the same files again.
    bootstrap_ok(&master);
    assert_eq!(snapshot(&master), before);
}

/// An AWS endpoint where nothing listens: every API call fails at once.
const DEAD_AWS: &str = "http://127.0.0.1:9";

/// A reboot while AWS is down: a master and a worker whose files are complete and valid start
/// with them as they are, say so in `state.json` and `status`; a worker never asks AutoScaling
/// or EC2 anything; a node without its files still fails (it needs the state bucket).
#[test]
fn a_reboot_without_aws_keeps_the_last_known_good_files() {
    let world = World::start().unwrap();
    let _pki = upload_pki(&world);
    let (_etcd_node, _etcd) = running_etcd(&world);
    let mut master = node_of_new_asg(&world, MASTER_ASG, "master", &master_config(&world));
    let mut worker = node_of_new_asg(
        &world,
        "demo-worker-general",
        "worker",
        &worker_config(&world, "", ""),
    );
    let mut fresh = node_of_new_asg(
        &world,
        "demo-worker-gpu",
        "worker",
        &worker_config(&world, "", ""),
    );
    bootstrap_ok(&master);
    bootstrap_ok(&worker);
    let calls = world.aws.seen_from(&role_key("worker"));
    let not_s3: Vec<_> = calls.iter().filter(|c| c.service != "s3").collect();
    assert!(not_s3.is_empty(), "a worker called {not_s3:?}");
    assert!(!calls.is_empty(), "the worker's S3 reads went elsewhere");
    // A worker's boot: exactly two S3 GETs (the cluster CA certificate, the bootstrap token).
    let state = worker.state().unwrap();
    assert_eq!(
        state.aws_calls_by_service,
        BTreeMap::from([("s3".to_string(), 2)])
    );
    assert_eq!(
        state.s3_keys_read,
        ["demo/pki/ca.crt", "demo/pki/bootstrap-token"]
    );
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(worker.state().unwrap().asg, None);
    let etcd_servers = master.state().unwrap().etcd_servers;
    assert!(!etcd_servers.is_empty());

    let before = [snapshot(&master), snapshot(&worker)];
    for node in [&mut master, &mut worker, &mut fresh] {
        node.env.push(("AWS_ENDPOINT_URL".into(), DEAD_AWS.into()));
    }
    for (node, before) in [&master, &worker].into_iter().zip(before) {
        bootstrap_ok(node);
        assert_eq!(snapshot(node), before, "{} changed files", node.id);
        let state = node.state().unwrap();
        let error = state.last_known_good.expect("last_known_good is recorded");
        assert!(error.contains("AWS"), "{error}");
        assert!(
            why(node, "started with last-known-good files").contains("certificates valid"),
            "{:?}",
            state.decisions
        );
        let status = node.run(&["status"]).unwrap();
        assert!(
            status.stdout.contains("ok, with last-known-good files"),
            "{}",
            status.stdout
        );
        assert!(
            status.stdout.contains("started_without_aws")
                || status.stdout.contains("could not use AWS"),
            "{}",
            status.stdout
        );
    }
    assert_eq!(master.state().unwrap().etcd_servers, etcd_servers);

    let run = bootstrap(&fresh);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(fresh.state().unwrap().last_known_good.is_none());
    assert!(!fresh
        .path("/etc/kubernetes/bootstrap-kubelet.conf")
        .exists());

    // Neither is a leaf without its key.
    let key = master.path("/etc/kubernetes/pki/front-proxy-client.key");
    let kept = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let run = bootstrap(&master);
    assert_eq!(run.code, 1, "{}", run.stderr);
    std::fs::write(&key, kept).unwrap();

    // A certificate that cannot be used is not last-known-good: the master needs AWS again.
    let crt = master.path("/etc/kubernetes/pki/apiserver.crt");
    std::fs::write(&crt, "not a certificate\n").unwrap();
    let run = bootstrap(&master);
    assert_eq!(run.code, 1, "{}", run.stderr);
}

/// A master's first boot asks AWS what it needs and nothing more: its group's name and the
/// etcd group (one AutoScaling call each, one EC2 call for the etcd instances' addresses) and
/// each of its PKI objects once. A reboot with everything in place (a new boot id after a good
/// run): not a single AWS call, for the master and for a worker whose kubelet holds its own
/// client certificate. A worker whose kubelet has none yet (its TLS bootstrap not done) reads
/// the token again.
#[test]
fn a_master_boots_within_its_budget_and_reboots_make_no_aws_call() {
    let world = World::start().unwrap();
    let pki = upload_pki(&world);
    let (_etcd_node, _etcd) = running_etcd(&world);
    let master = node_of_new_asg(&world, MASTER_ASG, "master", &master_config(&world));
    let worker = node_of_new_asg(
        &world,
        "demo-worker-general",
        "worker",
        &worker_config(&world, "", ""),
    );
    bootstrap_ok(&master);
    let state = master.state().unwrap();
    assert_eq!(
        state.aws_calls_by_service,
        BTreeMap::from([
            ("autoscaling".to_string(), 2),
            ("ec2".to_string(), 1),
            ("s3".to_string(), 10),
        ])
    );
    let objects = [
        "ca.crt",
        "ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "etcd-ca.crt",
        "etcd-ca.key",
        "sa.key",
        "sa.pub",
        "bootstrap-token",
        "secrets-encryption-key",
    ];
    let mut read = state.s3_keys_read.clone();
    read.sort();
    let mut want: Vec<_> = objects.iter().map(|o| format!("demo/pki/{o}")).collect();
    want.sort();
    assert_eq!(read, want);
    assert_eq!(state.asg_name.as_deref(), Some(MASTER_ASG));

    let seen = world.aws.seen().len();
    master.new_boot().unwrap();
    bootstrap_ok(&master);
    assert_eq!(decisions(&master), ["started as before"]);
    assert_eq!(master.state().unwrap().aws_calls, 0);
    assert_eq!(world.aws.seen().len(), seen);

    bootstrap_ok(&worker);
    worker.new_boot().unwrap();
    bootstrap_ok(&worker);
    let state = worker.state().unwrap();
    assert_eq!(
        state.aws_calls, 2,
        "no kubelet certificate yet: {:?}",
        state.decisions
    );
    let ca_pem = pki_object(&world, "ca.crt");
    let ca = Ca::from_pem(&ca_pem, &pki.ca_key).unwrap();
    let leaf = tn_world::kube_api::node_cert(&ca, &worker.id).unwrap();
    let pem = worker.path(tn_agent::files::KUBELET_CLIENT_CURRENT);
    std::fs::create_dir_all(pem.parent().unwrap()).unwrap();
    std::fs::write(&pem, format!("{}{}", leaf.cert_pem, leaf.key_pem)).unwrap();
    let seen = world.aws.seen().len();
    worker.new_boot().unwrap();
    bootstrap_ok(&worker);
    assert_eq!(decisions(&worker), ["started as before"]);
    assert_eq!(worker.state().unwrap().aws_calls, 0);
    assert_eq!(world.aws.seen().len(), seen);
}

/// Secrets at rest: a master of a cluster whose PKI has no encryption key runs without
/// encryption and says how to turn it on; `pki init --add-encryption-key` makes the key (never
/// over an existing one); the master then encrypts; and a master that encrypts refuses a
/// bucket whose key was replaced or deleted (every Secret would become unreadable), touching
/// nothing.
#[test]
fn secrets_are_encrypted_at_rest_and_the_key_is_never_swapped_under_a_master() {
    let world = World::start().unwrap();
    let _pki = upload_pki(&world);
    delete_pki(&world, "secrets-encryption-key");
    world.create_asg(ETCD_ASG, "etcd", 1).unwrap();
    let master = node_of_new_asg(&world, MASTER_ASG, "master", &master_config(&world));
    bootstrap_ok(&master);
    assert!(
        why(&master, "secrets not encrypted at rest").contains("--add-encryption-key"),
        "{:?}",
        master.state().unwrap().decisions
    );
    assert!(!pod_flags(&master, "kube-apiserver").contains_key("encryption-provider-config"));

    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let add = [
        "pki",
        "init",
        "--out",
        &out_s,
        "--cluster",
        "demo",
        "--add-encryption-key",
        "--upload",
        "--bucket",
        &world.bucket,
    ];
    let run = world.operator(&add).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let key = world
        .get_object("demo/pki/secrets-encryption-key")
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read(out.path().join("secrets-encryption-key")).unwrap(),
        key
    );
    // Never over an existing key, in the directory or in the bucket.
    std::fs::remove_file(out.path().join("secrets-encryption-key")).unwrap();
    let run = world.operator(&add).unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("a key is never replaced"),
        "{}",
        run.stderr
    );
    assert_eq!(
        world
            .get_object("demo/pki/secrets-encryption-key")
            .unwrap()
            .unwrap(),
        key
    );

    bootstrap_ok(&master);
    let flags = pod_flags(&master, "kube-apiserver");
    let config_path = master.path("/etc/kubernetes/encryption-config.yaml");
    assert_eq!(
        flags["encryption-provider-config"],
        config_path.display().to_string()
    );
    assert_eq!(
        mode(&master, "/etc/kubernetes/encryption-config.yaml"),
        0o600
    );
    let config = read(&master, "/etc/kubernetes/encryption-config.yaml");
    let key_text = String::from_utf8(key).unwrap();
    assert!(config.contains(key_text.trim_end()), "{config}");
    assert_eq!(
        flags["kubelet-certificate-authority"],
        master
            .path("/etc/kubernetes/pki/ca.crt")
            .display()
            .to_string()
    );

    let before = snapshot(&master);
    put_pki(
        &world,
        "secrets-encryption-key",
        &tn_world::openssl(out.path(), &["rand", "-base64", "32"]),
    );
    let run = bootstrap(&master);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("is not the key this master encrypts Secrets with"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&master), before);
    delete_pki(&world, "secrets-encryption-key");
    let run = bootstrap(&master);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("does not exist, but this master encrypts Secrets"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&master), before);
}

/// The apiserver's `--etcd-servers`, as the manifest lists them.
fn manifest_servers(master: &Node) -> Vec<String> {
    let text = read(master, "/etc/kubernetes/manifests/kube-apiserver.yaml");
    tn_agent::kube::render::manifest_etcd_servers(&text).unwrap()
}

/// SPEC §11: every etcd member replaced one at a time, as an AMI roll does. After each
/// replacement, and before the master's reconcile, the manifest still lists live members; the
/// reconcile then makes it list exactly the voters' client URLs, and says so in `state.json`
/// and `status`. A second run changes nothing. With every member down, a reconcile fails,
/// leaves the manifest as it was, and `status` warns.
#[test]
fn reconcile_keeps_the_apiserver_on_the_etcd_voters_through_an_etcd_roll() {
    let world = World::start().unwrap();
    upload_pki(&world);
    world.create_asg(ETCD_ASG, "etcd", 3).unwrap();
    let mut nodes = world.etcd_nodes(ETCD_ASG, 60).unwrap();
    let mut etcd = tn_world::boot_in_parallel(&nodes.iter().collect::<Vec<_>>()).unwrap();
    let settle = |nodes: &[Node]| {
        let all: Vec<&Node> = nodes.iter().collect();
        tn_world::Inspector::new(&world, &nodes[0], &all)
            .unwrap()
            .expect_nodes(&all, std::time::Duration::from_secs(60))
            .unwrap();
    };
    settle(&nodes);
    let urls = |nodes: &[Node]| {
        let mut urls: Vec<String> = nodes.iter().map(Node::client_url).collect();
        urls.sort();
        urls
    };
    let master = node_of_new_asg(&world, MASTER_ASG, "master", &master_config(&world));
    bootstrap_ok(&master);
    assert_eq!(manifest_servers(&master), urls(&nodes));
    let unchanged = master.run(&["reconcile"]).unwrap();
    assert_eq!(unchanged.code, 0, "{}", unchanged.stderr);
    assert_eq!(unchanged.stdout.trim(), "reconciled: nothing to change");

    for round in 0..3 {
        let old = nodes.remove(0);
        etcd.remove(0).kill();
        world.terminate(&old.id).unwrap();
        let newcomer = world.instances_besides(ETCD_ASG, &nodes).unwrap()[0].clone();
        let node = world.node(&newcomer, &world.etcd_config(60)).unwrap();
        etcd.push(node.boot_etcd().unwrap());
        nodes.push(node);
        settle(&nodes);
        let live = urls(&nodes);
        let listed = manifest_servers(&master);
        assert!(
            listed.iter().any(|u| live.contains(u)),
            "round {round}: {listed:?} lists no live member of {live:?}"
        );
        let run = master.run(&["reconcile"]).unwrap();
        assert_eq!(run.code, 0, "round {round}: {}", run.stderr);
        assert!(
            run.stdout.contains("apiserver etcd servers"),
            "{}",
            run.stdout
        );
        assert_eq!(manifest_servers(&master), live, "round {round}");
        let state = master.state().unwrap();
        let rec = state.last_reconcile.unwrap();
        assert!(rec.ok && rec.changes.len() == 1, "{rec:?}");
        assert_eq!(state.etcd_servers, live);
    }
    // Every original member is gone; the manifest names only the replacements.
    let again = master.run(&["reconcile"]).unwrap();
    assert_eq!(again.stdout.trim(), "reconciled: nothing to change");
    // A bootstrap (a reboot) keeps the record of the last reconcile.
    bootstrap_ok(&master);
    assert!(master.state().unwrap().last_reconcile.is_some());

    let before = read(&master, "/etc/kubernetes/manifests/kube-apiserver.yaml");
    for mut e in etcd {
        e.kill();
    }
    let down = master.run(&["reconcile"]).unwrap();
    assert_eq!(down.code, 1, "{}", down.stdout);
    assert!(
        down.stderr.contains("no etcd member answers"),
        "{}",
        down.stderr
    );
    assert_eq!(
        read(&master, "/etc/kubernetes/manifests/kube-apiserver.yaml"),
        before
    );
    let status = master.run(&["status"]).unwrap();
    assert!(
        status
            .stdout
            .contains("failed: following the etcd voters: no etcd member answers"),
        "{}",
        status.stdout
    );
    let json = master.run(&["status", "--json"]).unwrap();
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["reconcile"]["ok"], false);
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "reconcile_failed" && p["severity"] == "warning"),
        "{}",
        json.stdout
    );
}

/// The node's configuration files (the etcd data dir and logs left out), path → contents.
fn config_files(node: &Node) -> BTreeMap<String, (Vec<u8>, u32)> {
    snapshot(node)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("var/lib/etcd") && !p.ends_with(".log"))
        .collect()
}

/// Days until the certificate at `cert` expires.
fn days_left(node: &Node, cert: &str) -> i64 {
    let info = tn_agent::pki::inspect(&read(node, cert)).unwrap();
    (info.not_after - time::OffsetDateTime::now_utc()).whole_days()
}

/// SPEC §11: every leaf tn-agent issued, 29 days from expiry, on an etcd node (with etcd
/// running) and a master; a worker has none. `reconcile` renews exactly those (and rewrites the
/// kubeconfigs that embed one), nothing else changes, etcd keeps serving with its new
/// certificates, and a second run changes nothing.
#[test]
fn reconcile_renews_certificates_near_expiry_and_nothing_else() {
    let world = World::start().unwrap();
    let pki = upload_pki(&world);
    let s3 = |name: &str| pki_object(&world, name);
    let cas = [
        Ca::from_pem(&s3("ca.crt"), &pki.ca_key).unwrap(),
        Ca::from_pem(&s3("etcd-ca.crt"), &pki.etcd_ca_key).unwrap(),
        Ca::from_pem(&s3("front-proxy-ca.crt"), &pki.front_proxy_ca_key).unwrap(),
    ];
    let (etcd_node, _etcd) = running_etcd(&world);
    let master = node_of_new_asg(&world, MASTER_ASG, "master", &master_config(&world));
    bootstrap_ok(&master);
    // Bootstrap marked the apiserver's manifest with the client certificates it starts with.
    let master_root = Root::new(&master.root);
    let booted_mark = apiserver_restart::client_certs_mark(&master_root).unwrap();
    assert_eq!(
        apiserver_restart::manifest_mark(&master_root).unwrap(),
        Some(booted_mark.clone())
    );
    assert_eq!(
        apiserver_restart::remarked_manifest(&master_root).unwrap(),
        None
    );
    let worker = node_of_new_asg(
        &world,
        "demo-workers",
        "worker",
        &worker_config(&world, "", ""),
    );
    bootstrap_ok(&worker);

    let etcd_leaves = ["/etc/etcd/pki/server.crt", "/etc/etcd/pki/peer.crt"];
    let master_leaves: Vec<String> = [
        "apiserver",
        "apiserver-etcd-client",
        "apiserver-kubelet-client",
        "front-proxy-client",
        "controller-manager",
        "scheduler",
        "kubelet-client",
    ]
    .iter()
    .map(|n| format!("/etc/kubernetes/pki/{n}.crt"))
    .collect();
    for cert in etcd_leaves {
        crate::support::near_expiry(&etcd_node, cert, &cas, 29);
    }
    for cert in &master_leaves {
        crate::support::near_expiry(&master, cert, &cas, 29);
    }
    let nodes = [&etcd_node, &master, &worker];
    let before: Vec<_> = nodes.iter().map(|n| config_files(n)).collect();
    for node in nodes {
        let run = node.run(&["reconcile"]).unwrap();
        assert_eq!(run.code, 0, "{}: {}", node.id, run.stderr);
    }
    let changed = |i: usize| -> Vec<String> {
        let after = config_files(nodes[i]);
        let mut paths: Vec<String> = after
            .iter()
            .filter(|(p, v)| before[i].get(*p) != Some(v))
            .map(|(p, _)| format!("/{p}"))
            .collect();
        paths.extend(
            before[i]
                .keys()
                .filter(|p| !after.contains_key(*p))
                .map(|p| format!("/{p} (gone)")),
        );
        paths.sort();
        paths
    };
    let pairs = |certs: &[&str]| {
        let mut v: Vec<String> = certs
            .iter()
            .flat_map(|c| [c.to_string(), c.replace(".crt", ".key")])
            .collect();
        v.sort();
        v
    };
    assert_eq!(changed(0), pairs(&etcd_leaves));
    let mut want: Vec<String> =
        pairs(&master_leaves.iter().map(String::as_str).collect::<Vec<_>>());
    want.extend(
        [
            "/etc/kubernetes/controller-manager.conf",
            "/etc/kubernetes/kubelet.conf",
            "/etc/kubernetes/manifests/kube-controller-manager.yaml",
            "/etc/kubernetes/manifests/kube-scheduler.yaml",
            "/etc/kubernetes/scheduler.conf",
        ]
        .map(String::from),
    );
    want.sort();
    assert_eq!(changed(1), want);
    assert!(changed(2).is_empty(), "{:?}", changed(2));
    for cert in etcd_leaves {
        assert!(days_left(&etcd_node, cert) > 360, "{cert}");
    }
    for cert in &master_leaves {
        assert!(days_left(&master, cert) > 360, "{cert}");
    }
    let rec = master.state().unwrap().last_reconcile.unwrap();
    let issued = rec
        .changes
        .iter()
        .filter(|c| c.starts_with("issued "))
        .count();
    assert_eq!(issued, master_leaves.len(), "{rec:?}");
    // The two components that read their kubeconfig only at start are restarted by the kubelet:
    // their manifests carry the new kubeconfig's SHA-256, and nothing else changed in them.
    assert_eq!(rec.changes.len(), issued + 2, "{rec:?}");
    for (manifest, kubeconfig) in [
        ("kube-controller-manager", "controller-manager.conf"),
        ("kube-scheduler", "scheduler.conf"),
    ] {
        let path = format!("/etc/kubernetes/manifests/{manifest}.yaml");
        let now: Yaml = yaml_serde::from_str(&read(&master, &path)).unwrap();
        let then = std::str::from_utf8(&before[1][&path[1..]].0).unwrap();
        let mut then: Yaml = yaml_serde::from_str(then).unwrap();
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            read(&master, &format!("/etc/kubernetes/{kubeconfig}")).as_bytes(),
        ));
        assert_eq!(
            now["metadata"]["annotations"]["tn-agent/kubeconfig-sha256"].as_str(),
            Some(digest.as_str())
        );
        then["metadata"]["annotations"]["tn-agent/kubeconfig-sha256"] = Yaml::String(digest);
        assert_eq!(now, then, "{manifest}: only the mark changed");
    }
    // The apiserver's manifest is not rewritten by reconcile (every master renews within the
    // same hour): its mark now names older client certificates than the node has, which is
    // what the reboot manager restarts it for, one master at a time (kube_reboot.rs).
    assert_eq!(
        apiserver_restart::manifest_mark(&master_root).unwrap(),
        Some(booted_mark.clone())
    );
    assert_ne!(
        apiserver_restart::client_certs_mark(&master_root).unwrap(),
        booted_mark
    );
    assert!(apiserver_restart::remarked_manifest(&master_root)
        .unwrap()
        .is_some());
    // etcd serves its new certificate without a restart (it reads the files at each
    // handshake), and the node reaches it with the new one as its client.
    let served = Command::new("openssl")
        .args(["s_client", "-connect", &format!("{}:2379", etcd_node.ip)])
        .args([
            "-cert",
            etcd_node.path("/etc/etcd/pki/server.crt").to_str().unwrap(),
        ])
        .args([
            "-key",
            etcd_node.path("/etc/etcd/pki/server.key").to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let served = String::from_utf8_lossy(&served.stdout).into_owned();
    let served_pem = tn_agent::pki::pem_certificates(&served);
    assert_eq!(
        served_pem.first().map(|p| pem_body(p)),
        Some(pem_body(&read(&etcd_node, "/etc/etcd/pki/server.crt"))),
        "{served}"
    );
    let status = etcd_node.run(&["status", "--json"]).unwrap();
    assert_eq!(status.code, 0, "{}", status.stdout);

    let after: Vec<_> = nodes.iter().map(|n| config_files(n)).collect();
    for (i, node) in nodes.iter().enumerate() {
        let run = node.run(&["reconcile"]).unwrap();
        assert_eq!(
            run.stdout.trim(),
            "reconciled: nothing to change",
            "{}",
            node.id
        );
        assert_eq!(config_files(node), after[i], "{}", node.id);
    }
}
