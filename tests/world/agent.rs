//! Running the tn-agent binary: where it is, one way to start it with nothing from the caller's
//! setup, and how a run ended. Nodes, the operator and the tests all run it through [`Agent`].

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The tn-agent binary: `TN_AGENT_BIN`, else beside the running test or demo binary.
pub fn agent_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TN_AGENT_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("exe has a directory")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("tn-agent");
    if !bin.exists() {
        bail!(
            "{} not found: build it first with `cargo build -p tn-agent`",
            bin.display()
        );
    }
    Ok(bin)
}

/// What a run of tn-agent never takes from the caller's environment: its AWS setup (region,
/// profile, session token, endpoint), its log filter, and a journal it is not writing to.
const CLEARED: [&str; 7] = [
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "JOURNAL_STREAM",
    "RUST_LOG",
];

/// `tn-agent` about to run: stdin closed, [`CLEARED`] removed, then whatever `--root` and
/// environment the caller adds.
pub struct Agent {
    cmd: Command,
}

impl Agent {
    pub fn new() -> Result<Self> {
        let mut cmd = Command::new(agent_bin()?);
        for var in CLEARED {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null());
        Ok(Agent { cmd })
    }

    /// `--root <root>`: the node's files live under `root`.
    pub fn root(mut self, root: &Path) -> Self {
        self.cmd.arg("--root").arg(root);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.cmd.envs(vars);
        self
    }

    /// The command for `tn-agent [--root ROOT] <args>`, to be run by the caller.
    pub fn command(mut self, args: &[&str]) -> Command {
        self.cmd.args(args);
        self.cmd
    }

    /// Runs `tn-agent [--root ROOT] <args>` to the end.
    pub fn run(self, args: &[&str]) -> Result<Run> {
        let out = self.command(args).output().context("running tn-agent")?;
        Ok(Run::from(out))
    }
}

/// How a `tn-agent` run ended.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
