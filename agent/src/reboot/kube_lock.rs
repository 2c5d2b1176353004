//! The reboot lock of masters and workers (SPEC §9): the semaphore document in ConfigMap
//! `kube-system/tn-reboot-<group>`, data key `semaphore`, changed only by update with the
//! ConfigMap's `resourceVersion`, as the node itself.
//!
//! Nodes never create the ConfigMaps: RBAC cannot limit a create to some names, so the masters'
//! addon (`/etc/kubernetes/addons/reboot-locks.yaml`) creates them empty, and a node writes the
//! `semaphore` key into one at its group's first use. An empty ConfigMap is a group nobody used
//! yet (one slot); re-applying the addon leaves a written `semaphore` as it is.

use std::time::Duration;

use super::lock::{LockError, Store};
use super::semaphore::Semaphore;
use crate::kube::client::{ConfigMap, KubeClient};

/// The namespace of the lock ConfigMaps.
pub const NAMESPACE: &str = "kube-system";
/// The data key holding the document.
pub const KEY: &str = "semaphore";
/// How often a wait for a change looks (the API's watch is not used: polling a single object at
/// this pace costs the apiserver less than a watch per node would).
const POLL: Duration = Duration::from_secs(2);

/// The ConfigMap of `group`.
pub fn configmap_name(group: &str) -> String {
    format!("tn-reboot-{group}")
}

/// One group's lock in Kubernetes.
pub struct KubeLock<'a> {
    client: &'a KubeClient,
    group: String,
}

impl Store for KubeLock<'_> {
    /// The ConfigMap as read: written back with its `resourceVersion`.
    type Version = ConfigMap;

    fn place(&self) -> String {
        format!("ConfigMap {NAMESPACE}/{}", configmap_name(&self.group))
    }

    async fn load(&self) -> Result<(Option<Vec<u8>>, ConfigMap), LockError> {
        let name = configmap_name(&self.group);
        let found = match self.client.configmap(NAMESPACE, &name).await {
            Err(source) if source.code() == Some(403) => {
                return Err(LockError::Forbidden {
                    place: self.place(),
                    group: self.group.clone(),
                    source: Box::new(source),
                })
            }
            found => found?,
        };
        let Some(cm) = found else {
            return Err(LockError::NoGroup {
                place: self.place(),
                group: self.group.clone(),
            });
        };
        let doc = cm.data.get(KEY).map(|v| v.as_bytes().to_vec());
        Ok((doc, cm))
    }

    async fn store(&self, doc: &Semaphore, read: ConfigMap) -> Result<bool, LockError> {
        let mut data = read.data.clone();
        let json = String::from_utf8(doc.to_json()).expect("JSON is UTF-8");
        data.insert(KEY.to_string(), json);
        Ok(self.client.update_configmap(&read, data).await?)
    }
}

impl<'a> KubeLock<'a> {
    pub fn new(client: &'a KubeClient, group: &str) -> Self {
        KubeLock {
            client,
            group: group.to_string(),
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// Waits, at most `within`, until the ConfigMap changes (its `resourceVersion`): at once
    /// when `free_now` and a slot is free already. Looks every few seconds.
    pub async fn wait_for_change(&self, within: Duration, free_now: bool) {
        let deadline = tokio::time::Instant::now() + within;
        let mut first: Option<String> = None;
        loop {
            if let Ok((doc, cm)) = self.load().await {
                let free = doc
                    .and_then(|d| Semaphore::parse(&d).ok())
                    .is_none_or(|s| s.free() > 0);
                match &first {
                    None if free_now && free => return,
                    None => first = Some(cm.resource_version),
                    Some(rv) if *rv != cm.resource_version => return,
                    Some(_) => {}
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(POLL.min(left)).await;
        }
    }
}
