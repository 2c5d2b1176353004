//! `tn-agent status`: what this node is, what it decided at boot, and the health it can see.

use anyhow::Result;
use clap::Args;

use super::{not_built, Globals};

#[derive(Debug, Args)]
pub struct Status {
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Status {
    pub async fn run(self, _globals: &Globals) -> Result<u8> {
        Err(not_built("status"))
    }
}
