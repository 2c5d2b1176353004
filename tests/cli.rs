//! The tn-agent binary as an operator and systemd see it: flags, exit codes, error text, and
//! that nothing is written on bad input.

use std::net::Ipv4Addr;

use tn_world::World;

use crate::support::agent;
use crate::support::files::files_under;

#[test]
fn help_lists_the_commands() {
    let run = agent(&["--help"]);
    assert_eq!(run.code, 0);
    for word in [
        "bootstrap",
        "etcd",
        "status",
        "pki",
        "--config",
        "--root",
        "--verbose",
    ] {
        assert!(
            run.stdout.contains(word),
            "--help lacks {word}:\n{}",
            run.stdout
        );
    }
    let run = agent(&["etcd", "--help"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("promote") && run.stdout.contains("leave"),
        "{}",
        run.stdout
    );
}

#[test]
fn unknown_flags_are_bad_input() {
    let run = agent(&["bootstrap", "--frobnicate"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = agent(&["reboot"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn a_bad_config_is_exit_2_naming_the_file_and_nothing_is_written() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("etc/tn-agent/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        "cluster = \"prod\"\nrole = \"etcd\"\nstate_bucket = \"prod-tn-state\"\n[etcd]\nclient_port = 70000\n",
    )
    .unwrap();
    let before = files_under(root.path());
    let run = agent(&["--root", root.path().to_str().unwrap(), "bootstrap"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "error: {}: key `etcd.client_port`: expected a TCP port from 1 to 65535, got 70000",
            config.display()
        )
    );
    assert_eq!(files_under(root.path()), before, "nothing written");
}

#[test]
fn a_missing_config_is_exit_2_naming_the_path() {
    let root = tempfile::tempdir().unwrap();
    let run = agent(&["--root", root.path().to_str().unwrap(), "bootstrap"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let expected = format!(
        "error: cannot read config file {}/etc/tn-agent/config.toml\n  caused by: No such file or directory (os error 2)",
        root.path().display()
    );
    assert_eq!(run.stderr.trim_end(), expected);
    assert!(files_under(root.path()).is_empty());
}

#[test]
fn an_explicit_config_path_is_used_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "cluster = \"Prod\"\n").unwrap();
    let run = agent(&[
        "--root",
        "/nonexistent-root",
        "--config",
        config.to_str().unwrap(),
        "bootstrap",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with(&format!("error: {}: key `cluster`", config.display())),
        "{}",
        run.stderr
    );
}

#[test]
fn bootstrap_identifies_the_node_and_finds_its_peers() {
    let world = World::start().unwrap();
    world.init_etcd_pki().unwrap();
    world.create_asg("demo-etcd", "etcd", 3).unwrap();
    let instances = world.asg_instances("demo-etcd").unwrap();
    // The lowest id seeds at once, without waiting for anyone.
    let me = &instances[0];
    let node = world.node(me, &world.config("etcd", "")).unwrap();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let state = node.state().unwrap();

    assert!(state.ok);
    let identity = state.identity.unwrap();
    assert_eq!(identity.instance_id, me.id);
    assert_eq!(identity.private_ip, me.ip);
    assert_eq!(identity.availability_zone, "us-east-1a");
    assert_eq!(identity.region, "us-east-1", "region from IMDS");
    let asg = state.asg.unwrap();
    assert_eq!(asg.name, "demo-etcd");
    let peers: Vec<(String, Option<Ipv4Addr>)> = asg
        .instances
        .into_iter()
        .map(|i| (i.instance_id, i.private_ip))
        .collect();
    let expected: Vec<_> = instances
        .iter()
        .map(|i| (i.id.clone(), Some(i.ip)))
        .collect();
    assert_eq!(peers, expected);
    assert!(
        state.decisions.iter().any(|d| d.what == "discovered peers"),
        "{:?}",
        state.decisions
    );
    let written = &state.files_written;
    assert!(
        written.contains(&"/etc/etcd/etcd.env".into()),
        "{written:?}"
    );
    // IMDSv2 only: every metadata read carried a token.
    let seen = node.imds.requests();
    assert!(seen
        .iter()
        .filter(|r| r.method == "GET")
        .all(|r| r.token.is_some()));
    assert!(
        !run.stderr.contains("testing"),
        "credentials never logged: {}",
        run.stderr
    );
}

#[test]
fn a_missing_or_malformed_ca_in_s3_is_named() {
    let world = World::start().unwrap();
    world.create_asg("demo-etcd", "etcd", 1).unwrap();
    let inst = &world.asg_instances("demo-etcd").unwrap()[0];
    let node = world.node(inst, &world.config("etcd", "")).unwrap();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(
        run.code, 1,
        "missing: a retry may succeed once it is uploaded\n{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("s3://demo-tn-state/demo/pki/etcd-ca.crt does not exist"),
        "{}",
        run.stderr
    );
    assert!(!node.path("/etc/etcd/etcd.env").exists());

    world
        .put_object(
            "demo/pki/etcd-ca.crt",
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
    world.put_object("demo/pki/etcd-ca.key", b"junk").unwrap();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(
        run.code, 1,
        "malformed: it may be half-way through an update, a retry may succeed\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "s3://demo-tn-state/demo/pki/etcd-ca.crt and demo/pki/etcd-ca.key are not a usable CA"
        ),
        "{}",
        run.stderr
    );
    assert!(!node.path("/etc/etcd/etcd.env").exists());
}

#[test]
fn throttling_is_retried_and_access_denied_is_not() {
    let world = World::start().unwrap();
    world.init_etcd_pki().unwrap();
    world.create_asg("demo-etcd", "etcd", 1).unwrap();
    let inst = &world.asg_instances("demo-etcd").unwrap()[0];
    let proxy = &world.aws;
    let node = world.node(inst, &world.config("etcd", "")).unwrap();

    // Throttled twice, then answered: the SDK's retry carries on.
    proxy.fail_next("DescribeAutoScalingInstances", 400, "Throttling", 2);
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(proxy.calls_of("DescribeAutoScalingInstances").len(), 3);

    // Access denied: not retried, and named.
    let before = proxy.calls_of("DescribeAutoScalingGroups").len();
    proxy.fail_next("DescribeAutoScalingGroups", 403, "AccessDenied", 5);
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        proxy.calls_of("DescribeAutoScalingGroups").len(),
        before + 1
    );
    assert!(
        run.stderr
            .contains("listing the instances of autoscaling group demo-etcd")
            && run.stderr.contains("AccessDenied"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_first_local_hostname_is_used_and_a_bad_one_stops_the_agent() {
    let world = World::start().unwrap();
    world.create_asg("demo-etcd", "etcd", 1).unwrap();
    let inst = &world.asg_instances("demo-etcd").unwrap()[0];
    let config = world.config("etcd", "[etcd]\ntls = false\ninsecure = true\n");
    let node = world.node(inst, &config).unwrap();

    node.imds.set_hostname("bad_name.ec2.internal");
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 2, "not a DNS name: bad input\n{}", run.stderr);
    assert!(
        run.stderr.contains("local-hostname") && run.stderr.contains("bad_name.ec2.internal"),
        "{}",
        run.stderr
    );
    assert!(!node.path("/etc/etcd/etcd.env").exists());

    // Two DHCP domain names: two names, the first one is this node's.
    let first = format!("ip-{}.demo.int", inst.ip.to_string().replace('.', "-"));
    node.imds
        .set_hostname(&format!("{first} ip-{}.ec2.internal", inst.ip));
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(node.state().unwrap().identity.unwrap().hostname, first);
}

#[test]
fn a_marker_that_is_not_this_clusters_or_would_inject_a_variable_is_refused() {
    let world = World::start().unwrap();
    world.create_asg("demo-etcd", "etcd", 1).unwrap();
    let inst = &world.asg_instances("demo-etcd").unwrap()[0];
    let node = world
        .node(
            inst,
            &world.config("etcd", "[etcd]\ntls = false\ninsecure = true\n"),
        )
        .unwrap();
    let marker = |cluster: &str, token: &str, extra: &str| {
        serde_json::json!({
            "cluster": cluster,
            "token": token,
            "seeded_by": "i-0",
            "seed_peer_url": "http://127.0.0.9:2380",
            "seeded_at": "2026-12-01T00:00:00Z",
        })
        .to_string()
        .replacen('{', &format!("{{{extra}"), 1)
    };
    let cases = [
        (
            marker("demo", "demo-1\nETCD_FORCE_NEW_CLUSTER=true", ""),
            "is not a usable cluster marker",
        ),
        (
            marker("other", "other-1", ""),
            "is not a usable cluster marker",
        ),
        (
            marker("demo", "demo-1", "\"force_new_cluster\":true,"),
            "is not a cluster marker written by tn-agent",
        ),
    ];
    for (body, says) in cases {
        world
            .put_object("demo/etcd/cluster.json", body.as_bytes())
            .unwrap();
        let run = node.run(&["bootstrap"]).unwrap();
        assert_eq!(run.code, 1, "{body}: remote, retried\n{}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("s3://demo-tn-state/demo/etcd/cluster.json {says}")),
            "{body}\n{}",
            run.stderr
        );
        assert!(!node.path("/etc/etcd/etcd.env").exists(), "{body}");
    }
}

#[test]
fn no_seed_while_an_etcd_it_cannot_talk_to_listens() {
    let world = World::start().unwrap();
    world.create_asg("demo-etcd", "etcd", 2).unwrap();
    let mut instances = world.asg_instances("demo-etcd").unwrap();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    let (seeder, other) = (&instances[0], &instances[1]);
    let config = world.config(
        "etcd",
        "[etcd]\ntls = false\ninsecure = true\njoin_timeout_seconds = 3\n",
    );
    let node = world.node(seeder, &config).unwrap();

    // Something holds the other instance's etcd client port but does not answer as etcd (an
    // etcd of another cluster, with certificates this node does not have).
    let squatter = std::net::TcpListener::bind((other.ip, 2379)).unwrap();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "http://{}:2379 accept connections on the etcd client port",
            other.ip
        )),
        "{}",
        run.stderr
    );
    assert_eq!(world.get_object("demo/etcd/cluster.json").unwrap(), None);
    assert!(!node.path("/etc/etcd/etcd.env").exists());

    // Once it is gone, the seeder seeds.
    drop(squatter);
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(world
        .get_object("demo/etcd/cluster.json")
        .unwrap()
        .is_some());
}

#[test]
fn state_json_says_a_bootstrap_is_unfinished_until_it_ends() {
    let world = World::start().unwrap();
    world.create_asg("demo-etcd", "etcd", 2).unwrap();
    let mut instances = world.asg_instances("demo-etcd").unwrap();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    // Not the seeder: it waits for a seeder that never comes, then gives up.
    let config = world.config(
        "etcd",
        "[etcd]\ntls = false\ninsecure = true\njoin_timeout_seconds = 4\n",
    );
    let node = world.node(&instances[1], &config).unwrap();
    std::thread::scope(|s| {
        let running = s.spawn(|| node.run(&["bootstrap"]).unwrap());
        let state_file = node.path("/var/lib/tn-agent/state.json");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while !state_file.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let state = node.state().unwrap();
        assert_eq!(state.finished_at, None, "{state:?}");
        assert!(!state.ok);
        let status = node.run(&["status", "--json"]).unwrap();
        assert_eq!(status.code, 1, "{}", status.stdout);
        assert!(
            status.stdout.contains("\"bootstrap_unfinished\""),
            "{}",
            status.stdout
        );
        let run = running.join().unwrap();
        assert_eq!(run.code, 1, "{}", run.stderr);
    });
    let state = node.state().unwrap();
    assert!(state.finished_at.is_some());
    assert!(state.error.unwrap().contains("waiting for"));
}

/// A bootstrap that keeps failing backs off: `state.json` counts the failed runs in a row, and
/// from the second one a run waits (here at most 2 s) before trying, and says so. Bad input
/// (exit 2) and a success reset the count.
#[test]
fn failing_bootstraps_back_off() {
    let world = World::start().unwrap();
    world.create_asg("demo-etcd", "etcd", 1).unwrap();
    let inst = &world.asg_instances("demo-etcd").unwrap()[0];
    let config = world.config("etcd", "[etcd]\ntls = false\ninsecure = true\n");
    let mut node = world.node(inst, &config).unwrap();
    let dropin = node.path("/etc/tn-agent/config.d/50-retry.toml");
    std::fs::create_dir_all(dropin.parent().unwrap()).unwrap();
    std::fs::write(&dropin, "[bootstrap]\nretry_max_delay_seconds = 2\n").unwrap();
    node.env
        .push(("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()));
    let mut waited = Vec::new();
    for expected in 1..=3 {
        let started = std::time::Instant::now();
        let run = node.run(&["bootstrap"]).unwrap();
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert_eq!(node.state().unwrap().consecutive_failures, expected);
        waited.push((
            run.stderr.contains("runs failed: waiting"),
            started.elapsed(),
        ));
    }
    assert!(
        !waited[0].0 && !waited[1].0,
        "no wait before the second failure: {waited:?}"
    );
    assert!(waited[2].0, "the third run waits after two failures");
    assert!(
        waited[2].1 >= std::time::Duration::from_secs(1),
        "{waited:?}"
    );

    // Bad input: not retried by systemd, and the count starts again.
    node.imds.set_hostname("bad_name.ec2.internal");
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(node.state().unwrap().consecutive_failures, 0);
}
