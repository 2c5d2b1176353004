//! `tn-agent etcd restore --backup NAME --cluster NAME` (SPEC §10): disaster recovery, on one
//! etcd node with etcd stopped there.
//!
//! Everything that can be checked is checked before anything changes: the flags, the backup's
//! meta, the snapshot's SHA-256 (against the meta and against etcd's own trailer), the restore
//! tool's run into a work directory. Only then, in this order: the marker is replaced by a
//! conditional put on its ETag (a new token, `restored_from`), the data dir's contents are moved
//! aside (never deleted), the restored member takes their place, and the record and `etcd.env`
//! of a one-member cluster are written. The other members, at their next bootstrap, find their
//! data belongs to another cluster (the token changed), move it aside and join as learners.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use super::model::{ClusterState, InitialCluster, Marker};
use super::Local;
use crate::aws::Aws;
use crate::backup::catalog::{BackupName, SNAPSHOT_FILE};
use crate::backup::upload::TrailerCheck;
use crate::config::{Role, Settings};
use crate::exit::BadInput;
use crate::fsutil::{self, Root};
use crate::identity::NodeIdentity;
use crate::state::BootState;
use crate::store::Store;

/// etcdutl (3.5+) can make the restored keyspace's revisions jump past any a watcher has seen.
const BUMP_REVISION: &str = "1000000000";

/// Restores this node's member from backup `backup`; returns what was done, for the operator.
pub async fn restore(
    settings: &Settings,
    root: &Root,
    me: &NodeIdentity,
    backup: &str,
    cluster: &str,
) -> Result<String> {
    if settings.role() != Role::Etcd {
        bail!(BadInput(format!(
            "etcd restore runs on an etcd node; this node's role is {}",
            settings.role()
        )));
    }
    if cluster != settings.cluster.as_str() {
        bail!(BadInput(format!(
            "--cluster {cluster:?} is not this node's cluster {:?} (from {}): nothing changed",
            settings.cluster.as_str(),
            settings
                .sources
                .first()
                .map_or_else(String::new, |p| p.display().to_string())
        )));
    }
    let name: BackupName = backup
        .parse()
        .map_err(|e: crate::backup::catalog::BadName| BadInput(e.to_string()))?;
    let mut local = Local::from_disk(settings, root, me)?;
    if settings.etcd.tls {
        local.tls_files = Some(super::tls::node_files(root));
    }
    let own = local.access.client_url(me.private_ip);
    if local.access.status(&own).await.is_ok() {
        bail!(
            "etcd answers at {own}: stop it on this node first (systemctl stop etcd-member); \
             nothing changed"
        );
    }
    // etcd that does not answer (its certificates broken, say) may still have its data open.
    let db = local.data_dir.join("member/snap/db");
    if in_use(&db) {
        bail!(
            "{} is open in a running etcd: stop it on this node first (systemctl stop \
             etcd-member); nothing changed",
            db.display()
        );
    }

    let aws = Aws::connect(&me.region).await;
    let store = Store::new(&aws, &settings.state_bucket, settings.cluster.as_str());
    let meta = store
        .backup_meta(&name)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotMeta { .. } | crate::store::StoreError::BadMeta { .. } => {
                anyhow::Error::new(BadInput(crate::exit::one_line(&e)))
            }
            other => anyhow::Error::new(other),
        })
        .with_context(|| format!("reading backup {name}"))?
        .ok_or_else(|| {
            BadInput(format!(
                "there is no backup {name} in s3://{}/{} (`tn-agent etcd backups` lists them): nothing changed",
                store.bucket(),
                store.backups_prefix()
            ))
        })?;
    let tagged = store
        .marker_tagged()
        .await
        .context("reading the cluster marker")?;

    // The work directory lives in the data dir: the same file system as the data (a volume),
    // so the restored member moves into place by a rename.
    fsutil::create_dirs(&local.data_dir)
        .with_context(|| format!("creating {}", local.data_dir.display()))?;
    let stamp = time_stamp();
    let work = local
        .data_dir
        .join(format!("{}{stamp}", fsutil::RESTORE_PREFIX));
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(&work)
        .with_context(|| format!("creating {}", work.display()))?;
    let result = restore_in(&local, &store, &aws, &name, &meta, tagged, &work).await;
    // The work directory holds a copy of the backup (still in S3) and, after a success, an
    // empty directory: removing it loses nothing.
    if let Err(e) = std::fs::remove_dir_all(&work) {
        tracing::warn!(path = %work.display(), error = %e, "could not remove the restore's work directory");
    }
    result
}

async fn restore_in(
    local: &Local<'_>,
    store: &Store<'_>,
    aws: &Aws,
    name: &BackupName,
    meta: &crate::backup::catalog::Meta,
    tagged: Option<(Marker, String)>,
    work: &Path,
) -> Result<String> {
    let settings = local.settings;
    let snapshot = work.join(SNAPSHOT_FILE);
    download(aws, store, name, meta, &snapshot).await?;

    let token = format!("{}-{:016x}", settings.cluster, rand::random::<u64>());
    let initial = InitialCluster::only(&local.me);
    let restored = work.join("data");
    run_restore_tool(
        &settings.backup.restore_tool,
        &snapshot,
        &restored,
        &local.me.name,
        &initial,
        &token,
        &local.me.peer_url,
    )
    .await?;
    if !restored.join("member").is_dir() {
        bail!(
            "{} left no member directory in {}: nothing changed",
            settings.backup.restore_tool,
            restored.display()
        );
    }

    // The point of no return: the cluster is now the restored one.
    let marker = Marker {
        cluster: settings.cluster.as_str().to_string(),
        token: token.clone(),
        seeded_by: local.me.name.clone(),
        seed_peer_url: local.me.peer_url.clone(),
        seeded_at: crate::state::now_rfc3339(),
        restored_from: Some(name.to_string()),
        founders: Vec::new(),
    };
    let replaced = match &tagged {
        Some((_, etag)) => store.replace_marker(&marker, etag).await,
        None => store.create_marker(&marker).await,
    }
    .context("replacing the cluster marker")?;
    if !replaced {
        bail!(
            "the cluster marker {} changed while this restore ran (another restore?): nothing \
             changed on this node; look at it and run the restore again",
            store.url(crate::store::Object::Marker)
        );
    }

    let mut state = BootState::new(settings.cluster.as_str(), Role::Etcd);
    let had_data = std::fs::read_dir(&local.data_dir)?.any(|e| {
        e.ok().is_some_and(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            !n.starts_with(fsutil::MOVED_PREFIX) && !n.starts_with(fsutil::RESTORE_PREFIX)
        })
    });
    let aside = if had_data || local.record_path().exists() {
        let dest = local.move_data_aside()?;
        state.decide(
            "moved data dir aside",
            format!("restoring from backup {name}; it is now {}", dest.display()),
        );
        Some(dest)
    } else {
        None
    };
    let member = local.data_dir.join("member");
    std::fs::rename(restored.join("member"), &member).with_context(|| {
        format!(
            "moving the restored member into {} (the marker already names the restored cluster: \
             move {} there by hand, or run the restore again)",
            local.data_dir.display(),
            restored.join("member").display()
        )
    })?;
    fsutil::sync_dir(&local.data_dir)?;
    let record = local.record(&token, None, initial, ClusterState::New);
    local.write_config(&record, &mut state)?;
    state.decide(
        "restored etcd from a backup",
        format!(
            "backup {name} (revision {}, taken {} by {}); a one-member cluster with token {token}",
            meta.revision, meta.taken_at, meta.taken_by
        ),
    );
    state.ok = true;
    state.finished_at = Some(crate::state::now_rfc3339());
    state.save(local.root)?;

    let mut out = format!(
        "restored backup {name} (revision {}) into {}; the cluster marker now has token {token}",
        meta.revision,
        local.data_dir.display()
    );
    if let Some(dest) = aside {
        out.push_str(&format!("; the old data is in {}", dest.display()));
    }
    out.push_str(
        "\nnext: start etcd here, then run the bootstrap of every other etcd node (they move \
         their old data aside and join one at a time), then start the apiservers",
    );
    Ok(out)
}

/// Downloads the snapshot to `dest`, checking its size and SHA-256 against the meta and etcd's
/// trailer against its contents. A mismatch is a corrupt backup: bad input, nothing changed.
async fn download(
    aws: &Aws,
    store: &Store<'_>,
    name: &BackupName,
    meta: &crate::backup::catalog::Meta,
    dest: &Path,
) -> Result<()> {
    let url = store.backup_url(name, SNAPSHOT_FILE);
    let (mut body, _) = aws
        .get_object_stream(store.bucket(), &store.backup_key(name, SNAPSHOT_FILE))
        .await
        .with_context(|| format!("fetching {url}"))?
        .ok_or_else(|| {
            BadInput(format!(
                "{url} is missing: backup {name} is corrupt; nothing changed"
            ))
        })?;
    let mut file =
        std::fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut check = TrailerCheck::default();
    while let Some(chunk) = body
        .try_next()
        .await
        .with_context(|| format!("fetching {url}"))?
    {
        check.feed(&chunk);
        file.write_all(&chunk)
            .with_context(|| format!("writing {}", dest.display()))?;
    }
    file.sync_all()?;
    let corrupt = |why: String| BadInput(format!("{url} is corrupt: {why}; nothing changed"));
    let (size, sha256) = check.finish().map_err(|why| corrupt(why.to_string()))?;
    if size != meta.size {
        bail!(corrupt(format!(
            "{size} bytes, its meta.json says {}",
            meta.size
        )));
    }
    if sha256 != meta.sha256 {
        bail!(corrupt(format!(
            "its SHA-256 is {sha256}, its meta.json says {}",
            meta.sha256
        )));
    }
    Ok(())
}

/// Runs `<tool> snapshot restore` into `data_dir` (which must not exist yet), with
/// `--bump-revision --mark-compacted` when the tool knows them.
async fn run_restore_tool(
    tool: &str,
    snapshot: &Path,
    data_dir: &Path,
    name: &str,
    initial: &InitialCluster,
    token: &str,
    peer_url: &str,
) -> Result<()> {
    let help = tokio::process::Command::new(tool)
        .args(["snapshot", "restore", "--help"])
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {tool} (config [backup] restore_tool)"))?;
    let bump = String::from_utf8_lossy(&help.stdout).contains("--bump-revision")
        || String::from_utf8_lossy(&help.stderr).contains("--bump-revision");
    let mut args: Vec<String> = vec![
        "snapshot".into(),
        "restore".into(),
        snapshot.display().to_string(),
        format!("--name={name}"),
        format!("--initial-cluster={initial}"),
        format!("--initial-cluster-token={token}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--data-dir={}", data_dir.display()),
    ];
    if bump {
        args.push(format!("--bump-revision={BUMP_REVISION}"));
        args.push("--mark-compacted".into());
    } else {
        tracing::warn!(
            tool,
            "the restore tool cannot bump the revision (etcdctl 3.4): restart every apiserver after the restore"
        );
    }
    tracing::info!(tool, args = ?args, "restoring the snapshot");
    let out = tokio::process::Command::new(tool)
        .args(&args)
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} snapshot restore failed ({}): {}; nothing changed",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether another process holds etcd's lock on its database (bbolt takes an exclusive
/// `flock` on it while open).
fn in_use(db: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(file) = std::fs::File::open(db) else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(_lock) => false,
        Err((_, errno)) => errno == nix::errno::Errno::EWOULDBLOCK,
    }
}

fn time_stamp() -> String {
    crate::clock::now()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("timestamp formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_locked_by_another_open_file_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        assert!(!in_use(&db), "no database");
        std::fs::write(&db, b"bolt").unwrap();
        assert!(!in_use(&db));
        // What bbolt does while etcd has it open: an exclusive flock on its own descriptor.
        let held = nix::fcntl::Flock::lock(
            std::fs::File::open(&db).unwrap(),
            nix::fcntl::FlockArg::LockExclusiveNonblock,
        )
        .unwrap();
        assert!(in_use(&db));
        drop(held);
        assert!(!in_use(&db));
    }
}
