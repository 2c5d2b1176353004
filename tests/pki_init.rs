//! `tn-agent pki init` as an operator runs it: the files it writes, checked with openssl and a
//! YAML parser; refusing to overwrite; `--upload` into the world's state bucket, and an etcd
//! node bootstrapping from what was uploaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tn_world::{openssl, workspace_dir, Agent, Run, World};

use crate::support::files::mode;
use crate::support::{agent, run_with_input};

/// Every file `pki init` writes, with its mode, and whether `--upload` puts it in S3.
const FILES: [(&str, u32, bool); 13] = [
    ("ca.crt", 0o644, true),
    ("ca.key", 0o600, true),
    ("etcd-ca.crt", 0o644, true),
    ("etcd-ca.key", 0o600, true),
    ("front-proxy-ca.crt", 0o644, true),
    ("front-proxy-ca.key", 0o600, true),
    ("sa.key", 0o600, true),
    ("sa.pub", 0o644, true),
    ("bootstrap-token", 0o600, true),
    ("secrets-encryption-key", 0o600, true),
    ("admin.crt", 0o644, false),
    ("admin.key", 0o600, false),
    ("admin.kubeconfig", 0o600, false),
];

/// `tn-agent <args>` as an operator whose AWS is the world's moto.
fn with_world(world: &World, args: &[&str]) -> Run {
    world.operator(args).unwrap()
}

/// Every file in `dir` and its contents.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn out_dir(tmp: &tempfile::TempDir) -> (PathBuf, String) {
    let out = tmp.path().join("pki");
    let text = out.display().to_string();
    (out, text)
}

/// The YAML file parsed by PyYAML from the test venv (an independent parser), as JSON.
fn parse_yaml(path: &Path) -> serde_json::Value {
    let python = workspace_dir().join(".venv/bin/python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e} (scripts/setup makes it)", python.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Base64 decoded by coreutils, not by the code under test.
fn base64_decode(text: &str) -> Vec<u8> {
    let out = run_with_input(Command::new("base64").arg("-d"), text);
    assert!(out.status.success(), "not base64: {text}");
    out.stdout
}

fn days_until(dir: &Path, cert: &str) -> i64 {
    let end = openssl(dir, &["x509", "-in", cert, "-noout", "-enddate"]);
    let end = end.trim().strip_prefix("notAfter=").unwrap();
    // `openssl x509 -checkend N` would also do; computing days gives a better message.
    let secs = |args: &[&str]| -> i64 {
        let out = Command::new("date").args(args).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (secs(&["-u", "-d", end, "+%s"]) - secs(&["-u", "+%s"])) / 86_400
}

#[test]
fn init_writes_the_cluster_pki_and_the_admin_kubeconfig() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, out_s) = out_dir(&tmp);
    let run = agent(&[
        "pki",
        "init",
        "--out",
        &out_s,
        "--cluster",
        "demo",
        "--internal-domain",
        "demo.int",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Every file, with its mode, and nothing else.
    for (name, want, _) in FILES {
        assert_eq!(mode(&out.join(name)), want, "{name}");
        assert!(
            run.stdout.contains(name),
            "summary lacks {name}:\n{}",
            run.stdout
        );
    }
    assert_eq!(contents(&out).len(), FILES.len());
    assert_eq!(mode(&out), 0o700, "the directory is private");

    // Keys are PKCS#8 and each is its certificate's (or sa.pub's).
    for key in FILES.iter().map(|f| f.0).filter(|n| n.ends_with(".key")) {
        let text = std::fs::read_to_string(out.join(key)).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{key}");
        let public = openssl(&out, &["pkey", "-in", key, "-pubout"]);
        let expected = match key {
            "sa.key" => std::fs::read_to_string(out.join("sa.pub")).unwrap(),
            _ => openssl(
                &out,
                &[
                    "x509",
                    "-in",
                    &key.replace(".key", ".crt"),
                    "-noout",
                    "-pubkey",
                ],
            ),
        };
        assert_eq!(public, expected, "{key} does not match");
    }

    // CAs: self-signed CA certificates, about ten years.
    for ca in ["ca.crt", "etcd-ca.crt", "front-proxy-ca.crt"] {
        let ext = openssl(
            &out,
            &["x509", "-in", ca, "-noout", "-ext", "basicConstraints"],
        );
        assert!(ext.contains("CA:TRUE"), "{ca}: {ext}");
        assert_eq!(
            openssl(&out, &["verify", "-CAfile", ca, ca]).trim(),
            format!("{ca}: OK")
        );
        let days = days_until(&out, ca);
        assert!((3645..=3655).contains(&days), "{ca}: {days} days");
    }
    let subject = openssl(
        &out,
        &[
            "x509", "-in", "ca.crt", "-noout", "-subject", "-nameopt", "RFC2253",
        ],
    );
    assert_eq!(subject.trim(), "subject=CN=demo-ca");

    // The admin certificate: the cluster CA's, system:masters, client auth, a year.
    assert_eq!(
        openssl(
            &out,
            &[
                "verify",
                "-purpose",
                "sslclient",
                "-CAfile",
                "ca.crt",
                "admin.crt"
            ]
        )
        .trim(),
        "admin.crt: OK"
    );
    let wrong_ca = Command::new("openssl")
        .args(["verify", "-CAfile", "etcd-ca.crt", "admin.crt"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(!wrong_ca.status.success(), "admin.crt is not the etcd CA's");
    let admin = openssl(
        &out,
        &[
            "x509",
            "-in",
            "admin.crt",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-ext",
            "extendedKeyUsage,basicConstraints",
        ],
    );
    assert!(
        admin.contains("subject=O=system:masters,CN=kubernetes-admin"),
        "{admin}"
    );
    assert!(admin.contains("TLS Web Client Authentication"), "{admin}");
    assert!(!admin.contains("Server Authentication"), "{admin}");
    assert!(admin.contains("CA:FALSE"), "{admin}");
    let days = days_until(&out, "admin.crt");
    assert!((364..=366).contains(&days), "admin.crt: {days} days");

    // The bootstrap token.
    let token = std::fs::read_to_string(out.join("bootstrap-token")).unwrap();
    let token = token.strip_suffix('\n').expect("ends with a newline");
    let (id, secret) = token.split_once('.').unwrap();
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    assert!(ok(id, 6) && ok(secret, 16), "{token:?}");

    // The kubeconfig, as a YAML parser sees it.
    let config = parse_yaml(&out.join("admin.kubeconfig"));
    assert_eq!(config["apiVersion"], "v1");
    assert_eq!(config["kind"], "Config");
    let context = config["current-context"].as_str().unwrap();
    let ctx = config["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == context)
        .expect("current context exists");
    let cluster = config["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == ctx["context"]["cluster"])
        .expect("the context's cluster exists");
    let user = config["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == ctx["context"]["user"])
        .expect("the context's user exists");
    assert_eq!(
        cluster["cluster"]["server"],
        "https://kubernetes.demo.int:443"
    );
    let data = |v: &serde_json::Value| base64_decode(v.as_str().unwrap());
    let file = |name: &str| std::fs::read(out.join(name)).unwrap();
    assert_eq!(
        data(&cluster["cluster"]["certificate-authority-data"]),
        file("ca.crt")
    );
    assert_eq!(
        data(&user["user"]["client-certificate-data"]),
        file("admin.crt")
    );
    assert_eq!(data(&user["user"]["client-key-data"]), file("admin.key"));

    // The summary never shows a secret.
    assert!(!run.stdout.contains(secret), "{}", run.stdout);
    assert!(!run.stdout.contains("PRIVATE KEY"), "{}", run.stdout);
}

#[test]
fn init_refuses_to_overwrite_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, out_s) = out_dir(&tmp);
    let args = [
        "pki",
        "init",
        "--out",
        &out_s,
        "--cluster",
        "demo",
        "--apiserver",
        "https://10.0.1.10:6443",
    ];
    let run = agent(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = contents(&out);

    let run = agent(&args);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: 13 files already exist: "),
        "{}",
        run.stderr
    );
    for (name, _, _) in FILES {
        assert!(
            run.stderr.contains(&out.join(name).display().to_string()),
            "{name} not named: {}",
            run.stderr
        );
    }
    assert_eq!(contents(&out), first, "nothing changed");

    // One file in the way is enough to refuse, and nothing else is written.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("sa.key"), "mine").unwrap();
    let other_s = other.display().to_string();
    let mut other_args = args;
    other_args[3] = &other_s;
    let run = agent(&other_args);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "error: 1 file already exists: {}; nothing was written (--force replaces them)",
            other.join("sa.key").display()
        )
    );
    assert_eq!(
        contents(&other),
        BTreeMap::from([("sa.key".to_string(), b"mine".to_vec())])
    );

    let mut forced = args.to_vec();
    forced.push("--force");
    let run = agent(&forced);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let second = contents(&out);
    assert_eq!(second.len(), FILES.len());
    for (name, _, _) in FILES {
        assert_ne!(second[name], first[name], "{name} replaced");
    }
    let config = parse_yaml(&out.join("admin.kubeconfig"));
    assert_eq!(
        config["clusters"][0]["cluster"]["server"],
        "https://10.0.1.10:6443"
    );
}

#[test]
fn upload_puts_the_cluster_pki_at_its_keys_and_never_overwrites() {
    let world = World::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (out, out_s) = out_dir(&tmp);
    let args = [
        "pki",
        "init",
        "--out",
        &out_s,
        "--cluster",
        "demo",
        "--internal-domain",
        "demo.int",
        "--upload",
        "--bucket",
        &world.bucket,
    ];

    // No region: exit 2 before anything is written.
    let run = Agent::new()
        .unwrap()
        .env("AWS_ACCESS_KEY_ID", "testing")
        .run(&args)
        .unwrap();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("set AWS_REGION"), "{}", run.stderr);
    assert!(!out.exists());

    let run = with_world(&world, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for (name, _, uploaded) in FILES {
        let key = format!("demo/pki/{name}");
        let object = world.get_object(&key).unwrap();
        if uploaded {
            assert_eq!(
                object.as_deref(),
                Some(std::fs::read(out.join(name)).unwrap().as_slice()),
                "{key}"
            );
            assert!(run
                .stdout
                .contains(&format!("uploaded s3://demo-tn-state/{key}")));
        } else {
            assert_eq!(object, None, "{key} must stay with the operator");
        }
    }
    assert!(!run.stdout.contains("testing") && !run.stderr.contains("testing"));

    // Again into a new directory: refused before anything is written or uploaded.
    let again = tmp.path().join("again");
    let again_s = again.display().to_string();
    let mut again_args = args;
    again_args[3] = &again_s;
    let run = with_world(&world, &again_args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for (name, _, _) in FILES.iter().filter(|f| f.2) {
        assert!(
            run.stderr.contains(&format!("demo/pki/{name}")),
            "{name} not named: {}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("already has 10 objects"),
        "{}",
        run.stderr
    );
    assert!(!again.exists(), "nothing written");
    for (name, _, _) in FILES.iter().filter(|f| f.2) {
        assert_eq!(
            world.get_object(&format!("demo/pki/{name}")).unwrap(),
            Some(std::fs::read(out.join(name)).unwrap()),
            "{name} unchanged"
        );
    }

    // One object in the way is enough (another cluster in the same bucket).
    world.put_object("other/pki/ca.key", b"theirs").unwrap();
    let third = tmp.path().join("third");
    let third_s = third.display().to_string();
    let mut third_args = args;
    third_args[3] = &third_s;
    third_args[5] = "other";
    let run = with_world(&world, &third_args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("s3://demo-tn-state/ already has 1 object: other/pki/ca.key;"),
        "{}",
        run.stderr
    );
    assert_eq!(world.get_object("other/pki/ca.crt").unwrap(), None);
    assert_eq!(
        world.get_object("other/pki/ca.key").unwrap().as_deref(),
        Some(&b"theirs"[..])
    );
    assert!(!third.exists());

    // --force replaces them.
    let mut forced = args.to_vec();
    forced.push("--force");
    let run = with_world(&world, &forced);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let object = world.get_object("demo/pki/ca.key").unwrap().unwrap();
    assert_eq!(object, std::fs::read(out.join("ca.key")).unwrap());
}

#[test]
fn an_etcd_node_bootstraps_from_the_uploaded_etcd_ca() {
    let world = World::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (out, out_s) = out_dir(&tmp);
    // Bucket and cluster from a node's config file, as an operator may have one at hand.
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, world.config("etcd", "")).unwrap();
    let run = with_world(
        &world,
        &[
            "--config",
            config.to_str().unwrap(),
            "pki",
            "init",
            "--out",
            &out_s,
            "--upload",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    world.create_asg("demo-etcd", "etcd", 1).unwrap();
    let inst = &world.asg_instances("demo-etcd").unwrap()[0];
    let node = world.node(inst, &world.config("etcd", "")).unwrap();
    let run = node.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let pki = node.path("/etc/etcd/pki");
    assert_eq!(
        std::fs::read(pki.join("ca.crt")).unwrap(),
        std::fs::read(out.join("etcd-ca.crt")).unwrap()
    );
    let ca = out.join("etcd-ca.crt").display().to_string();
    assert_eq!(
        openssl(&pki, &["verify", "-CAfile", &ca, "server.crt"]).trim(),
        "server.crt: OK"
    );
}

#[test]
fn config_file_mode_takes_cluster_and_domain_from_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, out_s) = out_dir(&tmp);
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        "cluster = \"prod\"\nrole = \"etcd\"\nstate_bucket = \"prod-tn-state\"\ninternal_domain = \"prod.int\"\n",
    )
    .unwrap();
    let config_s = config.display().to_string();
    let run = agent(&["--config", &config_s, "pki", "init", "--out", &out_s]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let subject = |dir: &Path, cert: &str| {
        openssl(
            dir,
            &[
                "x509", "-in", cert, "-noout", "-subject", "-nameopt", "RFC2253",
            ],
        )
    };
    assert_eq!(
        subject(&out, "etcd-ca.crt").trim(),
        "subject=CN=prod-etcd-ca"
    );
    let kubeconfig = parse_yaml(&out.join("admin.kubeconfig"));
    assert_eq!(kubeconfig["clusters"][0]["name"], "prod");
    assert_eq!(
        kubeconfig["clusters"][0]["cluster"]["server"],
        "https://kubernetes.prod.int:443"
    );

    // A flag overrides the config's value.
    let other = tmp.path().join("other");
    let other_s = other.display().to_string();
    let run = agent(&[
        "--config",
        &config_s,
        "pki",
        "init",
        "--out",
        &other_s,
        "--internal-domain",
        "other.int",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(subject(&other, "ca.crt").trim(), "subject=CN=prod-ca");
    let kubeconfig = parse_yaml(&other.join("admin.kubeconfig"));
    assert_eq!(
        kubeconfig["clusters"][0]["cluster"]["server"],
        "https://kubernetes.other.int:443"
    );

    // No --cluster and no config file: exit 2 saying what to pass; nothing written.
    let missing = tmp.path().join("missing");
    let missing_s = missing.display().to_string();
    let root = tmp.path().join("root");
    let root_s = root.display().to_string();
    let run = agent(&["--root", &root_s, "pki", "init", "--out", &missing_s]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "error: no cluster name: pass --cluster NAME, or a node config file with --config PATH\n  \
             caused by: cannot read config file {root_s}/etc/tn-agent/config.toml\n  \
             caused by: No such file or directory (os error 2)"
        )
    );
    assert!(!missing.exists());

    // A bad value: exit 2 naming the flag; nothing written.
    let run = agent(&[
        "pki",
        "init",
        "--out",
        &missing_s,
        "--cluster",
        "Prod",
        "--internal-domain",
        "prod.int",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("error: --cluster: expected a cluster name"),
        "{}",
        run.stderr
    );
    assert!(!missing.exists());
}

/// Rotation makes only a new bootstrap token, in the directory and in the bucket; a master's
/// next bootstrap puts it in the addon's Secret, which expires a year after the token was
/// stored, and records that for `status`.
#[test]
fn rotating_the_bootstrap_token_replaces_only_the_token() {
    let world = World::start().unwrap();
    world.init_pki().unwrap();
    let out = world.dir().join("operator");
    let out_s = out.display().to_string();
    let before = contents(&out);
    let key = "demo/pki/bootstrap-token";
    let old = world.get_object(key).unwrap().unwrap();
    let run = with_world(
        &world,
        &[
            "pki",
            "init",
            "--out",
            &out_s,
            "--cluster",
            "demo",
            "--rotate-bootstrap-token",
            "--upload",
            "--bucket",
            &world.bucket,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let after = contents(&out);
    assert_eq!(after.len(), before.len());
    for (name, bytes) in &before {
        if name == "bootstrap-token" {
            assert_ne!(&after[name], bytes, "a new token");
        } else {
            assert_eq!(&after[name], bytes, "{name} is untouched");
        }
    }
    let new = world.get_object(key).unwrap().unwrap();
    assert_eq!(new, after["bootstrap-token"]);
    assert_ne!(new, old);
    let token: tn_agent::pki::token::BootstrapToken =
        String::from_utf8(new).unwrap().trim_end().parse().unwrap();
    assert!(
        !run.stdout.contains(token.secret()),
        "the secret is never printed"
    );

    world.create_asg("demo-etcd", "etcd", 1).unwrap();
    world.create_asg("demo-master", "master", 1).unwrap();
    let inst = &world.asg_instances("demo-master").unwrap()[0];
    let config = world.config(
        "master",
        "[etcd]\nasg = \"demo-etcd\"\n[kubernetes]\nversion = \"v1.31.4\"\n",
    );
    let master = world.node(inst, &config).unwrap();
    let run = master.run(&["bootstrap"]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let addon =
        std::fs::read_to_string(master.path("/etc/kubernetes/addons/tls-bootstrap.yaml")).unwrap();
    assert!(
        addon.contains(&format!("bootstrap-token-{}", token.id())),
        "{addon}"
    );
    let expires = master.state().unwrap().bootstrap_token_expires.unwrap();
    assert!(
        addon.contains(&format!("expiration: {expires}"))
            || addon.contains(&format!("expiration: '{expires}'")),
        "{addon}"
    );
    let status = master.run(&["status", "--json"]).unwrap();
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        report["bootstrap"]["bootstrap_token_expires"],
        expires.as_str()
    );
    let days = report["bootstrap"]["bootstrap_token_days_left"]
        .as_i64()
        .unwrap();
    assert!((364..=365).contains(&days), "{expires}");
}
