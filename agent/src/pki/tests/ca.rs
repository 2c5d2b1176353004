//! [`Ca`]: what it issues, as openssl sees it, and which CAs it accepts.

use std::collections::BTreeSet;
use std::fs;

use time::OffsetDateTime;

use super::*;
use crate::pki::{check_reuse, inspect, Ca, PkiError, Reuse};

#[test]
fn openssl_accepts_an_issued_server_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("etcd-ca").unwrap();
    let leaf = ca.issue(&server_request()).unwrap();
    fs::write(dir.path().join("ca.crt"), ca.cert_pem()).unwrap();
    fs::write(dir.path().join("leaf.crt"), &leaf.cert_pem).unwrap();
    fs::write(dir.path().join("leaf.key"), &leaf.key_pem).unwrap();

    let verified = openssl(
        dir.path(),
        &["verify", "-x509_strict", "-CAfile", "ca.crt", "leaf.crt"],
    );
    assert_eq!(verified.trim(), "leaf.crt: OK");
    for purpose in ["sslserver", "sslclient"] {
        let out = openssl(
            dir.path(),
            &[
                "verify", "-purpose", purpose, "-CAfile", "ca.crt", "leaf.crt",
            ],
        );
        assert_eq!(out.trim(), "leaf.crt: OK", "{purpose}");
    }

    let ext = openssl(
        dir.path(),
        &[
            "x509",
            "-in",
            "leaf.crt",
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage,basicConstraints,keyUsage",
        ],
    );
    for want in [
        "DNS:localhost",
        "DNS:ip-127-0-1-4.ec2.internal",
        "IP Address:127.0.1.4",
        "IP Address:127.0.0.1",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        "CA:FALSE",
        "Digital Signature, Key Encipherment",
    ] {
        assert!(ext.contains(want), "{want:?} missing from:\n{ext}");
    }
    let text = openssl(dir.path(), &["x509", "-in", "leaf.crt", "-noout", "-text"]);
    assert!(
        text.contains("X509v3 Subject Key Identifier"),
        "no subject key id:\n{text}"
    );
    assert!(
        text.contains("X509v3 Authority Key Identifier"),
        "no authority key id:\n{text}"
    );
    assert!(text.contains("prime256v1"), "not P-256:\n{text}");
    let subject = openssl(
        dir.path(),
        &[
            "x509", "-in", "leaf.crt", "-noout", "-subject", "-nameopt", "RFC2253",
        ],
    );
    assert_eq!(subject.trim(), "subject=CN=ip-127-0-1-4.ec2.internal");

    // The key is the certificate's, and PKCS#8.
    assert!(leaf.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let from_key = openssl(dir.path(), &["pkey", "-in", "leaf.key", "-pubout"]);
    let from_cert = openssl(
        dir.path(),
        &["x509", "-in", "leaf.crt", "-pubkey", "-noout"],
    );
    assert_eq!(from_key, from_cert);
    assert!(from_key.starts_with("-----BEGIN PUBLIC KEY-----"));
}

#[test]
fn organization_goes_into_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("kubernetes").unwrap();
    let req = LeafRequest {
        common_name: "kube-apiserver-etcd-client".to_string(),
        organization: Some("system:masters".to_string()),
        dns_names: vec![],
        ips: vec![],
        usages: vec![Usage::ClientAuth],
    };
    let leaf = ca.issue(&req).unwrap();
    fs::write(dir.path().join("leaf.crt"), &leaf.cert_pem).unwrap();
    let subject = openssl(
        dir.path(),
        &[
            "x509", "-in", "leaf.crt", "-noout", "-subject", "-nameopt", "RFC2253",
        ],
    );
    assert_eq!(
        subject.trim(),
        "subject=O=system:masters,CN=kube-apiserver-etcd-client"
    );
    let info = inspect(&leaf.cert_pem).unwrap();
    assert_eq!(info.organizations, vec!["system:masters".to_string()]);
    assert!(info.client_auth && !info.server_auth);
    assert!(info.dns_names.is_empty() && info.ips.is_empty());
}

#[test]
fn validity_is_a_year_for_leaves_and_ten_years_for_the_ca() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let leaf = ca.issue(&server_request()).unwrap();
    let now = OffsetDateTime::now_utc();
    let info = inspect(&leaf.cert_pem).unwrap();
    let ahead = info.not_after - now;
    assert!((ahead - 365 * DAY).abs() < time::Duration::DAY, "{ahead}");
    let back = now - info.not_before;
    assert!(
        back >= time::Duration::minutes(4) && back <= time::Duration::minutes(6),
        "{back}"
    );
    let ca_info = inspect(ca.cert_pem()).unwrap();
    let ca_ahead = ca_info.not_after - now;
    assert!(
        (ca_ahead - 3650 * DAY).abs() < time::Duration::DAY,
        "{ca_ahead}"
    );
    assert!(ca_info.is_ca);
    assert_eq!(ca_info.subject_cn.as_deref(), Some("etcd-ca"));
    assert_eq!(info.issuer_dn, ca_info.subject_dn);
    assert_eq!(
        info.subject_cn.as_deref(),
        Some("ip-127-0-1-4.ec2.internal")
    );
    assert_eq!(
        info.ips,
        BTreeSet::from(["127.0.1.4".parse().unwrap(), "127.0.0.1".parse().unwrap()])
    );
    assert!(info.server_auth && info.client_auth && !info.is_ca);
    // Serials are random, 16 bytes, positive.
    let other = inspect(&ca.issue(&server_request()).unwrap().cert_pem).unwrap();
    assert_ne!(info.serial, other.serial);
    assert_eq!(info.serial.split(':').count(), 16, "{}", info.serial);
}

#[test]
fn a_ca_round_trips_through_its_pem() {
    let ca = Ca::generate("etcd-ca").unwrap();
    assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let loaded = Ca::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(loaded.key_pem(), ca.key_pem());
    assert_eq!(loaded.subject_dn(), "CN=etcd-ca");
    // A leaf issued by the reloaded CA is one the original accepts, and the other way round.
    let leaf = loaded.issue(&server_request()).unwrap();
    let req = server_request();
    assert_eq!(
        check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &req, RENEW),
        Reuse::Keep
    );
    let leaf = ca.issue(&req).unwrap();
    assert_eq!(
        check_reuse(&leaf.cert_pem, &leaf.key_pem, &loaded, &req, RENEW),
        Reuse::Keep
    );
    // Debug never shows the key.
    assert!(!format!("{loaded:?}").contains("PRIVATE"));
    assert!(!format!("{leaf:?}").contains("PRIVATE"));
}

#[test]
fn a_ca_key_that_is_not_the_certificates_is_rejected() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let other = Ca::generate("etcd-ca").unwrap();
    let err = Ca::from_pem(ca.cert_pem(), &other.key_pem()).unwrap_err();
    assert!(matches!(err, PkiError::CaKeyMismatch), "{err:?}");
    assert_eq!(err.to_string(), "CA key does not match the CA certificate");
}

#[test]
fn a_leaf_is_not_accepted_as_a_ca() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let leaf = ca.issue(&server_request()).unwrap();
    let err = Ca::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
    assert!(matches!(err, PkiError::NotCa(_)), "{err:?}");
    assert!(err.to_string().contains("CA:TRUE"), "{err}");
}

#[test]
fn garbage_pem_is_an_error_naming_what_was_bad() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let err = Ca::from_pem("garbage", &ca.key_pem()).unwrap_err();
    assert!(matches!(err, PkiError::CaCert(_)), "{err:?}");
    assert_eq!(err.to_string(), "cannot parse the CA certificate");
    assert!(
        error_chain(&err).contains("not valid PEM"),
        "{}",
        error_chain(&err)
    );

    let err = Ca::from_pem(ca.cert_pem(), "garbage").unwrap_err();
    assert_eq!(err.to_string(), "cannot parse the CA key");

    // A key where a certificate belongs, and the other way round.
    let err = Ca::from_pem(&ca.key_pem(), &ca.key_pem()).unwrap_err();
    assert_eq!(
        error_chain(&err),
        "cannot parse the CA certificate: PEM block is \"PRIVATE KEY\", expected \"CERTIFICATE\""
    );
    let err = Ca::from_pem(ca.cert_pem(), ca.cert_pem()).unwrap_err();
    assert!(matches!(err, PkiError::CaKey(_)), "{err:?}");

    // Not PKCS#8.
    let sec1 = ca.key_pem().replace("PRIVATE KEY", "EC PRIVATE KEY");
    let err = Ca::from_pem(ca.cert_pem(), &sec1).unwrap_err();
    assert!(
        error_chain(&err).contains("\"EC PRIVATE KEY\", expected \"PRIVATE KEY\""),
        "{}",
        error_chain(&err)
    );

    // PEM framing around bytes that are not a certificate.
    let bad = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
    let err = Ca::from_pem(bad, &ca.key_pem()).unwrap_err();
    assert!(
        error_chain(&err).contains("not a valid X.509 certificate"),
        "{}",
        error_chain(&err)
    );
    let err = inspect(bad).unwrap_err();
    assert_eq!(err.to_string(), "cannot parse certificate");
}

/// A self-signed CA made by openssl in `dir` with the key `-newkey` and its options give
/// (`rsa:2048`; `ec -pkeyopt ec_paramgen_curve:P-384`): its certificate and PKCS#8 key, PEM.
fn openssl_ca(dir: &std::path::Path, newkey: &[&str]) -> (String, String) {
    let mut args = vec!["req", "-x509", "-newkey"];
    args.extend(newkey);
    args.extend([
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/O=tn/CN=openssl-ca",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
    let cert = fs::read_to_string(dir.join("ca.crt")).unwrap();
    let key = fs::read_to_string(dir.join("ca.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    (cert, key)
}

/// The leaf `ca` issues verifies with openssl and is kept by `check_reuse`.
fn signs_leaves_openssl_accepts(ca: &Ca, dir: &std::path::Path) {
    let req = server_request();
    let leaf = ca.issue(&req).unwrap();
    fs::write(dir.join("leaf.crt"), &leaf.cert_pem).unwrap();
    let verified = openssl(
        dir,
        &["verify", "-x509_strict", "-CAfile", "ca.crt", "leaf.crt"],
    );
    assert_eq!(verified.trim(), "leaf.crt: OK");
    assert_eq!(
        check_reuse(&leaf.cert_pem, &leaf.key_pem, ca, &req, RENEW),
        Reuse::Keep
    );
}

#[test]
fn an_rsa_ca_made_by_openssl_signs_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_ca(dir.path(), &["rsa:2048"]);
    let ca = Ca::from_pem(&cert, &key).unwrap();
    signs_leaves_openssl_accepts(&ca, dir.path());
    // A leaf of another CA is not this CA's.
    let req = server_request();
    let other = Ca::generate("rsa-ca").unwrap();
    let leaf = other.issue(&req).unwrap();
    assert!(
        reason(check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &req, RENEW))
            .starts_with("signed by another CA")
    );
}

/// The key types kubeadm and company PKIs use sign leaves; a P-521 key, which the
/// cryptography library does not sign with, is refused when the CA is loaded, by name.
#[test]
fn ca_keys_of_each_supported_type_sign_and_p521_is_refused() {
    let supported: [&[&str]; 3] = [
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        &["ed25519"],
        &["rsa:3072"],
    ];
    for newkey in supported {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = openssl_ca(dir.path(), newkey);
        let ca = Ca::from_pem(&cert, &key).unwrap_or_else(|e| panic!("{newkey:?}: {e:?}"));
        signs_leaves_openssl_accepts(&ca, dir.path());
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_ca(dir.path(), &["ec", "-pkeyopt", "ec_paramgen_curve:P-521"]);
    let err = Ca::from_pem(&cert, &key).unwrap_err();
    assert!(matches!(err, PkiError::CaKey(_)), "{err:?}");
    assert!(
        error_chain(&err).starts_with("cannot parse the CA key"),
        "{}",
        error_chain(&err)
    );
}

#[test]
fn a_small_rsa_ca_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_ca(dir.path(), &["rsa:1024"]);
    let err = Ca::from_pem(&cert, &key).unwrap_err();
    assert!(matches!(err, PkiError::WeakCaKey { bits: 1024 }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the CA key is RSA 1024 bits; at least 2048 are required"
    );
}

#[test]
fn a_ca_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Ca>();
    shareable::<PkiError>();
}
