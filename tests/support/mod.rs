//! What the integration tests share: running tn-agent outside a node, typed readers of what it
//! writes (`state`, `report`), etcd clusters for the etcd and status tests (`cluster`), file
//! helpers (`files`), and the models the units and user-data tests check against (`flatcar`,
//! `unit_file`, `systemd`, `template`).

pub mod cluster;
pub mod files;
pub mod flatcar;
pub mod report;
pub mod state;
pub mod systemd;
pub mod template;
pub mod unit_file;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use tn_world::{Agent, Run};

/// `tn-agent <args>` on this machine, outside any node or world (see [`Agent`]).
pub fn agent(args: &[&str]) -> Run {
    Agent::new().unwrap().run(args).unwrap()
}

/// Whether the `terraform` command is installed (the tests that compare with it skip that part
/// where it is not).
pub fn terraform_installed() -> bool {
    let probe = Command::new("terraform").arg("version").output();
    !matches!(&probe, Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// The string `expression` evaluates to in `terraform console` run in `dir`, as the console
/// prints it (a quoted HCL string literal); fails the test when the console does. A
/// non-interactive console prints only the last result: give it one expression.
pub fn terraform_console(dir: &std::path::Path, expression: &str) -> String {
    let out = run_with_input(
        Command::new("terraform")
            .arg("console")
            .current_dir(dir)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1"),
        &format!("{expression}\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "terraform console: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.starts_with('"'))
        .unwrap_or_else(|| panic!("terraform console said:\n{stdout}"))
        .to_string()
}

/// Runs `command` with `input` on its stdin, to the end.
pub fn run_with_input(command: &mut Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
