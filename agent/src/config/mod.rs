//! Configuration: `/etc/tn-agent/config.toml` plus `config.d/*.toml` drop-ins, read in three
//! steps: raw TOML checked against the schema, drop-ins merged over it (`schema`), then
//! validated (`validate`) into [`Settings`], whose value types (`types`) cannot hold bad values.
//!
//! Every error names the file, the dotted key and what is expected (SPEC §4). The file named for a
//! bad value is the one that supplied the value that won the merge.

mod error;
mod schema;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Table;

pub use self::error::{ConfigError, InvalidValue};
use self::schema::{
    check_table, dropin_dir, dropin_files, merge, parse_file, read, RawConfig, ROOT,
};
pub use self::types::{
    is_dns_name, AddressPlan, ApiServerUrl, ClusterName, Ipv4Net, KubeVersion, Role, Taint,
    TaintEffect,
};
use self::validate::{validate, Context};

/// Where the agent looks for its configuration unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/tn-agent/config.toml";

/// The validated configuration of this node.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub cluster: ClusterName,
    /// S3 bucket holding the cluster's PKI and state.
    pub state_bucket: String,
    /// Internal Route53 zone; the default API endpoint is `kubernetes.<domain>`.
    pub internal_domain: Option<String>,
    pub vpc_number: u8,
    /// Addresses derived from `vpc_number`.
    pub plan: AddressPlan,
    /// How `bootstrap` paces its retries.
    pub bootstrap: BootstrapSettings,
    /// How `reboot watch` reboots this node (SPEC §9).
    pub reboot: RebootSettings,
    /// etcd backups (SPEC §10); used by etcd nodes.
    pub backup: BackupSettings,
    /// `[metrics] textfile_dir` (SPEC §11): where `tn_agent.prom` is written; `None`: nowhere.
    pub metrics_textfile_dir: Option<std::path::PathBuf>,
    /// How this node serves etcd (role etcd) or reaches it (role master); a worker does not use it.
    pub etcd: EtcdSettings,
    /// The role, with the settings only that role has.
    pub role_settings: RoleSettings,
    /// The files that were merged, in merge order.
    pub sources: Vec<PathBuf>,
}

impl Settings {
    /// What this node is.
    pub fn role(&self) -> Role {
        match self.role_settings {
            RoleSettings::Etcd { .. } => Role::Etcd,
            RoleSettings::Master(_) => Role::Master,
            RoleSettings::Worker { .. } => Role::Worker,
        }
    }

    /// `[kubernetes]`: `Some` for roles master and worker, `None` for role etcd.
    pub fn kubernetes(&self) -> Option<&KubernetesSettings> {
        match &self.role_settings {
            RoleSettings::Etcd { .. } => None,
            RoleSettings::Master(master) => Some(&master.kubernetes),
            RoleSettings::Worker { kubernetes, .. } => Some(kubernetes),
        }
    }

    /// `etcd.asg`: always set for a master; `None` for role etcd means its own ASG.
    pub fn etcd_asg(&self) -> Option<&str> {
        match &self.role_settings {
            RoleSettings::Etcd { etcd_asg } | RoleSettings::Worker { etcd_asg, .. } => {
                etcd_asg.as_deref()
            }
            RoleSettings::Master(master) => Some(&master.etcd_asg),
        }
    }
}

/// What this node is, with the settings only that role has.
#[derive(Debug, Clone, PartialEq)]
pub enum RoleSettings {
    /// An etcd member. `etcd_asg` from `etcd.asg`; `None`: the node's own ASG.
    Etcd {
        etcd_asg: Option<String>,
    },
    Master(MasterSettings),
    /// A worker. `etcd_asg` from `etcd.asg` if set; a worker does not use it.
    Worker {
        etcd_asg: Option<String>,
        kubernetes: KubernetesSettings,
    },
}

/// What a master needs besides the common settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterSettings {
    /// `etcd.asg`: the etcd nodes' ASG, where the masters find the etcd members.
    pub etcd_asg: String,
    pub kubernetes: KubernetesSettings,
}

/// `[etcd]` except `asg` (see [`RoleSettings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    pub tls: bool,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    /// From `join_timeout_seconds`.
    pub join_timeout: Duration,
    /// From `learner_timeout_seconds`: how long another node's started learner may stay
    /// unhealthy while it blocks joins before a joiner removes it.
    pub learner_timeout: Duration,
    /// The termination lifecycle hook of the etcd ASG that `etcd leave` completes, and no other.
    pub leave_hook: String,
}

/// `[reboot]` (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootSettings {
    /// The lock group; `None`: the role's (`etcd`, `master`, or the worker's ASG).
    pub group: Option<String>,
    /// From `window_start` and `window_length`; `None`: any time.
    pub window: Option<crate::reboot::window::Window>,
    pub drain_timeout: Duration,
    /// The reboot itself, an argv; `None`: logind's `Reboot` over D-Bus.
    pub command: Option<Vec<String>>,
    /// How often `reboot watch` looks again.
    pub check_interval: Duration,
    /// The worker pools' reboot groups, whose lock ConfigMaps and RBAC a master writes into
    /// its addon (a master's own group, `master`, is always there).
    pub worker_groups: Vec<String>,
}

/// `[backup]` (SPEC §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// How often the timer runs `etcd backup`: a backup older than two intervals is a problem.
    pub interval: Duration,
    pub retention: crate::backup::retention::Retention,
    /// `etcdutl` (or `etcdctl` on etcd 3.4): a name on PATH or a path.
    pub restore_tool: String,
    /// Bytes of one part of a multipart upload, from `part_size_mib`: snapshots larger than
    /// this are uploaded in parts, and no more than two parts are held in memory.
    pub part_size: usize,
}

/// `[bootstrap]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapSettings {
    /// From `retry_max_delay_seconds`: the most a run waits, after earlier runs failed, before
    /// it tries again (on top of the unit's `RestartSec=`). Zero: no wait of its own.
    pub retry_max_delay: Duration,
}

/// `[kubernetes]`, for roles master and worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSettings {
    pub version: KubeVersion,
    pub apiserver: ApiServerUrl,
    pub cluster_domain: String,
    pub node_labels: BTreeMap<String, String>,
    pub node_taints: Vec<Taint>,
}

/// Loads `path` and then `<dir of path>/config.d/*.toml` in lexical (byte) order of file name,
/// merged over it: a later file's value for a key replaces the earlier one; tables (including
/// `node_labels`) merge key by key, arrays (`node_taints`) are replaced whole.
/// A missing main file is an error; a missing `config.d` is fine; non-`.toml` files are ignored.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let mut sources = vec![(path.to_owned(), read(path)?)];
    for dropin in dropin_files(&dropin_dir(path))? {
        let text = read(&dropin)?;
        sources.push((dropin, text));
    }
    from_sources(&sources)
}

/// Same as [`load`] from in-memory `(file name, text)` pairs in merge order; the first is the main
/// file.
pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Settings, ConfigError> {
    let (main, _) = sources.first().ok_or(ConfigError::NoSources)?;
    let mut merged = Table::new();
    let mut origin = BTreeMap::new();
    for (file, text) in sources {
        let table = parse_file(file, text)?;
        check_table(file, "", &table, ROOT)?;
        merge(&mut merged, table, file, "", &mut origin);
    }
    let raw: RawConfig = merged
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Schema {
            file: main.clone(),
            message: e.to_string(),
        })?;
    let ctx = Context {
        main: main.clone(),
        origin,
    };
    let files = sources.iter().map(|(file, _)| file.clone()).collect();
    validate(raw, &ctx, files)
}
