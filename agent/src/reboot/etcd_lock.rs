//! The reboot lock of etcd nodes (SPEC §9): the semaphore document at
//! `coreos.com/updateengine/rebootlock/groups/<group>/semaphore` in the cluster's etcd v3
//! keyspace, changed only by transactions on the key's mod revision (create: version 0), as
//! locksmith did with etcd v2.

use super::lock::{LockError, Store};
use super::semaphore::{BadSemaphore, Semaphore};
use crate::etcd::client::{EtcdAccess, EtcdError};

/// Where the groups' documents are.
pub const PREFIX: &str = "coreos.com/updateengine/rebootlock/groups/";
/// Pause before a lock watch tries the next member.
const WATCH_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// One group's lock in etcd.
pub struct EtcdLock<'a> {
    access: &'a EtcdAccess,
    endpoints: Vec<String>,
    group: String,
}

impl Store for EtcdLock<'_> {
    /// The key's mod revision; 0: no key (a create).
    type Version = i64;

    fn place(&self) -> String {
        format!("etcd key {}", self.key())
    }

    async fn load(&self) -> Result<(Option<Vec<u8>>, i64), LockError> {
        Ok(
            match self
                .access
                .get_versioned(&self.endpoints, &self.key())
                .await?
            {
                None => (None, 0),
                Some(v) => (Some(v.value), v.mod_revision),
            },
        )
    }

    async fn store(&self, doc: &Semaphore, revision: i64) -> Result<bool, LockError> {
        Ok(self
            .access
            .put_if_revision(&self.endpoints, &self.key(), doc.to_json(), revision)
            .await?)
    }
}

impl<'a> EtcdLock<'a> {
    /// The lock of `group`, reached through `endpoints` (client URLs).
    pub fn new(access: &'a EtcdAccess, endpoints: Vec<String>, group: &str) -> Self {
        EtcdLock {
            access,
            endpoints,
            group: group.to_string(),
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn key(&self) -> String {
        format!("{PREFIX}{}/semaphore", self.group)
    }

    /// Waits, at most `within`, until the document changes: at once when `free_now` and a slot
    /// is free already (it was freed since it was found full). A failure to watch is logged
    /// and waits out `within`: the caller looks again then anyway.
    pub async fn wait_for_change(&self, within: std::time::Duration, free_now: bool) {
        let key = self.key();
        let started = tokio::time::Instant::now();
        let revision = match self.access.get_versioned(&self.endpoints, &key).await {
            Ok(None) => 0,
            Ok(Some(v)) => {
                if free_now && Semaphore::parse(&v.value).is_ok_and(|s| s.free() > 0) {
                    return;
                }
                v.mod_revision
            }
            Err(e) => {
                tracing::debug!(error = %crate::exit::one_line(&e), "cannot read the reboot lock to watch it");
                tokio::time::sleep(within.saturating_sub(started.elapsed())).await;
                return;
            }
        };
        // One member at a time: the one a watch is on may be the one going down for its
        // reboot; the watch resumes on the next from the same revision, so no change is missed.
        let deadline = started + within;
        for endpoint in self.endpoints.iter().cycle() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self
                .access
                .wait_for_change(std::slice::from_ref(endpoint), &key, revision, left)
                .await
            {
                Ok(_) => return,
                Err(e) => {
                    tracing::debug!(endpoint, error = %crate::exit::one_line(&e), "cannot watch the reboot lock there");
                    tokio::time::sleep(WATCH_RETRY.min(left)).await;
                }
            }
        }
        // No endpoint at all: wait out the interval.
        tokio::time::sleep(within.saturating_sub(started.elapsed())).await;
    }
}

/// Every group's document under [`PREFIX`], by group name, each parsed on its own (one bad
/// document does not hide the others).
pub async fn groups(
    access: &EtcdAccess,
    endpoints: &[String],
) -> Result<Vec<(String, Result<Semaphore, BadSemaphore>)>, EtcdError> {
    let found = access.get_prefix(endpoints, PREFIX).await?;
    Ok(found
        .into_iter()
        .filter_map(|v| {
            let group = v.key.strip_prefix(PREFIX)?.strip_suffix("/semaphore")?;
            Some((group.to_string(), Semaphore::parse(&v.value)))
        })
        .collect())
}
