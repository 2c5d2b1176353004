//! The `tn-agent` binary: parse flags, set up logs, run the command, exit with SPEC §2's codes.

use std::process::ExitCode;

use clap::Parser;
use tn_agent::cli::Cli;
use tn_agent::{exit, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime\n  caused by: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("{}", exit::render(&err));
            ExitCode::from(exit::code_for(&err))
        }
    }
}
