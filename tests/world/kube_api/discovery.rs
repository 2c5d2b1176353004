//! What kubectl reads before it acts: `/version` and the legacy discovery documents of the
//! served resources; and server-side printing, the `Table` kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::store::{pod_ready, Store};

/// The discovery document at `path`, if it is one.
pub(super) fn document(store: &Store, path: &str) -> Option<Value> {
    let policy_v1 = json!({"groupVersion": "policy/v1", "version": "v1"});
    let policy_group = json!({
        "name": "policy",
        "versions": [policy_v1],
        "preferredVersion": policy_v1,
    });
    Some(match path.trim_end_matches('/') {
        "/version" => {
            let version = store.version.as_str();
            let mut parts = version.trim_start_matches('v').split('.');
            let (major, minor) = (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"));
            json!({
                "major": major,
                "minor": minor,
                "gitVersion": version,
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "go1.23.4",
                "compiler": "gc",
                "platform": "linux/amd64",
            })
        }
        "/api" => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [],
        }),
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [policy_group]}),
        "/apis/policy" => {
            let mut g = policy_group;
            g["kind"] = "APIGroup".into();
            g["apiVersion"] = "v1".into();
            g
        }
        "/api/v1" => json!({
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                {
                    "name": "configmaps",
                    "singularName": "configmap",
                    "namespaced": true,
                    "kind": "ConfigMap",
                    "verbs": ["create", "delete", "get", "list", "patch", "update"],
                    "shortNames": ["cm"],
                },
                {
                    "name": "nodes",
                    "singularName": "node",
                    "namespaced": false,
                    "kind": "Node",
                    "verbs": ["get", "list", "patch"],
                    "shortNames": ["no"],
                },
                {
                    "name": "pods",
                    "singularName": "pod",
                    "namespaced": true,
                    "kind": "Pod",
                    "verbs": ["delete", "get", "list"],
                    "shortNames": ["po"],
                    "categories": ["all"],
                },
                {
                    "name": "pods/eviction",
                    "singularName": "",
                    "namespaced": true,
                    "group": "policy",
                    "version": "v1",
                    "kind": "Eviction",
                    "verbs": ["create"],
                },
            ],
        }),
        "/apis/policy/v1" => json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "policy/v1",
            "resources": [{
                "name": "poddisruptionbudgets",
                "singularName": "poddisruptionbudget",
                "namespaced": true,
                "kind": "PodDisruptionBudget",
                "verbs": ["get", "list"],
                "shortNames": ["pdb"],
            }],
        }),
        _ => return None,
    })
}

/// Whether the client asked for server-side printing.
pub(super) fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

/// `includeObject` of a Table request: `None`, `Metadata` (the default) or `Object`.
pub(super) fn table(
    store: &Store,
    resource: &str,
    objects: &[Value],
    include_object: &str,
) -> Value {
    let col = |name: &str, priority: u32| {
        let format = if name == "Name" { "name" } else { "" };
        json!({"name": name, "type": "string", "format": format, "description": "", "priority": priority})
    };
    let columns: Vec<Value> = match resource {
        "nodes" => vec![
            col("Name", 0),
            col("Status", 0),
            col("Roles", 0),
            col("Age", 0),
            col("Version", 0),
            col("Internal-IP", 1),
            col("External-IP", 1),
            col("OS-Image", 1),
            col("Kernel-Version", 1),
            col("Container-Runtime", 1),
        ],
        "pods" => vec![
            col("Name", 0),
            col("Ready", 0),
            col("Status", 0),
            col("Restarts", 0),
            col("Age", 0),
            col("IP", 1),
            col("Node", 1),
            col("Nominated Node", 1),
            col("Readiness Gates", 1),
        ],
        "configmaps" => vec![col("Name", 0), col("Data", 0), col("Age", 0)],
        _ => vec![
            col("Name", 0),
            col("Min Available", 0),
            col("Max Unavailable", 0),
            col("Allowed Disruptions", 0),
            col("Age", 0),
        ],
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells = cells(store, resource, o);
            let mut row = json!({"cells": cells});
            match include_object {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"],
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": store.current_rv()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn cells(store: &Store, resource: &str, o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let age = age(o["metadata"]["creationTimestamp"].as_str().unwrap_or(""));
    let none = || Value::from("<none>");
    match resource {
        "nodes" => {
            let ready = o["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            let mut status = if ready { "Ready" } else { "NotReady" }.to_string();
            if o["spec"]["unschedulable"] == true {
                status.push_str(",SchedulingDisabled");
            }
            let mut roles: Vec<&str> = o["metadata"]["labels"]
                .as_object()
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            roles.sort();
            let roles = if roles.is_empty() {
                "<none>".to_string()
            } else {
                roles.join(",")
            };
            let info = &o["status"]["nodeInfo"];
            vec![
                name,
                status.into(),
                roles.into(),
                age.into(),
                info["kubeletVersion"].clone(),
                none(),
                none(),
                info["osImage"].clone(),
                info["kernelVersion"].clone(),
                info["containerRuntimeVersion"].clone(),
            ]
        }
        "pods" => {
            let containers = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = if pod_ready(o) { containers } else { 0 };
            let status = if !o["metadata"]["deletionTimestamp"].is_null() {
                "Terminating".to_string()
            } else if o["status"]["phase"] == "Succeeded" {
                "Completed".to_string()
            } else {
                o["status"]["phase"]
                    .as_str()
                    .unwrap_or("Unknown")
                    .to_string()
            };
            let node = match o["spec"]["nodeName"].as_str() {
                Some(n) if !n.is_empty() => Value::from(n),
                _ => none(),
            };
            vec![
                name,
                format!("{ready}/{containers}").into(),
                status.into(),
                0.into(),
                age.into(),
                none(),
                node,
                none(),
                none(),
            ]
        }
        "configmaps" => {
            let data = o["data"].as_object().map_or(0, |d| d.len())
                + o["binaryData"].as_object().map_or(0, |d| d.len());
            vec![name, data.into(), age.into()]
        }
        _ => {
            let key = (
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                o["metadata"]["name"].as_str().unwrap_or("").to_string(),
            );
            let allowed = store
                .pdbs
                .get(&key)
                .map_or(0, |p| store.pdb_status(p).disruptions_allowed);
            let amount = |v: &Value| match v {
                Value::Null => "N/A".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![
                name,
                amount(&o["spec"]["minAvailable"]).into(),
                amount(&o["spec"]["maxUnavailable"]).into(),
                allowed.into(),
                age.into(),
            ]
        }
    }
}

/// `duration.HumanDuration` of the time since `timestamp`.
fn age(timestamp: &str) -> String {
    let Ok(t) = OffsetDateTime::parse(timestamp, &Rfc3339) else {
        return "<unknown>".into();
    };
    let secs = (OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match secs {
        s if s < 120 => format!("{s}s"),
        _ if m < 10 => match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        },
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 => match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        },
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        },
        _ => format!("{d}d"),
    }
}
