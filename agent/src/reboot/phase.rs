//! `/var/lib/tn-agent/reboot.json`: where this node is in its reboot (SPEC §9), written before
//! each step is acted on, so that a crash or restart of `reboot watch` resumes it: never a leaked
//! or doubled lock, never a second reboot for one request.

use serde::{Deserialize, Serialize};

use crate::files;
use crate::fsutil::{self, Root};

/// The step this node is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No reboot needed, or the last one is done.
    Idle,
    /// A reboot is needed and waits: for the window, a gate or a slot (`why`).
    Waiting,
    /// About to take the group's lock (a take is re-entrant: resuming takes it again).
    Locking,
    /// Holds the lock: next the leadership hand-off (etcd) or the cordon (kube), then the
    /// reboot.
    Locked,
    /// A Kubernetes node holding the lock, cordoned (by this agent if `cordoned`) and having its
    /// pods evicted; `since` is when the drain began (`[reboot] drain_timeout` counts from it).
    Draining,
    /// The reboot command was started on boot `boot_id`. On another boot: check health, release.
    Rebooting,
    /// A master holding the lock for a restart of its apiserver, not a reboot (`restart`): its
    /// manifest was marked with the renewed client certificates, so the kubelet restarts it;
    /// released once its mirror pod carries that mark and is Ready.
    Restarting,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootState {
    pub phase: Phase,
    /// The lock group.
    pub group: String,
    /// When this phase began (RFC 3339); for `Rebooting`, when the reboot command started.
    pub since: String,
    /// What it waits for, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The kernel's boot id when the reboot command was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The version update_engine staged, when it said (checked after the boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_version: Option<String>,
    /// This agent cordoned the node (it was schedulable): it uncordons it after the boot or
    /// when the drain gives up. A node an operator cordoned stays cordoned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cordoned: bool,
    /// This attempt restarts the master's apiserver (its client certificates were renewed)
    /// rather than rebooting the node: same window, gates and lock; no drain, no reboot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
    /// When the last reboot through this node's lock finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reboot: Option<String>,
}

impl RebootState {
    pub fn idle(group: &str) -> Self {
        RebootState {
            phase: Phase::Idle,
            group: group.to_string(),
            since: crate::state::now_rfc3339(),
            why: None,
            boot_id: None,
            staged_version: None,
            cordoned: false,
            restart: false,
            last_reboot: None,
        }
    }

    /// The saved state; idle when there is none. A file that cannot be read is an error: a
    /// lock this node may hold must not be forgotten.
    pub fn load(root: &Root, group: &str) -> anyhow::Result<Self> {
        Ok(Self::saved(root)?.unwrap_or_else(|| Self::idle(group)))
    }

    /// The saved state; `None` when this node never had one.
    pub fn saved(root: &Root) -> anyhow::Result<Option<Self>> {
        let path = root.path(files::REBOOT_STATE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a reboot state ({e}); if this node holds a reboot slot, free it \
                     with `tn-agent reboot unlock`, then move the file aside",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
        }
    }

    /// Moves to `phase` (keeping the group, the boot id, the cordon and the last reboot) with what it
    /// waits for, and saves. `since` changes with the phase only.
    pub fn enter(&mut self, root: &Root, phase: Phase, why: Option<String>) -> anyhow::Result<()> {
        if self.phase != phase || self.why != why {
            tracing::info!(phase = ?phase, why = why.as_deref().unwrap_or(""), "reboot phase");
        }
        if self.phase != phase {
            self.since = crate::state::now_rfc3339();
        }
        self.phase = phase;
        self.why = why;
        self.save(root)
    }

    pub fn save(&self, root: &Root) -> anyhow::Result<()> {
        let path = root.path(files::REBOOT_STATE);
        let mut json = serde_json::to_vec_pretty(self).expect("reboot state serialises");
        json.push(b'\n');
        fsutil::write_atomic(&path, &json, fsutil::MODE_PUBLIC)
            .map_err(|e| anyhow::Error::new(e).context(format!("writing {}", path.display())))
    }
}

/// The booted OS version (`VERSION` in `/etc/os-release`, under `--root`); `None` when it
/// cannot be read.
pub fn booted_version(root: &Root) -> Option<String> {
    let text = std::fs::read_to_string(root.path(files::OS_RELEASE)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The kernel's id of this boot (`/proc/sys/kernel/random/boot_id`, taken under `--root`);
/// `None` when it cannot be read.
pub fn boot_id(root: &Root) -> Option<String> {
    std::fs::read_to_string(root.path(files::BOOT_ID))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
