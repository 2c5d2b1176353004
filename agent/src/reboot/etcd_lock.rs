//! The reboot lock of etcd nodes (SPEC §9): the semaphore document at
//! `coreos.com/updateengine/rebootlock/groups/<group>/semaphore` in the cluster's etcd v3
//! keyspace, changed only by transactions on the key's mod revision (create: version 0), as
//! locksmith did with etcd v2.

use std::time::Duration;

use super::semaphore::{BadSemaphore, Outcome, Semaphore};
use crate::aws::{Aws, AwsError};
use crate::etcd::client::{EtcdAccess, EtcdError};
use crate::retry::Backoff;

/// Where the groups' documents are.
pub const PREFIX: &str = "coreos.com/updateengine/rebootlock/groups/";
/// The etcd nodes' group; its `max` is never above 1 (two members down can cost quorum).
pub const ETCD_GROUP: &str = "etcd";
/// Compare-and-swap rounds before giving up on a key that keeps changing.
const CAS_ATTEMPTS: u32 = 64;
/// Pacing between rounds, jittered: many nodes contending spread out.
const CAS_BACKOFF: Backoff = Backoff::new(
    Duration::from_millis(10),
    Duration::from_millis(400),
    Duration::from_secs(60),
);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("etcd key {key} is malformed")]
    Bad {
        key: String,
        #[source]
        source: BadSemaphore,
    },
    #[error("etcd key {key} changed under each of {attempts} tries")]
    Contended { key: String, attempts: u32 },
    #[error("the etcd group's max stays 1: two etcd members rebooting at once can cost quorum")]
    EtcdMax,
    #[error("finding which holders' instances are gone")]
    Aws(#[source] AwsError),
}

/// One group's lock in etcd.
/// Pause before a lock watch tries the next member.
const WATCH_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

pub struct EtcdLock<'a> {
    access: &'a EtcdAccess,
    endpoints: Vec<String>,
    group: String,
}

/// A group's name: 1-255 characters, no `/` and no control characters (it is part of a key).
pub fn is_group_name(s: &str) -> bool {
    (1..=255).contains(&s.len()) && !s.contains('/') && !s.chars().any(char::is_control)
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

    pub fn key(&self) -> String {
        format!("{PREFIX}{}/semaphore", self.group)
    }

    /// The group's document; `None` before anyone used the group.
    pub async fn read(&self) -> Result<Option<Semaphore>, LockError> {
        let key = self.key();
        match self.access.get_versioned(&self.endpoints, &key).await? {
            None => Ok(None),
            Some(v) => Semaphore::parse(&v.value)
                .map(Some)
                .map_err(|source| LockError::Bad { key, source }),
        }
    }

    /// Applies `op` to the current document (a new one with one slot when there is none) and
    /// writes the result back only if nobody changed the key meanwhile; otherwise reads again
    /// and retries, a bounded number of times. Returns what `op` said and the document as it
    /// is now.
    pub async fn update(
        &self,
        mut op: impl FnMut(&mut Semaphore) -> Outcome,
    ) -> Result<(Outcome, Semaphore), LockError> {
        let key = self.key();
        for attempt in 1..=CAS_ATTEMPTS {
            let current = self.access.get_versioned(&self.endpoints, &key).await?;
            let (mut doc, revision) = match &current {
                None => (Semaphore::new(1), 0),
                Some(v) => (
                    Semaphore::parse(&v.value).map_err(|source| LockError::Bad {
                        key: key.clone(),
                        source,
                    })?,
                    v.mod_revision,
                ),
            };
            let outcome = op(&mut doc);
            if outcome != Outcome::Changed {
                return Ok((outcome, doc));
            }
            let written = self
                .access
                .put_if_revision(&self.endpoints, &key, doc.to_json(), revision)
                .await?;
            if written {
                return Ok((outcome, doc));
            }
            tracing::debug!(
                key,
                attempt,
                "the reboot lock changed meanwhile: trying again"
            );
            tokio::time::sleep(CAS_BACKOFF.wait(attempt)).await;
        }
        Err(LockError::Contended {
            key,
            attempts: CAS_ATTEMPTS,
        })
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

    /// Takes a slot for `id` (a no-op when it holds one); [`Outcome::Full`] when all are held.
    pub async fn take(&self, id: &str) -> Result<(Outcome, Semaphore), LockError> {
        self.update(|s| s.take(id)).await
    }

    /// Gives back `id`'s slot (a no-op when it holds none).
    pub async fn release(&self, id: &str) -> Result<(Outcome, Semaphore), LockError> {
        self.update(|s| s.release(id)).await
    }

    /// Sets the group's number of slots; the etcd group refuses more than 1.
    pub async fn set_max(&self, max: i64) -> Result<(Outcome, Semaphore), LockError> {
        if self.group == ETCD_GROUP && max > 1 {
            return Err(LockError::EtcdMax);
        }
        self.update(|s| s.set_max(max)).await
    }

    /// Frees the slots of holders whose instances EC2 says are terminated or does not know;
    /// a live holder (running, stopped, rebooting) keeps its slot however long it takes: no
    /// timeouts. Returns the holders removed.
    pub async fn reclaim_gone(&self, aws: &Aws) -> Result<Vec<String>, LockError> {
        let Some(doc) = self.read().await? else {
            return Ok(Vec::new());
        };
        if doc.holders.is_empty() {
            return Ok(Vec::new());
        }
        let gone = aws
            .gone_instances(&doc.holders)
            .await
            .map_err(LockError::Aws)?;
        if gone.is_empty() {
            return Ok(gone);
        }
        self.update(|s| {
            let mut outcome = Outcome::Unchanged;
            for id in &gone {
                if s.release(id) == Outcome::Changed {
                    outcome = Outcome::Changed;
                }
            }
            outcome
        })
        .await?;
        Ok(gone)
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
