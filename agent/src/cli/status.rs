//! `tn-agent status`: what this node is, what it decided at boot, and the health it can see.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;

use super::Globals;
use crate::exit;
use crate::status;

#[derive(Debug, Args)]
pub struct Status {
    /// Print JSON for scripts instead of text (schema in docs/status.md).
    #[arg(long)]
    pub json: bool,
}

impl Status {
    /// Exit 0 when the node is healthy, 1 when the report lists a problem; a config error is
    /// exit 2 as for every command.
    pub async fn run(self, globals: &Globals) -> Result<u8> {
        let settings = globals.load_config()?;
        let report = status::gather(&settings, &globals.root).await;
        let text = if self.json {
            let mut json = serde_json::to_string_pretty(&report).expect("the report serialises");
            json.push('\n');
            json
        } else {
            status::render_text(&report)
        };
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("writing the report to stdout")?;
        Ok(if report.healthy {
            exit::OK
        } else {
            exit::FAILED
        })
    }
}
