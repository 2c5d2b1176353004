//! `tn-agent status` against real etcd, moto and fake IMDS servers: a healthy cluster, a member
//! down (answering within 3 s even on the node whose etcd is down), certificates close to
//! expiry or signed by another CA, and a node that was never bootstrapped.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use tn_agent::pki::{Ca, Usage};
use tn_world::{Agent, Node, Run};

use crate::support::cluster::{boot_cluster, world_with_etcd_asg, ASG};
use crate::support::report::Report;

/// SPEC §8 via the brief: status answers within 3 s, even when etcd is down.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
const DAY: Duration = Duration::from_secs(86_400);

/// `status --json` on `node`: the run, the report and how long it took. Checks that the output
/// is a report, that it took less than 3 s and that it did not ask IMDS.
fn status_json(node: &Node) -> (Run, Report, Duration) {
    let imds_before = node.imds.requests().len();
    let started = Instant::now();
    let run = node.run(&["status", "--json"]).unwrap();
    let took = started.elapsed();
    let report = Report::of(&run);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(took < ANSWER_WITHIN, "status took {took:?}");
    assert_eq!(
        node.imds.requests().len(),
        imds_before,
        "status must not ask IMDS"
    );
    (run, report, took)
}

#[test]
fn a_healthy_cluster() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    let _etcd = boot_cluster(&world, &nodes);
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();

    let run = nodes[0].run(&["status"]).unwrap();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let leader_line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("etcd: 3 members, leader i-"))
        .unwrap_or_else(|| panic!("no etcd summary:\n{}", run.stdout));
    assert!(
        ids.iter()
            .any(|id| leader_line.contains(&format!("leader {id}"))),
        "{leader_line}"
    );
    assert!(leader_line.contains("this member: voter"), "{leader_line}");
    for section in ["node\n", "last bootstrap\n", "certificates\n", "files\n"] {
        assert!(run.stdout.contains(section), "{section:?}:\n{}", run.stdout);
    }
    assert!(run.stdout.ends_with("healthy\n"), "{}", run.stdout);

    for node in &nodes {
        let (run, report, _) = status_json(node);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert_eq!(report.schema, 1);
        assert!(report.healthy);
        assert_eq!(report.problems, vec![]);
        assert_eq!(report.node.role, "etcd");
        assert_eq!(report.node.instance_id.as_ref(), Some(&node.id));
        assert_eq!(report.node.private_ip, Some(node.ip));
        assert_eq!(report.node.asg.as_deref(), Some(ASG));
        let bootstrap = report.bootstrap.as_ref().unwrap();
        assert!(bootstrap.ok);
        assert!(!bootstrap.decisions.is_empty());

        let etcd = report.etcd();
        assert_eq!(etcd.outcome, "answered");
        assert_eq!(etcd.this_member.as_deref(), Some("voter"));
        let members = &etcd.members;
        let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ids);
        for m in members {
            assert!(m.healthy, "{m:?}");
            assert!(!m.learner, "{m:?}");
            assert_eq!(m.id.len(), 16, "{m:?}");
        }
        let leader = etcd.leader.as_deref().unwrap();
        assert!(ids.contains(&leader), "{leader}");
        assert_eq!(
            members.iter().filter(|m| m.leader).count(),
            1,
            "{members:?}"
        );

        let certs = &report.certificates;
        let paths: Vec<&str> = certs.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/etcd/pki/ca.crt",
                "/etc/etcd/pki/peer.crt",
                "/etc/etcd/pki/server.crt"
            ]
        );
        for c in certs {
            assert_eq!(
                c.signed_by.as_deref(),
                Some("/etc/etcd/pki/ca.crt"),
                "{c:?}"
            );
            let days = c.days_left.unwrap();
            if c.is_ca {
                assert!((3640..=3650).contains(&days), "{c:?}");
            } else {
                assert!((364..=365).contains(&days), "{c:?}");
                assert_eq!(c.common_name.as_ref(), Some(&node.id));
                assert!(c.ips.contains(&node.ip.to_string()));
            }
        }
        let files = &report.files;
        assert_eq!(files.len(), 6, "{files:?}");
        for f in files {
            assert!(f.exists, "{f:?}");
        }
        let key = files
            .iter()
            .find(|f| f.path == "/etc/etcd/pki/server.key")
            .unwrap();
        assert_eq!(key.mode.as_deref(), Some("0600"));
    }
}

#[test]
fn a_member_down() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    let mut etcd = boot_cluster(&world, &nodes);
    let down = &nodes[2];
    etcd[2].kill();

    // A live node: unhealthy, and it names the member that is down.
    let (run, report, _) = status_json(&nodes[0]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(!report.healthy);
    let found = &report.problems;
    assert!(
        found.iter().any(|p| p.severity == "error"
            && p.kind == "etcd_member_down"
            && p.message.starts_with(&format!("etcd member {} (", down.id))),
        "{found:#?}"
    );
    assert!(
        !found.iter().any(|p| p.kind == "etcd_no_quorum"),
        "2 of 3 keep quorum: {found:#?}"
    );
    let members = &report.etcd().members;
    let dead = members.iter().find(|m| m.name == down.id);
    assert!(!dead.unwrap().healthy);
    let run = nodes[0].run(&["status"]).unwrap();
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("problems:\n"), "{}", run.stdout);
    assert!(run.stdout.contains("DOWN"), "{}", run.stdout);

    // The node whose etcd is down: unhealthy, and it says so within 3 s.
    let (run, report, took) = status_json(down);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    eprintln!("status on the node whose etcd is down took {took:?}");
    let found = &report.problems;
    assert!(
        found.iter().any(|p| p.kind == "etcd_member_down"
            && p.message
                .starts_with(&format!("this node's etcd member {}", down.id))),
        "{found:#?}"
    );
    let started = Instant::now();
    let run = down.run(&["status"]).unwrap();
    assert!(started.elapsed() < ANSWER_WITHIN, "{:?}", started.elapsed());
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains(&format!("this node's etcd member {}", down.id)),
        "{}",
        run.stdout
    );

    // A member that hangs (its client port accepts connections but never answers, as a
    // stopped etcd process would): still named, still within 3 s on every node.
    let _hung = std::net::TcpListener::bind((down.ip, 2379)).unwrap();
    let (run, report, took) = status_json(&nodes[1]);
    eprintln!("status beside a hung member took {took:?}");
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == "etcd_member_down" && p.message.contains(&down.id)),
        "{report:?}"
    );
    let (run, report, took) = status_json(down);
    eprintln!("status on the hung member took {took:?}");
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(report.etcd().outcome, "answered", "{report:?}");

    // Everything down: no member answers, still within 3 s.
    etcd[0].kill();
    etcd[1].kill();
    let (run, report, _) = status_json(&nodes[0]);
    assert_eq!(run.code, 1);
    assert_eq!(report.etcd().outcome, "no_answer");
    assert_eq!(report.kinds(), ["etcd_unreachable"]);
}

/// Replaces a node's leaf (cert and key) with one from `ca` valid for `valid_for` from now.
fn replace_leaf(node: &Node, ca: &Ca, name: &str, valid_for: Duration) {
    let ident = node
        .state()
        .unwrap()
        .identity
        .expect("state.json has the identity");
    let req = tn_agent::etcd::tls::leaf_request(&ident, vec![Usage::ServerAuth, Usage::ClientAuth]);
    let now = SystemTime::now();
    let leaf = ca
        .issue_with_validity(&req, now - Duration::from_secs(300), now + valid_for)
        .unwrap();
    let write = |path: &Path, text: &str| {
        tn_agent::fsutil::write_atomic(path, text.as_bytes(), 0o600).unwrap()
    };
    write(
        &node.path(&format!("/etc/etcd/pki/{name}.key")),
        &leaf.key_pem,
    );
    write(
        &node.path(&format!("/etc/etcd/pki/{name}.crt")),
        &leaf.cert_pem,
    );
}

#[test]
fn certificates_close_to_expiry_or_of_another_ca() {
    let (world, ca, nodes) = world_with_etcd_asg(1);
    let _etcd = boot_cluster(&world, &nodes);
    let node = &nodes[0];
    let (run, _, _) = status_json(node);
    assert_eq!(run.code, 0, "{}", run.stdout);

    // 20 days: a warning, still healthy.
    replace_leaf(node, &ca, "server", 20 * DAY + Duration::from_secs(3600));
    let (run, report, _) = status_json(node);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let found = &report.problems;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, "warning");
    assert_eq!(found[0].kind, "cert_expiring");
    assert!(
        found[0]
            .message
            .starts_with("/etc/etcd/pki/server.crt expires in 20 days"),
        "{}",
        found[0].message
    );
    let text = node.run(&["status"]).unwrap();
    assert_eq!(text.code, 0);
    assert!(text
        .stdout
        .contains("warnings:\n  - /etc/etcd/pki/server.crt"));
    assert!(text.stdout.ends_with("healthy\n"), "{}", text.stdout);

    // 3 days: a problem. etcd still answers with the new certificate (same CA).
    replace_leaf(node, &ca, "server", 3 * DAY + Duration::from_secs(3600));
    let (run, report, _) = status_json(node);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(report.etcd().outcome, "answered");
    let found = &report.problems;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].kind, "cert_expires_soon");
    assert!(
        found[0]
            .message
            .starts_with("/etc/etcd/pki/server.crt expires in 3 days ("),
        "{}",
        found[0].message
    );
    let server = report.certificate("/etc/etcd/pki/server.crt");
    assert_eq!(server.days_left, Some(3));

    // Signed by another CA with the same name: only the signature tells.
    replace_leaf(node, &ca, "server", 365 * DAY);
    let twin = Ca::generate("etcd-ca").unwrap();
    replace_leaf(node, &twin, "peer", 365 * DAY);
    let (run, report, _) = status_json(node);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let found = &report.problems;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].kind, "cert_not_signed");
    assert!(
        found[0].message.starts_with(
            "/etc/etcd/pki/peer.crt is not signed by a CA certificate under /etc/etcd/pki"
        ),
        "{}",
        found[0].message
    );
    let text = node.run(&["status"]).unwrap();
    assert!(
        text.stdout.contains("NOT SIGNED by a CA here"),
        "{}",
        text.stdout
    );
}

/// `tn-agent --root <root> <args>`, with IMDS and AWS pointed at a closed port: status must
/// not need them.
fn agent_in(root: &Path, args: &[&str]) -> Run {
    Agent::new()
        .unwrap()
        .root(root)
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .run(args)
        .unwrap()
}

#[test]
fn a_node_never_bootstrapped() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("etc/tn-agent/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let cases = [
        ("etcd", ""),
        ("worker", "[kubernetes]\nversion = \"v1.31.4\"\n"),
        (
            "master",
            "[etcd]\nasg = \"demo-etcd\"\n[kubernetes]\nversion = \"v1.31.4\"\n",
        ),
    ];
    for (role, extra) in cases {
        std::fs::write(
            &config,
            format!(
                "cluster = \"demo\"\nrole = \"{role}\"\nstate_bucket = \"demo-tn-state\"\ninternal_domain = \"demo.int\"\n{extra}"
            ),
        )
        .unwrap();
        let run = agent_in(root.path(), &["status"]);
        assert_eq!(run.code, 1, "{role}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{role}: {}", run.stderr);
        assert!(
            run.stdout
                .contains("problems:\n  - this node was never bootstrapped"),
            "{role}: {}",
            run.stdout
        );
        let run = agent_in(root.path(), &["status", "--json"]);
        assert_eq!(run.code, 1, "{role}: {run:?}");
        let report = Report::of(&run);
        assert_eq!(report.schema, 1);
        assert_eq!(report.node.role, role);
        assert!(report.bootstrap.is_none());
        assert_eq!(report.node.instance_id, None);
        assert_eq!(report.kinds(), ["never_bootstrapped"], "{role}");
        if role == "worker" {
            assert!(report.etcd.is_none());
        } else {
            assert_eq!(report.etcd().outcome, "skipped", "{role}");
        }
        assert!(report.files.iter().all(|f| !f.exists));
    }

    // A state file that is not JSON is reported, not a crash.
    let state = root.path().join("var/lib/tn-agent/state.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    std::fs::write(&state, "{ not json").unwrap();
    let run = agent_in(root.path(), &["status", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(Report::of(&run).kinds(), ["state_unreadable"]);

    // No config at all: bad input, exit 2, nothing on stdout.
    let empty = tempfile::tempdir().unwrap();
    let run = agent_in(empty.path(), &["status"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// Writes `text` at a node path under `root`.
fn put(root: &Path, node_path: &str, text: &str) {
    let path = root.join(node_path.trim_start_matches('/'));
    tn_agent::fsutil::write_atomic(&path, text.as_bytes(), 0o644).unwrap();
}

#[test]
fn a_master_sees_etcd_through_its_apiserver_client_certificate() {
    let (world, etcd_ca, nodes) = world_with_etcd_asg(1);
    let _etcd = boot_cluster(&world, &nodes);
    // A master's files as its bootstrap lays them out (kubeadm's): the etcd CA in pki/etcd/,
    // the apiserver's etcd client certificate beside the cluster CA, the etcd servers it gave
    // the apiserver recorded in state.json.
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    put(
        root,
        "/etc/tn-agent/config.toml",
        "cluster = \"demo\"\nrole = \"master\"\nstate_bucket = \"demo-tn-state\"\n\
         internal_domain = \"demo.int\"\n[etcd]\nasg = \"demo-etcd\"\n\
         [kubernetes]\nversion = \"v1.31.4\"\n",
    );
    let mut state = tn_agent::state::BootState::new("demo", tn_agent::config::Role::Master);
    state.ok = true;
    state.finished_at = Some(state.started_at.clone());
    state.etcd_servers = vec![nodes[0].client_url()];
    state
        .save(&tn_agent::fsutil::Root::new(root.to_path_buf()))
        .unwrap();
    let kube_ca = Ca::generate("kubernetes").unwrap();
    put(root, "/etc/kubernetes/pki/ca.crt", kube_ca.cert_pem());
    for file in [
        "/var/lib/kubelet/config.yaml",
        "/etc/kubernetes/kubelet.env",
        "/etc/kubernetes/kubelet.conf",
    ] {
        put(root, file, "# placeholder\n");
    }
    put(root, "/etc/kubernetes/pki/etcd/ca.crt", etcd_ca.cert_pem());

    // Without its etcd client certificate yet: a note, not a problem.
    let run = agent_in(root, &["status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = Report::of(&run);
    let etcd = report.etcd();
    assert_eq!(etcd.outcome, "skipped");
    assert!(
        etcd.note
            .as_deref()
            .unwrap()
            .contains("apiserver-etcd-client.crt does not exist yet"),
        "{etcd:?}"
    );

    let req = tn_agent::pki::LeafRequest {
        common_name: "kube-apiserver-etcd-client".into(),
        organization: None,
        dns_names: vec![],
        ips: vec![],
        usages: vec![Usage::ClientAuth],
    };
    let leaf = etcd_ca.issue(&req).unwrap();
    put(
        root,
        "/etc/kubernetes/pki/apiserver-etcd-client.crt",
        &leaf.cert_pem,
    );
    put(
        root,
        "/etc/kubernetes/pki/apiserver-etcd-client.key",
        &leaf.key_pem,
    );
    let key = root.join("etc/kubernetes/pki/apiserver-etcd-client.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let started = Instant::now();
    let run = agent_in(root, &["status", "--json"]);
    assert!(started.elapsed() < ANSWER_WITHIN);
    assert_eq!(run.code, 0, "{run:?}");
    let report = Report::of(&run);
    let etcd = report.etcd();
    assert_eq!(etcd.outcome, "answered", "{etcd:?}");
    assert_eq!(etcd.leader.as_ref(), Some(&nodes[0].id));
    assert_eq!(etcd.this_member, None, "a master is not a member");
    assert_eq!(etcd.members.len(), 1);
    assert_eq!(
        report.signer("/etc/kubernetes/pki/apiserver-etcd-client.crt"),
        Some("/etc/kubernetes/pki/etcd/ca.crt")
    );
    assert_eq!(
        report.signer("/etc/kubernetes/pki/ca.crt"),
        Some("/etc/kubernetes/pki/ca.crt")
    );
    let text = agent_in(root, &["status"]);
    assert!(
        text.stdout
            .contains(&format!("etcd: 1 member, leader {}", nodes[0].id)),
        "{}",
        text.stdout
    );
}

#[test]
fn a_bootstrapped_master_and_worker() {
    let (world, _etcd_ca, etcd_nodes) = world_with_etcd_asg(1);
    let _etcd = boot_cluster(&world, &etcd_nodes);
    // The rest of the cluster's PKI in the state bucket (SPEC §5).
    let ca = Ca::generate("kubernetes").unwrap();
    let front_proxy_ca = Ca::generate("front-proxy-ca").unwrap();
    let sa = tn_agent::pki::generate_key_pair().unwrap();
    for (name, body) in [
        ("ca.crt", ca.cert_pem().to_string()),
        ("ca.key", ca.key_pem()),
        ("front-proxy-ca.crt", front_proxy_ca.cert_pem().to_string()),
        ("front-proxy-ca.key", front_proxy_ca.key_pem()),
        ("sa.key", sa.private_pem.clone()),
        ("sa.pub", sa.public_pem.clone()),
        ("bootstrap-token", "abcdef.0123456789abcdef\n".to_string()),
    ] {
        world
            .put_object(&format!("demo/pki/{name}"), body.as_bytes())
            .unwrap();
    }
    let kube = "[kubernetes]\nversion = \"v1.31.4\"\n";
    for (asg, role, config) in [
        (
            "demo-master",
            "master",
            world.config("master", &format!("[etcd]\nasg = \"{ASG}\"\n{kube}")),
        ),
        ("demo-worker", "worker", world.config("worker", kube)),
    ] {
        world.create_asg(asg, role, 1).unwrap();
        let node = world
            .node(&world.asg_instances(asg).unwrap()[0], &config)
            .unwrap();
        let run = node.run(&["bootstrap"]).unwrap();
        assert_eq!(run.code, 0, "bootstrap of the {role}:\n{}", run.stderr);

        let (run, report, _) = status_json(&node);
        assert_eq!(run.code, 0, "{role}: {}", run.stdout);
        assert_eq!(report.problems, vec![], "{role}");
        assert_eq!(report.node.role, role);
        // A worker never looks at its autoscaling group.
        let seen_asg = (role == "master").then_some(asg);
        assert_eq!(report.node.asg.as_deref(), seen_asg, "{role}");
        let certs = &report.certificates;
        assert!(!certs.is_empty(), "{role}");
        for c in certs {
            assert!(c.signed_by.is_some(), "{role}: {c:?}");
        }
        // The role's expected files, then every private key under the PKI dirs, all 0600.
        let files = &report.files;
        assert!(files.len() >= 4, "{role}: {files:?}");
        let (expected, keys) = files.split_at(4);
        assert!(expected.iter().all(|f| f.exists), "{role}: {files:?}");
        for key in keys {
            assert!(key.path.ends_with(".key"), "{role}: {key:?}");
            assert_eq!(key.mode.as_deref(), Some("0600"), "{role}: {key:?}");
        }
        assert_eq!(keys.is_empty(), role == "worker", "{role}: {files:?}");
        if role == "master" {
            let etcd = report.etcd();
            assert_eq!(etcd.outcome, "answered", "{etcd:?}");
            assert_eq!(etcd.leader.as_ref(), Some(&etcd_nodes[0].id));
            assert_eq!(
                report.signer("/etc/kubernetes/pki/apiserver-etcd-client.crt"),
                Some("/etc/kubernetes/pki/etcd/ca.crt")
            );
            assert_eq!(
                report.signer("/etc/kubernetes/pki/front-proxy-client.crt"),
                Some("/etc/kubernetes/pki/front-proxy-ca.crt")
            );
            assert_eq!(
                report.signer("/etc/kubernetes/pki/apiserver.crt"),
                Some("/etc/kubernetes/pki/ca.crt")
            );
        } else {
            assert!(report.etcd.is_none());
        }
    }
}
