//! `pki init`: inputs, the files it makes, and how it writes and describes them.

use std::path::Path;

use crate::config::Settings;
use crate::fsutil::{MODE_PUBLIC, MODE_SECRET};
use crate::pki::init::*;
use crate::pki::token::BootstrapToken;
use crate::pki::{self, Ca, Leaf};

fn inputs() -> Inputs {
    Inputs {
        cluster: "prod".parse().unwrap(),
        apiserver: "https://kubernetes.prod.int:443".parse().unwrap(),
        vpc_number: 0,
        bucket: None,
    }
}

fn settings(text: &str) -> Settings {
    crate::config::from_sources(&[("/etc/tn-agent/config.toml".into(), text.to_string())]).unwrap()
}

const ETCD_CONFIG: &str =
    "cluster = \"prod\"\nrole = \"etcd\"\nstate_bucket = \"prod-tn-state\"\ninternal_domain = \"prod.int\"\nvpc_number = 3\n";

#[test]
fn every_file_holds_what_its_name_says() {
    let generated = generate(&inputs()).unwrap();
    let names: Vec<_> = generated.iter().map(|(s, _)| s.name).collect();
    let expected: Vec<_> = FILES.iter().map(|s| s.name).collect();
    assert_eq!(names, expected);
    for (spec, body) in generated.iter() {
        let name = spec.name;
        let key = name.ends_with(".key");
        if name.ends_with(".crt") {
            let info = pki::inspect(body).unwrap();
            let want_cn = match name {
                "admin.crt" => ADMIN_CN.to_string(),
                _ => format!("prod-{}", name.trim_end_matches(".crt")),
            };
            assert_eq!(info.subject_cn.as_deref(), Some(want_cn.as_str()), "{name}");
            assert_eq!(info.is_ca, name != "admin.crt", "{name}");
        } else if key {
            assert!(body.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{name}");
        } else if name == "sa.pub" {
            assert!(body.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{name}");
        } else if name == "secrets-encryption-key" {
            let key = body.parse::<crate::pki::encryption::EncryptionKey>();
            assert!(key.is_ok() && body.ends_with('\n'), "{name}");
        } else if name == "bootstrap-token" {
            let token = body.trim_end_matches('\n');
            let parsed = token.parse::<BootstrapToken>().map(|t| t.token());
            assert_eq!(parsed.as_deref(), Ok(token), "{body:?}");
            assert!(body.ends_with('\n'));
        } else {
            assert!(body.starts_with("apiVersion: v1\nkind: Config\n"), "{name}");
        }
        let secret = key
            || name == "bootstrap-token"
            || name == "secrets-encryption-key"
            || name == "admin.kubeconfig";
        let want_mode = if secret { MODE_SECRET } else { MODE_PUBLIC };
        assert_eq!(spec.mode, want_mode, "{name}");
        assert_eq!(spec.upload, !name.starts_with("admin."), "{name}");
    }
    // Each CA key is its certificate's, and the admin certificate is the cluster CA's.
    for ca in ["ca", "etcd-ca", "front-proxy-ca"] {
        let cert = generated.get(&format!("{ca}.crt")).unwrap();
        let key = generated.get(&format!("{ca}.key")).unwrap();
        Ca::from_pem(cert, key).unwrap();
    }
    let ca = Ca::from_pem(
        generated.get("ca.crt").unwrap(),
        generated.get("ca.key").unwrap(),
    )
    .unwrap();
    let admin = (
        generated.get("admin.crt").unwrap(),
        generated.get("admin.key").unwrap(),
    );
    assert_eq!(
        pki::check_reuse(
            admin.0,
            admin.1,
            &ca,
            &admin_request(),
            std::time::Duration::from_secs(300 * 86_400)
        ),
        pki::Reuse::Keep
    );
    // Debug shows names only.
    assert!(!format!("{generated:?}").contains("PRIVATE"));
}

#[test]
fn the_service_account_public_key_is_the_private_keys() {
    let pair = pki::generate_key_pair().unwrap();
    let key = rcgen::KeyPair::from_pem(&pair.private_pem).unwrap();
    assert_eq!(key.public_key_pem(), pair.public_pem);
    assert!(!format!("{pair:?}").contains("PRIVATE"));
    assert_ne!(
        pki::generate_key_pair().unwrap().public_pem,
        pair.public_pem
    );
}

#[test]
fn the_kubeconfig_is_exactly_this() {
    let leaf = Leaf {
        cert_pem: "CERT\n".to_string(),
        key_pem: "KEY\n".to_string(),
    };
    let text = admin_kubeconfig(
        &"prod".parse().unwrap(),
        &"https://10.0.1.10:6443".parse().unwrap(),
        "CA\n",
        &leaf,
    );
    let expected = r#"apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://10.0.1.10:6443
    certificate-authority-data: Q0EK
users:
- name: prod-admin
  user:
    client-certificate-data: Q0VSVAo=
    client-key-data: S0VZCg==
contexts:
- name: prod-admin@prod
  context:
    cluster: prod
    user: prod-admin
current-context: prod-admin@prod
preferences: {}
"#;
    assert_eq!(text, expected);
}

#[test]
fn inputs_come_from_flags_over_the_config() {
    let config = settings(ETCD_CONFIG);
    let none = Overrides::default();
    let got = resolve(&none, Some(&config)).unwrap();
    assert_eq!(got.cluster.as_str(), "prod");
    assert_eq!(got.apiserver.as_str(), "https://kubernetes.prod.int:443");
    assert_eq!(got.vpc_number, 3);
    assert_eq!(got.bucket.as_deref(), Some("prod-tn-state"));

    let flags = Overrides {
        cluster: Some("stage".into()),
        internal_domain: Some("stage.int".into()),
        vpc_number: Some(5),
        apiserver: None,
        bucket: Some("other".into()),
    };
    let got = resolve(&flags, Some(&config)).unwrap();
    assert_eq!(got.cluster.as_str(), "stage");
    assert_eq!(got.apiserver.as_str(), "https://kubernetes.stage.int:443");
    assert_eq!(got.vpc_number, 5);
    assert_eq!(got.bucket.as_deref(), Some("other"));

    // Flags alone.
    let flags = Overrides {
        cluster: Some("stage".into()),
        apiserver: Some("https://api.stage.example:6443".into()),
        ..Overrides::default()
    };
    let got = resolve(&flags, None).unwrap();
    assert_eq!(got.apiserver.as_str(), "https://api.stage.example:6443");
    assert_eq!((got.vpc_number, got.bucket), (0, None));

    // A master's explicit apiserver wins over its internal_domain.
    let master = settings(&format!(
        "{ETCD_CONFIG}[etcd]\nasg = \"prod-etcd\"\n[kubernetes]\nversion = \"v1.31.4\"\napiserver = \"https://10.0.1.10:6443\"\n"
    ).replace("role = \"etcd\"", "role = \"master\""));
    let got = resolve(&none, Some(&master)).unwrap();
    assert_eq!(got.apiserver.as_str(), "https://10.0.1.10:6443");
}

#[test]
fn bad_or_missing_inputs_say_what_to_pass() {
    let err = |flags: Overrides| resolve(&flags, None).unwrap_err().0;
    assert_eq!(
        err(Overrides::default()),
        "no cluster name: pass --cluster NAME, or a node config file with --config PATH"
    );
    let named = |cluster: &str| Overrides {
        cluster: Some(cluster.into()),
        ..Overrides::default()
    };
    assert!(err(named("prod")).starts_with("no API server address"));
    assert_eq!(
        err(named("Prod")),
        "--cluster: expected a cluster name of 1-32 characters from a-z, 0-9 and '-', got \"Prod\""
    );
    for domain in ["Prod.int", "prod..int", "-prod.int", "prod_int", ""] {
        let flags = Overrides {
            internal_domain: Some(domain.into()),
            ..named("prod")
        };
        assert!(
            err(flags).starts_with("--internal-domain: expected a lowercase DNS name"),
            "{domain}"
        );
    }
    let flags = Overrides {
        apiserver: Some("http://x".into()),
        ..named("prod")
    };
    assert!(err(flags).starts_with("--apiserver: expected an https:// URL"));
}

#[test]
fn writes_every_file_with_its_mode_into_a_private_dir_and_finds_them_again() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out/pki");
    assert!(existing(&dir).unwrap().is_empty());
    let generated = generate(&inputs()).unwrap();
    let written = write_all(&dir, &generated).unwrap();
    assert_eq!(written.len(), FILES.len());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for (spec, body) in generated.iter() {
        let path = dir.join(spec.name);
        assert_eq!(mode(&path), spec.mode, "{}", spec.name);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), body);
    }
    assert_eq!(existing(&dir).unwrap(), written);
}

#[test]
fn descriptions_never_show_a_secret() {
    let generated = generate(&inputs()).unwrap();
    let token = generated.get("bootstrap-token").unwrap().trim_end();
    let (id, secret) = token.split_once('.').unwrap();
    for (spec, body) in generated.iter() {
        let line = describe(spec, body);
        assert!(
            !line.contains("PRIVATE") && !line.contains(secret),
            "{line}"
        );
    }
    let token_spec = FILES.iter().find(|f| f.name == "bootstrap-token").unwrap();
    assert_eq!(
        describe(token_spec, token),
        format!("bootstrap token, id {id}")
    );
    let ca = describe(&FILES[0], generated.get("ca.crt").unwrap());
    assert!(ca.starts_with("CA CN=prod-ca, expires 20"), "{ca}");
    let admin_spec = FILES.iter().find(|f| f.name == "admin.crt").unwrap();
    let admin = describe(admin_spec, generated.get("admin.crt").unwrap());
    assert!(admin.starts_with("client certificate "), "{admin}");
    assert!(admin.contains("CN=kubernetes-admin"), "{admin}");
}
