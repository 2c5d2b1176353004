//! The command line (SPEC §2): one file per subcommand, each with `run`.

mod bootstrap;
mod etcd;
mod pki;
mod reboot;
mod reconcile;
mod status;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::{self, Settings};
use crate::fsutil::Root;

/// Boot-time agent for self-managed Kubernetes nodes on AWS.
///
/// At boot it finds out who the node is (IMDSv2), finds its autoscaling-group peers, seeds or
/// joins etcd one member at a time without losing quorum, gets its certificates and writes the
/// configuration of etcd, the kubelet and the control plane.
///
/// Exit codes: 0 done; 1 failed, a retry may succeed (or an unsafe change was refused);
/// 2 bad input (config, flags, files), a retry cannot help.
#[derive(Debug, Parser)]
#[command(name = "tn-agent", version, max_term_width = 100)]
pub struct Cli {
    /// Configuration file; drop-ins in <its dir>/config.d/*.toml are merged over it in lexical
    /// order. The default is taken under --root; a path given here is used as it is.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Take every node path the agent reads or writes under DIR (tests, image builds).
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// More log detail: -v the agent's debug detail, -vv also the libraries', -vvv everything.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot-time work for this node's role; idempotent. Exit 0 means its services may start.
    Bootstrap(bootstrap::Bootstrap),
    /// etcd membership of this node.
    #[command(subcommand)]
    Etcd(etcd::Etcd),
    /// What this node is, what it decided at boot, and the health it can see.
    Status(status::Status),
    /// Operator workstation: the cluster's certificate authorities and keys.
    #[command(subcommand)]
    Pki(pki::Pki),
    /// Reboots after OS updates, one safe slot at a time: requests and the groups' locks.
    #[command(subcommand)]
    Reboot(reboot::Reboot),
    /// Day-2 pass (a timer): masters' apiserver follows the etcd voters.
    Reconcile(reconcile::Reconcile),
}

/// What every subcommand gets from the global flags.
#[derive(Debug, Clone)]
pub struct Globals {
    pub root: Root,
    pub config_path: PathBuf,
}

impl Globals {
    pub fn load_config(&self) -> Result<Settings> {
        Ok(config::load(&self.config_path)?)
    }
}

impl Cli {
    /// Runs the command; the `Ok` value is the exit code.
    pub async fn run(self) -> Result<u8> {
        let root = Root::new(&self.root);
        let config_path = match self.config {
            Some(path) => path,
            None => root.path(config::DEFAULT_PATH),
        };
        let globals = Globals { root, config_path };
        match self.command {
            Command::Bootstrap(cmd) => cmd.run(&globals).await,
            Command::Etcd(cmd) => cmd.run(&globals).await,
            Command::Status(cmd) => cmd.run(&globals).await,
            Command::Pki(cmd) => cmd.run(&globals).await,
            Command::Reboot(cmd) => cmd.run(&globals).await,
            Command::Reconcile(cmd) => cmd.run(&globals).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_are_global() {
        let cli = Cli::try_parse_from(["tn-agent", "status", "--root", "/tmp/n1", "-vv"]).unwrap();
        assert_eq!(cli.root, PathBuf::from("/tmp/n1"));
        assert_eq!(cli.verbose, 2);
        assert!(cli.config.is_none());
    }
}
