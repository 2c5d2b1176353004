//! Steps 1 and 2: each file's raw TOML checked against the schema, then the drop-ins merged over
//! the main file, remembering which file supplied each key; and where the files are found.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

use super::ConfigError;

/// Name of the drop-in directory next to the main config file.
const DROPIN_DIR: &str = "config.d";

// ---------------------------------------------------------------------------------------------
// Step 1: raw TOML, checked against the schema
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) cluster: Option<String>,
    pub(super) role: Option<String>,
    pub(super) state_bucket: Option<String>,
    pub(super) internal_domain: Option<String>,
    pub(super) vpc_number: Option<i64>,
    pub(super) bootstrap: Option<RawBootstrap>,
    pub(super) reboot: Option<RawReboot>,
    pub(super) backup: Option<RawBackup>,
    pub(super) metrics: Option<RawMetrics>,
    pub(super) etcd: Option<RawEtcd>,
    pub(super) kubernetes: Option<RawKubernetes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReboot {
    pub(super) group: Option<String>,
    pub(super) window_start: Option<String>,
    pub(super) window_length: Option<String>,
    pub(super) drain_timeout: Option<String>,
    pub(super) command: Option<Vec<String>>,
    pub(super) check_interval: Option<String>,
    pub(super) worker_groups: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    pub(super) interval: Option<String>,
    pub(super) keep_hourly_days: Option<i64>,
    pub(super) keep_daily_days: Option<i64>,
    pub(super) restore_tool: Option<String>,
    pub(super) part_size_mib: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) textfile_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBootstrap {
    pub(super) retry_max_delay_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEtcd {
    pub(super) asg: Option<String>,
    pub(super) tls: Option<bool>,
    pub(super) insecure: Option<bool>,
    pub(super) data_dir: Option<String>,
    pub(super) client_port: Option<i64>,
    pub(super) peer_port: Option<i64>,
    pub(super) join_timeout_seconds: Option<i64>,
    pub(super) learner_timeout_seconds: Option<i64>,
    pub(super) leave_hook: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKubernetes {
    pub(super) version: Option<String>,
    pub(super) apiserver: Option<String>,
    pub(super) cluster_domain: Option<String>,
    pub(super) node_labels: Option<BTreeMap<String, String>>,
    pub(super) node_taints: Option<Vec<String>>,
}

/// The TOML shape of one key. Mirrors the Raw structs; walked by hand so that errors carry the
/// dotted key.
enum Kind {
    String,
    Integer,
    Boolean,
    StringArray,
    StringTable,
    Table(&'static [Field]),
}

impl Kind {
    fn describe(&self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Boolean => "a boolean (true or false)",
            Kind::StringArray => "an array of strings",
            Kind::StringTable => "a table of strings",
            Kind::Table(_) => "a table",
        }
    }
}

/// One key of a table: its name and TOML shape.
pub(super) struct Field {
    name: &'static str,
    kind: Kind,
}

const fn field(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

pub(super) const ROOT: &[Field] = &[
    field("cluster", Kind::String),
    field("role", Kind::String),
    field("state_bucket", Kind::String),
    field("internal_domain", Kind::String),
    field("vpc_number", Kind::Integer),
    field("bootstrap", Kind::Table(BOOTSTRAP)),
    field("reboot", Kind::Table(REBOOT)),
    field("backup", Kind::Table(BACKUP)),
    field("metrics", Kind::Table(METRICS)),
    field("etcd", Kind::Table(ETCD)),
    field("kubernetes", Kind::Table(KUBERNETES)),
];

const BOOTSTRAP: &[Field] = &[field("retry_max_delay_seconds", Kind::Integer)];

const METRICS: &[Field] = &[field("textfile_dir", Kind::String)];

const REBOOT: &[Field] = &[
    field("group", Kind::String),
    field("window_start", Kind::String),
    field("window_length", Kind::String),
    field("drain_timeout", Kind::String),
    field("command", Kind::StringArray),
    field("check_interval", Kind::String),
    field("worker_groups", Kind::StringArray),
];

const BACKUP: &[Field] = &[
    field("interval", Kind::String),
    field("keep_hourly_days", Kind::Integer),
    field("keep_daily_days", Kind::Integer),
    field("restore_tool", Kind::String),
    field("part_size_mib", Kind::Integer),
];

const ETCD: &[Field] = &[
    field("asg", Kind::String),
    field("tls", Kind::Boolean),
    field("insecure", Kind::Boolean),
    field("data_dir", Kind::String),
    field("client_port", Kind::Integer),
    field("peer_port", Kind::Integer),
    field("join_timeout_seconds", Kind::Integer),
    field("learner_timeout_seconds", Kind::Integer),
    field("leave_hook", Kind::String),
];

const KUBERNETES: &[Field] = &[
    field("version", Kind::String),
    field("apiserver", Kind::String),
    field("cluster_domain", Kind::String),
    field("node_labels", Kind::StringTable),
    field("node_taints", Kind::StringArray),
];

/// Appends `name` to a dotted key, quoting it when it is not a bare TOML key.
pub(super) fn join_key(prefix: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let name = if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}.{name}")
    }
}

pub(super) fn parse_file(file: &Path, text: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|err| {
        let offset = err.span().map_or(0, |span| span.start).min(text.len());
        let line = text.as_bytes()[..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        let message = err
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_owned();
        ConfigError::Syntax {
            file: file.to_owned(),
            line,
            message,
        }
    })
}

pub(super) fn check_table(
    file: &Path,
    prefix: &str,
    table: &Table,
    fields: &[Field],
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let key = join_key(prefix, name);
        let Some(field) = fields.iter().find(|f| f.name == name) else {
            let expected = fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ");
            return Err(ConfigError::UnknownKey {
                file: file.to_owned(),
                key,
                expected,
            });
        };
        check_value(file, &key, value, &field.kind)?;
    }
    Ok(())
}

fn check_value(file: &Path, key: &str, value: &Value, kind: &Kind) -> Result<(), ConfigError> {
    match (kind, value) {
        (Kind::String, Value::String(_))
        | (Kind::Integer, Value::Integer(_))
        | (Kind::Boolean, Value::Boolean(_)) => Ok(()),
        (Kind::StringArray, Value::Array(items)) => {
            items.iter().enumerate().try_for_each(|(i, item)| {
                check_value(file, &format!("{key}[{i}]"), item, &Kind::String)
            })
        }
        (Kind::StringTable, Value::Table(table)) => table.iter().try_for_each(|(name, item)| {
            check_value(file, &join_key(key, name), item, &Kind::String)
        }),
        (Kind::Table(fields), Value::Table(table)) => check_table(file, key, table, fields),
        _ => Err(ConfigError::WrongType {
            file: file.to_owned(),
            key: key.to_owned(),
            expected: kind.describe(),
            found: value.type_str(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Step 2: merge drop-ins, remembering which file supplied each key
// ---------------------------------------------------------------------------------------------

/// Merges `over` into `base`: tables key by key (recursively), everything else replaced whole.
/// Records in `origin` the file that supplied each dotted key, tables included.
pub(super) fn merge(
    base: &mut Table,
    over: Table,
    file: &Path,
    prefix: &str,
    origin: &mut BTreeMap<String, PathBuf>,
) {
    for (name, value) in over {
        let key = join_key(prefix, &name);
        origin.insert(key.clone(), file.to_owned());
        match value {
            Value::Table(table) => {
                let slot = base
                    .entry(name)
                    .or_insert_with(|| Value::Table(Table::new()));
                // Cannot happen after check_table (a table key holds a table in every file).
                if !slot.is_table() {
                    *slot = Value::Table(Table::new());
                }
                if let Value::Table(existing) = slot {
                    merge(existing, table, file, &key, origin);
                }
            }
            other => {
                base.insert(name, other);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

pub(super) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn dropin_dir(main: &Path) -> PathBuf {
    match main.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(DROPIN_DIR),
        _ => PathBuf::from(DROPIN_DIR),
    }
}

/// The `*.toml` entries of `dir` (directories skipped), sorted by file name; none if `dir` is
/// absent.
pub(super) fn dropin_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_dir_err = |source| ConfigError::ReadDir {
        path: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_dir_err(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(read_dir_err)?.path();
        if path.extension().is_some_and(|ext| ext == "toml") && !path.is_dir() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
