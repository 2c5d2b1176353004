//! `assess` as a table over the healthy baseline, and the wording of its problems.

use super::*;
use crate::status::tests::{etcd, healthy, member};

/// (case, change to a healthy report, expected (severity, kind) list).
type Case = (
    &'static str,
    fn(&mut Report),
    &'static [(Severity, &'static str)],
);

#[test]
fn assess_table() {
    use Severity::{Error as E, Warning as W};
    let cases: &[Case] = &[
        ("healthy", |_| {}, &[]),
        (
            "never bootstrapped: one problem, not one per file",
            |r| {
                r.bootstrap = None;
                r.files.iter_mut().for_each(|f| f.exists = false);
                *etcd(r) = EtcdReport {
                    outcome: EtcdOutcome::Skipped,
                    note: Some("no identity".into()),
                    ..etcd(r).clone()
                };
            },
            &[(E, "never_bootstrapped")],
        ),
        (
            "unreadable state",
            |r| {
                r.bootstrap = None;
                r.state_error = Some("not JSON".into());
            },
            &[(E, "state_unreadable")],
        ),
        (
            "failed bootstrap",
            |r| {
                let b = r.bootstrap.as_mut().unwrap();
                b.ok = false;
                b.error = Some("etcd is not ready".into());
            },
            &[(E, "bootstrap_failed")],
        ),
        (
            "a bootstrap running, or killed before it ended",
            |r| {
                let b = r.bootstrap.as_mut().unwrap();
                b.ok = false;
                b.finished_at = None;
            },
            &[(E, "bootstrap_unfinished")],
        ),
        (
            "started with last-known-good files: shown, still healthy",
            |r| {
                r.bootstrap.as_mut().unwrap().last_known_good =
                    Some("AWS DescribeAutoScalingInstances failed".into())
            },
            &[(W, "started_without_aws")],
        ),
        (
            "the bootstrap token expires within 30 days",
            |r| {
                let b = r.bootstrap.as_mut().unwrap();
                b.bootstrap_token_expires = Some("2026-01-01T00:00:00Z".into());
                b.bootstrap_token_days_left = Some(12);
            },
            &[(W, "bootstrap_token_expiring")],
        ),
        (
            "the bootstrap token expired",
            |r| {
                let b = r.bootstrap.as_mut().unwrap();
                b.bootstrap_token_expires = Some("2026-01-01T00:00:00Z".into());
                b.bootstrap_token_days_left = Some(-1);
            },
            &[(E, "bootstrap_token_expired")],
        ),
        (
            "a key readable by others",
            |r| {
                let key = r
                    .files
                    .iter_mut()
                    .find(|f| f.path.ends_with("server.key"))
                    .unwrap();
                key.mode = Some("0644".into());
            },
            &[(E, "key_mode")],
        ),
        (
            "missing file",
            |r| r.files[2].exists = false,
            &[(E, "file_missing")],
        ),
        (
            "cert 29 days: warning only",
            |r| r.certificates[1].days_left = Some(29),
            &[(W, "cert_expiring")],
        ),
        (
            "cert 7 days: warning",
            |r| r.certificates[1].days_left = Some(7),
            &[(W, "cert_expiring")],
        ),
        (
            "cert 6 days: problem",
            |r| r.certificates[1].days_left = Some(6),
            &[(E, "cert_expires_soon")],
        ),
        (
            "cert 30 days: fine",
            |r| r.certificates[1].days_left = Some(30),
            &[],
        ),
        (
            "cert expired",
            |r| r.certificates[1].days_left = Some(-1),
            &[(E, "cert_expired")],
        ),
        (
            "cert of another CA",
            |r| r.certificates[1].signed_by = None,
            &[(E, "cert_not_signed")],
        ),
        (
            "cert not yet valid",
            |r| r.certificates[1].not_yet_valid = true,
            &[(E, "cert_not_yet_valid")],
        ),
        (
            "cert unreadable",
            |r| r.certificates[1].error = Some("not PEM".into()),
            &[(E, "cert_unreadable")],
        ),
        (
            "a peer down: quorum holds",
            |r| etcd(r).members[2].healthy = false,
            &[(E, "etcd_member_down")],
        ),
        (
            "two down: no quorum, no leader",
            |r| {
                let e = etcd(r);
                e.members[1].healthy = false;
                e.members[2].healthy = false;
                e.leader = None;
            },
            &[
                (E, "etcd_member_down"),
                (E, "etcd_member_down"),
                (E, "etcd_no_leader"),
                (E, "etcd_no_quorum"),
            ],
        ),
        (
            "this member absent",
            |r| etcd(r).this_member = Some(MemberState::Absent),
            &[(E, "etcd_member_absent")],
        ),
        (
            "this member a learner",
            |r| {
                etcd(r).this_member = Some(MemberState::Learner);
                etcd(r).members[0].learner = true;
            },
            &[(E, "etcd_member_learner")],
        ),
        (
            "a healthy learner joining is fine",
            |r| etcd(r).members.push(member(4, "", true, true, false)),
            &[],
        ),
        (
            "nobody answers",
            |r| {
                *etcd(r) = EtcdReport {
                    outcome: EtcdOutcome::NoAnswer,
                    members: vec![],
                    leader: None,
                    this_member: None,
                    ..etcd(r).clone()
                }
            },
            &[(E, "etcd_unreachable")],
        ),
        (
            "etcd client key not readable (not root), on a master too",
            |r| {
                r.node.role = "master".into();
                r.files.clear();
                let e = etcd(r);
                e.outcome = EtcdOutcome::NoAccess;
                e.this_member = None;
            },
            &[(E, "etcd_not_checked")],
        ),
        (
            "etcd too slow",
            |r| etcd(r).outcome = EtcdOutcome::TimedOut,
            &[(E, "etcd_timeout")],
        ),
        (
            "etcd not checked on a bootstrapped etcd node",
            |r| {
                etcd(r).outcome = EtcdOutcome::Skipped;
                etcd(r).note = Some("/etc/etcd/pki/ca.crt does not exist yet".into());
            },
            &[(E, "etcd_not_checked")],
        ),
        (
            "etcd not checked on a master: a note, not a problem",
            |r| {
                r.node.role = "master".into();
                r.files.clear();
                let e = etcd(r);
                e.outcome = EtcdOutcome::Skipped;
                e.this_member = None;
            },
            &[],
        ),
        (
            "warnings come after errors",
            |r| {
                r.certificates[0].days_left = Some(20);
                r.certificates[1].days_left = Some(2);
            },
            &[(E, "cert_expires_soon"), (W, "cert_expiring")],
        ),
        (
            "backups fresh",
            |r| r.backup = Some(backups(600, 600, false)),
            &[],
        ),
        (
            "a backup old but of the revision still current: fresh",
            |r| r.backup = Some(backups(86_400, 300, false)),
            &[],
        ),
        (
            "the newest backup misses more than two intervals of changes",
            |r| r.backup = Some(backups(1_900, 1_900, false)),
            &[(E, "backup_stale")],
        ),
        (
            "a failed run here, the newest backup still fresh",
            |r| r.backup = Some(backups(600, 600, true)),
            &[(E, "backup_failed")],
        ),
        (
            "runs here, no backup in the bucket yet",
            |r| {
                r.backup = Some(BackupReport {
                    newest: None,
                    newest_age_seconds: None,
                    stale_seconds: None,
                    ..backups(0, 0, false)
                })
            },
            &[(W, "no_backup")],
        ),
    ];
    for (name, change, want) in cases {
        let mut r = healthy();
        change(&mut r);
        let got: Vec<(Severity, &str)> = assess(&r).iter().map(|p| (p.severity, p.kind)).collect();
        assert_eq!(&got, want, "{name}");
        let r = r.assessed();
        assert_eq!(r.healthy, !want.iter().any(|(s, _)| *s == E), "{name}");
    }
}

#[test]
fn problems_say_what_and_what_to_do() {
    let mut r = healthy();
    r.certificates[1].days_left = Some(3);
    etcd(&mut r).members[2].healthy = false;
    let messages: Vec<String> = assess(&r).into_iter().map(|p| p.message).collect();
    assert_eq!(
        messages[0],
        "/etc/etcd/pki/server.crt expires in 3 days (2026-01-01T00:00:00Z): run `tn-agent \
         bootstrap` (it reissues certificates that expire within 30 days), then restart the \
         service that uses it"
    );
    assert!(
        messages[1].starts_with(
            "etcd member i-0c (0000000000000003, https://10.0.1.3:2380) does not answer"
        ),
        "{}",
        messages[1]
    );
    r.etcd.as_mut().unwrap().members[0].healthy = false;
    let own = assess(&r)
        .into_iter()
        .find(|p| p.message.contains("i-0a"))
        .unwrap();
    assert!(
        own.message.starts_with("this node's etcd member i-0a"),
        "{}",
        own.message
    );
}

/// A backup report with an interval of 15 minutes: the newest backup taken `age` seconds ago and
/// last current `stale` seconds ago; a failed last run when `failed`.
fn backups(age: i64, stale: i64, failed: bool) -> BackupReport {
    let run = |outcome: &str| crate::backup::record::RunRecord {
        at: "2025-06-01T00:00:00Z".into(),
        outcome: outcome.into(),
        detail: "x".into(),
    };
    BackupReport {
        interval_seconds: 900,
        newest: Some(crate::backup::record::SeenBackup {
            name: "20250531T235000Z-r9".into(),
            taken_at: "2025-05-31T23:50:00Z".into(),
            revision: 9,
            current_at: None,
        }),
        newest_age_seconds: Some(age),
        stale_seconds: Some(stale),
        last_run: Some(run(if failed { "failed" } else { "uploaded" })),
        last_failure: failed.then(|| run("failed")),
    }
}
