//! Configuration errors: what is wrong, in which file and at which dotted key (SPEC §4).

use std::io;
use std::path::PathBuf;

/// A configuration that cannot be used. A retry cannot help (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration files given")]
    NoSources,

    #[error("cannot read config file {}", .path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("cannot read config directory {}", .path.display())]
    ReadDir { path: PathBuf, source: io::Error },

    #[error("{}: line {line}: {message}", .file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },

    #[error("{}: unknown key `{key}`; expected one of: {expected}", .file.display())]
    UnknownKey {
        file: PathBuf,
        key: String,
        expected: String,
    },

    #[error("{}: key `{key}`: expected {expected}, found {found}", .file.display())]
    WrongType {
        file: PathBuf,
        key: String,
        expected: &'static str,
        found: &'static str,
    },

    #[error("{}: key `{key}`: {invalid}", .file.display())]
    Value {
        file: PathBuf,
        key: String,
        invalid: InvalidValue,
    },

    #[error(
        "key `{key}` is required {requirement}; set it in {} or a drop-in in {}/",
        .main.display(),
        .dropin_dir.display()
    )]
    Missing {
        key: String,
        requirement: String,
        main: PathBuf,
        dropin_dir: PathBuf,
    },

    #[error(
        "{}: key `kubernetes`: the [kubernetes] table applies to roles master and worker only; \
         remove it for role etcd",
        .file.display()
    )]
    KubernetesForEtcd { file: PathBuf },

    /// The serde guard disagreed with the schema walk; means a bug in this module.
    #[error("{}: configuration does not match the schema: {message}", .file.display())]
    Schema { file: PathBuf, message: String },
}

/// A value that breaks its type's rules: what was expected and what was given (a TOML-ish literal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {got}")]
pub struct InvalidValue {
    pub expected: String,
    pub got: String,
}

impl InvalidValue {
    pub(super) fn string(expected: impl Into<String>, got: &str) -> Self {
        InvalidValue {
            expected: expected.into(),
            got: format!("{got:?}"),
        }
    }

    pub(super) fn integer(expected: impl Into<String>, got: i64) -> Self {
        InvalidValue {
            expected: expected.into(),
            got: got.to_string(),
        }
    }
}
