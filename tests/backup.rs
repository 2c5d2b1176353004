//! etcd backups and restore (SPEC §10) against a real etcd 3.4 cluster and moto's S3: only the
//! leader uploads, nothing is uploaded twice for one revision, a failed upload leaves nothing
//! that looks like a backup and `status` says so, retention keeps exactly what the rules say,
//! large snapshots go up in parts, and a restore brings a destroyed cluster back with the
//! backed-up data and without the later writes.

use sha2::{Digest, Sha256};
use tn_agent::aws::Aws;
use tn_agent::backup::upload::{self, ChunkSource, UploadError};
use tn_world::{run_at_once, Inspector, Node, Run, World};

use crate::support::cluster::{boot_cluster, world_with_etcd_asg, SETTLE};

const PREFIX: &str = "demo/etcd/backups/";

/// A `config.d` drop-in for every node: etcd 3.4's restore tool, parts of 5 MiB.
fn backup_dropin(nodes: &[Node]) {
    for n in nodes {
        let dir = n.path("/etc/tn-agent/config.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("50-backup.toml"),
            "[backup]\nrestore_tool = \"etcdctl\"\npart_size_mib = 5\n",
        )
        .unwrap();
    }
}

/// Every key under the backups prefix.
pub(crate) fn backup_keys(world: &World) -> Vec<String> {
    let out = world
        .block_on(
            world
                .s3
                .list_objects_v2()
                .bucket(&world.bucket)
                .prefix(PREFIX)
                .send(),
        )
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(|k| k.trim_start_matches(PREFIX).to_string()))
        .collect()
}

/// Multipart uploads in progress in the bucket.
fn uploads_in_progress(world: &World) -> usize {
    let out = world
        .block_on(
            world
                .s3
                .list_multipart_uploads()
                .bucket(&world.bucket)
                .send(),
        )
        .unwrap();
    out.uploads().len()
}

/// The backup's name from what `etcd backup` printed: `backup <name>: ...`.
fn uploaded_name(stdout: &str) -> String {
    let name = stdout
        .strip_prefix("backup ")
        .and_then(|r| r.split_once(':'));
    name.unwrap_or_else(|| panic!("no backup uploaded: {stdout}"))
        .0
        .to_string()
}

/// A backup's meta.json.
fn meta_of(world: &World, name: &str) -> serde_json::Value {
    let bytes = world
        .get_object(&format!("{PREFIX}{name}/meta.json"))
        .unwrap()
        .unwrap_or_else(|| panic!("no meta.json for {name}"));
    serde_json::from_slice(&bytes).unwrap()
}

fn leader_index(world: &World, nodes: &[Node]) -> usize {
    let all: Vec<&Node> = nodes.iter().collect();
    let view = Inspector::new(world, &nodes[0], &all)
        .unwrap()
        .expect_nodes(&all, SETTLE)
        .unwrap();
    let leader = view.leader.unwrap();
    let name = &view.members.iter().find(|m| m.id == leader).unwrap().name;
    nodes.iter().position(|n| &n.id == name).unwrap()
}

fn status_json(node: &Node) -> (i32, serde_json::Value) {
    let run = node.run(&["status", "--json"]).unwrap();
    (run.code, serde_json::from_str(&run.stdout).unwrap())
}

fn problem_kinds(status: &serde_json::Value) -> Vec<String> {
    status["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Writes about `mib` MiB of values under `prefix`.
fn write_mib(inspector: &Inspector, prefix: &str, mib: usize) {
    let value = "v".repeat(100 * 1024);
    for i in 0..mib * 10 {
        inspector.put(&format!("{prefix}{i:04}"), &value).unwrap();
    }
}

/// Three members run the timer's command at once: one upload, by the leader; run again with
/// nothing changed: skipped; a follower with `--force`: a second backup. `etcd backups` lists
/// them, `status` on a follower shows the newest.
#[test]
fn only_the_leader_backs_up_and_only_when_something_changed() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    backup_dropin(&nodes);
    let _etcd = boot_cluster(&world, &nodes);
    let all: Vec<&Node> = nodes.iter().collect();
    let inspector = Inspector::new(&world, &nodes[0], &all).unwrap();
    inspector.put("/app/one", "1").unwrap();
    let leader = leader_index(&world, &nodes);

    let runs: Vec<Run> = run_at_once(&all, &["etcd", "backup"])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.code, 0, "{}: {}", nodes[i].id, run.stderr);
        if i == leader {
            assert!(run.stdout.starts_with("backup "), "{}", run.stdout);
        } else {
            assert!(run.stdout.contains("does not lead"), "{}", run.stdout);
        }
    }
    let keys = backup_keys(&world);
    assert_eq!(keys.len(), 2, "one backup: {keys:?}");
    let name = keys[0].split('/').next().unwrap().to_string();
    assert!(keys.contains(&format!("{name}/meta.json")), "{keys:?}");
    let meta = meta_of(&world, &name);
    let snapshot = world
        .get_object(&format!("{PREFIX}{name}/snapshot.db"))
        .unwrap()
        .unwrap();
    assert_eq!(meta["cluster"], "demo");
    assert_eq!(meta["taken_by"], nodes[leader].id.as_str());
    assert_eq!(meta["members"].as_array().unwrap().len(), 3);
    assert_eq!(meta["size"], snapshot.len() as u64);
    assert_eq!(meta["sha256"], hex::encode(Sha256::digest(&snapshot)));
    assert!(name.ends_with(&format!("-r{}", meta["revision"])), "{name}");
    let marker: serde_json::Value =
        serde_json::from_slice(&world.get_object("demo/etcd/cluster.json").unwrap().unwrap())
            .unwrap();
    assert_eq!(meta["marker_token"], marker["token"]);

    let again = nodes[leader].run(&["etcd", "backup"]).unwrap();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("has not changed"), "{}", again.stdout);
    assert_eq!(backup_keys(&world).len(), 2);

    let follower = (leader + 1) % 3;
    // A minute later by the agent's clock: another name, without waiting for one.
    let forced = nodes[follower]
        .agent()
        .unwrap()
        .env("TN_AGENT_CLOCK_OFFSET_SECONDS", "60")
        .run(&["etcd", "backup", "--force"])
        .unwrap();
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(forced.stdout.starts_with("backup "), "{}", forced.stdout);
    assert_eq!(backup_keys(&world).len(), 4);

    let listed = nodes[follower].run(&["etcd", "backups", "--json"]).unwrap();
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let backups = listed["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2);
    assert_eq!(backups[0]["name"], name.as_str());
    assert_eq!(backups[1]["taken_by"], nodes[follower].id.as_str());

    // The third member's status shows the newest backup as its last run saw it.
    let other = (leader + 2) % 3;
    let look = nodes[other].run(&["etcd", "backup"]).unwrap();
    assert_eq!(look.code, 0, "{}", look.stderr);
    let (code, status) = status_json(&nodes[other]);
    assert_eq!(code, 0, "{status:#}");
    assert_eq!(status["backup"]["newest"]["name"], backups[1]["name"]);
    assert_eq!(status["backup"]["last_run"]["outcome"], "skipped");
}

/// The timer fires just as the leader dies: the others still name it for a moment, then
/// elect another; the runs wait for a live leader, and the new one uploads (without the wait,
/// both would skip and the cluster would go a whole interval without a backup).
#[test]
fn a_backup_is_taken_when_the_leader_has_just_died() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    backup_dropin(&nodes);
    let mut etcd = boot_cluster(&world, &nodes);
    let all: Vec<&Node> = nodes.iter().collect();
    Inspector::new(&world, &nodes[0], &all)
        .unwrap()
        .put("/app/one", "1")
        .unwrap();
    let leader = leader_index(&world, &nodes);
    etcd[leader].kill();
    let others: Vec<&Node> = (0..3).filter(|i| *i != leader).map(|i| &nodes[i]).collect();
    let runs: Vec<Run> = run_at_once(&others, &["etcd", "backup"])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (node, run) in others.iter().zip(&runs) {
        assert_eq!(run.code, 0, "{}: {}", node.id, run.stderr);
    }
    let uploaded = runs
        .iter()
        .filter(|r| r.stdout.starts_with("backup "))
        .count();
    assert_eq!(uploaded, 1, "{runs:#?}");
    assert_eq!(backup_keys(&world).len(), 2);
}

/// S3 refuses the snapshot (AccessDenied), then fails a part of a multipart upload with 503s
/// past the SDK's retries: each run exits 1 naming the S3 error, leaves no object and no upload
/// in progress, and `status` calls it a problem until a run succeeds.
#[test]
fn a_failed_upload_leaves_nothing_and_is_loud() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    backup_dropin(&nodes);
    let proxy = &world.aws;
    let _etcd = boot_cluster(&world, &nodes);
    let leader = leader_index(&world, &nodes);
    let node = &nodes[leader];

    proxy.fail_path("/snapshot.db", 403, "AccessDenied", 1);
    let denied = node.run(&["etcd", "backup"]).unwrap();
    assert_eq!(denied.code, 1, "{}", denied.stderr);
    assert!(denied.stderr.contains("AccessDenied"), "{}", denied.stderr);
    assert!(denied.stderr.contains("snapshot.db"), "{}", denied.stderr);
    assert!(backup_keys(&world).is_empty());
    let (code, status) = status_json(node);
    assert_eq!(code, 1, "{status:#}");
    assert!(problem_kinds(&status).contains(&"backup_failed".to_string()));

    // A snapshot of more than two parts; part 2 answers 503 to every try (the SDK makes 8).
    let all: Vec<&Node> = nodes.iter().collect();
    write_mib(&Inspector::new(&world, node, &all).unwrap(), "/big/", 12);
    proxy.fail_path("partNumber=2", 503, "ServiceUnavailable", 8);
    let failed = node.run(&["etcd", "backup"]).unwrap();
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("ServiceUnavailable"),
        "{}",
        failed.stderr
    );
    assert!(backup_keys(&world).is_empty(), "{:?}", backup_keys(&world));
    assert_eq!(
        uploads_in_progress(&world),
        0,
        "the multipart upload was aborted"
    );
    let (code, _) = status_json(node);
    assert_eq!(code, 1);

    proxy.clear_faults();
    let ok = node.run(&["etcd", "backup"]).unwrap();
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("parts)"), "{}", ok.stdout);
    let (code, status) = status_json(node);
    assert_eq!(code, 0, "{status:#}");
    assert_eq!(status["backup"]["last_failure"], serde_json::Value::Null);
}

/// A snapshot whose bytes do not match etcd's SHA-256 trailer, fed to the real uploader
/// against S3, small (one PutObject) and large (multipart): refused, nothing visible, no upload
/// left in progress. (etcd itself cannot be made to send a corrupt stream; the bytes are a real
/// snapshot of a real member, one bit flipped.)
#[test]
fn a_corrupt_snapshot_is_never_stored() {
    struct Chunks(std::vec::IntoIter<Vec<u8>>);
    impl ChunkSource for Chunks {
        async fn next_chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
            Ok(self.0.next())
        }
    }
    let (world, _ca, nodes) = world_with_etcd_asg(1);
    let _etcd = boot_cluster(&world, &nodes);
    let all: Vec<&Node> = nodes.iter().collect();
    write_mib(
        &Inspector::new(&world, &nodes[0], &all).unwrap(),
        "/big/",
        11,
    );
    let access = nodes[0].etcd_access().unwrap();
    let snapshot: Vec<u8> = world.block_on(async {
        let mut stream = access.snapshot(&nodes[0].client_url()).await.unwrap();
        let mut all = Vec::new();
        while let Some(chunk) = stream.next_chunk().await.unwrap() {
            all.extend(chunk);
        }
        all
    });
    assert!(snapshot.len() > 10 * 1024 * 1024, "{}", snapshot.len());
    let proxy = &world.aws;
    let aws = Aws::from_sdk_config(
        &world
            .sdk_config
            .to_builder()
            .endpoint_url(proxy.url())
            .build(),
        true,
    );
    let part = 5 * 1024 * 1024;
    for (label, bytes) in [
        ("small", {
            // A whole small snapshot (its own trailer), then one bit flipped.
            let body = b"not much".to_vec();
            let mut s = body.clone();
            s.extend(Sha256::digest(&body));
            s[3] ^= 1;
            s
        }),
        ("large", {
            let mut s = snapshot.clone();
            s[7 * 1024 * 1024] ^= 1;
            s
        }),
    ] {
        let key = format!("{PREFIX}20261202T000000Z-r1-{label}/snapshot.db");
        let chunks: Vec<Vec<u8>> = bytes.chunks(32 * 1024).map(<[u8]>::to_vec).collect();
        let result = world.block_on(upload::upload(
            &aws,
            &world.bucket,
            &key,
            &mut Chunks(chunks.into_iter()),
            part,
        ));
        assert!(
            matches!(result, Err(UploadError::Corrupt(_))),
            "{label}: {result:?}"
        );
        assert!(world.get_object(&key).unwrap().is_none(), "{label}");
        assert_eq!(uploads_in_progress(&world), 0, "{label}");
    }
    // And the same bytes unflipped go up whole.
    let key = format!("{PREFIX}20261202T000000Z-r1-good/snapshot.db");
    let chunks: Vec<Vec<u8>> = snapshot.chunks(32 * 1024).map(<[u8]>::to_vec).collect();
    let done = world
        .block_on(upload::upload(
            &aws,
            &world.bucket,
            &key,
            &mut Chunks(chunks.into_iter()),
            part,
        ))
        .unwrap();
    assert!(done.parts >= 3, "{done:?}");
    assert_eq!(world.get_object(&key).unwrap().unwrap(), snapshot);
}

/// Retention against S3: simulated backups of the past year and a half in the bucket, then one
/// real backup. Exactly the ones the rules keep survive, counted here on their own.
#[test]
fn retention_keeps_exactly_what_the_rules_say() {
    use time::{Duration as D, OffsetDateTime};
    let (world, _ca, nodes) = world_with_etcd_asg(1);
    let _etcd = boot_cluster(&world, &nodes);
    let now = OffsetDateTime::now_utc();
    let stamp = |t: OffsetDateTime| {
        t.format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap()
    };
    // Ages in minutes, away from the rules' edges (1 h, 7 d, 365 d) by far more than a run
    // takes, and each its own (hour, day) story:
    let mut ages: Vec<i64> = vec![10, 40]; // < 1 h: kept
    for h in 2..40 {
        ages.push(h * 60 + 5); // hours of the last two days: two each...
        ages.push(h * 60 + 35); // ...in the same hour where the clock allows
    }
    for d in 8..400 {
        ages.push(d * 1440 + 100); // days past a week: two a day...
        ages.push(d * 1440 + 700); // ...
    }
    let mut simulated: Vec<(String, OffsetDateTime)> = Vec::new();
    for (i, age) in ages.iter().enumerate() {
        let at = now - D::minutes(*age);
        let name = format!("{}-r{}", stamp(at), 5_000_000 + i);
        simulated.push((name, at));
    }
    let meta = |name: &str| {
        format!(
            "{{\"cluster\":\"demo\",\"marker_token\":\"t\",\"revision\":{},\"members\":[],\"etcd_version\":\"3.4.23\",\"size\":1,\"sha256\":\"{}\",\"taken_by\":\"i-sim\",\"taken_at\":\"x\"}}",
            name.rsplit_once("-r").unwrap().1,
            "0".repeat(64)
        )
    };
    world.block_on(async {
        let mut puts = tokio::task::JoinSet::new();
        for (name, _) in &simulated {
            for (file, body) in [("snapshot.db", "x".to_string()), ("meta.json", meta(name))] {
                let (s3, bucket) = (world.s3.clone(), world.bucket.clone());
                let key = format!("{PREFIX}{name}/{file}");
                puts.spawn(async move {
                    s3.put_object()
                        .bucket(bucket)
                        .key(key)
                        .body(body.into_bytes().into())
                        .send()
                        .await
                        .unwrap()
                });
                if puts.len() >= 16 {
                    puts.join_next().await.unwrap().unwrap();
                }
            }
        }
        while let Some(r) = puts.join_next().await {
            r.unwrap();
        }
    });

    let run = nodes[0].run(&["etcd", "backup"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let real = uploaded_name(&run.stdout);

    // The rules, counted independently: < 1 h; else the newest of its UTC hour when < 7 d;
    // else the newest of its UTC day when < 365 d. The real backup is the newest of all.
    let mut expected: Vec<String> = vec![real.clone()];
    let hour_of = |t: OffsetDateTime| (t.date(), t.hour());
    for (name, at) in &simulated {
        let age = now - *at;
        let newest_in = |same: &dyn Fn(OffsetDateTime) -> bool| {
            simulated
                .iter()
                .filter(|(_, t)| same(*t))
                .all(|(_, t)| t <= at)
        };
        let keep = age < D::hours(1)
            || (age < D::days(7) && newest_in(&|t| hour_of(t) == hour_of(*at)))
            || (age < D::days(365) && newest_in(&|t| t.date() == at.date()));
        if keep {
            expected.push(name.clone());
        }
    }
    expected.sort();
    let mut left: Vec<String> = backup_keys(&world)
        .iter()
        .filter_map(|k| k.strip_suffix("/meta.json").map(str::to_string))
        .collect();
    left.sort();
    assert_eq!(left, expected);
    let snapshots = backup_keys(&world)
        .iter()
        .filter(|k| k.ends_with("/snapshot.db"))
        .count();
    assert_eq!(
        snapshots,
        expected.len(),
        "each kept backup keeps its snapshot, and only those"
    );
}

/// The disaster: keys written and backed up (a multipart backup), more keys written, every
/// member killed; one node's disk lost. Refusals first, each changing nothing: a wrong
/// `--cluster`, a backup that does not exist, a corrupt one, etcd still running. Then the
/// restore on one node and the others' bootstrap: the backed-up keys are back, the later ones
/// are not, three healthy voters, and the old data is kept aside.
#[test]
fn a_destroyed_cluster_is_restored_from_its_backup() {
    let (world, _ca, nodes) = world_with_etcd_asg(3);
    backup_dropin(&nodes);
    let mut etcd = boot_cluster(&world, &nodes);
    let all: Vec<&Node> = nodes.iter().collect();
    let inspector = Inspector::new(&world, &nodes[0], &all).unwrap();
    inspector.put("/app/before", "kept").unwrap();
    write_mib(&inspector, "/big/", 11);
    let taken = nodes[0].run(&["etcd", "backup", "--force"]).unwrap();
    assert_eq!(taken.code, 0, "{}", taken.stderr);
    assert!(
        taken.stdout.contains("parts)"),
        "multipart: {}",
        taken.stdout
    );
    let name = uploaded_name(&taken.stdout);
    let revision: i64 = name.rsplit_once("-r").unwrap().1.parse().unwrap();
    inspector.put("/app/after", "lost").unwrap();
    let old_marker = world.get_object("demo/etcd/cluster.json").unwrap().unwrap();

    // etcd still running here: refused.
    let running = nodes[0]
        .run(&["etcd", "restore", "--backup", &name, "--cluster", "demo"])
        .unwrap();
    assert_eq!(running.code, 1, "{}", running.stderr);
    assert!(running.stderr.contains("stop it"), "{}", running.stderr);

    for e in etcd.iter_mut() {
        e.kill();
    }
    // Node 2's disk is lost.
    std::fs::remove_dir_all(nodes[2].path("/var/lib/etcd")).unwrap();
    let data0 = nodes[0].path("/var/lib/etcd");
    let listing = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing(&data0);

    // Bad input: exit 2, nothing changed.
    let corrupt_name = {
        // A copy of the backup under another name, its snapshot with one bit flipped.
        let other = format!("20200102T000000Z-r{revision}");
        let mut snap = world
            .get_object(&format!("{PREFIX}{name}/snapshot.db"))
            .unwrap()
            .unwrap();
        snap[1000] ^= 1;
        world
            .put_object(&format!("{PREFIX}{other}/snapshot.db"), &snap)
            .unwrap();
        let meta = world
            .get_object(&format!("{PREFIX}{name}/meta.json"))
            .unwrap()
            .unwrap();
        world
            .put_object(&format!("{PREFIX}{other}/meta.json"), &meta)
            .unwrap();
        other
    };
    for (args, says) in [
        (
            vec!["--backup", name.as_str(), "--cluster", "prod"],
            "is not this node's cluster",
        ),
        (
            vec!["--backup", "20200101T000000Z-r1", "--cluster", "demo"],
            "there is no backup",
        ),
        (
            vec!["--backup", "yesterday", "--cluster", "demo"],
            "is not a backup name",
        ),
        (
            vec!["--backup", corrupt_name.as_str(), "--cluster", "demo"],
            "is corrupt",
        ),
    ] {
        let mut full = vec!["etcd", "restore"];
        full.extend(&args);
        let run = nodes[0].run(&full).unwrap();
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert_eq!(
            listing(&data0),
            before,
            "{args:?}: the data dir is untouched"
        );
        assert_eq!(
            world.get_object("demo/etcd/cluster.json").unwrap().unwrap(),
            old_marker,
            "{args:?}: the marker is untouched"
        );
    }

    let restored = nodes[0]
        .run(&["etcd", "restore", "--backup", &name, "--cluster", "demo"])
        .unwrap();
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    let marker: serde_json::Value =
        serde_json::from_slice(&world.get_object("demo/etcd/cluster.json").unwrap().unwrap())
            .unwrap();
    let old: serde_json::Value = serde_json::from_slice(&old_marker).unwrap();
    assert_eq!(marker["restored_from"], name.as_str());
    assert_ne!(marker["token"], old["token"]);
    assert_eq!(marker["seeded_by"], nodes[0].id.as_str());

    let mut etcd = vec![nodes[0].start_etcd().unwrap()];
    for n in &nodes[1..] {
        etcd.push(n.boot_etcd().unwrap());
    }
    let view = Inspector::new(&world, &nodes[0], &all)
        .unwrap()
        .expect_nodes(&all, SETTLE)
        .unwrap();
    assert_eq!(view.members.len(), 3);
    let inspector = Inspector::new(&world, &nodes[0], &all).unwrap();
    assert_eq!(
        inspector.get("/app/before").unwrap().as_deref(),
        Some("kept")
    );
    assert_eq!(
        inspector.get("/app/after").unwrap(),
        None,
        "written after the backup"
    );
    assert!(inspector.get("/big/0100").unwrap().is_some());
    // etcdctl 3.4 cannot bump the revision; the restored keyspace starts at the backup's.
    let status = world
        .block_on(
            nodes[0]
                .etcd_access()
                .unwrap()
                .status(&nodes[0].client_url()),
        )
        .unwrap();
    assert!(
        status.revision >= revision,
        "{} < {revision}",
        status.revision
    );

    // The old data is aside on the two nodes that had some; the lost disk had none.
    for n in &nodes[..2] {
        let aside: Vec<String> = listing(&n.path("/var/lib/etcd"))
            .into_iter()
            .filter(|e| e.starts_with("moved-"))
            .collect();
        assert_eq!(aside.len(), 1, "{}: {aside:?}", n.id);
        let kept = n.path("/var/lib/etcd").join(&aside[0]).join("member");
        assert!(kept.join("snap").is_dir(), "{}: {}", n.id, kept.display());
    }
    assert!(!listing(&nodes[2].path("/var/lib/etcd"))
        .iter()
        .any(|e| e.starts_with("moved-")));

    // The restored cluster's first backup: its revision may be the one of the backup it came
    // from, but it is another cluster's data (the marker's new token): taken, not skipped.
    let leader = leader_index(&world, &nodes);
    let first = nodes[leader].run(&["etcd", "backup"]).unwrap();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.starts_with("backup "), "{}", first.stdout);
    let meta = meta_of(&world, &uploaded_name(&first.stdout));
    assert_eq!(meta["marker_token"], marker["token"]);
    drop(etcd);
}
