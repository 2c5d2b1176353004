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
