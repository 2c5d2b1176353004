//! What a backup is in the state bucket (SPEC §10): its folder name
//! `<UTC yyyymmddThhmmssZ>-r<revision>`, its `meta.json`, and the catalog of complete backups
//! a listing of the folder shows. A folder without `meta.json` is not a backup for any reader.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The snapshot's file in a backup's folder.
pub const SNAPSHOT_FILE: &str = "snapshot.db";
/// The description written last: its presence makes the folder a backup.
pub const META_FILE: &str = "meta.json";

/// A backup's folder name: when it was taken (UTC, to the second) and the revision it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupName {
    pub taken_at: OffsetDateTime,
    pub revision: i64,
}

const STAMP: &[time::format_description::FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

impl BackupName {
    /// The name of a backup taken at `at` (to the second) of `revision`.
    pub fn new(at: OffsetDateTime, revision: i64) -> Self {
        BackupName {
            taken_at: at
                .to_offset(time::UtcOffset::UTC)
                .replace_nanosecond(0)
                .expect("0 is a valid nanosecond"),
            revision,
        }
    }
}

impl fmt::Display for BackupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stamp = self
            .taken_at
            .format(STAMP)
            .expect("a UTC time formats as a backup stamp");
        write!(f, "{stamp}-r{}", self.revision)
    }
}

/// A name that is not `<yyyymmddThhmmssZ>-r<revision>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a backup name like 20261202T101500Z-r1234 (as `tn-agent etcd backups` lists them)")]
pub struct BadName(pub String);

impl FromStr for BackupName {
    type Err = BadName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadName(s.to_string());
        let (stamp, revision) = s.split_once("-r").ok_or_else(bad)?;
        if revision.is_empty() || !revision.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let revision: i64 = revision.parse().map_err(|_| bad())?;
        let taken_at = PrimitiveDateTime::parse(stamp, STAMP)
            .map_err(|_| bad())?
            .assume_utc();
        let name = BackupName { taken_at, revision };
        // Only the one spelling: no leading zeros in the revision, nothing else accepted.
        if name.to_string() != s {
            return Err(bad());
        }
        Ok(name)
    }
}

/// One member of the cluster as the backup's meta records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaMember {
    /// The member id, in etcd's hex form.
    pub id: String,
    pub name: String,
}

/// `meta.json`: what the backup is, written after its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub cluster: String,
    /// The cluster marker's token when the backup was taken.
    pub marker_token: String,
    /// The revision the member had when the snapshot was asked for (the snapshot holds at
    /// least this one).
    pub revision: i64,
    pub members: Vec<MetaMember>,
    pub etcd_version: String,
    /// Bytes of `snapshot.db`.
    pub size: u64,
    /// Hex SHA-256 of the whole `snapshot.db` (what `sha256sum snapshot.db` prints).
    pub sha256: String,
    /// The instance that took it.
    pub taken_by: String,
    /// RFC 3339, UTC.
    pub taken_at: String,
}

/// What is wrong with a `meta.json` that parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMeta {
    #[error("it describes a backup of cluster {found:?}, not {expected:?}")]
    OtherCluster { found: String, expected: String },
    #[error("its revision {found} is not the folder's {expected}")]
    Revision { found: i64, expected: i64 },
    #[error("its sha256 is not 64 lowercase hex digits")]
    Sha256,
}

impl Meta {
    /// Checks that the meta belongs to `cluster` and to the folder `name`.
    pub fn check(&self, cluster: &str, name: &BackupName) -> Result<(), BadMeta> {
        if self.cluster != cluster {
            return Err(BadMeta::OtherCluster {
                found: self.cluster.clone(),
                expected: cluster.to_string(),
            });
        }
        if self.revision != name.revision {
            return Err(BadMeta::Revision {
                found: self.revision,
                expected: name.revision,
            });
        }
        let hex = self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(BadMeta::Sha256);
        }
        Ok(())
    }
}

/// The backups a listing of `<cluster>/etcd/backups/` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Folders with a `meta.json`, oldest first.
    pub complete: Vec<BackupName>,
    /// Folders without one (an upload in progress, or one that failed half-way), oldest first.
    pub incomplete: Vec<BackupName>,
}

impl Catalog {
    /// From the keys under the backups prefix, relative to it (`<name>/<file>`). Keys that are
    /// not a backup's file are ignored (logged): the prefix is the agent's, but a person may
    /// have put something there.
    pub fn from_relative_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let mut with_meta = std::collections::BTreeSet::new();
        let mut seen = std::collections::BTreeSet::new();
        for key in keys {
            let parsed = key
                .split_once('/')
                .filter(|(_, file)| *file == META_FILE || *file == SNAPSHOT_FILE)
                .and_then(|(name, file)| Some((name.parse::<BackupName>().ok()?, file)));
            let Some((name, file)) = parsed else {
                tracing::debug!(key, "ignoring a key that is not a backup's file");
                continue;
            };
            seen.insert(name);
            if file == META_FILE {
                with_meta.insert(name);
            }
        }
        Catalog {
            complete: with_meta.iter().copied().collect(),
            incomplete: seen.difference(&with_meta).copied().collect(),
        }
    }

    /// The newest complete backup.
    pub fn newest(&self) -> Option<&BackupName> {
        self.complete.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_name_is_read_and_written_one_way() {
        let name = BackupName::new(datetime!(2026-12-02 10:15:00.7 UTC), 1234);
        assert_eq!(name.to_string(), "20261202T101500Z-r1234");
        assert_eq!("20261202T101500Z-r1234".parse::<BackupName>(), Ok(name));
        for bad in [
            "",
            "20261202T101500Z",
            "20261202T101500Z-r",
            "20261202T101500Z-r01",
            "20261202T101500Z-r-1",
            "20261202T101500-r1",
            "20261302T101500Z-r1",
            "20261202T101500Z-r1/x",
            "x20261202T101500Z-r1",
        ] {
            assert!(bad.parse::<BackupName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_sort_by_time() {
        let a: BackupName = "20261202T101500Z-r9".parse().unwrap();
        let b: BackupName = "20261202T103000Z-r10".parse().unwrap();
        assert!(a < b);
    }

    #[test]
    fn only_folders_with_meta_are_backups() {
        let catalog = Catalog::from_relative_keys([
            "20261202T101500Z-r9/snapshot.db",
            "20261202T101500Z-r9/meta.json",
            "20261202T103000Z-r10/snapshot.db",
            "20261202T100000Z-r8/meta.json",
            "README",
            "junk/meta.json",
            "20261202T101500Z-r9/other",
        ]);
        let names = |v: &[BackupName]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(&catalog.complete),
            ["20261202T100000Z-r8", "20261202T101500Z-r9"]
        );
        assert_eq!(names(&catalog.incomplete), ["20261202T103000Z-r10"]);
        assert_eq!(catalog.newest().unwrap().revision, 9);
    }

    #[test]
    fn a_meta_is_checked_against_its_folder_and_cluster() {
        let name: BackupName = "20261202T101500Z-r9".parse().unwrap();
        let meta = Meta {
            cluster: "prod".into(),
            marker_token: "t".into(),
            revision: 9,
            members: vec![],
            etcd_version: "3.4.23".into(),
            size: 10,
            sha256: "a".repeat(64),
            taken_by: "i-1".into(),
            taken_at: "2026-12-02T10:15:00Z".into(),
        };
        assert_eq!(meta.check("prod", &name), Ok(()));
        assert!(matches!(
            meta.check("dev", &name),
            Err(BadMeta::OtherCluster { .. })
        ));
        let other = Meta {
            revision: 8,
            ..meta.clone()
        };
        assert!(matches!(
            other.check("prod", &name),
            Err(BadMeta::Revision { .. })
        ));
        let upper = Meta {
            sha256: "A".repeat(64),
            ..meta.clone()
        };
        assert_eq!(upper.check("prod", &name), Err(BadMeta::Sha256));
        let extra = serde_json::to_string(&meta)
            .unwrap()
            .replace('}', ",\"x\":1}");
        assert!(serde_json::from_str::<Meta>(&extra).is_err());
    }
}
