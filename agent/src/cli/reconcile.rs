//! `tn-agent reconcile` (SPEC §11): the day-2 pass `tn-agent-reconcile.timer` runs.

use anyhow::Result;
use clap::Args;

use super::Globals;
use crate::identity::NodeIdentity;

#[derive(Debug, Args)]
pub struct Reconcile {}

impl Reconcile {
    /// Exit 0 when the node is as it should be (changed or not), 1 when a part failed (recorded
    /// in `state.json`, shown by `status`).
    pub async fn run(self, globals: &Globals) -> Result<u8> {
        let settings = globals.load_config()?;
        let me = NodeIdentity::find(&globals.root).await?;
        let changes = crate::reconcile::run(&settings, &globals.root, &me).await?;
        if changes.is_empty() {
            println!("reconciled: nothing to change");
        }
        for change in changes {
            println!("reconciled: {change}");
        }
        Ok(crate::exit::OK)
    }
}
