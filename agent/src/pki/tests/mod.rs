//! Unit tests of the certificate parts, one file per part, over the fixtures here.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::exit::one_line;
use crate::pki::{LeafRequest, PkiError, Reuse, Usage};

mod ca;
mod init;
mod inspect;
mod pem;
mod reuse;
mod token;

const DAY: Duration = Duration::from_secs(86_400);
pub(crate) const RENEW: Duration = Duration::from_secs(30 * 86_400);

pub(crate) fn server_request() -> LeafRequest {
    LeafRequest {
        common_name: "ip-127-0-1-4.ec2.internal".to_string(),
        organization: None,
        dns_names: vec![
            "localhost".to_string(),
            "ip-127-0-1-4.ec2.internal".to_string(),
        ],
        ips: vec!["127.0.1.4".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        usages: vec![Usage::ServerAuth, Usage::ClientAuth],
    }
}

/// Runs openssl in `dir`, asserting it succeeds; returns stdout.
pub(crate) fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn error_chain(err: &PkiError) -> String {
    one_line(err)
}

fn reason(r: Reuse) -> String {
    match r {
        Reuse::Reissue(why) => why,
        Reuse::Keep => panic!("expected Reissue, got Keep"),
    }
}
