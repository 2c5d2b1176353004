//! `pki init` on an operator's workstation: the cluster's CAs, service-account key pair,
//! bootstrap token and the operator's admin credentials (SPEC §5), all generated in memory
//! before any file is written.
//!
//! Inputs are resolved from flags over the config file by [`resolve`]; [`generate`] makes the
//! bundle; [`existing`] and [`write_all`] deal with the output directory. Uploading is the
//! command line's job (`cli/pki.rs`), with [`FileSpec::upload`] saying which files go.

use std::fmt;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::Rng;

use crate::config::{ApiServerUrl, ClusterName, Settings};
use crate::exit::BadInput;
use crate::fsutil::{self, MODE_PUBLIC, MODE_SECRET};
use crate::pki::{self, Ca, Leaf, LeafRequest, PkiError, Usage};

/// The admin client certificate's subject CN.
pub const ADMIN_CN: &str = "kubernetes-admin";
/// The admin client certificate's subject O: the group the API server grants everything.
pub const ADMIN_GROUP: &str = "system:masters";

/// One file `pki init` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    pub name: &'static str,
    pub mode: u32,
    /// Whether `--upload` puts it in the state bucket at `<cluster>/pki/<name>`. The admin
    /// credentials stay with the operator.
    pub upload: bool,
}

const fn file(name: &'static str, mode: u32, upload: bool) -> FileSpec {
    FileSpec { name, mode, upload }
}

/// Every file, in the order [`generate`] makes them and [`write_all`] writes them.
pub const FILES: [FileSpec; 12] = [
    file("ca.crt", MODE_PUBLIC, true),
    file("ca.key", MODE_SECRET, true),
    file("etcd-ca.crt", MODE_PUBLIC, true),
    file("etcd-ca.key", MODE_SECRET, true),
    file("front-proxy-ca.crt", MODE_PUBLIC, true),
    file("front-proxy-ca.key", MODE_SECRET, true),
    file("sa.key", MODE_SECRET, true),
    file("sa.pub", MODE_PUBLIC, true),
    file("bootstrap-token", MODE_SECRET, true),
    file("admin.crt", MODE_PUBLIC, false),
    file("admin.key", MODE_SECRET, false),
    // It holds the admin key.
    file("admin.kubeconfig", MODE_SECRET, false),
];

/// What the flags say; each value given overrides the config file's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub cluster: Option<String>,
    pub internal_domain: Option<String>,
    pub vpc_number: Option<u8>,
    pub apiserver: Option<String>,
    pub bucket: Option<String>,
}

/// Everything `pki init` needs to know about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    pub cluster: ClusterName,
    /// The admin kubeconfig's server.
    pub apiserver: ApiServerUrl,
    /// Only checked: nothing `pki init` makes depends on the addressing plan (the masters put
    /// the API service IP in the apiserver certificate at boot).
    pub vpc_number: u8,
    /// The state bucket, when known; `--upload` needs it.
    pub bucket: Option<String>,
}

/// The inputs from `flags` over `config` (a node's validated config file, when one was read).
/// The API server is, first found: `--apiserver`; `https://kubernetes.<--internal-domain>:443`;
/// the config's `kubernetes.apiserver`; `https://kubernetes.<internal_domain>:443` from the
/// config.
pub fn resolve(flags: &Overrides, config: Option<&Settings>) -> Result<Inputs, BadInput> {
    let cluster =
        match (&flags.cluster, config) {
            (Some(name), _) => name
                .parse::<ClusterName>()
                .map_err(|e| BadInput(format!("--cluster: {e}")))?,
            (None, Some(settings)) => settings.cluster.clone(),
            (None, None) => return Err(BadInput(
                "no cluster name: pass --cluster NAME, or a node config file with --config PATH"
                    .into(),
            )),
        };
    let from_config = config.and_then(|s| s.kubernetes().map(|k| k.apiserver.clone()));
    let config_domain = config.and_then(|s| s.internal_domain.as_deref());
    let apiserver = match (&flags.apiserver, &flags.internal_domain) {
        (Some(url), _) => url
            .parse()
            .map_err(|e| BadInput(format!("--apiserver: {e}")))?,
        (None, Some(domain)) => default_apiserver(domain)
            .map_err(|e| BadInput(format!("--internal-domain: {e}")))?,
        (None, None) => match (from_config, config_domain) {
            (Some(url), _) => url,
            (None, Some(domain)) => default_apiserver(domain)
                .map_err(|e| BadInput(format!("internal_domain in the config file: {e}")))?,
            (None, None) => {
                return Err(BadInput(
                    "no API server address for the admin kubeconfig: pass --internal-domain \
                     DOMAIN (the server is then https://kubernetes.<DOMAIN>:443) or --apiserver URL"
                        .into(),
                ))
            }
        },
    };
    Ok(Inputs {
        cluster,
        apiserver,
        vpc_number: flags
            .vpc_number
            .or(config.map(|s| s.vpc_number))
            .unwrap_or(0),
        bucket: flags
            .bucket
            .clone()
            .or_else(|| config.map(|s| s.state_bucket.clone())),
    })
}

/// `https://kubernetes.<domain>:443`, the config file's default rule (SPEC §4).
fn default_apiserver(domain: &str) -> Result<ApiServerUrl, String> {
    if !is_dns_name(domain) {
        return Err(format!(
            "expected a lowercase DNS name like prod.int, got {domain:?}"
        ));
    }
    format!("https://kubernetes.{domain}:443")
        .parse()
        .map_err(|e: crate::config::InvalidValue| e.to_string())
}

/// Dot-separated labels of 1-63 characters from `a-z`, `0-9` and `-`, not starting or ending
/// with `-`; at most 253 characters in all.
fn is_dns_name(s: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    (1..=253).contains(&s.len()) && s.split('.').all(label_ok)
}

/// The characters of a bootstrap token.
const TOKEN_CHARS: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A kubelet TLS bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`: token id, then secret.
pub fn bootstrap_token(rng: &mut impl Rng) -> String {
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(TOKEN_CHARS[rng.random_range(0..TOKEN_CHARS.len())]))
            .collect()
    };
    let id = pick(6);
    let secret = pick(16);
    format!("{id}.{secret}")
}

/// Whether `s` is a bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn is_bootstrap_token(s: &str) -> bool {
    let part_ok =
        |p: &str, len: usize| p.len() == len && p.bytes().all(|b| TOKEN_CHARS.contains(&b));
    matches!(s.split_once('.'), Some((id, secret)) if part_ok(id, 6) && part_ok(secret, 16))
}

/// The operator's admin client certificate: `CN=kubernetes-admin, O=system:masters`, clientAuth.
pub fn admin_request() -> LeafRequest {
    LeafRequest {
        common_name: ADMIN_CN.to_string(),
        organization: Some(ADMIN_GROUP.to_string()),
        dns_names: Vec::new(),
        ips: Vec::new(),
        usages: vec![Usage::ClientAuth],
    }
}

/// The admin kubeconfig (YAML, every string double-quoted): one cluster named after the
/// cluster, one user `<cluster>-admin`, one context `<cluster>-admin@<cluster>`, current.
pub fn admin_kubeconfig(
    cluster: &ClusterName,
    server: &ApiServerUrl,
    ca_pem: &str,
    admin: &Leaf,
) -> String {
    // A JSON string is a YAML double-quoted scalar.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let b64 = |s: &str| q(&base64::engine::general_purpose::STANDARD.encode(s));
    let user = format!("{cluster}-admin");
    let context = format!("{user}@{cluster}");
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {cluster_q}\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority-data: {ca}\n\
         users:\n\
         - name: {user_q}\n  \
           user:\n    \
             client-certificate-data: {cert}\n    \
             client-key-data: {key}\n\
         contexts:\n\
         - name: {context_q}\n  \
           context:\n    \
             cluster: {cluster_q}\n    \
             user: {user_q}\n\
         current-context: {context_q}\n\
         preferences: {{}}\n",
        cluster_q = q(cluster.as_str()),
        server = q(server.as_str()),
        ca = b64(ca_pem),
        user_q = q(&user),
        cert = b64(&admin.cert_pem),
        key = b64(&admin.key_pem),
        context_q = q(&context),
    )
}

/// Everything `pki init` makes, in memory, in [`FILES`] order.
pub struct Generated {
    files: Vec<(FileSpec, String)>,
}

impl fmt::Debug for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.files.iter().map(|(spec, _)| spec.name))
            .finish()
    }
}

impl Generated {
    /// Each file and its contents.
    pub fn iter(&self) -> impl Iterator<Item = (&FileSpec, &str)> {
        self.files.iter().map(|(spec, body)| (spec, body.as_str()))
    }

    /// The contents of the file `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(s, _)| s.name == name).map(|(_, b)| b)
    }
}

/// Generates everything: three 10-year ECDSA P-256 CAs (`<cluster>-ca`, `<cluster>-etcd-ca`,
/// `<cluster>-front-proxy-ca`), the service-account key pair, a bootstrap token, and the admin
/// certificate (1 year, signed by the cluster CA) with its kubeconfig.
pub fn generate(inputs: &Inputs) -> Result<Generated, PkiError> {
    let cluster = &inputs.cluster;
    let ca = Ca::generate(&format!("{cluster}-ca"))?;
    let etcd_ca = Ca::generate(&format!("{cluster}-etcd-ca"))?;
    let front_proxy_ca = Ca::generate(&format!("{cluster}-front-proxy-ca"))?;
    let sa = pki::generate_key_pair()?;
    let token = bootstrap_token(&mut rand::rng());
    let admin = ca.issue(&admin_request())?;
    let kubeconfig = admin_kubeconfig(cluster, &inputs.apiserver, ca.cert_pem(), &admin);
    // In FILES order; a unit test checks each file holds what its name says.
    let contents = [
        ca.cert_pem().to_string(),
        ca.key_pem(),
        etcd_ca.cert_pem().to_string(),
        etcd_ca.key_pem(),
        front_proxy_ca.cert_pem().to_string(),
        front_proxy_ca.key_pem(),
        sa.private_pem,
        sa.public_pem,
        format!("{token}\n"),
        admin.cert_pem,
        admin.key_pem,
        kubeconfig,
    ];
    Ok(Generated {
        files: FILES.into_iter().zip(contents).collect(),
    })
}

/// Writing the output directory failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot look at {}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The files of [`FILES`] that already exist in `dir` (any kind of file, a dangling symlink too).
pub fn existing(dir: &Path) -> Result<Vec<PathBuf>, InitError> {
    let mut found = Vec::new();
    for spec in &FILES {
        let path = dir.join(spec.name);
        match path.symlink_metadata() {
            Ok(_) => found.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(InitError::Inspect { path, source }),
        }
    }
    Ok(found)
}

/// Writes every file into `dir`, each atomically with its mode, and returns the paths. `dir`
/// is created 0700 when missing (an existing directory keeps its mode).
pub fn write_all(dir: &Path, generated: &Generated) -> Result<Vec<PathBuf>, InitError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| InitError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    let mut written = Vec::new();
    for (spec, body) in generated.iter() {
        let path = dir.join(spec.name);
        fsutil::write_atomic(&path, body.as_bytes(), spec.mode).map_err(|source| {
            InitError::Write {
                path: path.clone(),
                source,
            }
        })?;
        written.push(path);
    }
    Ok(written)
}

/// One line per file for the operator: what it is, never its secret.
pub fn describe(spec: &FileSpec, body: &str) -> String {
    if spec.name.ends_with(".crt") {
        return match pki::inspect(body) {
            Ok(info) => format!(
                "{} {}, expires {}",
                if info.is_ca {
                    "CA"
                } else {
                    "client certificate"
                },
                info.subject_dn,
                info.not_after.date()
            ),
            Err(_) => "certificate".to_string(),
        };
    }
    match spec.name {
        "sa.pub" => "service-account token verification key".to_string(),
        "sa.key" => "service-account token signing key".to_string(),
        "bootstrap-token" => format!(
            "bootstrap token, id {}",
            body.split('.').next().unwrap_or_default()
        ),
        "admin.kubeconfig" => format!("kubeconfig for {ADMIN_CN} ({ADMIN_GROUP})"),
        _ => "private key".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn inputs() -> Inputs {
        Inputs {
            cluster: "prod".parse().unwrap(),
            apiserver: "https://kubernetes.prod.int:443".parse().unwrap(),
            vpc_number: 0,
            bucket: None,
        }
    }

    fn settings(text: &str) -> Settings {
        crate::config::from_sources(&[("/etc/tn-agent/config.toml".into(), text.to_string())])
            .unwrap()
    }

    const ETCD_CONFIG: &str =
        "cluster = \"prod\"\nrole = \"etcd\"\nstate_bucket = \"prod-tn-state\"\ninternal_domain = \"prod.int\"\nvpc_number = 3\n";

    #[test]
    fn bootstrap_tokens_have_the_kubernetes_format_and_differ() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = bootstrap_token(&mut rng);
        let b = bootstrap_token(&mut rng);
        assert!(is_bootstrap_token(&a), "{a}");
        assert!(is_bootstrap_token(&b), "{b}");
        assert_ne!(a, b);
        // Over many tokens every character of the alphabet shows up: no bias to a subset.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(bootstrap_token(&mut rng).bytes().filter(|&c| c != b'.'));
        }
        assert_eq!(seen.len(), 36);
        for bad in [
            "",
            "abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef0",
            "Abcdef.0123456789abcdef",
            "abcde.0123456789abcdeff",
            "abcdef:0123456789abcdef",
            "abcdef.0123456789abcde_",
        ] {
            assert!(!is_bootstrap_token(bad), "{bad:?}");
        }
        assert!(is_bootstrap_token("abcdef.0123456789abcdef"));
    }

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
            } else if name == "bootstrap-token" {
                assert!(is_bootstrap_token(body.trim_end_matches('\n')), "{body:?}");
                assert!(body.ends_with('\n'));
            } else {
                assert!(body.starts_with("apiVersion: v1\nkind: Config\n"), "{name}");
            }
            let secret = key || name == "bootstrap-token" || name == "admin.kubeconfig";
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
- name: "prod"
  cluster:
    server: "https://10.0.1.10:6443"
    certificate-authority-data: "Q0EK"
users:
- name: "prod-admin"
  user:
    client-certificate-data: "Q0VSVAo="
    client-key-data: "S0VZCg=="
contexts:
- name: "prod-admin@prod"
  context:
    cluster: "prod"
    user: "prod-admin"
current-context: "prod-admin@prod"
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
        let admin = describe(&FILES[9], generated.get("admin.crt").unwrap());
        assert!(admin.starts_with("client certificate "), "{admin}");
        assert!(admin.contains("CN=kubernetes-admin"), "{admin}");
    }
}
