//! What `gather` makes of files, certificates, manifests and an etcd answer.

use std::net::Ipv4Addr;

use super::*;
use crate::etcd::model::MemberInfo;

#[test]
fn the_answer_names_leader_and_this_member() {
    let info = |id, name: &str, learner, healthy| MemberInfo {
        id,
        name: name.into(),
        peer_urls: vec![format!("https://10.0.1.{id}:2380")],
        client_urls: vec![format!("https://10.0.1.{id}:2379")],
        is_learner: learner,
        healthy,
    };
    let view = ClusterView {
        members: vec![info(1, "i-0a", false, true), info(2, "", true, false)],
        leader: Some(1),
    };
    let me = |name: &str, ip| Me {
        name: name.into(),
        ip: Ipv4Addr::new(10, 0, 1, ip),
        peer_url: format!("https://10.0.1.{ip}:2380"),
    };
    let r = answered(&view, Some(&me("i-0a", 1)));
    assert_eq!(r.leader.as_deref(), Some("i-0a"));
    assert_eq!(r.this_member, Some(MemberState::Voter));
    assert!(r.members[0].leader && !r.members[1].leader);
    // An unstarted learner is found by its peer URL.
    let r = answered(&view, Some(&me("i-0b", 2)));
    assert_eq!(r.this_member, Some(MemberState::Learner));
    let r = answered(&view, Some(&me("i-0c", 3)));
    assert_eq!(r.this_member, Some(MemberState::Absent));
    assert_eq!(answered(&view, None).this_member, None);
    let nameless = ClusterView {
        leader: Some(2),
        ..view
    };
    assert_eq!(
        answered(&nameless, None).leader.as_deref(),
        Some("0000000000000002")
    );
}

#[test]
fn client_files_missing_are_a_skip_unreadable_no_access() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let read = || match read_tls(&root, "/pki/ca.crt", "/pki/c.crt", "/pki/c.key") {
        Ok(_) => panic!("read files that are not there"),
        Err(e) => e,
    };
    let err = read();
    assert_eq!(
        err,
        (
            EtcdOutcome::Skipped,
            "/pki/ca.crt does not exist yet".to_string()
        )
    );
    for name in ["ca.crt", "c.crt"] {
        std::fs::create_dir_all(dir.path().join("pki")).unwrap();
        std::fs::write(dir.path().join("pki").join(name), "pem").unwrap();
    }
    // Root reads every file, so a directory stands in for a file it cannot read.
    std::fs::create_dir(dir.path().join("pki/c.key")).unwrap();
    let (outcome, note) = read();
    assert_eq!(outcome, EtcdOutcome::NoAccess);
    assert!(note.starts_with("cannot read /pki/c.key: "), "{note}");
}

#[test]
fn a_leaf_is_checked_against_the_cas_beside_it() {
    let ca = crate::pki::Ca::generate("etcd-ca").unwrap();
    let twin = crate::pki::Ca::generate("etcd-ca").unwrap();
    let req = crate::pki::LeafRequest {
        common_name: "i-0a".into(),
        organization: None,
        dns_names: vec!["localhost".into()],
        ips: vec![],
        usages: vec![crate::pki::Usage::ServerAuth],
    };
    let leaf = ca.issue(&req).unwrap();
    let files = vec![
        (
            "/etc/etcd/pki/ca.crt".to_string(),
            Some(ca.cert_pem().to_string()),
        ),
        (
            "/etc/etcd/pki/server.crt".to_string(),
            Some(leaf.cert_pem.clone()),
        ),
    ];
    let cas = ca_certificates(&files);
    assert_eq!(cas.len(), 1);
    let now = OffsetDateTime::now_utc();
    let report = cert_report("/etc/etcd/pki/server.crt", Some(&leaf.cert_pem), &cas, now);
    assert_eq!(report.signed_by.as_deref(), Some("/etc/etcd/pki/ca.crt"));
    assert_eq!(report.days_left, Some(364));
    assert_eq!(report.common_name.as_deref(), Some("i-0a"));
    let report = cert_report("/etc/etcd/pki/ca.crt", Some(ca.cert_pem()), &cas, now);
    assert_eq!(report.signed_by.as_deref(), Some("/etc/etcd/pki/ca.crt"));
    assert!(report.is_ca);
    let twin_cas = ca_certificates(&[(
        "/etc/etcd/pki/ca.crt".to_string(),
        Some(twin.cert_pem().to_string()),
    )]);
    let report = cert_report(
        "/etc/etcd/pki/server.crt",
        Some(&leaf.cert_pem),
        &twin_cas,
        now,
    );
    assert_eq!(report.signed_by, None);
    let report = cert_report("/etc/etcd/pki/x.crt", Some("junk"), &cas, now);
    assert!(report.error.is_some());
}
