//! `tn-agent pki ...`: the cluster's CAs and keys, made on an operator's workstation.

use anyhow::Result;
use clap::Subcommand;

use super::{not_built, Globals};

#[derive(Debug, Subcommand)]
pub enum Pki {
    /// Create the cluster's CAs, service-account keys and bootstrap token (replaces tls-gen.sh).
    Init,
}

impl Pki {
    pub async fn run(self, _globals: &Globals) -> Result<u8> {
        match self {
            Pki::Init => Err(not_built("pki init")),
        }
    }
}
