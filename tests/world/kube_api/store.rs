//! The fake apiserver's objects, kept as the JSON the API serves, with one resourceVersion
//! counter for all; the seeds tests add; and PodDisruptionBudget status computed as the
//! disruption controller would.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Amount, Budget, Pdb, PodRemoval, PodSeed, Policy, SeenRequest};

/// (namespace, name).
pub(super) type Key = (String, String);

/// The version the server and its Nodes' kubelets report unless told otherwise: SPEC's example.
pub(super) const DEFAULT_VERSION: &str = "v1.31.4";

pub(super) struct Store {
    /// The last resourceVersion given out.
    rv: u64,
    pub policy: Policy,
    /// `gitVersion` of `/version`, and the kubelet version of Nodes added.
    pub version: String,
    pub nodes: BTreeMap<String, Value>,
    pub pods: BTreeMap<Key, Value>,
    pub configmaps: BTreeMap<Key, Value>,
    pub pdbs: BTreeMap<Key, PdbState>,
    pub seen: Vec<SeenRequest>,
    pub evictions: Vec<PodRemoval>,
    pub deletions: Vec<PodRemoval>,
    /// Answer this status to the next N requests.
    pub fail_next: Option<(u16, u32)>,
}

/// A budget: its object (without status) and the pods its controllers want.
pub(super) struct PdbState {
    pub object: Value,
    pub expected: u32,
}

/// A budget's status, as the disruption controller computes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct PdbStatus {
    pub expected: i64,
    pub desired_healthy: i64,
    pub current_healthy: i64,
    pub disruptions_allowed: i64,
}

impl Store {
    pub fn new(policy: Policy) -> Store {
        Store {
            rv: 1000,
            policy,
            version: DEFAULT_VERSION.into(),
            nodes: BTreeMap::new(),
            pods: BTreeMap::new(),
            configmaps: BTreeMap::new(),
            pdbs: BTreeMap::new(),
            seen: Vec::new(),
            evictions: Vec::new(),
            deletions: Vec::new(),
            fail_next: None,
        }
    }

    /// A new resourceVersion.
    pub fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// The current resourceVersion (of lists).
    pub fn current_rv(&self) -> String {
        self.rv.to_string()
    }

    /// Fresh metadata: name, namespace (if any), uid, resourceVersion, creationTimestamp.
    pub fn new_meta(&mut self, name: &str, namespace: Option<&str>) -> Map<String, Value> {
        let mut meta = Map::new();
        meta.insert("name".into(), name.into());
        if let Some(ns) = namespace {
            meta.insert("namespace".into(), ns.into());
        }
        meta.insert("uid".into(), new_uid().into());
        meta.insert("resourceVersion".into(), self.next_rv().into());
        meta.insert("creationTimestamp".into(), now().into());
        meta
    }

    pub fn add_node(&mut self, name: &str, labels: &[(&str, &str)]) -> Result<()> {
        if self.nodes.contains_key(name) {
            bail!("node {name} exists");
        }
        let mut meta = self.new_meta(name, None);
        let mut all_labels = json!({
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
        });
        for (k, v) in labels {
            all_labels[*k] = (*v).into();
        }
        meta.insert("labels".into(), all_labels);
        let at = now();
        let node = json!({
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": meta,
            "spec": {},
            "status": {
                "conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": at,
                    "lastTransitionTime": at,
                }],
                "addresses": [{"type": "Hostname", "address": name}],
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "osImage": "Flatcar Container Linux by Kinvolk 4152.2.0 (Oklo)",
                    "kernelVersion": "6.6.60-flatcar",
                    "containerRuntimeVersion": "containerd://1.7.23",
                    "kubeletVersion": self.version,
                    "kubeProxyVersion": self.version,
                },
            },
        });
        self.nodes.insert(name.into(), node);
        Ok(())
    }

    pub fn set_ready(&mut self, name: &str, ready: bool) -> Result<()> {
        let rv = self.next_rv();
        let node = self
            .nodes
            .get_mut(name)
            .with_context(|| format!("no node {name}"))?;
        let at = now();
        let (status, reason, message) = if ready {
            ("True", "KubeletReady", "kubelet is posting ready status")
        } else {
            (
                "False",
                "KubeletNotReady",
                "container runtime network not ready",
            )
        };
        let conditions = node["status"]["conditions"]
            .as_array_mut()
            .context("node without conditions")?;
        let cond = conditions
            .iter_mut()
            .find(|c| c["type"] == "Ready")
            .context("node without a Ready condition")?;
        if cond["status"] != status {
            cond["lastTransitionTime"] = at.clone().into();
        }
        cond["status"] = status.into();
        cond["reason"] = reason.into();
        cond["message"] = message.into();
        cond["lastHeartbeatTime"] = at.into();
        node["metadata"]["resourceVersion"] = rv.into();
        Ok(())
    }

    pub fn add_pod(&mut self, seed: PodSeed) -> Result<()> {
        let key = (seed.namespace.clone(), seed.name.clone());
        if self.pods.contains_key(&key) {
            bail!("pod {}/{} exists", seed.namespace, seed.name);
        }
        let mut meta = self.new_meta(&seed.name, Some(&seed.namespace));
        if !seed.labels.is_empty() {
            meta.insert("labels".into(), json!(seed.labels));
        }
        let mut owners = Vec::new();
        if let Some((kind, name)) = &seed.owner {
            let api_version = match kind.as_str() {
                "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Deployment" => "apps/v1",
                "Job" | "CronJob" => "batch/v1",
                _ => "v1",
            };
            owners.push(json!({
                "apiVersion": api_version,
                "kind": kind,
                "name": name,
                "uid": new_uid(),
                "controller": true,
                "blockOwnerDeletion": true,
            }));
        }
        let mut annotations = seed.annotations.clone();
        if seed.mirror {
            let hash = format!("{:032x}", rand::random::<u128>());
            for (k, v) in [
                ("kubernetes.io/config.hash", hash.as_str()),
                ("kubernetes.io/config.mirror", hash.as_str()),
                ("kubernetes.io/config.source", "file"),
            ] {
                annotations.insert(k.into(), v.into());
            }
            let node_uid = self
                .nodes
                .get(&seed.node)
                .map(|n| n["metadata"]["uid"].clone())
                .unwrap_or_else(|| new_uid().into());
            owners.push(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "name": seed.node,
                "uid": node_uid,
                "controller": true,
            }));
        }
        if !owners.is_empty() {
            meta.insert("ownerReferences".into(), owners.into());
        }
        if !annotations.is_empty() {
            meta.insert("annotations".into(), json!(annotations));
        }
        let running = seed.phase == "Running";
        let ready = running && seed.ready;
        let cond = if ready { "True" } else { "False" };
        let pod = json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": meta,
            "spec": {
                "nodeName": seed.node,
                "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "terminationGracePeriodSeconds": 30,
            },
            "status": {
                "phase": seed.phase,
                "conditions": [
                    {"type": "Ready", "status": cond},
                    {"type": "ContainersReady", "status": cond},
                    {"type": "PodScheduled", "status": "True"},
                ],
                "containerStatuses": [{
                    "name": "main",
                    "image": "registry.k8s.io/pause:3.10",
                    "ready": ready,
                    "started": running,
                    "restartCount": 0,
                }],
            },
        });
        self.pods.insert(key, pod);
        Ok(())
    }

    /// Removes a pod, or marks it terminating (with [`super::Termination::Manual`]).
    pub fn remove_pod(&mut self, key: &Key, grace_seconds: i64) {
        match self.policy.termination {
            super::Termination::Immediate => {
                self.pods.remove(key);
            }
            super::Termination::Manual => {
                let rv = self.next_rv();
                if let Some(pod) = self.pods.get_mut(key) {
                    if pod["metadata"]["deletionTimestamp"].is_null() {
                        pod["metadata"]["deletionTimestamp"] = now().into();
                        pod["metadata"]["deletionGracePeriodSeconds"] = grace_seconds.into();
                        pod["metadata"]["resourceVersion"] = rv.into();
                    }
                }
            }
        }
    }

    pub fn finish_terminating(&mut self, namespace: &str, name: &str) -> bool {
        let key = (namespace.to_string(), name.to_string());
        let terminating = self
            .pods
            .get(&key)
            .is_some_and(|p| !p["metadata"]["deletionTimestamp"].is_null());
        if terminating {
            self.pods.remove(&key);
        }
        terminating
    }

    pub fn add_pdb(&mut self, pdb: Pdb) -> Result<()> {
        let key = (pdb.namespace.clone(), pdb.name.clone());
        if self.pdbs.contains_key(&key) {
            bail!("PodDisruptionBudget {}/{} exists", pdb.namespace, pdb.name);
        }
        let mut meta = self.new_meta(&pdb.name, Some(&pdb.namespace));
        meta.insert("generation".into(), 1.into());
        let mut object = json!({
            "kind": "PodDisruptionBudget",
            "apiVersion": "policy/v1",
            "metadata": meta,
            "spec": {"selector": {"matchLabels": pdb.match_labels}},
        });
        set_budget(&mut object, pdb.budget);
        let expected = match pdb.expected {
            Some(n) => n,
            None => self.matching_pods(&object).len() as u32,
        };
        self.pdbs.insert(key, PdbState { object, expected });
        Ok(())
    }

    pub fn set_pdb_budget(&mut self, namespace: &str, name: &str, budget: Budget) -> Result<()> {
        let rv = self.next_rv();
        let key = (namespace.to_string(), name.to_string());
        let pdb = self
            .pdbs
            .get_mut(&key)
            .with_context(|| format!("no PodDisruptionBudget {namespace}/{name}"))?;
        set_budget(&mut pdb.object, budget);
        let generation = pdb.object["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        pdb.object["metadata"]["generation"] = generation.into();
        pdb.object["metadata"]["resourceVersion"] = rv.into();
        Ok(())
    }

    /// The pods a budget's selector matches.
    pub fn matching_pods(&self, pdb: &Value) -> Vec<&Value> {
        self.pods.values().filter(|pod| selects(pdb, pod)).collect()
    }

    /// The budgets whose selectors match `pod`.
    pub fn pdbs_for(&self, pod: &Value) -> Vec<&PdbState> {
        self.pdbs
            .values()
            .filter(|pdb| selects(&pdb.object, pod))
            .collect()
    }

    pub fn pdb_status(&self, pdb: &PdbState) -> PdbStatus {
        let pods = self.matching_pods(&pdb.object);
        let current_healthy = pods.iter().filter(|p| counts_healthy(p)).count() as i64;
        let scaled = |amount: &Value, expected: i64| match amount {
            Value::String(pct) => {
                let pct: i64 = pct.trim_end_matches('%').parse().unwrap_or(0);
                (pct * expected + 99) / 100
            }
            other => other.as_i64().unwrap_or(0),
        };
        let spec = &pdb.object["spec"];
        let (expected, desired_healthy) = if !spec["maxUnavailable"].is_null() {
            let expected = i64::from(pdb.expected);
            let max = scaled(&spec["maxUnavailable"], expected);
            (expected, (expected - max).max(0))
        } else if spec["minAvailable"].is_string() {
            let expected = i64::from(pdb.expected);
            (expected, scaled(&spec["minAvailable"], expected))
        } else {
            (
                pods.len() as i64,
                spec["minAvailable"].as_i64().unwrap_or(0),
            )
        };
        let disruptions_allowed = if current_healthy > desired_healthy && expected > 0 {
            current_healthy - desired_healthy
        } else {
            0
        };
        PdbStatus {
            expected,
            desired_healthy,
            current_healthy,
            disruptions_allowed,
        }
    }

    /// A budget as the API serves it, with its status.
    pub fn pdb_object(&self, pdb: &PdbState) -> Value {
        let status = self.pdb_status(pdb);
        let mut object = pdb.object.clone();
        let allowed = status.disruptions_allowed > 0;
        object["status"] = json!({
            "observedGeneration": object["metadata"]["generation"],
            "disruptionsAllowed": status.disruptions_allowed,
            "currentHealthy": status.current_healthy,
            "desiredHealthy": status.desired_healthy,
            "expectedPods": status.expected,
            "conditions": [{
                "type": "DisruptionAllowed",
                "status": if allowed { "True" } else { "False" },
                "reason": if allowed { "SufficientPods" } else { "InsufficientPods" },
                "message": "",
                "observedGeneration": object["metadata"]["generation"],
                "lastTransitionTime": object["metadata"]["creationTimestamp"],
            }],
        });
        object
    }

    /// Creates an empty ConfigMap with these labels unless one exists (as `kubectl apply`
    /// leaves the data of an existing one alone when the manifest has none).
    pub fn ensure_configmap(&mut self, namespace: &str, name: &str, labels: Value) {
        let map_key = (namespace.to_string(), name.to_string());
        if !self.configmaps.contains_key(&map_key) {
            let mut meta = self.new_meta(name, Some(namespace));
            meta.insert("labels".into(), labels);
            let cm = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta});
            self.configmaps.insert(map_key, cm);
        }
    }

    pub fn put_configmap_value(&mut self, namespace: &str, name: &str, key: &str, value: &str) {
        let map_key = (namespace.to_string(), name.to_string());
        if !self.configmaps.contains_key(&map_key) {
            let meta = self.new_meta(name, Some(namespace));
            let cm = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta, "data": {}});
            self.configmaps.insert(map_key.clone(), cm);
        } else {
            let rv = self.next_rv();
            self.configmaps.get_mut(&map_key).expect("present")["metadata"]["resourceVersion"] =
                rv.into();
        }
        let cm = self.configmaps.get_mut(&map_key).expect("present");
        if !cm["data"].is_object() {
            cm["data"] = json!({});
        }
        cm["data"][key] = value.into();
    }
}

/// Whether a budget selects `pod`: same namespace, and every `matchLabels` entry (an empty
/// selector matches nothing, as on a real apiserver).
fn selects(pdb: &Value, pod: &Value) -> bool {
    let Some(want) = pdb["spec"]["selector"]["matchLabels"].as_object() else {
        return false;
    };
    pdb["metadata"]["namespace"] == pod["metadata"]["namespace"]
        && !want.is_empty()
        && want
            .iter()
            .all(|(k, v)| &pod["metadata"]["labels"][k.as_str()] == v)
}

fn set_budget(object: &mut Value, budget: Budget) {
    let amount = |a: Amount| match a {
        Amount::Count(n) => json!(n),
        Amount::Percent(p) => json!(format!("{p}%")),
    };
    let spec = object["spec"].as_object_mut().expect("a spec");
    spec.remove("minAvailable");
    spec.remove("maxUnavailable");
    match budget {
        Budget::MinAvailable(a) => spec.insert("minAvailable".into(), amount(a)),
        Budget::MaxUnavailable(a) => spec.insert("maxUnavailable".into(), amount(a)),
    };
}

/// Ready condition True.
pub(super) fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Counted healthy by a budget: Ready and not terminating.
pub(super) fn counts_healthy(pod: &Value) -> bool {
    pod_ready(pod) && pod["metadata"]["deletionTimestamp"].is_null()
}

/// A random UUID (version 4 layout).
pub(super) fn new_uid() -> String {
    let v = rand::random::<u128>();
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Now, RFC 3339 in whole seconds, as metav1.Time serialises.
pub(super) fn now() -> String {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0)
        .expect("0 ns is valid")
        .format(&Rfc3339)
        .expect("formattable")
}
