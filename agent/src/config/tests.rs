//! Tests of reading the configuration: tables of good and bad configs over a few baselines,
//! drop-in discovery, and the value types.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::types::is_kubelet_settable;
use super::*;

const MAIN: &str = "/etc/tn-agent/config.toml";
const POOL: &str = "/etc/tn-agent/config.d/10-pool.toml";

const ETCD_MIN: &str = r#"
cluster = "prod"
role = "etcd"
state_bucket = "prod-tn-state"
"#;

const WORKER: &str = r#"
cluster = "prod"
role = "worker"
state_bucket = "prod-tn-state"
internal_domain = "prod.int"
vpc_number = 5

[etcd]
asg = "prod-etcd"

[kubernetes]
version = "v1.31.4"
cluster_domain = "k8s.local"
node_labels = { "node.kubernetes.io/pool" = "gpu", team = "ml" }
node_taints = ["nvidia.com/gpu=present:NoSchedule", "dedicated=:PreferNoSchedule"]
"#;

const MASTER: &str = r#"
cluster = "prod"
role = "master"
state_bucket = "prod.tn.state"

[etcd]
asg = "prod-etcd"

[kubernetes]
version = "v1.30.0"
apiserver = "https://10.0.1.10:6443/"
"#;

/// Config sources in merge order: (file name, text).
type Files = Vec<(&'static str, String)>;

/// Only the main file.
fn main(text: impl Into<String>) -> Files {
    vec![(MAIN, text.into())]
}

/// The main file and one drop-in.
fn dropin(main_text: impl Into<String>, dropin_text: &str) -> Files {
    vec![(MAIN, main_text.into()), (POOL, dropin_text.to_owned())]
}

/// `base` with `extra` lines appended.
fn plus(base: &str, extra: &str) -> String {
    format!("{base}\n{extra}\n")
}

fn parse(files: &Files) -> Result<Settings, ConfigError> {
    let sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(path, text)| (PathBuf::from(path), text.clone()))
        .collect();
    from_sources(&sources)
}

fn labels(settings: &Settings) -> Vec<(&str, &str)> {
    let k8s = settings.kubernetes().expect("kubernetes settings");
    k8s.node_labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

struct Good {
    name: &'static str,
    files: Files,
    check: fn(&Settings),
}

#[test]
fn good_configs() {
    let cases = [
        Good {
            name: "minimal etcd config gets the defaults",
            files: main(ETCD_MIN),
            check: |s| {
                assert_eq!(s.cluster.as_str(), "prod");
                assert_eq!(s.role(), Role::Etcd);
                assert_eq!(s.state_bucket, "prod-tn-state");
                assert_eq!(s.internal_domain, None);
                assert_eq!(s.etcd_asg(), None);
                assert!(s.etcd.tls);
                assert_eq!(s.etcd.data_dir, PathBuf::from("/var/lib/etcd"));
                assert_eq!((s.etcd.client_port, s.etcd.peer_port), (2379, 2380));
                assert_eq!(s.etcd.join_timeout, Duration::from_secs(600));
                assert_eq!(s.etcd.leave_hook, "tn-etcd-leave");
                assert_eq!(s.vpc_number, 0);
                assert_eq!(s.plan.vpc_cidr.to_string(), "10.0.0.0/16");
                assert_eq!(s.plan.pod_cidr.to_string(), "10.1.0.0/17");
                assert_eq!(s.plan.service_cidr.to_string(), "10.1.128.0/17");
                assert_eq!(s.plan.api_service_ip, Ipv4Addr::new(10, 1, 128, 1));
                assert_eq!(s.plan.dns_service_ip, Ipv4Addr::new(10, 1, 128, 10));
                assert_eq!(s.kubernetes(), None);
                assert_eq!(s.sources, vec![PathBuf::from(MAIN)]);
            },
        },
        Good {
            name: "vpc_number 5 moves the whole plan",
            files: main(plus(ETCD_MIN, "vpc_number = 5")),
            check: |s| {
                assert_eq!(s.vpc_number, 5);
                assert_eq!(s.plan.vpc_cidr.to_string(), "10.5.0.0/16");
                assert_eq!(s.plan.pod_cidr.to_string(), "10.6.0.0/17");
                assert_eq!(s.plan.service_cidr.to_string(), "10.6.128.0/17");
                assert_eq!(s.plan.api_service_ip, Ipv4Addr::new(10, 6, 128, 1));
                assert_eq!(s.plan.dns_service_ip, Ipv4Addr::new(10, 6, 128, 10));
                assert!(s.plan.service_cidr.contains(s.plan.dns_service_ip));
            },
        },
        Good {
            name: "vpc_number 254 is the last one",
            files: main(plus(ETCD_MIN, "vpc_number = 254")),
            check: |s| {
                assert_eq!(s.plan.vpc_cidr.to_string(), "10.254.0.0/16");
                assert_eq!(s.plan.dns_service_ip, Ipv4Addr::new(10, 255, 128, 10));
            },
        },
        Good {
            name: "every etcd setting is read",
            files: main(plus(
                ETCD_MIN,
                r#"
[etcd]
asg = "prod-etcd"
tls = false
insecure = true
data_dir = "/srv/etcd"
client_port = 12379
peer_port = 12380
join_timeout_seconds = 30
learner_timeout_seconds = 120
leave_hook = "prod/etcd-leave_1"

[bootstrap]
retry_max_delay_seconds = 0"#,
            )),
            check: |s| {
                assert_eq!(s.etcd_asg(), Some("prod-etcd"));
                let expected = EtcdSettings {
                    tls: false,
                    data_dir: PathBuf::from("/srv/etcd"),
                    client_port: 12379,
                    peer_port: 12380,
                    join_timeout: Duration::from_secs(30),
                    learner_timeout: Duration::from_secs(120),
                    leave_hook: "prod/etcd-leave_1".into(),
                };
                assert_eq!(s.etcd, expected);
                assert_eq!(s.bootstrap.retry_max_delay, Duration::ZERO);
            },
        },
        Good {
            name: "full worker config",
            files: main(WORKER),
            check: |s| {
                assert_eq!(s.role(), Role::Worker);
                assert_eq!(s.internal_domain.as_deref(), Some("prod.int"));
                let k = s.kubernetes().expect("kubernetes settings for a worker");
                assert_eq!(k.version.as_str(), "v1.31.4");
                assert_eq!(k.apiserver.as_str(), "https://kubernetes.prod.int:443");
                assert_eq!(k.apiserver.host(), "kubernetes.prod.int");
                assert_eq!(k.apiserver.port(), 443);
                assert_eq!(k.cluster_domain, "k8s.local");
                assert_eq!(
                    labels(s),
                    [("node.kubernetes.io/pool", "gpu"), ("team", "ml")]
                );
                let taints: Vec<String> = k.node_taints.iter().map(Taint::to_string).collect();
                assert_eq!(
                    taints,
                    [
                        "nvidia.com/gpu=present:NoSchedule",
                        "dedicated:PreferNoSchedule"
                    ]
                );
                assert_eq!(k.node_taints[0].key(), "nvidia.com/gpu");
                assert_eq!(k.node_taints[0].value(), Some("present"));
                assert_eq!(k.node_taints[0].effect(), TaintEffect::NoSchedule);
                assert_eq!(k.node_taints[1].value(), None);
            },
        },
        Good {
            name: "master with an explicit apiserver and defaults for the rest",
            files: main(MASTER),
            check: |s| {
                assert_eq!(s.role(), Role::Master);
                assert_eq!(s.etcd_asg(), Some("prod-etcd"));
                let k = s.kubernetes().expect("kubernetes settings for a master");
                assert_eq!(
                    (k.apiserver.host(), k.apiserver.port()),
                    ("10.0.1.10", 6443)
                );
                assert_eq!(k.cluster_domain, "cluster.local");
                assert!(k.node_labels.is_empty());
                let taints: Vec<String> = k.node_taints.iter().map(Taint::to_string).collect();
                assert_eq!(
                    taints,
                    ["node-role.kubernetes.io/control-plane:NoSchedule"],
                    "masters are tainted by default"
                );
            },
        },
        Good {
            name: "a drop-in overrides a value and adds a label",
            files: dropin(
                WORKER,
                r#"
[etcd]
client_port = 12379

[kubernetes.node_labels]
"node.kubernetes.io/pool" = "a100"
extra = "yes"
"#,
            ),
            check: |s| {
                assert_eq!(s.etcd.client_port, 12379);
                assert_eq!(s.etcd_asg(), Some("prod-etcd"), "kept from the main file");
                assert_eq!(
                    labels(s),
                    [
                        ("extra", "yes"),
                        ("node.kubernetes.io/pool", "a100"),
                        ("team", "ml")
                    ]
                );
                let k8s = s.kubernetes().expect("kubernetes settings");
                assert_eq!(k8s.node_taints.len(), 2, "taints kept from the main file");
                assert_eq!(s.sources, vec![PathBuf::from(MAIN), PathBuf::from(POOL)]);
            },
        },
        Good {
            name: "a drop-in replaces node_taints whole",
            files: dropin(WORKER, "[kubernetes]\nnode_taints = [\"x:NoExecute\"]\n"),
            check: |s| {
                let k8s = s.kubernetes().expect("kubernetes settings");
                assert_eq!(k8s.node_taints, vec!["x:NoExecute".parse().expect("taint")]);
            },
        },
        Good {
            name: "a drop-in may supply required keys",
            files: dropin(
                "cluster = \"prod\"",
                "role = \"etcd\"\nstate_bucket = \"b-1\"\n",
            ),
            check: |s| assert_eq!(s.state_bucket, "b-1"),
        },
    ];
    for case in cases {
        match parse(&case.files) {
            Ok(settings) => (case.check)(&settings),
            Err(e) => panic!("{}: unexpected error: {e}", case.name),
        }
    }
}

struct Bad {
    name: &'static str,
    files: Files,
    error: &'static str,
}

#[test]
fn bad_configs() {
    let cases = [
        Bad {
            name: "unknown top-level key",
            files: main(plus(ETCD_MIN, "colour = \"blue\"")),
            error: "/etc/tn-agent/config.toml: unknown key `colour`; expected one of: cluster, \
                    role, state_bucket, internal_domain, vpc_number, bootstrap, reboot, backup, \
                    metrics, etcd, kubernetes",
        },
        Bad {
            name: "unknown key in [etcd]",
            files: main(plus(ETCD_MIN, "[etcd]\nclient-port = 2379")),
            error: "/etc/tn-agent/config.toml: unknown key `etcd.client-port`; expected one \
                    of: asg, tls, insecure, data_dir, client_port, peer_port, \
                    join_timeout_seconds, learner_timeout_seconds, leave_hook",
        },
        Bad {
            name: "unknown key in a drop-in names the drop-in",
            files: dropin(ETCD_MIN, "[kubernetes]\nlabels = {}\n"),
            error: "/etc/tn-agent/config.d/10-pool.toml: unknown key `kubernetes.labels`; \
                    expected one of: version, apiserver, cluster_domain, node_labels, \
                    node_taints",
        },
        Bad {
            name: "wrong type for client_port",
            files: main(plus(ETCD_MIN, "[etcd]\nclient_port = \"2379\"")),
            error: "/etc/tn-agent/config.toml: key `etcd.client_port`: expected an integer, \
                    found string",
        },
        Bad {
            name: "wrong type for a table",
            files: main(plus(ETCD_MIN, "etcd = true")),
            error: "/etc/tn-agent/config.toml: key `etcd`: expected a table, found boolean",
        },
        Bad {
            name: "wrong type inside node_taints",
            files: dropin(
                WORKER,
                "[kubernetes]\nnode_taints = [\"a:NoSchedule\", 3]\n",
            ),
            error: "/etc/tn-agent/config.d/10-pool.toml: key `kubernetes.node_taints[1]`: \
                    expected a string, found integer",
        },
        Bad {
            name: "wrong type inside node_labels",
            files: dropin(
                WORKER,
                "[kubernetes.node_labels]\n\"node.kubernetes.io/pool\" = 1\n",
            ),
            error: "/etc/tn-agent/config.d/10-pool.toml: key \
                    `kubernetes.node_labels.\"node.kubernetes.io/pool\"`: expected a string, \
                    found integer",
        },
        Bad {
            name: "bad cluster name",
            files: main(ETCD_MIN.replace("\"prod\"", "\"Prod\"")),
            error: "/etc/tn-agent/config.toml: key `cluster`: expected a cluster name of 1-32 \
                    characters from a-z, 0-9 and '-', got \"Prod\"",
        },
        Bad {
            name: "cluster name too long",
            files: main(ETCD_MIN.replace("\"prod\"", &format!("\"{}\"", "a".repeat(33)))),
            error: "/etc/tn-agent/config.toml: key `cluster`: expected a cluster name of 1-32 \
                    characters from a-z, 0-9 and '-', got \
                    \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
        },
        Bad {
            name: "bad role",
            files: main(ETCD_MIN.replace("\"etcd\"", "\"Etcd\"")),
            error: "/etc/tn-agent/config.toml: key `role`: expected one of \"etcd\", \
                    \"master\", \"worker\", got \"Etcd\"",
        },
        Bad {
            name: "bad state bucket",
            files: main(ETCD_MIN.replace("prod-tn-state", "Prod_State")),
            error: "/etc/tn-agent/config.toml: key `state_bucket`: expected an S3 bucket name: \
                    3-63 characters from a-z, 0-9, '.' and '-', starting and ending with a \
                    letter or digit, got \"Prod_State\"",
        },
        Bad {
            name: "bad internal domain",
            files: main(plus(ETCD_MIN, "internal_domain = \"-prod.int\"")),
            error: "/etc/tn-agent/config.toml: key `internal_domain`: expected a lowercase DNS \
                    name: dot-separated labels of 1-63 characters from a-z, 0-9 and '-', not \
                    starting or ending with '-', at most 253 characters in all, got \
                    \"-prod.int\"",
        },
        Bad {
            name: "vpc_number 255",
            files: main(plus(ETCD_MIN, "vpc_number = 255")),
            error: "/etc/tn-agent/config.toml: key `vpc_number`: expected a VPC number from 0 \
                    to 254 (VPC 10.<n>.0.0/16, pods and services in 10.<n+1>.0.0/16), got 255",
        },
        Bad {
            name: "negative vpc_number",
            files: main(plus(ETCD_MIN, "vpc_number = -1")),
            error: "/etc/tn-agent/config.toml: key `vpc_number`: expected a VPC number from 0 \
                    to 254 (VPC 10.<n>.0.0/16, pods and services in 10.<n+1>.0.0/16), got -1",
        },
        Bad {
            name: "port out of range",
            files: main(plus(ETCD_MIN, "[etcd]\nclient_port = 70000")),
            error: "/etc/tn-agent/config.toml: key `etcd.client_port`: expected a TCP port \
                    from 1 to 65535, got 70000",
        },
        Bad {
            name: "same client and peer port",
            files: main(plus(ETCD_MIN, "[etcd]\npeer_port = 2379")),
            error: "/etc/tn-agent/config.toml: key `etcd.peer_port`: expected a port different \
                    from etcd.client_port (2379), got 2379",
        },
        Bad {
            name: "client port moved onto the default peer port",
            files: dropin(ETCD_MIN, "[etcd]\nclient_port = 2380\n"),
            error: "/etc/tn-agent/config.d/10-pool.toml: key `etcd.client_port`: expected a \
                    port different from etcd.peer_port (2380), got 2380",
        },
        Bad {
            name: "relative data_dir",
            files: main(plus(ETCD_MIN, "[etcd]\ndata_dir = \"var/lib/etcd\"")),
            error: "/etc/tn-agent/config.toml: key `etcd.data_dir`: expected an absolute path, \
                    got \"var/lib/etcd\"",
        },
        Bad {
            name: "a data_dir that climbs out with ..",
            files: main(plus(ETCD_MIN, "[etcd]\ndata_dir = \"/var/lib/../../etc\"")),
            error: "/etc/tn-agent/config.toml: key `etcd.data_dir`: expected an absolute path \
                    in normal form (no `.`, `..` or empty parts, no trailing `/`) of A-Z, a-z, \
                    0-9, '.', '_', '-' and '/', got \"/var/lib/../../etc\"",
        },
        Bad {
            name: "a data_dir with a space (it would split the docker command)",
            files: main(plus(ETCD_MIN, "[etcd]\ndata_dir = \"/var/lib/etcd data\"")),
            error: "/etc/tn-agent/config.toml: key `etcd.data_dir`: expected an absolute path \
                    in normal form (no `.`, `..` or empty parts, no trailing `/`) of A-Z, a-z, \
                    0-9, '.', '_', '-' and '/', got \"/var/lib/etcd data\"",
        },
        Bad {
            name: "the root as data_dir",
            files: main(plus(ETCD_MIN, "[etcd]\ndata_dir = \"/\"")),
            error: "/etc/tn-agent/config.toml: key `etcd.data_dir`: expected an absolute path \
                    in normal form (no `.`, `..` or empty parts, no trailing `/`) of A-Z, a-z, \
                    0-9, '.', '_', '-' and '/', got \"/\"",
        },
        Bad {
            name: "a data_dir with an empty part",
            files: main(plus(ETCD_MIN, "[etcd]\ndata_dir = \"/var//etcd\"")),
            error: "/etc/tn-agent/config.toml: key `etcd.data_dir`: expected an absolute path \
                    in normal form (no `.`, `..` or empty parts, no trailing `/`) of A-Z, a-z, \
                    0-9, '.', '_', '-' and '/', got \"/var//etcd\"",
        },
        Bad {
            name: "a leave hook name AWS would refuse",
            files: main(plus(ETCD_MIN, "[etcd]\nleave_hook = \"etcd leave\"")),
            error: "/etc/tn-agent/config.toml: key `etcd.leave_hook`: expected a lifecycle hook \
                    name of 1-255 characters from A-Z, a-z, 0-9, '-', '_' and '/', got \"etcd leave\"",
        },
        Bad {
            name: "join timeout out of range",
            files: main(plus(ETCD_MIN, "[etcd]\njoin_timeout_seconds = 0")),
            error: "/etc/tn-agent/config.toml: key `etcd.join_timeout_seconds`: expected a \
                    number of seconds from 1 to 3600, got 0",
        },
        Bad {
            name: "master without etcd.asg",
            files: main(MASTER.replace("asg = \"prod-etcd\"\n", "")),
            error: "key `etcd.asg` is required for role master (the masters need the etcd ASG \
                    to find the etcd members); set it in /etc/tn-agent/config.toml or a \
                    drop-in in /etc/tn-agent/config.d/",
        },
        Bad {
            name: "worker without version",
            files: main(WORKER.replace("version = \"v1.31.4\"\n", "")),
            error: "key `kubernetes.version` is required for roles master and worker (the \
                    Kubernetes version to run, like v1.31.4); set it in \
                    /etc/tn-agent/config.toml or a drop-in in /etc/tn-agent/config.d/",
        },
        Bad {
            name: "worker without a [kubernetes] table",
            files: main(ETCD_MIN.replace("\"etcd\"", "\"worker\"")),
            error: "key `kubernetes.version` is required for roles master and worker (the \
                    Kubernetes version to run, like v1.31.4); set it in \
                    /etc/tn-agent/config.toml or a drop-in in /etc/tn-agent/config.d/",
        },
        Bad {
            name: "bad version",
            files: main(WORKER.replace("v1.31.4", "1.31")),
            error: "/etc/tn-agent/config.toml: key `kubernetes.version`: expected a Kubernetes \
                    version v<major>.<minor>.<patch>, like v1.31.4, got \"1.31\"",
        },
        Bad {
            name: "worker without apiserver and internal_domain",
            files: main(WORKER.replace("internal_domain = \"prod.int\"\n", "")),
            error: "key `kubernetes.apiserver` is required when `internal_domain` is not set \
                    (the default is https://kubernetes.<internal_domain>:443); set it in \
                    /etc/tn-agent/config.toml or a drop-in in /etc/tn-agent/config.d/",
        },
        Bad {
            name: "apiserver over http",
            files: main(MASTER.replace("https://10.0.1.10:6443/", "http://kubernetes.prod.int")),
            error: "/etc/tn-agent/config.toml: key `kubernetes.apiserver`: expected an \
                    https:// URL with a host name or IPv4 address, an optional :port (1-65535) \
                    and no path, like https://kubernetes.prod.int:443, got \
                    \"http://kubernetes.prod.int\"",
        },
        Bad {
            name: "apiserver with a path",
            files: main(MASTER.replace("https://10.0.1.10:6443/", "https://k8s.prod.int/api")),
            error: "/etc/tn-agent/config.toml: key `kubernetes.apiserver`: expected an \
                    https:// URL with a host name or IPv4 address, an optional :port (1-65535) \
                    and no path, like https://kubernetes.prod.int:443, got \
                    \"https://k8s.prod.int/api\"",
        },
        Bad {
            name: "bad taint effect",
            files: main(WORKER.replace("present:NoSchedule", "present:NoSchedul")),
            error: "/etc/tn-agent/config.toml: key `kubernetes.node_taints[0]`: expected a \
                    taint `key[=value]:Effect` with Effect one of NoSchedule, \
                    PreferNoSchedule, NoExecute, got \"nvidia.com/gpu=present:NoSchedul\"",
        },
        Bad {
            name: "bad taint key",
            files: main(WORKER.replace("dedicated=:", "-dedicated=:")),
            error: "/etc/tn-agent/config.toml: key `kubernetes.node_taints[1]`: expected a \
                    taint `key[=value]:Effect` whose key is a label key `[prefix/]name`: an \
                    optional lowercase DNS subdomain prefix, then a name of 1-63 characters \
                    from A-Z, a-z, 0-9, '.', '_' and '-' that starts and ends with a letter or \
                    digit, got \"-dedicated=:PreferNoSchedule\"",
        },
        Bad {
            name: "the same taint key and effect twice",
            files: dropin(
                WORKER,
                "[kubernetes]\nnode_taints = [\"a=1:NoSchedule\", \"a=2:NoSchedule\"]\n",
            ),
            error: "/etc/tn-agent/config.d/10-pool.toml: key `kubernetes.node_taints[1]`: \
                    expected a taint whose key and effect differ from \
                    kubernetes.node_taints[0], got \"a=2:NoSchedule\"",
        },
        Bad {
            name: "bad label key",
            files: main(WORKER.replace("team = ", "\"Team Name\" = ")),
            error: "/etc/tn-agent/config.toml: key `kubernetes.node_labels.\"Team Name\"`: \
                    expected a label key `[prefix/]name`: an optional lowercase DNS subdomain \
                    prefix, then a name of 1-63 characters from A-Z, a-z, 0-9, '.', '_' and \
                    '-' that starts and ends with a letter or digit, got \"Team Name\"",
        },
        Bad {
            name: "a label the kubelet may not set on itself",
            files: main(WORKER.replace("team = ", "\"node-role.kubernetes.io/worker\" = ")),
            error: "/etc/tn-agent/config.toml: key \
                    `kubernetes.node_labels.\"node-role.kubernetes.io/worker\"`: expected a \
                    label the kubelet may set on its own node: in the kubernetes.io and k8s.io \
                    namespaces only node.kubernetes.io/*, kubelet.kubernetes.io/* and the \
                    well-known hostname, topology, instance-type, os and arch labels, got \
                    \"node-role.kubernetes.io/worker\"",
        },
        Bad {
            name: "bad label value in a drop-in names the drop-in",
            files: dropin(WORKER, "[kubernetes.node_labels]\nteam = \"ml team\"\n"),
            error: "/etc/tn-agent/config.d/10-pool.toml: key `kubernetes.node_labels.team`: \
                    expected a label value of at most 63 characters from A-Z, a-z, 0-9, '.', \
                    '_' and '-' that starts and ends with a letter or digit, got \"ml team\"",
        },
        Bad {
            name: "bad value in a drop-in names the drop-in",
            files: dropin(ETCD_MIN, "[etcd]\ndata_dir = \"etcd\"\n"),
            error: "/etc/tn-agent/config.d/10-pool.toml: key `etcd.data_dir`: expected an \
                    absolute path, got \"etcd\"",
        },
        Bad {
            name: "bad value in the main file names the main file, drop-ins or not",
            files: dropin(
                ETCD_MIN.replace("\"prod\"", "\"p_r\""),
                "[etcd]\ntls = false\n",
            ),
            error: "/etc/tn-agent/config.toml: key `cluster`: expected a cluster name of 1-32 \
                    characters from a-z, 0-9 and '-', got \"p_r\"",
        },
        Bad {
            name: "etcd without TLS needs insecure = true",
            files: dropin(ETCD_MIN, "[etcd]\ntls = false\n"),
            error: "/etc/tn-agent/config.d/10-pool.toml: key `etcd.tls`: expected `insecure = \
                    true` next to it (etcd without TLS sends every key, Secrets included, in \
                    clear text and lets anyone who reaches its ports in), got tls = false with \
                    insecure = unset",
        },
        Bad {
            name: "a retry delay over an hour",
            files: main(plus(ETCD_MIN, "[bootstrap]\nretry_max_delay_seconds = 3601\n")),
            error: "/etc/tn-agent/config.toml: key `bootstrap.retry_max_delay_seconds`: \
                    expected a number of seconds from 0 to 3600, got 3601",
        },
        Bad {
            name: "[kubernetes] in an etcd config",
            files: dropin(ETCD_MIN, "[kubernetes]\nversion = \"v1.31.4\"\n"),
            error: "/etc/tn-agent/config.d/10-pool.toml: key `kubernetes`: the [kubernetes] \
                    table applies to roles master and worker only; remove it for role etcd",
        },
        Bad {
            name: "missing cluster",
            files: main(ETCD_MIN.replace("cluster = \"prod\"\n", "")),
            error: "key `cluster` is required (the cluster name, 1-32 characters from a-z, 0-9 \
                    and '-'); set it in /etc/tn-agent/config.toml or a drop-in in \
                    /etc/tn-agent/config.d/",
        },
        Bad {
            name: "TOML syntax error",
            files: main("cluster = \"prod\"\nrole = \"etcd\"\nstate_bucket = prod-tn-state\n"),
            error: "/etc/tn-agent/config.toml: line 3: string values must be quoted, expected \
                    literal string",
        },
        Bad {
            name: "TOML syntax error in a drop-in",
            files: dropin(ETCD_MIN, "\n[etcd]\ntls = true\ntls = false\n"),
            error: "/etc/tn-agent/config.d/10-pool.toml: line 4: duplicate key",
        },
    ];
    for case in cases {
        match parse(&case.files) {
            Ok(settings) => panic!("{}: expected an error, got {settings:?}", case.name),
            Err(e) => assert_eq!(e.to_string(), case.error, "{}", case.name),
        }
    }
}

#[test]
fn no_sources_is_an_error() {
    let err = from_sources(&[]).unwrap_err();
    assert_eq!(err.to_string(), "no configuration files given");
}

#[test]
fn load_merges_config_d_in_lexical_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let main_file = dir.path().join("config.toml");
    let dropins = dir.path().join("config.d");
    let write = |path: PathBuf, text: &str| std::fs::write(path, text).expect("write");
    std::fs::create_dir(&dropins).expect("config.d");
    write(main_file.clone(), WORKER);
    write(
        dropins.join("20-later.toml"),
        "[kubernetes.node_labels]\npool = \"b\"\n",
    );
    write(
        dropins.join("10-first.toml"),
        "[kubernetes.node_labels]\npool = \"a\"\nfirst = \"x\"\n",
    );
    write(dropins.join("README.txt"), "not = [toml");
    write(dropins.join("15-old.toml.bak"), "not = [toml");
    std::fs::create_dir(dropins.join("30-dir.toml")).expect("a directory named *.toml");

    let settings = load(&main_file).expect("config loads");

    let expected_sources = vec![
        main_file.clone(),
        dropins.join("10-first.toml"),
        dropins.join("20-later.toml"),
    ];
    assert_eq!(settings.sources, expected_sources);
    assert_eq!(
        labels(&settings),
        [
            ("first", "x"),
            ("node.kubernetes.io/pool", "gpu"),
            ("pool", "b"),
            ("team", "ml")
        ]
    );
}

#[test]
fn load_without_config_d_and_errors_name_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let main_file = dir.path().join("config.toml");
    std::fs::write(&main_file, ETCD_MIN).expect("main file");
    assert_eq!(
        load(&main_file).expect("config loads").sources,
        vec![main_file.clone()]
    );

    let missing = dir.path().join("absent.toml");
    let err = load(&missing).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Read { path, .. } if *path == missing),
        "{err:?}"
    );
    let expected = format!("cannot read config file {}", missing.display());
    assert_eq!(err.to_string(), expected);

    let bad_dropin = dir.path().join("config.d").join("50-bad.toml");
    std::fs::create_dir(dir.path().join("config.d")).expect("config.d");
    std::fs::write(&bad_dropin, "[etcd]\npeer_port = 0\n").expect("drop-in");
    let expected = format!(
        "{}: key `etcd.peer_port`: expected a TCP port from 1 to 65535, got 0",
        bad_dropin.display()
    );
    assert_eq!(load(&main_file).unwrap_err().to_string(), expected);
}

#[test]
fn ipv4_net() {
    let net = Ipv4Net::new(Ipv4Addr::new(10, 1, 128, 0), 17).expect("valid network");
    assert_eq!(net.to_string(), "10.1.128.0/17");
    assert!(net.contains(Ipv4Addr::new(10, 1, 128, 1)));
    assert!(net.contains(Ipv4Addr::new(10, 1, 255, 255)));
    assert!(!net.contains(Ipv4Addr::new(10, 1, 127, 255)));
    assert!(
        Ipv4Net::new(Ipv4Addr::new(10, 1, 128, 1), 17).is_none(),
        "host bits set"
    );
    assert!(
        Ipv4Net::new(Ipv4Addr::new(10, 1, 128, 0), 33).is_none(),
        "prefix too long"
    );
    let everything = Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).expect("default route");
    assert!(everything.contains(Ipv4Addr::BROADCAST));
    assert_eq!(AddressPlan::for_vpc_number(255), None);
}

#[test]
fn value_types_parse_and_display() {
    for text in [
        "a:NoSchedule",
        "example.com/a=b:NoExecute",
        "k=v.1:PreferNoSchedule",
    ] {
        assert_eq!(text.parse::<Taint>().expect(text).to_string(), text);
    }
    let empty_value: Taint = "k=:NoSchedule".parse().expect("empty value");
    assert_eq!(empty_value.to_string(), "k:NoSchedule");
    for bad in [
        "NoSchedule",
        "k=v",
        "k:noschedule",
        "k=v=w:NoSchedule",
        ":NoSchedule",
    ] {
        assert!(bad.parse::<Taint>().is_err(), "{bad}");
    }
    for good in ["https://h", "https://h:1/", "https://a.b-c.d:65535"] {
        assert!(good.parse::<ApiServerUrl>().is_ok(), "{good}");
    }
    let bad_urls = [
        "https://",
        "https://:443",
        "https://h:0",
        "https://h:65536",
        "https://h:",
        "https://h:44a",
        "https://u@h",
        "https://h?x",
        "HTTPS://h",
    ];
    for bad in bad_urls {
        assert!(bad.parse::<ApiServerUrl>().is_err(), "{bad}");
    }
    for bad in ["v1.2", "v1.2.3-rc.1", "v1..3", "V1.2.3", "1.2.3"] {
        assert!(bad.parse::<KubeVersion>().is_err(), "{bad}");
    }
    assert_eq!(Role::Master.to_string(), "master");
    let name: ClusterName = "my-cluster-1".parse().expect("valid");
    assert_eq!(name.to_string(), "my-cluster-1");
    assert!(is_kubelet_settable("topology.kubernetes.io/zone"));
    assert!(is_kubelet_settable("x.node.kubernetes.io/a"));
    assert!(is_kubelet_settable("example.com/a"));
    assert!(!is_kubelet_settable("k8s.io/a"));
}

#[test]
fn role_serialises_as_its_config_name() {
    for role in [Role::Etcd, Role::Master, Role::Worker] {
        let json = serde_json::to_string(&role).expect("serialises");
        assert_eq!(json, format!("\"{}\"", role.as_str()));
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        assert_eq!(serde_json::from_str::<Role>(&json).expect("parses"), role);
    }
    assert!(serde_json::from_str::<Role>("\"Etcd\"").is_err());
}

#[test]
fn an_explicit_empty_taint_list_makes_masters_schedulable() {
    let s = parse(&dropin(MASTER, "[kubernetes]\nnode_taints = []\n")).unwrap();
    assert!(s.kubernetes().unwrap().node_taints.is_empty());
    let s = parse(&main(WORKER.replace("node_taints", "# node_taints"))).unwrap();
    assert!(
        s.kubernetes().unwrap().node_taints.is_empty(),
        "workers get no default"
    );
}

#[test]
fn the_reboot_table() {
    let s = parse(&main(ETCD_MIN)).unwrap();
    assert_eq!(s.reboot.group, None);
    assert_eq!(s.reboot.window, None);
    assert_eq!(s.reboot.command, None, "default: logind over D-Bus");
    assert_eq!(s.reboot.check_interval, Duration::from_secs(60));
    assert_eq!(s.reboot.drain_timeout, Duration::from_secs(900));
    let s = parse(&dropin(
        ETCD_MIN,
        "[reboot]\ngroup = \"etcd\"\nwindow_start = \"Thu 23:00\"\nwindow_length = \"1h30m\"\ncommand = [\"/usr/bin/systemctl\", \"reboot\"]\ncheck_interval = \"1s\"\ndrain_timeout = \"5m\"\n",
    ))
    .unwrap();
    assert_eq!(s.reboot.group.as_deref(), Some("etcd"));
    assert_eq!(s.reboot.window.unwrap().length, Duration::from_secs(5400));
    assert_eq!(s.reboot.command.unwrap(), ["/usr/bin/systemctl", "reboot"]);
    assert_eq!(s.reboot.check_interval, Duration::from_secs(1));
    for (extra, error) in [
        (
            "[reboot]\nwindow_start = \"Thu 23:00\"\n",
            "key `reboot.window_length` is required with reboot.window_start",
        ),
        (
            "[reboot]\nwindow_start = \"Thx 23:00\"\nwindow_length = \"1h\"\n",
            "key `reboot.window_start`: expected a start like",
        ),
        (
            "[reboot]\ncheck_interval = \"1d\"\n",
            "key `reboot.check_interval`: expected a duration like",
        ),
        (
            "[reboot]\ncommand = [\"reboot\"]\n",
            "key `reboot.command`: expected an argv array whose first element is an absolute path",
        ),
        (
            "[reboot]\ngroup = \"a/b\"\n",
            "key `reboot.group`: expected a group name",
        ),
    ] {
        let e = parse(&dropin(ETCD_MIN, extra)).unwrap_err().to_string();
        assert!(e.contains(error), "{extra}: {e}");
    }
    // Masters and workers: groups end a ConfigMap name; a master lists the worker pools'.
    let s = parse(&dropin(
        MASTER,
        "[reboot]\nworker_groups = [\"prod-workers-a\", \"gpu.b\"]\n",
    ))
    .unwrap();
    assert_eq!(s.reboot.worker_groups, ["prod-workers-a", "gpu.b"]);
    assert!(parse(&main(WORKER))
        .unwrap()
        .reboot
        .worker_groups
        .is_empty());
    for (base, extra, error) in [
        (
            WORKER,
            "[reboot]\ngroup = \"Pool A\"\n",
            "key `reboot.group`: expected a group name that ends a ConfigMap name",
        ),
        (
            MASTER,
            "[reboot]\nworker_groups = [\"ok\", \"Not_ok\"]\n",
            "key `reboot.worker_groups`: expected a group name that ends a ConfigMap name",
        ),
    ] {
        let e = parse(&dropin(base, extra)).unwrap_err().to_string();
        assert!(e.contains(error), "{extra}: {e}");
    }
}

#[test]
fn the_metrics_table() {
    assert_eq!(parse(&main(ETCD_MIN)).unwrap().metrics_textfile_dir, None);
    let s = parse(&dropin(
        ETCD_MIN,
        "[metrics]\ntextfile_dir = \"/var/lib/node_exporter/textfile\"\n",
    ))
    .unwrap();
    assert_eq!(
        s.metrics_textfile_dir.unwrap(),
        std::path::Path::new("/var/lib/node_exporter/textfile")
    );
    let e = parse(&dropin(
        ETCD_MIN,
        "[metrics]\ntextfile_dir = \"textfile\"\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("key `metrics.textfile_dir`: expected an absolute path"),
        "{e}"
    );
}

#[test]
fn the_backup_table() {
    let s = parse(&main(ETCD_MIN)).unwrap();
    assert_eq!(s.backup.interval, Duration::from_secs(900));
    assert_eq!(s.backup.retention.keep_hourly_days, 7);
    assert_eq!(s.backup.retention.keep_daily_days, 365);
    assert_eq!(s.backup.restore_tool, "etcdutl");
    assert_eq!(s.backup.part_size, 16 * 1024 * 1024);
    let s = parse(&dropin(
        ETCD_MIN,
        "[backup]\ninterval = \"1h\"\nkeep_hourly_days = 2\nkeep_daily_days = 30\nrestore_tool = \"/opt/bin/etcdutl\"\npart_size_mib = 5\n",
    ))
    .unwrap();
    assert_eq!(s.backup.interval, Duration::from_secs(3600));
    assert_eq!(s.backup.retention.keep_hourly_days, 2);
    assert_eq!(s.backup.retention.keep_daily_days, 30);
    assert_eq!(s.backup.restore_tool, "/opt/bin/etcdutl");
    assert_eq!(s.backup.part_size, 5 * 1024 * 1024);
    for (extra, error) in [
        (
            "[backup]\ninterval = \"10s\"\n",
            "key `backup.interval`: expected a duration like",
        ),
        (
            "[backup]\npart_size_mib = 4\n",
            "key `backup.part_size_mib`: expected a number of MiB from 5",
        ),
        (
            "[backup]\nkeep_daily_days = -1\n",
            "key `backup.keep_daily_days`: expected a number of days",
        ),
        (
            "[backup]\nrestore_tool = \"bin/etcdutl\"\n",
            "key `backup.restore_tool`: expected a program name on PATH",
        ),
        (
            "[backup]\nretention = 3\n",
            "unknown key `backup.retention`",
        ),
    ] {
        let e = parse(&dropin(ETCD_MIN, extra)).unwrap_err().to_string();
        assert!(e.contains(error), "{extra}: {e}");
    }
}
