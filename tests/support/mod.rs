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

use tn_agent::pki::Ca;
use tn_world::{Agent, Node, Run};

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

/// Reissues the leaf at `cert` (its key beside it, `.key`) with the same names and usages,
/// signed by whichever of `cas` signed it, valid `days_left` days more: a certificate near the end of
/// its year.
pub fn near_expiry(node: &Node, cert: &str, cas: &[Ca], days_left: u32) {
    use tn_agent::pki::{LeafRequest, Usage};
    let pem = std::fs::read_to_string(node.path(cert)).unwrap();
    let info = tn_agent::pki::inspect(&pem).unwrap();
    let ca = cas
        .iter()
        .find(|ca| tn_agent::pki::verifies(&pem, ca.cert_pem()))
        .expect("a known CA signed it");
    let mut usages = Vec::new();
    if info.server_auth {
        usages.push(Usage::ServerAuth);
    }
    if info.client_auth {
        usages.push(Usage::ClientAuth);
    }
    let req = LeafRequest {
        common_name: info.subject_cn.unwrap(),
        organization: info.organizations.first().cloned(),
        dns_names: info.dns_names.into_iter().collect(),
        ips: info.ips.into_iter().collect(),
        usages,
    };
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    let leaf = ca
        .issue_with_validity(&req, now - day, now + days_left * day)
        .unwrap();
    let key = cert.replace(".crt", ".key");
    std::fs::write(node.path(&key), &leaf.key_pem).unwrap();
    std::fs::write(node.path(cert), &leaf.cert_pem).unwrap();
}
