//! A reboot group's lock, whichever backend holds it (SPEC §9): the semaphore document read with
//! a version and written back only at that version, in etcd for the etcd nodes
//! ([`super::etcd_lock`]) and in a ConfigMap for masters and workers ([`super::kube_lock`]). The
//! compare-and-swap loop and the operations on top of it live here, once.

use std::time::Duration;

use super::etcd_lock::EtcdLock;
use super::kube_lock::KubeLock;
use super::semaphore::{BadSemaphore, Outcome, Semaphore};
use crate::aws::{Aws, AwsError};
use crate::etcd::client::EtcdError;
use crate::kube::client::KubeError;
use crate::retry::Backoff;

/// The etcd nodes' group; its `max` is never above 1 (two members down can cost quorum).
pub const ETCD_GROUP: &str = "etcd";
/// The masters' group.
pub const MASTER_GROUP: &str = "master";
/// Compare-and-swap rounds before giving up on a document that keeps changing.
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
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error("{place} is malformed")]
    Bad {
        place: String,
        #[source]
        source: BadSemaphore,
    },
    #[error("{place} changed under each of {attempts} tries")]
    Contended { place: String, attempts: u32 },
    #[error("the etcd group's max stays 1: two etcd members rebooting at once can cost quorum")]
    EtcdMax,
    /// The group's ConfigMap is not there: nodes cannot create it (RBAC names no create).
    #[error(
        "{place} does not exist: list group {group:?} in the masters' `[reboot] worker_groups` \
         (masters' own group is always there) and apply /etc/kubernetes/addons/reboot-locks.yaml \
         from a master (docs/node.md, \"Masters and workers reboot themselves\")"
    )]
    NoGroup { place: String, group: String },
    /// The apiserver refuses this node the group's ConfigMap (403): the addon does not name it.
    #[error(
        "this node may not use {place}: list group {group:?} in the masters' `[reboot] \
         worker_groups` and apply /etc/kubernetes/addons/reboot-locks.yaml from a master \
         (docs/node.md, \"Masters and workers reboot themselves\")"
    )]
    Forbidden {
        place: String,
        group: String,
        #[source]
        source: Box<KubeError>,
    },
    #[error("finding which holders' instances are gone")]
    Aws(#[source] AwsError),
}

/// A group's name: 1-255 characters, no `/` and no control characters (it is part of an etcd
/// key). Kubernetes groups must also make a ConfigMap name ([`is_kube_group_name`]).
pub fn is_group_name(s: &str) -> bool {
    (1..=255).contains(&s.len()) && !s.contains('/') && !s.chars().any(char::is_control)
}

/// A group whose ConfigMap `tn-reboot-<group>` is a valid name: a DNS subdomain (lowercase
/// letters, digits, `-` and `.`, starting and ending alphanumeric, at most 253 characters).
pub fn is_kube_group_name(s: &str) -> bool {
    let name = format!("tn-reboot-{s}");
    !s.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Where a semaphore document is kept: read it with its version, write it at that version.
pub(crate) trait Store {
    type Version;
    /// Where it is, for messages ("etcd key ...", "ConfigMap kube-system/...").
    fn place(&self) -> String;
    /// The stored document (`None`: not yet written) and the version a write must match.
    async fn load(&self) -> Result<(Option<Vec<u8>>, Self::Version), LockError>;
    /// Writes `doc` if the version is still `version`; `Ok(false)` when it changed.
    async fn store(&self, doc: &Semaphore, version: Self::Version) -> Result<bool, LockError>;
}

/// The document as stored; `None` before anyone used the group.
pub(crate) async fn read<S: Store>(store: &S) -> Result<Option<Semaphore>, LockError> {
    match store.load().await?.0 {
        None => Ok(None),
        Some(bytes) => parse(store, &bytes).map(Some),
    }
}

fn parse<S: Store>(store: &S, bytes: &[u8]) -> Result<Semaphore, LockError> {
    Semaphore::parse(bytes).map_err(|source| LockError::Bad {
        place: store.place(),
        source,
    })
}

/// Applies `op` to the current document (a new one with one slot when there is none) and
/// writes the result back only if nobody changed it meanwhile; otherwise reads again and
/// retries, a bounded number of times. Returns what `op` said and the document as it is now.
pub(crate) async fn update<S: Store>(
    store: &S,
    mut op: impl FnMut(&mut Semaphore) -> Outcome,
) -> Result<(Outcome, Semaphore), LockError> {
    for attempt in 1..=CAS_ATTEMPTS {
        let (stored, version) = store.load().await?;
        let mut doc = match stored {
            None => Semaphore::new(1),
            Some(bytes) => parse(store, &bytes)?,
        };
        let outcome = op(&mut doc);
        if outcome != Outcome::Changed {
            return Ok((outcome, doc));
        }
        if store.store(&doc, version).await? {
            return Ok((outcome, doc));
        }
        tracing::debug!(
            place = store.place(),
            attempt,
            "the reboot lock changed meanwhile: trying again"
        );
        tokio::time::sleep(CAS_BACKOFF.wait(attempt)).await;
    }
    Err(LockError::Contended {
        place: store.place(),
        attempts: CAS_ATTEMPTS,
    })
}

/// Frees the slots of holders whose instances EC2 says are terminated or does not know; a live
/// holder (running, stopped, rebooting) keeps its slot however long it takes: no timeouts.
/// Returns the holders removed.
pub(crate) async fn reclaim_gone<S: Store>(store: &S, aws: &Aws) -> Result<Vec<String>, LockError> {
    let Some(doc) = read(store).await? else {
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
    update(store, |s| {
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

/// A group's lock in its backend.
pub enum GroupLock<'a> {
    Etcd(EtcdLock<'a>),
    Kube(KubeLock<'a>),
}

impl GroupLock<'_> {
    pub fn group(&self) -> &str {
        match self {
            GroupLock::Etcd(l) => l.group(),
            GroupLock::Kube(l) => l.group(),
        }
    }

    pub async fn read(&self) -> Result<Option<Semaphore>, LockError> {
        match self {
            GroupLock::Etcd(l) => read(l).await,
            GroupLock::Kube(l) => read(l).await,
        }
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
        if self.group() == ETCD_GROUP && max > 1 {
            return Err(LockError::EtcdMax);
        }
        self.update(|s| s.set_max(max)).await
    }

    async fn update(
        &self,
        op: impl FnMut(&mut Semaphore) -> Outcome,
    ) -> Result<(Outcome, Semaphore), LockError> {
        match self {
            GroupLock::Etcd(l) => update(l, op).await,
            GroupLock::Kube(l) => update(l, op).await,
        }
    }

    /// See [`reclaim_gone`].
    pub async fn reclaim_gone(&self, aws: &Aws) -> Result<Vec<String>, LockError> {
        match self {
            GroupLock::Etcd(l) => reclaim_gone(l, aws).await,
            GroupLock::Kube(l) => reclaim_gone(l, aws).await,
        }
    }

    /// Waits, at most `within`, until the document changes: at once when `free_now` and a slot
    /// is free already. Never fails: the caller looks again afterwards anyway.
    pub async fn wait_for_change(&self, within: Duration, free_now: bool) {
        match self {
            GroupLock::Etcd(l) => l.wait_for_change(within, free_now).await,
            GroupLock::Kube(l) => l.wait_for_change(within, free_now).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        assert!(is_group_name("etcd") && is_group_name("Pool A"));
        assert!(!is_group_name("a/b") && !is_group_name(""));
        for ok in ["master", "prod-workers-gpu", "pool.a"] {
            assert!(is_kube_group_name(ok), "{ok}");
        }
        for bad in ["", "Pool", "pool_a", "pool-", "a/b", &"x".repeat(250)] {
            assert!(!is_kube_group_name(bad), "{bad}");
        }
    }
}
