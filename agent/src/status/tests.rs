//! A healthy etcd node's report, the baseline the tests of every part change, and the JSON
//! schema.

use super::*;
use crate::config::Role;

pub(super) fn member(
    id: u64,
    name: &str,
    learner: bool,
    healthy: bool,
    leader: bool,
) -> MemberReport {
    MemberReport {
        id: format!("{id:016x}"),
        name: name.to_string(),
        peer_urls: vec![format!("https://10.0.1.{id}:2380")],
        client_urls: vec![format!("https://10.0.1.{id}:2379")],
        learner,
        healthy,
        leader,
    }
}

fn cert(path: &str, days_left: i64, signed: bool) -> CertReport {
    CertReport {
        path: path.to_string(),
        error: None,
        subject: Some("CN=i-0a".into()),
        common_name: Some("i-0a".into()),
        issuer: Some("CN=etcd-ca".into()),
        is_ca: false,
        not_before: Some("2025-01-01T00:00:00Z".into()),
        not_after: Some("2026-01-01T00:00:00Z".into()),
        days_left: Some(days_left),
        not_yet_valid: false,
        dns_names: vec!["localhost".into()],
        ips: vec!["10.0.1.1".into()],
        signed_by: signed.then(|| "/etc/etcd/pki/ca.crt".to_string()),
    }
}

/// A healthy etcd node: bootstrapped, files present, fresh certs, 3 healthy voters.
pub(super) fn healthy() -> Report {
    Report {
        schema: SCHEMA,
        agent_version: "0.1.0".into(),
        checked_at: "2025-06-01T00:00:00Z".into(),
        node: NodeReport {
            role: "etcd".into(),
            cluster: "prod".into(),
            instance_id: Some("i-0a".into()),
            private_ip: Some(Ipv4Addr::new(10, 0, 1, 1)),
            hostname: Some("ip-10-0-1-1.ec2.internal".into()),
            availability_zone: Some("eu-west-1a".into()),
            region: Some("eu-west-1".into()),
            asg: Some("prod-etcd".into()),
        },
        bootstrap: Some(BootstrapReport {
            agent_version: "0.1.0".into(),
            started_at: "2025-06-01T00:00:00Z".into(),
            finished_at: Some("2025-06-01T00:00:02Z".into()),
            ok: true,
            error: None,
            decisions: vec![Decision {
                what: "seeded cluster".into(),
                why: "lowest instance id".into(),
            }],
            files_written: vec!["/etc/etcd/etcd.env".into()],
            timings_ms: BTreeMap::from([("identify".into(), 12)]),
            aws_calls: 4,
            aws_calls_by_service: BTreeMap::from([("s3".into(), 4)]),
            last_known_good: None,
            bootstrap_token_expires: None,
            bootstrap_token_days_left: None,
        }),
        state_error: None,
        etcd: Some(EtcdReport {
            outcome: EtcdOutcome::Answered,
            note: None,
            endpoints: vec!["https://10.0.1.1:2379".into()],
            members: vec![
                member(1, "i-0a", false, true, true),
                member(2, "i-0b", false, true, false),
                member(3, "i-0c", false, true, false),
            ],
            leader: Some("i-0a".into()),
            this_member: Some(MemberState::Voter),
            elapsed_ms: 20,
        }),
        certificates: vec![
            CertReport {
                is_ca: true,
                signed_by: Some("/etc/etcd/pki/ca.crt".into()),
                ..cert("/etc/etcd/pki/ca.crt", 3600, true)
            },
            cert("/etc/etcd/pki/server.crt", 364, true),
        ],
        files: crate::files::expected(Role::Etcd, true)
            .into_iter()
            .map(|p| FileReport {
                path: p.into(),
                exists: true,
                mode: Some(if p.ends_with(".key") { "0600" } else { "0644" }.into()),
            })
            .collect(),
        reboot: None,
        reconcile: None,
        backup: None,
        healthy: false,
        problems: Vec::new(),
    }
}

pub(super) fn etcd(r: &mut Report) -> &mut EtcdReport {
    r.etcd.as_mut().unwrap()
}

#[test]
fn json_has_the_schema_and_every_section() {
    let r = healthy().assessed();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(json["healthy"], true);
    assert_eq!(json["etcd"]["outcome"], "answered");
    assert_eq!(json["etcd"]["this_member"], "voter");
    assert_eq!(json["etcd"]["members"][0]["id"], "0000000000000001");
    assert_eq!(json["node"]["private_ip"], "10.0.1.1");
    assert_eq!(json["bootstrap"]["decisions"][0]["what"], "seeded cluster");
    let mut r = healthy();
    r.certificates[1].days_left = Some(1);
    let json = serde_json::to_value(r.assessed()).unwrap();
    assert_eq!(json["problems"][0]["severity"], "error");
    assert_eq!(json["problems"][0]["kind"], "cert_expires_soon");
}
