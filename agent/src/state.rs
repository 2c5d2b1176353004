//! `/var/lib/tn-agent/state.json`: what the last `bootstrap` found and decided, read by `status`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::aws::AsgView;
use crate::config::Role;
use crate::fsutil::{self, Root};
use crate::identity::NodeIdentity;

/// Version of the file's schema; bumped on incompatible changes.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootState {
    pub schema: u32,
    pub agent_version: String,
    pub cluster: String,
    pub role: Role,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `true` when the run finished its work; `error` says why not otherwise.
    pub ok: bool,
    pub error: Option<String>,
    pub identity: Option<NodeIdentity>,
    /// The node's own autoscaling group as an etcd node lists it at boot (its instances are
    /// the members' candidates).
    pub asg: Option<AsgView>,
    /// The name of the node's own autoscaling group (etcd nodes and masters; a reboot group's
    /// name), kept from the last run that asked AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asg_name: Option<String>,
    /// Decisions taken, in order, each with its reason.
    pub decisions: Vec<Decision>,
    /// Node paths written (as on the node, without `--root`).
    pub files_written: Vec<String>,
    /// Milliseconds per step.
    pub timings_ms: BTreeMap<String, u64>,
    /// AWS API requests sent.
    pub aws_calls: u32,
    /// [`BootState::aws_calls`] by service (`autoscaling`, `ec2`, `s3`).
    #[serde(default)]
    pub aws_calls_by_service: BTreeMap<String, u32>,
    /// S3 keys of the state bucket read, in order (a worker reads no CA key).
    #[serde(default)]
    pub s3_keys_read: Vec<String>,
    /// Masters: the etcd client URLs the apiserver is configured with (`--etcd-servers`),
    /// carried over from the last run until a run writes the manifest again.
    #[serde(default)]
    pub etcd_servers: Vec<String>,
    /// Masters: when the bootstrap token's Secret expires (its object's time in the bucket plus
    /// a year), carried over like `etcd_servers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token_expires: Option<String>,
    /// Set when this run could not reach AWS and the node started with the files of its last
    /// good run instead (SPEC §7.4 for etcd): the AWS error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_good: Option<String>,
    /// Runs in a row, this one included once it ends, that failed with a retryable error (exit
    /// 1) or were killed: the next run waits longer before trying again.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The last `tn-agent reconcile` (SPEC §11); kept across bootstrap runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile: Option<crate::reconcile::ReconcileRecord>,
    /// The kernel's boot id during this run: the next run tells from it whether the node
    /// rebooted since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub what: String,
    pub why: String,
}

impl BootState {
    pub fn new(cluster: &str, role: Role) -> Self {
        BootState {
            schema: SCHEMA,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            cluster: cluster.to_string(),
            role,
            started_at: now_rfc3339(),
            finished_at: None,
            ok: false,
            error: None,
            identity: None,
            asg: None,
            asg_name: None,
            decisions: Vec::new(),
            files_written: Vec::new(),
            timings_ms: BTreeMap::new(),
            aws_calls: 0,
            aws_calls_by_service: BTreeMap::new(),
            s3_keys_read: Vec::new(),
            etcd_servers: Vec::new(),
            bootstrap_token_expires: None,
            last_known_good: None,
            consecutive_failures: 0,
            last_reconcile: None,
            boot_id: None,
        }
    }

    /// The node's own autoscaling group's name, as far as the state knows it.
    pub fn own_asg(&self) -> Option<&str> {
        self.asg_name
            .as_deref()
            .or_else(|| self.asg.as_ref().map(|a| a.name.as_str()))
    }

    /// Records a decision and logs it.
    pub fn decide(&mut self, what: impl Into<String>, why: impl Into<String>) {
        let (what, why) = (what.into(), why.into());
        tracing::info!(decision = %what, reason = %why, "{what}: {why}");
        self.decisions.push(Decision { what, why });
    }

    /// Records that `path` (under `root`) was written.
    pub fn wrote(&mut self, root: &Root, path: &Path) {
        let shown = match path.strip_prefix(root.dir()) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => path.display().to_string(),
        };
        if !self.files_written.contains(&shown) {
            self.files_written.push(shown);
        }
    }

    pub fn save(&self, root: &Root) -> Result<()> {
        let path = root.path(crate::files::STATE);
        let mut text = serde_json::to_vec_pretty(self).expect("state serialises");
        text.push(b'\n');
        fsutil::write_atomic(&path, &text, fsutil::MODE_PUBLIC)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The last run's state; `None` when the node never ran `bootstrap`.
    pub fn load(root: &Root) -> Result<Option<Self>> {
        read_json(&root.path(crate::files::STATE))
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not valid state JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn now_rfc3339() -> String {
    rfc3339(crate::clock::now())
}

/// An RFC 3339 time as the agent's files hold them; `None` when it is not one.
pub fn parse_rfc3339(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// A time as RFC 3339 in UTC, to the second.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}
