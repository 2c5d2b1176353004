//! [`ensure_leaf`]: issue, keep and reissue on disk, with the files' modes.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::pki::{ensure_leaf, inspect, Ca, LeafOutcome, PkiError};

#[test]
fn ensure_leaf_issues_keeps_and_reissues() {
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("etc/etcd/pki/server.crt");
    let key_path = dir.path().join("etc/etcd/pki/server.key");
    let ca = Ca::generate("etcd-ca").unwrap();
    let req = server_request();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let first = ensure_leaf(&cert_path, &key_path, &ca, &req, RENEW).unwrap();
    assert_eq!(
        first,
        LeafOutcome::Issued {
            why: "no certificate yet".to_string()
        }
    );
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(mode(&cert_path), 0o644);
    let cert1 = fs::read(&cert_path).unwrap();
    let key1 = fs::read(&key_path).unwrap();
    fs::write(dir.path().join("ca.crt"), ca.cert_pem()).unwrap();
    let verified = openssl(
        dir.path(),
        &["verify", "-CAfile", "ca.crt", cert_path.to_str().unwrap()],
    );
    assert!(verified.trim().ends_with(": OK"), "{verified}");

    let second = ensure_leaf(&cert_path, &key_path, &ca, &req, RENEW).unwrap();
    assert_eq!(second, LeafOutcome::Kept);
    assert_eq!(fs::read(&cert_path).unwrap(), cert1);
    assert_eq!(fs::read(&key_path).unwrap(), key1);

    let mut moved = req.clone();
    moved.ips[0] = "127.0.1.9".parse().unwrap();
    let third = ensure_leaf(&cert_path, &key_path, &ca, &moved, RENEW).unwrap();
    assert_eq!(
        third,
        LeafOutcome::Issued {
            why: "SANs changed: +127.0.1.9 -127.0.1.4".to_string()
        }
    );
    assert_ne!(fs::read(&cert_path).unwrap(), cert1);
    assert_ne!(fs::read(&key_path).unwrap(), key1);
    assert_eq!(mode(&key_path), 0o600);
    let info = inspect(&fs::read_to_string(&cert_path).unwrap()).unwrap();
    assert!(info.ips.contains(&"127.0.1.9".parse::<IpAddr>().unwrap()));

    // A lost key means a new pair.
    fs::remove_file(&key_path).unwrap();
    let fourth = ensure_leaf(&cert_path, &key_path, &ca, &moved, RENEW).unwrap();
    assert_eq!(
        fourth,
        LeafOutcome::Issued {
            why: "no key yet".to_string()
        }
    );
    assert_eq!(
        ensure_leaf(&cert_path, &key_path, &ca, &moved, RENEW).unwrap(),
        LeafOutcome::Kept
    );
}

#[test]
fn ensure_leaf_reports_files_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("etcd-ca").unwrap();
    // A directory where the certificate should be.
    let cert_path = dir.path().join("server.crt");
    fs::create_dir(&cert_path).unwrap();
    let err = ensure_leaf(
        &cert_path,
        &dir.path().join("server.key"),
        &ca,
        &server_request(),
        RENEW,
    )
    .unwrap_err();
    assert!(matches!(err, PkiError::Read { .. }), "{err:?}");
    assert!(err.to_string().starts_with("reading "), "{err}");
}
