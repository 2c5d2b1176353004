//! `tn-agent etcd backup`: on the member that leads (any member with `--force`), a snapshot of
//! the local member streamed to S3, then its `meta.json`, then retention. Every run, taken or
//! not, is recorded in [`BackupRecord`].

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::catalog::{BackupName, Meta, MetaMember, SNAPSHOT_FILE};
use super::record::{BackupRecord, SeenBackup};
use super::upload::{self, Uploaded};
use crate::aws::Aws;
use crate::config::Settings;
use crate::etcd::client::{EtcdAccess, Status};
use crate::fsutil::Root;
use crate::identity::NodeIdentity;
use crate::store::Store;

/// What a run did.
#[derive(Debug)]
pub enum Outcome {
    Uploaded {
        name: BackupName,
        url: String,
        uploaded: Uploaded,
        seconds: f64,
        /// Backups retention deleted after it.
        expired: Vec<BackupName>,
    },
    /// Nothing to do, and why.
    Skipped(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Uploaded {
                name,
                url,
                uploaded,
                seconds,
                expired,
            } => {
                write!(
                    f,
                    "backup {name}: {} bytes uploaded to {url} in {seconds:.2} s",
                    uploaded.size
                )?;
                if uploaded.parts > 0 {
                    write!(f, " ({} parts)", uploaded.parts)?;
                }
                if !expired.is_empty() {
                    write!(f, "; retention deleted {} older backups", expired.len())?;
                }
                Ok(())
            }
            Outcome::Skipped(why) => write!(f, "no backup: {why}"),
        }
    }
}

/// Runs one backup and records it, whatever happens, in the node's backup record.
pub async fn run(
    settings: &Settings,
    root: &Root,
    me: &NodeIdentity,
    force: bool,
) -> Result<Outcome> {
    let mut record = BackupRecord::load(root).unwrap_or_default();
    let result = take(settings, root, me, force, &mut record).await;
    match &result {
        Ok(outcome @ Outcome::Uploaded { .. }) => record.ran("uploaded", outcome.to_string()),
        Ok(Outcome::Skipped(why)) => record.ran("skipped", why.clone()),
        Err(e) => record.ran("failed", format!("{e:#}")),
    }
    if let Err(e) = record.save(root) {
        tracing::warn!(error = %format!("{e:#}"), "could not record the backup run");
    }
    result
}

/// How long a run waits for the members to elect a leader when the one they know is gone.
const ELECTION_WAIT: Duration = Duration::from_secs(15);
const ELECTION_LOOK: Duration = Duration::from_millis(200);

/// This member's status once the leader it names is alive. Right after the leader is lost
/// (its node died, rebooted or was replaced) the others still name it for an election timeout,
/// then name none until they elect another: a timer run in that second would skip on every
/// member and leave the cluster without a backup for a whole interval. So a run whose leader
/// does not answer looks again until a live leader is named (at most [`ELECTION_WAIT`]).
async fn status_with_live_leader(access: &EtcdAccess, own: &str) -> Result<Status> {
    let deadline = Instant::now() + ELECTION_WAIT;
    loop {
        let status = access
            .status(own)
            .await
            .context("asking this node's etcd member for its status")?;
        let settled = status.leader == status.member_id
            || (status.leader != 0 && leader_answers(access, own, status.leader).await);
        if settled || Instant::now() >= deadline {
            return Ok(status);
        }
        tokio::time::sleep(ELECTION_LOOK).await;
    }
}

/// Whether member `leader` answers at one of its client URLs (as this member lists it).
async fn leader_answers(access: &EtcdAccess, own: &str, leader: u64) -> bool {
    let Ok(members) = access.member_list(&[own.to_string()]).await else {
        return false;
    };
    let urls = members
        .into_iter()
        .find(|m| m.id == leader)
        .map(|m| m.client_urls)
        .unwrap_or_default();
    for url in urls {
        if access
            .status(&url)
            .await
            .is_ok_and(|s| s.member_id == leader)
        {
            return true;
        }
    }
    false
}

async fn take(
    settings: &Settings,
    root: &Root,
    me: &NodeIdentity,
    force: bool,
    record: &mut BackupRecord,
) -> Result<Outcome> {
    let (access, _) = crate::etcd::node_client(settings, root, me)?;
    let own = access.client_url(me.private_ip);
    let status = status_with_live_leader(&access, &own).await?;
    let aws = Aws::connect(&me.region).await;
    let store = Store::new(&aws, &settings.state_bucket, settings.cluster.as_str());
    if !force && status.leader != status.member_id {
        // Look anyway: `status` and the reboot gates on this node read the newest backup from
        // the record.
        match store.backups().await {
            Ok(catalog) => {
                record.newest = catalog.newest().map(|n| SeenBackup::of(n, status.revision))
            }
            Err(e) => {
                tracing::warn!(error = %crate::exit::one_line(&e), "could not list the backups")
            }
        }
        return Ok(Outcome::Skipped(format!(
            "this member ({:x}) does not lead (member {:x} does); only the leader backs up, --force makes any member",
            status.member_id, status.leader
        )));
    }
    let catalog = store.backups().await.context("listing the backups")?;
    record.newest = catalog.newest().map(|n| SeenBackup::of(n, status.revision));
    let marker = store
        .marker()
        .await
        .context("reading the cluster marker")?
        .context("the cluster has no marker (etcd/cluster.json): it was never seeded")?;
    if let Some(newest) = catalog.newest().filter(|n| n.revision == status.revision) {
        // The same revision in a cluster restored since (revisions start again from the
        // backup's with etcd 3.4) is not the same data: the marker's token says whose it is.
        let same_cluster = store
            .backup_meta(newest)
            .await
            .context("reading the newest backup's meta.json")?
            .is_some_and(|meta| meta.marker_token == marker.token);
        if !force && same_cluster {
            return Ok(Outcome::Skipped(format!(
                "the revision ({}) has not changed since backup {newest}",
                status.revision
            )));
        }
    }
    let members = access
        .member_list(std::slice::from_ref(&own))
        .await
        .context("listing the members")?;

    let name = BackupName::new(crate::clock::now(), status.revision);
    let key = store.backup_key(&name, SNAPSHOT_FILE);
    let url = store.backup_url(&name, SNAPSHOT_FILE);
    let started = Instant::now();
    let mut stream = access
        .snapshot(&own)
        .await
        .context("asking this node's etcd member for a snapshot")?;
    let uploaded = upload::upload(
        &aws,
        store.bucket(),
        &key,
        &mut stream,
        settings.backup.part_size,
    )
    .await
    .with_context(|| format!("backing etcd up to {url}"))?;
    let meta = Meta {
        cluster: settings.cluster.as_str().to_string(),
        marker_token: marker.token,
        revision: status.revision,
        members: members
            .iter()
            .map(|m| MetaMember {
                id: format!("{:x}", m.id),
                name: m.display_name().to_string(),
            })
            .collect(),
        etcd_version: status.version.clone(),
        size: uploaded.size,
        sha256: uploaded.sha256.clone(),
        taken_by: me.instance_id.clone(),
        taken_at: crate::state::rfc3339(name.taken_at),
    };
    if let Err(e) = store.put_backup_meta(&name, &meta).await {
        // Without its meta the snapshot is no backup: take it away again so that nothing
        // half-written stays (retention removes it later if this fails too).
        if let Err(cleanup) = store.delete_snapshot(&name).await {
            tracing::warn!(error = %crate::exit::one_line(&cleanup), "could not remove the snapshot of the failed backup");
        }
        return Err(e).context(format!("backup {name}: writing its meta.json"));
    }
    let seconds = started.elapsed().as_secs_f64();
    record.newest = Some(SeenBackup::of(&name, status.revision));
    tracing::info!(backup = %name, bytes = uploaded.size, seconds, "backup uploaded");

    let mut complete = catalog.complete.clone();
    complete.push(name);
    let now = crate::clock::now();
    let mut expired = settings.backup.retention.expired(&complete, now);
    // Folders left without meta.json by a run that died between its two puts: not backups.
    let stale_incomplete = catalog
        .incomplete
        .iter()
        .filter(|n| now - n.taken_at > time::Duration::hours(1));
    let mut deletions = expired.clone();
    deletions.extend(stale_incomplete);
    store.delete_backups(&deletions).await.with_context(|| {
        format!(
            "backup {name} was uploaded, but deleting {} expired backups failed",
            deletions.len()
        )
    })?;
    expired.sort();
    Ok(Outcome::Uploaded {
        name,
        url: format!("s3://{}/{}", store.bucket(), store.backup_key(&name, "")),
        uploaded,
        seconds,
        expired,
    })
}
