//! [`check_reuse`]: each reason to reissue, in the order they are checked.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;

use super::*;
use crate::pki::ca::{BACKDATE, LEAF_VALIDITY};
use crate::pki::reuse::{check_reuse_at, describe};
use crate::pki::{check_reuse, inspect, Ca, Reuse};

#[test]
fn the_same_request_keeps_the_leaf() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let req = server_request();
    let leaf = ca.issue(&req).unwrap();
    assert_eq!(
        check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &req, RENEW),
        Reuse::Keep
    );
    // Order and case of names do not matter; asking for fewer usages does not either.
    let mut same = req.clone();
    same.dns_names.reverse();
    same.dns_names[0] = same.dns_names[0].to_uppercase();
    same.ips.reverse();
    same.usages = vec![Usage::ServerAuth];
    assert_eq!(
        check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &same, RENEW),
        Reuse::Keep
    );
}

#[test]
fn a_changed_ip_san_means_reissue() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let req = server_request();
    let leaf = ca.issue(&req).unwrap();
    let mut moved = req.clone();
    moved.ips[0] = "127.0.1.9".parse().unwrap();
    let why = reason(check_reuse(
        &leaf.cert_pem,
        &leaf.key_pem,
        &ca,
        &moved,
        RENEW,
    ));
    assert_eq!(why, "SANs changed: +127.0.1.9 -127.0.1.4");

    let mut renamed = req.clone();
    renamed.dns_names.push("etcd.internal".to_string());
    let why = reason(check_reuse(
        &leaf.cert_pem,
        &leaf.key_pem,
        &ca,
        &renamed,
        RENEW,
    ));
    assert_eq!(why, "SANs changed: +etcd.internal");

    let mut fewer = req.clone();
    fewer.ips.pop();
    let why = reason(check_reuse(
        &leaf.cert_pem,
        &leaf.key_pem,
        &ca,
        &fewer,
        RENEW,
    ));
    assert_eq!(why, "SANs changed: -127.0.0.1");
}

#[test]
fn a_changed_subject_means_reissue() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let req = server_request();
    let leaf = ca.issue(&req).unwrap();
    let mut other = req.clone();
    other.common_name = "etcd-1".to_string();
    let why = reason(check_reuse(
        &leaf.cert_pem,
        &leaf.key_pem,
        &ca,
        &other,
        RENEW,
    ));
    assert!(why.starts_with("subject CN changed"), "{why}");
    let mut org = req.clone();
    org.organization = Some("system:masters".to_string());
    let why = reason(check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &org, RENEW));
    assert!(why.starts_with("subject O changed"), "{why}");
}

#[test]
fn another_ca_means_reissue() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let req = server_request();
    let leaf = ca.issue(&req).unwrap();
    // Another CA with another name.
    let other = Ca::generate("other-ca").unwrap();
    let why = reason(check_reuse(
        &leaf.cert_pem,
        &leaf.key_pem,
        &other,
        &req,
        RENEW,
    ));
    assert!(
        why.starts_with("signed by another CA (issuer is CN=etcd-ca"),
        "{why}"
    );
    // Another CA with the same name: caught by the key identifier.
    let twin = Ca::generate("etcd-ca").unwrap();
    let why = reason(check_reuse(
        &leaf.cert_pem,
        &leaf.key_pem,
        &twin,
        &req,
        RENEW,
    ));
    assert_eq!(
        why,
        "signed by another CA (authority key identifier differs)"
    );
}

#[test]
fn a_forged_signature_is_caught() {
    // A leaf with the right issuer name and key identifiers, signed by another key: only
    // the signature check can tell.
    let ca = Ca::generate("etcd-ca").unwrap();
    let impostor_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let impostor = Issuer::from_ca_cert_pem(ca.cert_pem(), impostor_key).unwrap();
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "ip-127-0-1-4.ec2.internal".to_string(),
        "127.0.1.4".to_string(),
        "127.0.0.1".to_string(),
    ])
    .unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "ip-127-0-1-4.ec2.internal");
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + LEAF_VALIDITY;
    let forged = params.signed_by(&leaf_key, &impostor).unwrap();
    let why = reason(check_reuse(
        &forged.pem(),
        &leaf_key.serialize_pem(),
        &ca,
        &server_request(),
        RENEW,
    ));
    assert_eq!(
        why,
        "signed by another CA (signature does not verify with this CA's key)"
    );
}

#[test]
fn a_missing_usage_means_reissue() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let mut server_only = server_request();
    server_only.usages = vec![Usage::ServerAuth];
    let leaf = ca.issue(&server_only).unwrap();
    let why = reason(check_reuse(
        &leaf.cert_pem,
        &leaf.key_pem,
        &ca,
        &server_request(),
        RENEW,
    ));
    assert_eq!(why, "usages lack clientAuth");
}

#[test]
fn expiring_soon_means_reissue() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let req = server_request();
    let leaf = ca.issue(&req).unwrap();
    let why = reason(check_reuse(
        &leaf.cert_pem,
        &leaf.key_pem,
        &ca,
        &req,
        400 * DAY,
    ));
    let expiry = inspect(&leaf.cert_pem).unwrap().not_after.date();
    assert_eq!(why, format!("expires {expiry}, within 400 days"));

    let info = inspect(&leaf.cert_pem).unwrap();
    let later = info.not_after + time::Duration::HOUR;
    let why = reason(check_reuse_at(
        &leaf.cert_pem,
        &leaf.key_pem,
        &ca,
        &req,
        RENEW,
        later,
    ));
    assert_eq!(why, format!("expired {expiry}"));
    let earlier = info.not_before - time::Duration::HOUR;
    let why = reason(check_reuse_at(
        &leaf.cert_pem,
        &leaf.key_pem,
        &ca,
        &req,
        RENEW,
        earlier,
    ));
    assert!(why.starts_with("not valid before"), "{why}");
}

#[test]
fn a_key_that_is_not_the_certificates_means_reissue() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let req = server_request();
    let one = ca.issue(&req).unwrap();
    let two = ca.issue(&req).unwrap();
    let why = reason(check_reuse(&one.cert_pem, &two.key_pem, &ca, &req, RENEW));
    assert_eq!(why, "key does not match the certificate");
}

#[test]
fn garbage_files_mean_reissue() {
    let ca = Ca::generate("etcd-ca").unwrap();
    let req = server_request();
    let leaf = ca.issue(&req).unwrap();
    let why = reason(check_reuse("", &leaf.key_pem, &ca, &req, RENEW));
    assert!(
        why.starts_with("existing certificate: not valid PEM"),
        "{why}"
    );
    let why = reason(check_reuse(&leaf.cert_pem, "garbage", &ca, &req, RENEW));
    assert!(why.starts_with("existing key: not valid PEM"), "{why}");
    let truncated = &leaf.cert_pem[..leaf.cert_pem.len() / 2];
    let why = reason(check_reuse(truncated, &leaf.key_pem, &ca, &req, RENEW));
    assert!(why.starts_with("existing certificate"), "{why}");
    let why = reason(check_reuse(&leaf.key_pem, &leaf.cert_pem, &ca, &req, RENEW));
    assert!(
        why.starts_with("existing certificate: PEM block is"),
        "{why}"
    );
    // A CA certificate where a leaf belongs.
    let why = reason(check_reuse(ca.cert_pem(), &ca.key_pem(), &ca, &req, RENEW));
    assert_eq!(why, "is a CA certificate");
}

#[test]
fn durations_read_as_people_say_them() {
    assert_eq!(describe(RENEW), "30 days");
    assert_eq!(describe(Duration::from_secs(7200)), "2 hours");
    assert_eq!(describe(Duration::from_secs(90)), "90 seconds");
}
