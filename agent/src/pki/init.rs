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

use crate::config::{ApiServerUrl, ClusterName, Settings};
use crate::exit::BadInput;
use crate::fsutil::{self, MODE_PUBLIC, MODE_SECRET};
use crate::kube::kubeconfig::{Credentials, Kubeconfig};
use crate::pki::encryption::EncryptionKey;
use crate::pki::token::BootstrapToken;
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
pub const FILES: [FileSpec; 13] = [
    file("ca.crt", MODE_PUBLIC, true),
    file("ca.key", MODE_SECRET, true),
    file("etcd-ca.crt", MODE_PUBLIC, true),
    file("etcd-ca.key", MODE_SECRET, true),
    file("front-proxy-ca.crt", MODE_PUBLIC, true),
    file("front-proxy-ca.key", MODE_SECRET, true),
    file("sa.key", MODE_SECRET, true),
    file("sa.pub", MODE_PUBLIC, true),
    file("bootstrap-token", MODE_SECRET, true),
    file("secrets-encryption-key", MODE_SECRET, true),
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
    let (cluster, bucket) = resolve_cluster(flags, config)?;
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
        bucket,
    })
}

/// The cluster name and the state bucket (when known) from `flags` over `config`.
pub fn resolve_cluster(
    flags: &Overrides,
    config: Option<&Settings>,
) -> Result<(ClusterName, Option<String>), BadInput> {
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
    let bucket = flags
        .bucket
        .clone()
        .or_else(|| config.map(|s| s.state_bucket.clone()));
    Ok((cluster, bucket))
}

/// `https://kubernetes.<domain>:443`, the config file's default rule (SPEC §4).
fn default_apiserver(domain: &str) -> Result<ApiServerUrl, String> {
    if !crate::config::is_dns_name(domain) {
        return Err(format!(
            "expected a lowercase DNS name like prod.int, got {domain:?}"
        ));
    }
    format!("https://kubernetes.{domain}:443")
        .parse()
        .map_err(|e: crate::config::InvalidValue| e.to_string())
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

/// The admin kubeconfig: one cluster named after the cluster, one user `<cluster>-admin`, one
/// context `<cluster>-admin@<cluster>`, current.
pub fn admin_kubeconfig(
    cluster: &ClusterName,
    server: &ApiServerUrl,
    ca_pem: &str,
    admin: &Leaf,
) -> String {
    let credentials = Credentials::Cert {
        cert_pem: &admin.cert_pem,
        key_pem: &admin.key_pem,
    };
    let user = format!("{cluster}-admin");
    Kubeconfig::embedded(
        cluster.as_str(),
        server.as_str(),
        ca_pem,
        &user,
        credentials,
    )
    .to_yaml()
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
/// `<cluster>-front-proxy-ca`), the service-account key pair, a bootstrap token, the Secrets
/// encryption key, and the admin
/// certificate (1 year, signed by the cluster CA) with its kubeconfig.
pub fn generate(inputs: &Inputs) -> Result<Generated, PkiError> {
    let cluster = &inputs.cluster;
    let ca = Ca::generate(&format!("{cluster}-ca"))?;
    let etcd_ca = Ca::generate(&format!("{cluster}-etcd-ca"))?;
    let front_proxy_ca = Ca::generate(&format!("{cluster}-front-proxy-ca"))?;
    let sa = pki::generate_key_pair()?;
    let token = BootstrapToken::generate(&mut rand::rng());
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
        format!("{}\n", token.token()),
        format!("{}\n", EncryptionKey::generate(&mut rand::rng()).base64()),
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
    generated
        .iter()
        .map(|(spec, body)| write_one(dir, spec, body))
        .collect()
}

/// The [`FILES`] entry named `name`.
pub fn file_spec(name: &str) -> &'static FileSpec {
    FILES
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} is not one of pki init's files"))
}

/// Writes one of [`FILES`] into `dir` (created 0700 when missing), atomically with its mode,
/// replacing what is there; returns its path.
pub fn write_one(dir: &Path, spec: &FileSpec, body: &str) -> Result<PathBuf, InitError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| InitError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    let path = dir.join(spec.name);
    fsutil::write_atomic(&path, body.as_bytes(), spec.mode).map_err(|source| InitError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
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
        "secrets-encryption-key" => "key the apiserver encrypts Secrets with".to_string(),
        _ => "private key".to_string(),
    }
}
