//! Turning a [`Report`]'s facts into [`Problem`]s: a pure function of the report, each problem
//! one sentence saying what is wrong and what to do.

use super::{
    BackupReport, CertReport, EtcdOutcome, EtcdReport, MemberState, Problem, Report, Severity,
    ETCD_BUDGET,
};
use crate::config::Role;
use crate::etcd::model;

/// A certificate expiring within this many days is a problem (exit 1).
pub const EXPIRY_PROBLEM_DAYS: i64 = 7;
/// A certificate expiring within this many days is a warning (shown, exit 0).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

impl Report {
    /// Fills in `problems` and `healthy` from the facts.
    pub fn assessed(mut self) -> Self {
        self.problems = assess(&self);
        self.healthy = !self.problems.iter().any(|p| p.severity == Severity::Error);
        self
    }
}

/// What is wrong, from the facts alone (`healthy` and `problems` of `r` are not looked at).
/// Errors first, then warnings, each in the order found.
pub fn assess(r: &Report) -> Vec<Problem> {
    let mut out = Vec::new();
    bootstrap_problems(r, &mut out);
    if r.bootstrap.is_some() {
        file_problems(r, &mut out);
    }
    for cert in &r.certificates {
        cert_problems(cert, &mut out);
    }
    if let Some(etcd) = &r.etcd {
        etcd_problems(r, etcd, &mut out);
    }
    if let Some(backup) = &r.backup {
        backup_problems(backup, &mut out);
    }
    if let Some(rec) = r.reconcile.as_ref().filter(|rec| !rec.ok) {
        out.push(Problem::warning(
            "reconcile_failed",
            format!(
                "the last reconcile ({}) failed: {}; see `journalctl -u tn-agent-reconcile`",
                rec.at,
                rec.error.as_deref().unwrap_or("no detail")
            ),
        ));
    }
    out.sort_by_key(|p| p.severity);
    out
}

/// A failed run here, a newest backup that misses more than two intervals of changes, or none
/// at all.
fn backup_problems(b: &BackupReport, out: &mut Vec<Problem>) {
    if let Some(failure) = &b.last_failure {
        out.push(Problem::error(
            "backup_failed",
            format!(
                "the last backup run here ({}) failed: {}; see `journalctl -u \
                 tn-agent-etcd-backup`",
                failure.at, failure.detail
            ),
        ));
    }
    match (&b.newest, b.stale_seconds) {
        (Some(newest), Some(stale)) if stale > 2 * b.interval_seconds as i64 => {
            out.push(Problem::error(
                "backup_stale",
                format!(
                    "the newest etcd backup, {} (taken {}), misses {} of changes: more than two \
                     backup intervals ({}); see `journalctl -u tn-agent-etcd-backup` on the \
                     member that leads",
                    newest.name,
                    newest.taken_at,
                    human_age(stale),
                    human_age(b.interval_seconds as i64)
                ),
            ))
        }
        (None, _) if b.last_failure.is_none() => out.push(Problem::warning(
            "no_backup",
            "there is no etcd backup of this cluster in the bucket yet: the member that leads \
             takes one at its next `tn-agent-etcd-backup.timer` run"
                .to_string(),
        )),
        _ => {}
    }
}

/// Seconds as `3d 4h`, `2h 5m`, `12m` or `40s`.
fn human_age(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (d, h, _) if d > 0 => format!("{d}d {h}h"),
        (_, h, m) if h > 0 => format!("{h}h {m}m"),
        (_, _, m) if m > 0 => format!("{m}m"),
        _ => format!("{secs}s"),
    }
}

fn bootstrap_problems(r: &Report, out: &mut Vec<Problem>) {
    if let Some(err) = &r.state_error {
        out.push(Problem::error(
            "state_unreadable",
            format!(
                "{} cannot be read ({err}): run `tn-agent bootstrap` to write it again",
                crate::files::STATE
            ),
        ));
        return;
    }
    match &r.bootstrap {
        None => out.push(Problem::error(
            "never_bootstrapped",
            format!(
                "this node was never bootstrapped ({} does not exist): run `tn-agent bootstrap`, \
                 or see why it did not run in `journalctl -t tn-agent`",
                crate::files::STATE
            ),
        )),
        Some(b) if b.finished_at.is_none() => out.push(Problem::error(
            "bootstrap_unfinished",
            format!(
                "the bootstrap started at {} has not finished: it is running now (`systemctl \
                 status tn-agent-bootstrap`), or it was stopped before it could say how it ended \
                 (`journalctl -t tn-agent`)",
                b.started_at
            ),
        )),
        Some(b) if !b.ok => out.push(Problem::error(
            "bootstrap_failed",
            format!(
                "the last bootstrap (started {}) failed: {}; fix the cause (`journalctl -t \
                 tn-agent`) and run `tn-agent bootstrap` again",
                b.started_at,
                b.error.as_deref().unwrap_or("no reason recorded")
            ),
        )),
        Some(b) => {
            token_problems(b, out);
            if let Some(err) = &b.last_known_good {
                out.push(Problem::warning(
                    "started_without_aws",
                    format!(
                        "the last bootstrap could not use AWS ({err}) and started this node \
                         with its last-known-good files; once AWS answers, run `tn-agent \
                         bootstrap` to check membership and renew certificates"
                    ),
                ));
            }
        }
    }
}

fn token_problems(b: &super::BootstrapReport, out: &mut Vec<Problem>) {
    let (Some(at), Some(days)) = (&b.bootstrap_token_expires, b.bootstrap_token_days_left) else {
        return;
    };
    let rotate = "rotate it: `tn-agent pki init --rotate-bootstrap-token` (docs/pki.md, \
                  \"Rotating the bootstrap token\")";
    if days < 0 {
        out.push(Problem::error(
            "bootstrap_token_expired",
            format!("the bootstrap token expired at {at}: new workers cannot join; {rotate}"),
        ));
    } else if days < EXPIRY_WARNING_DAYS {
        out.push(Problem::warning(
            "bootstrap_token_expiring",
            format!(
                "the bootstrap token expires in {} ({at}); after that new workers cannot join; \
                 {rotate}",
                days_text(days)
            ),
        ));
    }
}

fn file_problems(r: &Report, out: &mut Vec<Problem>) {
    for f in &r.files {
        if !f.exists {
            out.push(Problem::error(
                "file_missing",
                format!(
                    "{} is missing: run `tn-agent bootstrap` to write it",
                    f.path
                ),
            ));
        } else if f.path.ends_with(".key") && f.mode.as_deref() != Some("0600") {
            out.push(Problem::error(
                "key_mode",
                format!(
                    "{} has mode {} but a private key must be 0600 (root only): run `tn-agent \
                     bootstrap` (it sets it back) or `chmod 0600 {}`",
                    f.path,
                    f.mode.as_deref().unwrap_or("?"),
                    f.path
                ),
            ));
        }
    }
}

fn cert_problems(c: &CertReport, out: &mut Vec<Problem>) {
    let path = &c.path;
    if let Some(err) = &c.error {
        out.push(Problem::error(
            "cert_unreadable",
            format!(
                "{path} is not a readable certificate ({err}): run `tn-agent bootstrap` to \
                 write it again"
            ),
        ));
        return;
    }
    let renew = if c.is_ca {
        "rotate this CA (docs/status.md, \"Renewing certificates\")"
    } else {
        "run `tn-agent bootstrap` (it reissues certificates that expire within 30 days), then \
         restart the service that uses it"
    };
    let until = c.not_after.as_deref().unwrap_or("?");
    match c.days_left {
        Some(days) if days < 0 => out.push(Problem::error(
            "cert_expired",
            format!("{path} expired at {until}: {renew}"),
        )),
        Some(days) if days < EXPIRY_PROBLEM_DAYS => out.push(Problem::error(
            "cert_expires_soon",
            format!("{path} expires in {} ({until}): {renew}", days_text(days)),
        )),
        Some(days) if days < EXPIRY_WARNING_DAYS => out.push(Problem::warning(
            "cert_expiring",
            format!("{path} expires in {} ({until}): {renew}", days_text(days)),
        )),
        _ => {}
    }
    if c.not_yet_valid {
        out.push(Problem::error(
            "cert_not_yet_valid",
            format!(
                "{path} is not valid before {}: check the node's clock (`timedatectl`)",
                c.not_before.as_deref().unwrap_or("?")
            ),
        ));
    }
    if c.signed_by.is_none() {
        let dir = crate::files::PKI_DIRS
            .into_iter()
            .find(|d| path.starts_with(&format!("{d}/")))
            .unwrap_or("its directory");
        out.push(Problem::error(
            "cert_not_signed",
            format!(
                "{path} is not signed by a CA certificate under {dir} (its issuer is {}): run \
                 `tn-agent bootstrap` to reissue it from the cluster's CA",
                c.issuer.as_deref().unwrap_or("?")
            ),
        ));
    }
}

fn days_text(days: i64) -> String {
    match days {
        0 => "less than a day".to_string(),
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    }
}

fn etcd_problems(r: &Report, etcd: &EtcdReport, out: &mut Vec<Problem>) {
    let is_member = r.node.role == Role::Etcd.as_str();
    let asked = etcd.endpoints.join(", ");
    match etcd.outcome {
        EtcdOutcome::Skipped => {
            // A master whose control plane is not written yet, or a node never bootstrapped
            // (already reported), has nothing to ask.
            if is_member && r.bootstrap.is_some() {
                out.push(Problem::error(
                    "etcd_not_checked",
                    format!(
                        "etcd was not checked: {}",
                        etcd.note.as_deref().unwrap_or("no reason")
                    ),
                ));
            }
        }
        EtcdOutcome::NoAccess => out.push(Problem::error(
            "etcd_not_checked",
            format!(
                "etcd was not checked: {}",
                etcd.note.as_deref().unwrap_or("no reason")
            ),
        )),
        EtcdOutcome::TimedOut => out.push(Problem::error(
            "etcd_timeout",
            format!(
                "etcd did not answer within {:.1} s (asked {asked}): check that etcd runs on \
                 this node and its peers, and that the client port is reachable",
                ETCD_BUDGET.as_secs_f64()
            ),
        )),
        EtcdOutcome::NoAnswer => out.push(Problem::error(
            "etcd_unreachable",
            format!(
                "no etcd member answered (asked {asked}): check that etcd runs on these nodes \
                 (its log is in the journal) and that the client port is reachable"
            ),
        )),
        EtcdOutcome::Answered => member_problems(r, etcd, is_member, out),
    }
}

fn member_problems(r: &Report, etcd: &EtcdReport, is_member: bool, out: &mut Vec<Problem>) {
    let me = r.node.instance_id.as_deref().unwrap_or("this node");
    if is_member {
        match etcd.this_member {
            Some(MemberState::Absent) => out.push(Problem::error(
                "etcd_member_absent",
                format!(
                    "this node ({me}) is not a member of the etcd cluster: run `tn-agent \
                     bootstrap` so that it joins (docs/etcd.md)"
                ),
            )),
            Some(MemberState::Learner) => out.push(Problem::error(
                "etcd_member_learner",
                format!(
                    "this node's member ({me}) is still a learner: run `tn-agent etcd promote` \
                     (it waits until the learner has caught up)"
                ),
            )),
            _ => {}
        }
    }
    for m in etcd.members.iter().filter(|m| !m.healthy) {
        let name = if m.name.is_empty() {
            "(not started)"
        } else {
            &m.name
        };
        let message = if is_member && m.name == me {
            format!(
                "this node's etcd member {name} ({}) does not answer: check the etcd service \
                 on this node and its log in the journal",
                m.id
            )
        } else {
            format!(
                "etcd member {name} ({}, {}) does not answer: check that instance; if it is \
                 gone for good, terminate it so that its ASG replaces it",
                m.id,
                m.peer_urls.join(",")
            )
        };
        out.push(Problem::error("etcd_member_down", message));
    }
    if etcd.leader.is_none() {
        out.push(Problem::error(
            "etcd_no_leader",
            "the etcd cluster has no leader: check that a quorum of members runs and that they \
             reach each other on the peer port"
                .to_string(),
        ));
    }
    let (voters, healthy) = etcd.voters_and_healthy();
    if healthy < model::quorum(voters) {
        out.push(Problem::error(
            "etcd_no_quorum",
            format!(
                "only {healthy} of {voters} etcd voters answer and quorum needs {}: the cluster \
                 cannot take writes; bring members back, or restore (docs/etcd.md)",
                model::quorum(voters)
            ),
        ));
    }
}

#[cfg(test)]
mod tests;
