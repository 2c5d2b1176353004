//! Which backups to keep (SPEC §10): everything younger than an hour, then the newest backup of
//! each UTC hour for `keep_hourly_days`, the newest of each UTC day for `keep_daily_days`, and
//! always the newest backup of all. Pure: the uploader lists, asks, and deletes the rest.
//!
//! "Newest of its hour" (not "oldest") keeps the decision stable: an hour's newest backup is
//! also its day's newest when the hour is the day's last, so a backup kept by the daily rule
//! was never deleted by the hourly one.

use time::{Duration, OffsetDateTime};

use super::catalog::BackupName;

/// How long backups are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep_hourly_days: u32,
    pub keep_daily_days: u32,
}

/// Backups younger than this are all kept.
const KEEP_ALL: Duration = Duration::hours(1);

impl Retention {
    /// The backups of `complete` to delete at `now`, oldest first.
    pub fn expired(&self, complete: &[BackupName], now: OffsetDateTime) -> Vec<BackupName> {
        let hourly = Duration::days(self.keep_hourly_days.into());
        let daily = Duration::days(self.keep_daily_days.into());
        let mut sorted = complete.to_vec();
        sorted.sort();
        sorted.dedup();
        let hour = |n: &BackupName| {
            let t = n.taken_at;
            (t.year(), t.ordinal(), t.hour())
        };
        let day = |n: &BackupName| (n.taken_at.year(), n.taken_at.ordinal());
        let mut expired = Vec::new();
        for (i, name) in sorted.iter().enumerate() {
            // Sorted by time: a backup is the newest of its hour (day) when the next one is
            // in another hour (day), or there is no next one.
            let next = sorted.get(i + 1);
            let newest_of_hour = next.is_none_or(|n| hour(n) != hour(name));
            let newest_of_day = next.is_none_or(|n| day(n) != day(name));
            let age = now - name.taken_at;
            let keep = age < KEEP_ALL
                || next.is_none()
                || (age < hourly && newest_of_hour)
                || (age < daily && newest_of_day);
            if !keep {
                expired.push(*name);
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use time::macros::datetime;

    const POLICY: Retention = Retention {
        keep_hourly_days: 7,
        keep_daily_days: 365,
    };

    fn at(t: OffsetDateTime, rev: i64) -> BackupName {
        BackupName::new(t, rev)
    }

    /// A year and a bit of backups every 15 minutes, retention applied after each one as the
    /// uploader does: what survives is exactly what the rules describe, counted independently.
    #[test]
    fn a_year_of_backups_every_fifteen_minutes() {
        let start = datetime!(2026-01-01 00:07:00 UTC);
        let step = Duration::minutes(15);
        let total = 4 * 24 * 400; // 400 days
        let mut kept: BTreeSet<BackupName> = BTreeSet::new();
        let mut now = start;
        for i in 0..total {
            now = start + step * i;
            kept.insert(at(now, i as i64 + 1));
            // The uploader applies retention after each success.
            let list: Vec<_> = kept.iter().copied().collect();
            for gone in POLICY.expired(&list, now) {
                kept.remove(&gone);
            }
        }
        // Independently: backups younger than 1 h (4 of them, the newest included); one per
        // hour for the last 7 days (the last of each hour: minute 52); one per day for 365 days
        // (the last of each day: 23:52).
        let young = kept
            .iter()
            .filter(|n| now - n.taken_at < Duration::hours(1))
            .count();
        assert_eq!(young, 4);
        for n in &kept {
            let age = now - n.taken_at;
            if age >= Duration::hours(1) {
                assert_eq!(n.taken_at.minute(), 52, "{n} is its hour's last");
            }
            if age >= Duration::days(7) {
                assert_eq!(n.taken_at.hour(), 23, "{n} is its day's last");
            }
            assert!(age < Duration::days(365), "{n} is older than a year");
        }
        let hourly = kept
            .iter()
            .filter(|n| {
                let age = now - n.taken_at;
                age >= Duration::hours(1) && age < Duration::days(7)
            })
            .count();
        assert_eq!(hourly, 7 * 24 - 1, "one per hour of the last 7 days");
        let daily = kept
            .iter()
            .filter(|n| now - n.taken_at >= Duration::days(7))
            .count();
        assert_eq!(daily, 365 - 7, "one per day of the rest of the year");
        // And what was kept on the way never had to come back: the set is what a fresh
        // decision over it keeps.
        let list: Vec<_> = kept.iter().copied().collect();
        assert!(POLICY.expired(&list, now).is_empty());
    }

    #[test]
    fn the_newest_backup_is_never_deleted() {
        let old = at(datetime!(2020-01-01 00:00:00 UTC), 5);
        let now = datetime!(2026-12-02 10:00:00 UTC);
        assert!(POLICY.expired(&[old], now).is_empty());
        let older = at(datetime!(2019-06-01 00:00:00 UTC), 4);
        assert_eq!(POLICY.expired(&[older, old], now), [older]);
    }

    #[test]
    fn within_an_hour_everything_is_kept_and_an_hours_newest_stays() {
        let now = datetime!(2026-12-02 11:30:00 UTC);
        let names: Vec<_> = [
            datetime!(2026-12-02 10:00:00 UTC),
            datetime!(2026-12-02 10:15:00 UTC),
            datetime!(2026-12-02 10:45:00 UTC),
            datetime!(2026-12-02 11:00:00 UTC),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, t)| at(t, i as i64))
        .collect();
        // 10:00 and 10:15 are older than an hour and not their hour's newest (10:45, which is
        // younger than an hour anyway).
        assert_eq!(POLICY.expired(&names, now), names[..2]);
    }
}
