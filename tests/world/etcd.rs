//! Real etcd processes, started the way the node's unit would: with the env file bootstrap wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::process::Owned;

pub struct EtcdProcess {
    process: Owned,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

impl EtcdProcess {
    /// Starts `etcd` with exactly the variables of `env_file` (as `EnvironmentFile=` would),
    /// output appended to `log`.
    pub fn start(env_file: &Path, log: &Path) -> Result<Self> {
        let env = parse_env_file(env_file)?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = Command::new("etcd");
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let process = Owned::spawn(cmd, "etcd")?;
        Ok(EtcdProcess {
            process,
            env,
            log: log.to_path_buf(),
        })
    }

    pub fn var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn running(&mut self) -> bool {
        self.process.running()
    }

    /// SIGKILL, as a power loss or a crash would (a SIGTERMed leader can take seconds).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// `KEY=value` lines; blank lines and `#` comments skipped; anything else is an error, since
/// systemd would read it differently from what the agent meant.
pub fn parse_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bail!("{}:{}: not KEY=value: {line:?}", path.display(), n + 1);
        };
        if v.contains(['"', '\'', '$', '\\']) {
            bail!(
                "{}:{}: value has shell syntax: {line:?}",
                path.display(),
                n + 1
            );
        }
        vars.push((k.to_string(), v.to_string()));
    }
    Ok(vars)
}
