//! `tn-agent status` (SPEC §8): what this node is, what it decided at boot, and the health it
//! can see. [`gather`](fn@gather) collects facts into a [`Report`] (the `--json` schema,
//! documented in `docs/status.md`) without IMDS or AWS; [`assess`](fn@assess) is a pure
//! function from those facts to the problems; [`render_text`] prints the report for a person
//! over SSH.
//!
//! The schema lives here; the parts are `gather`, `assess` and `text`, in that order of use.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use crate::state::Decision;

mod assess;
mod gather;
mod text;

pub use assess::{assess, EXPIRY_PROBLEM_DAYS, EXPIRY_WARNING_DAYS};
pub use gather::{gather, gather_with};
pub use text::render_text;

/// Version of the `--json` schema; bumped on incompatible changes.
pub const SCHEMA: u32 = 1;
/// The whole etcd look must end within this, so that `status` answers within 3 s.
pub const ETCD_BUDGET: Duration = Duration::from_millis(2500);

/// Everything `status` found, and what it makes of it. Serialised, this is `status --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: u32,
    pub agent_version: String,
    /// When the facts were gathered, RFC 3339 UTC.
    pub checked_at: String,
    pub node: NodeReport,
    /// The last `bootstrap` run from `state.json`; `None` when there is none.
    pub bootstrap: Option<BootstrapReport>,
    /// Why `state.json` could not be read, when it exists but is unreadable.
    pub state_error: Option<String>,
    /// `None` for workers: they have nothing to do with etcd.
    pub etcd: Option<EtcdReport>,
    pub certificates: Vec<CertReport>,
    /// The files SPEC §6 says `bootstrap` writes for this role.
    pub files: Vec<FileReport>,
    /// This node's reboot (SPEC §9, `reboot.json`); `None` when it never had one.
    pub reboot: Option<crate::reboot::phase::RebootState>,
    /// The last `reconcile` (SPEC §11, from `state.json`); `None` before the first.
    pub reconcile: Option<crate::reconcile::ReconcileRecord>,
    /// etcd nodes: the backups as this node's `etcd backup` runs saw them (SPEC §10); `None`
    /// when no backup run happened here yet.
    pub backup: Option<BackupReport>,
    /// No problem of severity `error` (warnings allowed): exit 0.
    pub healthy: bool,
    /// What [`assess`](fn@assess) found, errors first.
    pub problems: Vec<Problem>,
}

/// Who the node is: role and cluster from the config, the rest as `bootstrap` recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub role: String,
    pub cluster: String,
    pub instance_id: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub availability_zone: Option<String>,
    pub region: Option<String>,
    /// The node's own autoscaling group.
    pub asg: Option<String>,
}

/// The last `bootstrap` run, from `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootstrapReport {
    pub agent_version: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub ok: bool,
    pub error: Option<String>,
    pub decisions: Vec<Decision>,
    pub files_written: Vec<String>,
    pub timings_ms: BTreeMap<String, u64>,
    pub aws_calls: u32,
    /// `aws_calls` by service (`autoscaling`, `ec2`, `s3`).
    pub aws_calls_by_service: BTreeMap<String, u32>,
    /// Set when that run could not use AWS and started the node with its last-known-good
    /// files: the AWS error.
    pub last_known_good: Option<String>,
    /// Masters: when the bootstrap token's Secret expires, and in how many whole days.
    pub bootstrap_token_expires: Option<String>,
    pub bootstrap_token_days_left: Option<i64>,
}

/// The backups, from `/var/lib/tn-agent/backup.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    /// `[backup] interval`: the newest backup older than twice this is a problem.
    pub interval_seconds: u64,
    /// The newest backup in the bucket when this node last looked.
    pub newest: Option<crate::backup::record::SeenBackup>,
    pub newest_age_seconds: Option<i64>,
    /// Seconds since the newest backup last held everything there was (taken, or found
    /// current by a later run): more than two intervals is a problem.
    pub stale_seconds: Option<i64>,
    /// The last run here: `uploaded`, `skipped` (and why) or `failed`.
    pub last_run: Option<crate::backup::record::RunRecord>,
    /// The last failed run here, until a later run succeeds.
    pub last_failure: Option<crate::backup::record::RunRecord>,
}

/// What came of asking etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EtcdOutcome {
    /// A member answered: `members` and `leader` are filled in.
    Answered,
    /// Nobody answered at `endpoints`.
    NoAnswer,
    /// The look did not end within [`ETCD_BUDGET`].
    TimedOut,
    /// Not asked: nothing to ask yet (files not written, identity unknown); `note` says why.
    Skipped,
    /// Not asked: this node's etcd client files exist but cannot be read (e.g. the key is
    /// readable by root only); `note` says which.
    NoAccess,
}

/// This node's place in the etcd cluster (role etcd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    Voter,
    Learner,
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdReport {
    pub outcome: EtcdOutcome,
    pub note: Option<String>,
    /// Client URLs asked.
    pub endpoints: Vec<String>,
    pub members: Vec<MemberReport>,
    /// The leader's name (its id in hex when it has no name).
    pub leader: Option<String>,
    /// Role etcd, when a member answered and the node's identity is known.
    pub this_member: Option<MemberState>,
    pub elapsed_ms: u64,
}

impl EtcdReport {
    /// How many members vote, and how many of those answered.
    pub fn voters_and_healthy(&self) -> (usize, usize) {
        let voters: Vec<&MemberReport> = self.members.iter().filter(|m| !m.learner).collect();
        let healthy = voters.iter().filter(|m| m.healthy).count();
        (voters.len(), healthy)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberReport {
    /// Member id, 16 hex digits as `etcdctl member list -w table` shows it.
    pub id: String,
    /// The instance id; empty for a learner that has not started yet.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub learner: bool,
    /// It answered a status request just now.
    pub healthy: bool,
    pub leader: bool,
}

/// One certificate file (its first certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertReport {
    /// As on the node, without `--root`.
    pub path: String,
    /// Why the file could not be read; the other fields are empty when set.
    pub error: Option<String>,
    pub subject: Option<String>,
    pub common_name: Option<String>,
    pub issuer: Option<String>,
    pub is_ca: bool,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    /// Whole days until `not_after` (rounded down; negative once expired).
    pub days_left: Option<i64>,
    /// `not_before` is still in the future.
    pub not_yet_valid: bool,
    pub dns_names: Vec<String>,
    pub ips: Vec<String>,
    /// The CA certificate file (under the same PKI directory) whose key signed it; itself for a
    /// self-signed CA; `None` when no CA there did.
    pub signed_by: Option<String>,
}

/// An expected file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    pub exists: bool,
    /// Permission bits in octal, e.g. `0600`.
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The node is not healthy: exit 1.
    Error,
    /// Shown, but the node is healthy.
    Warning,
}

/// Something wrong, as one sentence saying what and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// Stable identifier for scripts, e.g. `cert_expires_soon` (docs/status.md lists them).
    pub kind: &'static str,
    pub message: String,
}

impl Problem {
    fn error(kind: &'static str, message: String) -> Self {
        Problem {
            severity: Severity::Error,
            kind,
            message,
        }
    }

    fn warning(kind: &'static str, message: String) -> Self {
        Problem {
            severity: Severity::Warning,
            kind,
            message,
        }
    }
}

#[cfg(test)]
mod tests;
