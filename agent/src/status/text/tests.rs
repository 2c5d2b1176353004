//! The text report: every section, the verdict, and wrapped lists.

use super::*;
use crate::status::tests::{etcd, healthy};

#[test]
fn text_has_every_section_and_the_verdict() {
    let r = healthy().assessed();
    let text = render_text(&r);
    for part in [
        "node\n",
        "last bootstrap\n",
        "etcd: 3 members, leader i-0a, this member: voter",
        "certificates\n",
        "files\n",
        "seeded cluster: lowest instance id",
        "/etc/etcd/pki/server.crt  i-0a  until 2026-01-01  364 days   signed by /etc/etcd/pki/ca.crt",
        "self-signed",
    ] {
        assert!(text.contains(part), "{part:?} not in:\n{text}");
    }
    assert!(text.ends_with("healthy\n"), "{text}");

    let mut r = healthy();
    r.certificates[1].days_left = Some(20);
    etcd(&mut r).members[1].healthy = false;
    let text = render_text(&r.assessed());
    let warnings = text
        .find("warnings:\n  - /etc/etcd/pki/server.crt")
        .unwrap();
    let problems = text.find("problems:\n  - etcd member i-0b").unwrap();
    assert!(warnings < problems, "{text}");
    assert!(!text.contains("healthy\n"), "{text}");
    assert!(text.contains("DOWN"), "{text}");
}

#[test]
fn long_lists_wrap() {
    let items: Vec<String> = (0..5).map(|i| format!("/etc/file-{i}")).collect();
    assert_eq!(
        wrap(&items, "  ", 30),
        "  /etc/file-0, /etc/file-1,\n  /etc/file-2, /etc/file-3,\n  /etc/file-4\n"
    );
    assert_eq!(wrap(&items[..1], "  ", 5), "  /etc/file-0\n");
    assert_eq!(wrap(&[], "  ", 30), "");
}
