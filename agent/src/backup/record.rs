//! `/var/lib/tn-agent/backup.json`: what this node's `etcd backup` runs did and the newest backup
//! in the bucket they saw. Every etcd node writes it at every run (the leader after its upload,
//! the others after a listing), so `status` and the reboot gates know the backups' age without
//! asking S3 themselves.

use serde::{Deserialize, Serialize};

use super::catalog::BackupName;
use crate::files;
use crate::fsutil::{self, Root};

/// The record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// The last run of `etcd backup` here.
    pub last_run: Option<RunRecord>,
    /// The newest complete backup in the bucket when this node last looked.
    pub newest: Option<SeenBackup>,
    /// The last failure here, until a later run succeeds.
    pub last_failure: Option<RunRecord>,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// RFC 3339, UTC.
    pub at: String,
    /// `uploaded`, `skipped` or `failed`.
    pub outcome: String,
    /// What it did or why not; for a failure, the error and its causes.
    pub detail: String,
}

/// A backup as a listing showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenBackup {
    pub name: String,
    /// RFC 3339, UTC: when it was taken.
    pub taken_at: String,
    pub revision: i64,
    /// RFC 3339, UTC: when a run here last found the keyspace still at this backup's revision
    /// (nothing to back up since: the backup is as good as one taken then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_at: Option<String>,
}

impl SeenBackup {
    /// `name` as seen by a run whose member is at `revision` now.
    pub fn of(name: &BackupName, revision: i64) -> Self {
        SeenBackup {
            name: name.to_string(),
            taken_at: crate::state::rfc3339(name.taken_at),
            revision: name.revision,
            current_at: (name.revision == revision).then(crate::state::now_rfc3339),
        }
    }

    /// Since when the backup holds everything there is: when it was taken, or later when a run
    /// found nothing changed since.
    pub fn fresh_since(&self) -> Option<time::OffsetDateTime> {
        let parse = crate::state::parse_rfc3339;
        let taken = parse(&self.taken_at)?;
        Some(
            self.current_at
                .as_deref()
                .and_then(parse)
                .map_or(taken, |c| c.max(taken)),
        )
    }
}

/// Whether the newest backup is fresh enough to lose a member's data safely (the reboot gate
/// of SPEC §9): `Err(why)` when backups exist and the newest holds nothing newer than two
/// intervals ago. No backups at all: fresh (a cluster that does not back up is not held back).
pub fn fresh_enough(
    newest: Option<&SeenBackup>,
    now: time::OffsetDateTime,
    interval: std::time::Duration,
) -> Result<(), String> {
    let Some(newest) = newest else {
        return Ok(());
    };
    let limit = time::Duration::try_from(interval * 2).unwrap_or(time::Duration::MAX);
    match newest.fresh_since() {
        Some(since) if now - since <= limit => Ok(()),
        Some(since) => Err(format!(
            "the newest etcd backup, {}, holds nothing newer than {} (more than two backup \
             intervals ago): waiting for the next backup",
            newest.name,
            crate::state::rfc3339(since)
        )),
        None => Err(format!(
            "the newest etcd backup's time {:?} cannot be read",
            newest.taken_at
        )),
    }
}

impl BackupRecord {
    /// The saved record; `None` when no backup run happened here yet or it cannot be read
    /// (logged: the record only informs).
    pub fn load(root: &Root) -> Option<Self> {
        let path = root.path(files::BACKUP_RECORD);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable backup record");
                None
            }
        }
    }

    pub fn save(&self, root: &Root) -> anyhow::Result<()> {
        let path = root.path(files::BACKUP_RECORD);
        let mut json = serde_json::to_vec_pretty(self).expect("backup record serialises");
        json.push(b'\n');
        fsutil::write_atomic(&path, &json, fsutil::MODE_PUBLIC)
            .map_err(|e| anyhow::Error::new(e).context(format!("writing {}", path.display())))
    }

    /// Takes `seen` as the newest backup when it holds more than the recorded one does (a
    /// listing that found the bucket further along than this node's last run); whether it did.
    pub fn saw(&mut self, seen: SeenBackup) -> bool {
        let further = match &self.newest {
            None => true,
            Some(old) => match (old.fresh_since(), seen.fresh_since()) {
                (Some(old), Some(new)) => new > old,
                (None, _) => true,
                (Some(_), None) => false,
            },
        };
        if further {
            self.newest = Some(seen);
        }
        further
    }

    /// Records a run: a success clears the last failure, a failure is kept until then.
    pub fn ran(&mut self, outcome: &str, detail: String) {
        let run = RunRecord {
            at: crate::state::now_rfc3339(),
            outcome: outcome.to_string(),
            detail,
        };
        if outcome == "failed" {
            self.last_failure = Some(run.clone());
        } else {
            self.last_failure = None;
        }
        self.last_run = Some(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn seen(taken: &str, current: Option<&str>) -> SeenBackup {
        SeenBackup {
            name: "20261202T100000Z-r5".into(),
            taken_at: taken.into(),
            revision: 5,
            current_at: current.map(str::to_string),
        }
    }

    #[test]
    fn a_backup_is_fresh_for_two_intervals_from_when_it_was_last_current() {
        let interval = std::time::Duration::from_secs(900);
        let now = datetime!(2026-12-02 10:40:00 UTC);
        assert!(
            fresh_enough(None, now, interval).is_ok(),
            "no backups: not held back"
        );
        assert!(fresh_enough(Some(&seen("2026-12-02T10:10:00Z", None)), now, interval).is_ok());
        let stale = fresh_enough(Some(&seen("2026-12-02T10:00:00Z", None)), now, interval);
        assert!(stale.unwrap_err().contains("20261202T100000Z-r5"));
        // Nothing changed since: a run at 10:30 found the keyspace still at revision 5.
        let current = seen("2026-12-02T10:00:00Z", Some("2026-12-02T10:30:00Z"));
        assert!(fresh_enough(Some(&current), now, interval).is_ok());
    }

    #[test]
    fn a_listing_replaces_the_recorded_backup_only_when_it_holds_more() {
        let older = seen("2026-12-02T10:00:00Z", None);
        let mut record = BackupRecord::default();
        assert!(record.saw(older.clone()), "nothing recorded yet");
        let newer = SeenBackup {
            name: "20261202T101500Z-r9".into(),
            taken_at: "2026-12-02T10:15:00Z".into(),
            revision: 9,
            current_at: None,
        };
        assert!(record.saw(newer.clone()));
        assert!(!record.saw(older.clone()), "an older listing never wins");
        assert_eq!(record.newest.as_ref(), Some(&newer));
        // The same backup found still current later holds more.
        let current = SeenBackup {
            current_at: Some("2026-12-02T10:40:00Z".into()),
            ..newer
        };
        assert!(record.saw(current.clone()));
        assert_eq!(record.newest, Some(current));
    }
}
