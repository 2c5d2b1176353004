//! The metrics file (SPEC §11), `<[metrics] textfile_dir>/tn_agent.prom`, read by the Prometheus
//! Python client's own parser (`prometheus_client.parser`, as node_exporter's textfile collector
//! would take it): every family named, typed and documented by Prometheus conventions, and the
//! values those of the world: a real etcd cluster of three, then one member killed.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;
use tn_world::Node;

use crate::support::cluster::{boot_cluster, world_with_etcd_asg};

const TEXTFILE_DIR: &str = "/var/lib/node_exporter/textfile";

/// One metric family as the parser read it.
struct Family {
    kind: String,
    help: String,
    /// (labels, value).
    samples: Vec<(BTreeMap<String, String>, f64)>,
}

/// The families of the node's metrics file as the Prometheus client parses them, by name. A
/// file it cannot parse fails the test.
fn parsed(node: &Node) -> BTreeMap<String, Family> {
    let path = node.path(&format!("{TEXTFILE_DIR}/tn_agent.prom"));
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
print(json.dumps(out))
"#;
    let python = tn_world::workspace_dir().join(".venv/bin/python");
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused {}:\n{}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&path).unwrap_or_default()
    );
    let families: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    families
        .into_iter()
        .map(|f| {
            let samples = f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    assert_eq!(s["name"], f["name"], "a gauge's samples carry its name");
                    let labels = s["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect();
                    (labels, s["value"].as_f64().unwrap())
                })
                .collect();
            (
                f["name"].as_str().unwrap().to_string(),
                Family {
                    kind: f["type"].as_str().unwrap().to_string(),
                    help: f["help"].as_str().unwrap().to_string(),
                    samples,
                },
            )
        })
        .collect()
}

/// The value of the family's one sample with no labels.
fn value(families: &BTreeMap<String, Family>, name: &str) -> f64 {
    let family = families.get(name).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(family.samples.len(), 1, "{name}");
    family.samples[0].1
}

#[test]
fn the_metrics_file_parses_and_tells_the_truth_about_etcd() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    for n in &nodes {
        let dir = n.path("/etc/tn-agent/config.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("50-metrics.toml"),
            format!("[metrics]\ntextfile_dir = \"{TEXTFILE_DIR}\"\n[backup]\nrestore_tool = \"etcdctl\"\n"),
        )
        .unwrap();
    }
    let mut etcd = boot_cluster(&world, &nodes);
    // The bootstrap wrote the file without asking etcd (it had not started yet).
    let m = parsed(&nodes[0]);
    assert_eq!(value(&m, "tn_agent_bootstrap_success"), 1.0);
    assert!(
        !m.contains_key("tn_agent_etcd_up"),
        "bootstrap does not wait for etcd"
    );
    let run = nodes[0].run(&["reconcile"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let backup = nodes[0].run(&["etcd", "backup", "--force"]).unwrap();
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;

    let m = parsed(&nodes[0]);
    for (name, Family { kind, help, .. }) in &m {
        assert!(name.starts_with("tn_agent_"), "{name}");
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{name}"
        );
        assert_eq!(kind, "gauge", "{name}");
        assert!(help.ends_with('.') && help.len() > 10, "{name}: {help:?}");
        assert!(
            !name.contains("timestamp") || name.ends_with("_timestamp_seconds"),
            "{name}"
        );
    }
    assert_eq!(value(&m, "tn_agent_etcd_up"), 1.0);
    assert_eq!(value(&m, "tn_agent_etcd_members"), 3.0);
    assert_eq!(value(&m, "tn_agent_etcd_voters"), 3.0);
    assert_eq!(value(&m, "tn_agent_etcd_healthy_voters"), 3.0);
    assert_eq!(value(&m, "tn_agent_etcd_quorum_margin"), 1.0);
    assert_eq!(value(&m, "tn_agent_etcd_leader_present"), 1.0);
    assert_eq!(value(&m, "tn_agent_bootstrap_success"), 1.0);
    assert_eq!(value(&m, "tn_agent_reconcile_success"), 1.0);
    assert_eq!(value(&m, "tn_agent_etcd_backup_last_run_success"), 1.0);
    let backed_up = value(&m, "tn_agent_etcd_backup_last_success_timestamp_seconds");
    assert!((now - backed_up).abs() < 120.0, "{backed_up} vs {now}");
    assert!(value(&m, "tn_agent_reconcile_duration_seconds") >= 0.0);
    let server = m["tn_agent_certificate_expiry_timestamp_seconds"]
        .samples
        .iter()
        .find(|(l, _)| l["path"] == "/etc/etcd/pki/server.crt")
        .expect("the server certificate");
    let info = tn_agent::pki::inspect(
        &std::fs::read_to_string(nodes[0].path("/etc/etcd/pki/server.crt")).unwrap(),
    )
    .unwrap();
    assert_eq!(server.1, info.not_after.unix_timestamp() as f64);
    let info = &m["tn_agent_info"].samples[0].0;
    assert_eq!(
        (info["role"].as_str(), info["instance_id"].as_str()),
        ("etcd", nodes[0].id.as_str())
    );

    // One member down: quorum holds with no margin left.
    etcd[2].kill();
    let run = nodes[0].run(&["reconcile"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let m = parsed(&nodes[0]);
    assert_eq!(value(&m, "tn_agent_etcd_voters"), 3.0);
    assert_eq!(value(&m, "tn_agent_etcd_healthy_voters"), 2.0);
    assert_eq!(value(&m, "tn_agent_etcd_quorum_margin"), 0.0);
    assert_eq!(
        value(&m, "tn_agent_healthy"),
        0.0,
        "status flags the member that is down"
    );
}
