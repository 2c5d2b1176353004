//! `tn-agent etcd ...`: this node's etcd membership after boot.

use anyhow::Result;
use clap::Subcommand;

use super::{not_built, Globals};

#[derive(Debug, Subcommand)]
pub enum Etcd {
    /// After etcd has started: promote this member from learner to voter (no-op if voter).
    Promote,
    /// Remove this member from the cluster safely (scale-in, termination).
    Leave,
}

impl Etcd {
    pub async fn run(self, _globals: &Globals) -> Result<u8> {
        match self {
            Etcd::Promote => Err(not_built("etcd promote")),
            Etcd::Leave => Err(not_built("etcd leave")),
        }
    }
}
