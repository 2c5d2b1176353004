//! Configuration: `/etc/tn-agent/config.toml` plus `config.d/*.toml` drop-ins, read in three
//! steps: raw TOML checked against the schema, drop-ins merged over it, then validated into
//! [`Settings`].
//!
//! Every error names the file, the dotted key and what is expected (SPEC §4). The file named for a
//! bad value is the one that supplied the value that won the merge.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::{Table, Value};

/// Where the agent looks for its configuration unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/tn-agent/config.toml";

/// Name of the drop-in directory next to the main config file.
const DROPIN_DIR: &str = "config.d";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A configuration that cannot be used. A retry cannot help (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration files given")]
    NoSources,

    #[error("cannot read config file {}", .path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("cannot read config directory {}", .path.display())]
    ReadDir { path: PathBuf, source: io::Error },

    #[error("{}: line {line}: {message}", .file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },

    #[error("{}: unknown key `{key}`; expected one of: {expected}", .file.display())]
    UnknownKey {
        file: PathBuf,
        key: String,
        expected: String,
    },

    #[error("{}: key `{key}`: expected {expected}, found {found}", .file.display())]
    WrongType {
        file: PathBuf,
        key: String,
        expected: &'static str,
        found: &'static str,
    },

    #[error("{}: key `{key}`: {invalid}", .file.display())]
    Value {
        file: PathBuf,
        key: String,
        invalid: InvalidValue,
    },

    #[error(
        "key `{key}` is required {requirement}; set it in {} or a drop-in in {}/",
        .main.display(),
        .dropin_dir.display()
    )]
    Missing {
        key: String,
        requirement: String,
        main: PathBuf,
        dropin_dir: PathBuf,
    },

    #[error(
        "{}: key `kubernetes`: the [kubernetes] table applies to roles master and worker only; \
         remove it for role etcd",
        .file.display()
    )]
    KubernetesForEtcd { file: PathBuf },

    /// The serde guard disagreed with the schema walk; means a bug in this module.
    #[error("{}: configuration does not match the schema: {message}", .file.display())]
    Schema { file: PathBuf, message: String },
}

/// A value that breaks its type's rules: what was expected and what was given (a TOML-ish literal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {got}")]
pub struct InvalidValue {
    pub expected: String,
    pub got: String,
}

impl InvalidValue {
    fn string(expected: impl Into<String>, got: &str) -> Self {
        InvalidValue {
            expected: expected.into(),
            got: format!("{got:?}"),
        }
    }

    fn integer(expected: impl Into<String>, got: i64) -> Self {
        InvalidValue {
            expected: expected.into(),
            got: got.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validated settings
// ---------------------------------------------------------------------------------------------

/// The validated configuration of this node.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub cluster: ClusterName,
    pub role: Role,
    /// S3 bucket holding the cluster's PKI and state.
    pub state_bucket: String,
    /// Internal Route53 zone; the default API endpoint is `kubernetes.<domain>`.
    pub internal_domain: Option<String>,
    pub vpc_number: u8,
    /// Addresses derived from `vpc_number`.
    pub plan: AddressPlan,
    pub etcd: EtcdSettings,
    /// `Some` for roles master and worker, `None` for role etcd.
    pub kubernetes: Option<KubernetesSettings>,
    /// The files that were merged, in merge order.
    pub sources: Vec<PathBuf>,
}

/// `[etcd]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// The etcd ASG. `None` only for role etcd, which then uses its own ASG.
    pub asg: Option<String>,
    pub tls: bool,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    /// From `join_timeout_seconds`.
    pub join_timeout: Duration,
}

/// `[kubernetes]`, for roles master and worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSettings {
    pub version: KubeVersion,
    pub apiserver: ApiServerUrl,
    pub cluster_domain: String,
    pub node_labels: BTreeMap<String, String>,
    pub node_taints: Vec<Taint>,
}

/// A cluster name: 1-32 characters from `a-z`, `0-9` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterName(String);

impl ClusterName {
    const RULE: &'static str = "a cluster name of 1-32 characters from a-z, 0-9 and '-'";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClusterName {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(ClusterName(s.to_owned()))
        } else {
            Err(InvalidValue::string(Self::RULE, s))
        }
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Etcd,
    Master,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Etcd => "etcd",
            Role::Master => "master",
            Role::Worker => "worker",
        }
    }
}

impl FromStr for Role {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "etcd" => Ok(Role::Etcd),
            "master" => Ok(Role::Master),
            "worker" => Ok(Role::Worker),
            _ => Err(InvalidValue::string(
                r#"one of "etcd", "master", "worker""#,
                s,
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IPv4 network: an address with no host bits set and a prefix length of at most 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// `None` if `prefix > 32` or `addr` has host bits set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        let net = Ipv4Net { addr, prefix };
        (prefix <= 32 && u32::from(addr) & !net.mask() == 0).then_some(net)
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The addressing plan derived from `vpc_number` n: VPC 10.n.0.0/16, pods 10.(n+1).0.0/17,
/// services 10.(n+1).128.0/17, API service IP 10.(n+1).128.1, DNS 10.(n+1).128.10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPlan {
    pub vpc_cidr: Ipv4Net,
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub api_service_ip: Ipv4Addr,
    pub dns_service_ip: Ipv4Addr,
}

impl AddressPlan {
    const RULE: &'static str =
        "a VPC number from 0 to 254 (VPC 10.<n>.0.0/16, pods and services in 10.<n+1>.0.0/16)";

    /// The plan for VPC number `n`; `None` for 255, whose pod and service ranges would not exist.
    pub fn for_vpc_number(n: u8) -> Option<Self> {
        let k8s = n.checked_add(1)?;
        let net = |a, b, prefix| Ipv4Net::new(Ipv4Addr::new(10, a, b, 0), prefix);
        Some(AddressPlan {
            vpc_cidr: net(n, 0, 16)?,
            pod_cidr: net(k8s, 0, 17)?,
            service_cidr: net(k8s, 128, 17)?,
            api_service_ip: Ipv4Addr::new(10, k8s, 128, 1),
            dns_service_ip: Ipv4Addr::new(10, k8s, 128, 10),
        })
    }
}

/// A Kubernetes release, `v<major>.<minor>.<patch>` (e.g. `v1.31.4`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KubeVersion(String);

impl KubeVersion {
    const RULE: &'static str = "a Kubernetes version v<major>.<minor>.<patch>, like v1.31.4";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KubeVersion {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s
            .strip_prefix('v')
            .map(|r| r.split('.').collect())
            .unwrap_or_default();
        let ok = parts.len() == 3
            && parts
                .iter()
                .all(|p| (1..=9).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            Ok(KubeVersion(s.to_owned()))
        } else {
            Err(InvalidValue::string(Self::RULE, s))
        }
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The API server URL: `https://host[:port]`, optionally with a trailing `/`, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiServerUrl {
    url: String,
    host: String,
    port: u16,
}

impl ApiServerUrl {
    const RULE: &'static str =
        "an https:// URL with a host name or IPv4 address, an optional :port (1-65535) \
         and no path, like https://kubernetes.prod.int:443";

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, else 443.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for ApiServerUrl {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidValue::string(Self::RULE, s);
        let rest = s.strip_prefix("https://").ok_or_else(invalid)?;
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if !(path.is_empty() || path == "/") {
            return Err(invalid());
        }
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, parse_port_text(port).ok_or_else(invalid)?),
            None => (authority, 443),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !host_ok {
            return Err(invalid());
        }
        Ok(ApiServerUrl {
            url: s.to_owned(),
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for ApiServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

fn parse_port_text(text: &str) -> Option<u16> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits_only
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .filter(|p| *p != 0)
}

/// What a taint does to pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

impl FromStr for TaintEffect {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "NoSchedule" => Ok(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Ok(TaintEffect::PreferNoSchedule),
            "NoExecute" => Ok(TaintEffect::NoExecute),
            _ => Err(InvalidValue::string(
                "one of NoSchedule, PreferNoSchedule, NoExecute",
                s,
            )),
        }
    }
}

impl fmt::Display for TaintEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node taint, written `key[=value]:Effect`. An empty value (`key=:Effect`) is stored as none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Taint {
    key: String,
    value: Option<String>,
    effect: TaintEffect,
}

impl Taint {
    const RULE: &'static str =
        "a taint `key[=value]:Effect` with Effect one of NoSchedule, PreferNoSchedule, NoExecute";

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    pub fn effect(&self) -> TaintEffect {
        self.effect
    }
}

impl FromStr for Taint {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key_value, effect) = s
            .rsplit_once(':')
            .ok_or_else(|| InvalidValue::string(Self::RULE, s))?;
        let effect: TaintEffect = effect
            .parse()
            .map_err(|_| InvalidValue::string(Self::RULE, s))?;
        let (key, value) = match key_value.split_once('=') {
            Some((key, value)) => (key, Some(value).filter(|v| !v.is_empty())),
            None => (key_value, None),
        };
        if !is_label_key(key) {
            let expected = format!("a taint `key[=value]:Effect` whose key is {LABEL_KEY_RULE}");
            return Err(InvalidValue::string(expected, s));
        }
        if !value.is_none_or(is_label_value) {
            let expected =
                format!("a taint `key[=value]:Effect` whose value is {LABEL_VALUE_RULE}");
            return Err(InvalidValue::string(expected, s));
        }
        Ok(Taint {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            effect,
        })
    }
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={}:{}", self.key, value, self.effect),
            None => write!(f, "{}:{}", self.key, self.effect),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value rules
// ---------------------------------------------------------------------------------------------

const BUCKET_RULE: &str = "an S3 bucket name: 3-63 characters from a-z, 0-9, '.' and '-', \
     starting and ending with a letter or digit";
const DNS_RULE: &str =
    "a lowercase DNS name: dot-separated labels of 1-63 characters from a-z, 0-9 and '-', \
     not starting or ending with '-', at most 253 characters in all";
const ASG_RULE: &str = "an autoscaling group name of 1-255 characters without control characters";
const PATH_RULE: &str = "an absolute path";
const PORT_RULE: &str = "a TCP port from 1 to 65535";
const TIMEOUT_RULE: &str = "a number of seconds from 1 to 3600";
const LABEL_KEY_RULE: &str = "a label key `[prefix/]name`: an optional lowercase DNS subdomain \
     prefix, then a name of 1-63 characters from A-Z, a-z, 0-9, '.', '_' and '-' that starts and \
     ends with a letter or digit";
const LABEL_VALUE_RULE: &str =
    "a label value of at most 63 characters from A-Z, a-z, 0-9, '.', '_' and '-' \
     that starts and ends with a letter or digit";
const KUBELET_LABEL_RULE: &str =
    "a label the kubelet may set on its own node: in the kubernetes.io \
     and k8s.io namespaces only node.kubernetes.io/*, kubelet.kubernetes.io/* and the well-known \
     hostname, topology, instance-type, os and arch labels";

/// Labels in the kubernetes.io namespaces that the kubelet may set on itself; it refuses to start
/// with any other.
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

fn is_bucket_name(s: &str) -> bool {
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge_ok(s.as_bytes().first())
        && edge_ok(s.as_bytes().last())
}

fn is_dns_name(s: &str) -> bool {
    let is_label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label)
}

/// 1-63 characters of `[A-Za-z0-9._-]` (or 0 when `allow_empty`), starting and ending alphanumeric.
fn is_label_text(s: &str, allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    let edge_ok = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        && edge_ok(s.as_bytes().first())
        && edge_ok(s.as_bytes().last())
}

fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns_name(prefix) && is_label_text(name, false),
        None => is_label_text(key, false),
    }
}

fn is_label_value(value: &str) -> bool {
    is_label_text(value, true)
}

/// Mirrors the kubelet's check on `--node-labels`: labels in the kubernetes.io and k8s.io
/// namespaces must be ones the kubelet is allowed to set on itself.
fn is_kubelet_settable(key: &str) -> bool {
    let Some((namespace, _)) = key.split_once('/') else {
        return true;
    };
    let in_namespace = |ns: &str, root: &str| ns == root || ns.ends_with(&format!(".{root}"));
    let is_kubernetes =
        in_namespace(namespace, "kubernetes.io") || in_namespace(namespace, "k8s.io");
    !is_kubernetes
        || KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|allowed| in_namespace(namespace, allowed))
}

fn check_str(s: &str, ok: fn(&str) -> bool, rule: &str) -> Result<String, InvalidValue> {
    if ok(s) {
        Ok(s.to_owned())
    } else {
        Err(InvalidValue::string(rule, s))
    }
}

fn check_asg(s: &str) -> Result<String, InvalidValue> {
    check_str(
        s,
        |s| (1..=255).contains(&s.chars().count()) && !s.chars().any(char::is_control),
        ASG_RULE,
    )
}

fn check_data_dir(s: &str) -> Result<PathBuf, InvalidValue> {
    if Path::new(s).is_absolute() {
        Ok(PathBuf::from(s))
    } else {
        Err(InvalidValue::string(PATH_RULE, s))
    }
}

fn check_port(n: i64) -> Result<u16, InvalidValue> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| InvalidValue::integer(PORT_RULE, n))
}

fn check_vpc_number(n: i64) -> Result<(u8, AddressPlan), InvalidValue> {
    let invalid = || InvalidValue::integer(AddressPlan::RULE, n);
    let n = u8::try_from(n).map_err(|_| invalid())?;
    Ok((n, AddressPlan::for_vpc_number(n).ok_or_else(invalid)?))
}

fn check_timeout(n: i64) -> Result<Duration, InvalidValue> {
    u64::try_from(n)
        .ok()
        .filter(|s| (1..=3600).contains(s))
        .map(Duration::from_secs)
        .ok_or_else(|| InvalidValue::integer(TIMEOUT_RULE, n))
}

// ---------------------------------------------------------------------------------------------
// Step 1: raw TOML, checked against the schema
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster: Option<String>,
    role: Option<String>,
    state_bucket: Option<String>,
    internal_domain: Option<String>,
    vpc_number: Option<i64>,
    etcd: Option<RawEtcd>,
    kubernetes: Option<RawKubernetes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEtcd {
    asg: Option<String>,
    tls: Option<bool>,
    data_dir: Option<String>,
    client_port: Option<i64>,
    peer_port: Option<i64>,
    join_timeout_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKubernetes {
    version: Option<String>,
    apiserver: Option<String>,
    cluster_domain: Option<String>,
    node_labels: Option<BTreeMap<String, String>>,
    node_taints: Option<Vec<String>>,
}

/// The TOML shape of one key. Mirrors the Raw structs; walked by hand so that errors carry the
/// dotted key.
enum Kind {
    String,
    Integer,
    Boolean,
    StringArray,
    StringTable,
    Table(&'static [Field]),
}

impl Kind {
    fn describe(&self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Boolean => "a boolean (true or false)",
            Kind::StringArray => "an array of strings",
            Kind::StringTable => "a table of strings",
            Kind::Table(_) => "a table",
        }
    }
}

struct Field {
    name: &'static str,
    kind: Kind,
}

const fn field(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

const ROOT: &[Field] = &[
    field("cluster", Kind::String),
    field("role", Kind::String),
    field("state_bucket", Kind::String),
    field("internal_domain", Kind::String),
    field("vpc_number", Kind::Integer),
    field("etcd", Kind::Table(ETCD)),
    field("kubernetes", Kind::Table(KUBERNETES)),
];

const ETCD: &[Field] = &[
    field("asg", Kind::String),
    field("tls", Kind::Boolean),
    field("data_dir", Kind::String),
    field("client_port", Kind::Integer),
    field("peer_port", Kind::Integer),
    field("join_timeout_seconds", Kind::Integer),
];

const KUBERNETES: &[Field] = &[
    field("version", Kind::String),
    field("apiserver", Kind::String),
    field("cluster_domain", Kind::String),
    field("node_labels", Kind::StringTable),
    field("node_taints", Kind::StringArray),
];

/// Appends `name` to a dotted key, quoting it when it is not a bare TOML key.
fn join_key(prefix: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let name = if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}.{name}")
    }
}

fn parse_file(file: &Path, text: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|err| {
        let offset = err.span().map_or(0, |span| span.start).min(text.len());
        let line = text.as_bytes()[..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        let message = err
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_owned();
        ConfigError::Syntax {
            file: file.to_owned(),
            line,
            message,
        }
    })
}

fn check_table(
    file: &Path,
    prefix: &str,
    table: &Table,
    fields: &[Field],
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let key = join_key(prefix, name);
        let Some(field) = fields.iter().find(|f| f.name == name) else {
            let expected = fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ");
            return Err(ConfigError::UnknownKey {
                file: file.to_owned(),
                key,
                expected,
            });
        };
        check_value(file, &key, value, &field.kind)?;
    }
    Ok(())
}

fn check_value(file: &Path, key: &str, value: &Value, kind: &Kind) -> Result<(), ConfigError> {
    match (kind, value) {
        (Kind::String, Value::String(_))
        | (Kind::Integer, Value::Integer(_))
        | (Kind::Boolean, Value::Boolean(_)) => Ok(()),
        (Kind::StringArray, Value::Array(items)) => {
            items.iter().enumerate().try_for_each(|(i, item)| {
                check_value(file, &format!("{key}[{i}]"), item, &Kind::String)
            })
        }
        (Kind::StringTable, Value::Table(table)) => table.iter().try_for_each(|(name, item)| {
            check_value(file, &join_key(key, name), item, &Kind::String)
        }),
        (Kind::Table(fields), Value::Table(table)) => check_table(file, key, table, fields),
        _ => Err(ConfigError::WrongType {
            file: file.to_owned(),
            key: key.to_owned(),
            expected: kind.describe(),
            found: value.type_str(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Step 2: merge drop-ins, remembering which file supplied each key
// ---------------------------------------------------------------------------------------------

/// Merges `over` into `base`: tables key by key (recursively), everything else replaced whole.
/// Records in `origin` the file that supplied each dotted key, tables included.
fn merge(
    base: &mut Table,
    over: Table,
    file: &Path,
    prefix: &str,
    origin: &mut BTreeMap<String, PathBuf>,
) {
    for (name, value) in over {
        let key = join_key(prefix, &name);
        origin.insert(key.clone(), file.to_owned());
        match value {
            Value::Table(table) => {
                let slot = base
                    .entry(name)
                    .or_insert_with(|| Value::Table(Table::new()));
                // Cannot happen after check_table (a table key holds a table in every file).
                if !slot.is_table() {
                    *slot = Value::Table(Table::new());
                }
                if let Value::Table(existing) = slot {
                    merge(existing, table, file, &key, origin);
                }
            }
            other => {
                base.insert(name, other);
            }
        }
    }
}

/// What validation needs besides the values: where each key came from and where to point for fixes.
struct Context {
    main: PathBuf,
    origin: BTreeMap<String, PathBuf>,
}

impl Context {
    fn file_of(&self, key: &str) -> PathBuf {
        self.origin.get(key).unwrap_or(&self.main).clone()
    }

    /// A bad value at `key`, blamed on the file that supplied `origin_key` (usually `key` itself).
    fn invalid_at(&self, key: &str, origin_key: &str, invalid: InvalidValue) -> ConfigError {
        ConfigError::Value {
            file: self.file_of(origin_key),
            key: key.to_owned(),
            invalid,
        }
    }

    fn invalid(&self, key: &str) -> impl Fn(InvalidValue) -> ConfigError + '_ {
        let key = key.to_owned();
        move |invalid| self.invalid_at(&key, &key, invalid)
    }

    fn missing(&self, key: &str, requirement: &str) -> ConfigError {
        ConfigError::Missing {
            key: key.to_owned(),
            requirement: requirement.to_owned(),
            main: self.main.clone(),
            dropin_dir: dropin_dir(&self.main),
        }
    }

    fn required<T>(
        &self,
        value: Option<T>,
        key: &str,
        requirement: &str,
    ) -> Result<T, ConfigError> {
        value.ok_or_else(|| self.missing(key, requirement))
    }
}

// ---------------------------------------------------------------------------------------------
// Step 3: validate into Settings
// ---------------------------------------------------------------------------------------------

fn validate(raw: RawConfig, ctx: &Context, sources: Vec<PathBuf>) -> Result<Settings, ConfigError> {
    let cluster = ctx.required(
        raw.cluster,
        "cluster",
        "(the cluster name, 1-32 characters from a-z, 0-9 and '-')",
    )?;
    let cluster: ClusterName = cluster.parse().map_err(ctx.invalid("cluster"))?;
    let role = ctx.required(
        raw.role,
        "role",
        r#"(this node's role: "etcd", "master" or "worker")"#,
    )?;
    let role: Role = role.parse().map_err(ctx.invalid("role"))?;
    let bucket = ctx.required(
        raw.state_bucket,
        "state_bucket",
        "(the S3 bucket holding the cluster's PKI and state)",
    )?;
    let state_bucket =
        check_str(&bucket, is_bucket_name, BUCKET_RULE).map_err(ctx.invalid("state_bucket"))?;
    let internal_domain = raw
        .internal_domain
        .map(|d| check_str(&d, is_dns_name, DNS_RULE))
        .transpose()
        .map_err(ctx.invalid("internal_domain"))?;
    let (vpc_number, plan) =
        check_vpc_number(raw.vpc_number.unwrap_or(0)).map_err(ctx.invalid("vpc_number"))?;

    let etcd = validate_etcd(raw.etcd.unwrap_or_default(), role, ctx)?;
    let kubernetes = match role {
        Role::Etcd if raw.kubernetes.is_some() => {
            return Err(ConfigError::KubernetesForEtcd {
                file: ctx.file_of("kubernetes"),
            });
        }
        Role::Etcd => None,
        Role::Master | Role::Worker => Some(validate_kubernetes(
            raw.kubernetes.unwrap_or_default(),
            internal_domain.as_deref(),
            ctx,
        )?),
    };

    Ok(Settings {
        cluster,
        role,
        state_bucket,
        internal_domain,
        vpc_number,
        plan,
        etcd,
        kubernetes,
        sources,
    })
}

fn validate_etcd(raw: RawEtcd, role: Role, ctx: &Context) -> Result<EtcdSettings, ConfigError> {
    let asg = raw
        .asg
        .map(|a| check_asg(&a))
        .transpose()
        .map_err(ctx.invalid("etcd.asg"))?;
    if role == Role::Master && asg.is_none() {
        return Err(ctx.missing(
            "etcd.asg",
            "for role master (the masters need the etcd ASG to find the etcd members)",
        ));
    }
    let data_dir = raw.data_dir.as_deref().unwrap_or("/var/lib/etcd");
    let data_dir = check_data_dir(data_dir).map_err(ctx.invalid("etcd.data_dir"))?;
    let client_port =
        check_port(raw.client_port.unwrap_or(2379)).map_err(ctx.invalid("etcd.client_port"))?;
    let peer_port =
        check_port(raw.peer_port.unwrap_or(2380)).map_err(ctx.invalid("etcd.peer_port"))?;
    if client_port == peer_port {
        // Blame the key the operator set; if both were set, the peer port.
        let (key, other) = if raw.peer_port.is_some() {
            ("etcd.peer_port", "etcd.client_port")
        } else {
            ("etcd.client_port", "etcd.peer_port")
        };
        let expected = format!("a port different from {other} ({client_port})");
        return Err(ctx.invalid_at(
            key,
            key,
            InvalidValue::integer(expected, i64::from(client_port)),
        ));
    }
    let join_timeout = check_timeout(raw.join_timeout_seconds.unwrap_or(600))
        .map_err(ctx.invalid("etcd.join_timeout_seconds"))?;
    Ok(EtcdSettings {
        asg,
        tls: raw.tls.unwrap_or(true),
        data_dir,
        client_port,
        peer_port,
        join_timeout,
    })
}

fn validate_kubernetes(
    raw: RawKubernetes,
    internal_domain: Option<&str>,
    ctx: &Context,
) -> Result<KubernetesSettings, ConfigError> {
    let version = ctx.required(
        raw.version,
        "kubernetes.version",
        "for roles master and worker (the Kubernetes version to run, like v1.31.4)",
    )?;
    let version: KubeVersion = version.parse().map_err(ctx.invalid("kubernetes.version"))?;
    let apiserver = match (raw.apiserver, internal_domain) {
        (Some(url), _) => url.parse().map_err(ctx.invalid("kubernetes.apiserver"))?,
        (None, Some(domain)) => format!("https://kubernetes.{domain}:443")
            .parse()
            .map_err(ctx.invalid("internal_domain"))?,
        (None, None) => {
            return Err(ctx.missing(
                "kubernetes.apiserver",
                "when `internal_domain` is not set \
                 (the default is https://kubernetes.<internal_domain>:443)",
            ))
        }
    };
    let cluster_domain = raw.cluster_domain.as_deref().unwrap_or("cluster.local");
    let cluster_domain = check_str(cluster_domain, is_dns_name, DNS_RULE)
        .map_err(ctx.invalid("kubernetes.cluster_domain"))?;
    let node_labels = raw.node_labels.unwrap_or_default();
    for (name, value) in &node_labels {
        let key = join_key("kubernetes.node_labels", name);
        if !is_label_key(name) {
            return Err(ctx.invalid_at(&key, &key, InvalidValue::string(LABEL_KEY_RULE, name)));
        }
        if !is_kubelet_settable(name) {
            return Err(ctx.invalid_at(&key, &key, InvalidValue::string(KUBELET_LABEL_RULE, name)));
        }
        if !is_label_value(value) {
            return Err(ctx.invalid_at(&key, &key, InvalidValue::string(LABEL_VALUE_RULE, value)));
        }
    }
    let node_taints = validate_taints(raw.node_taints.unwrap_or_default(), ctx)?;
    Ok(KubernetesSettings {
        version,
        apiserver,
        cluster_domain,
        node_labels,
        node_taints,
    })
}

fn validate_taints(raw: Vec<String>, ctx: &Context) -> Result<Vec<Taint>, ConfigError> {
    const KEY: &str = "kubernetes.node_taints";
    let mut taints: Vec<Taint> = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let key = format!("{KEY}[{i}]");
        let taint: Taint = text.parse().map_err(|e| ctx.invalid_at(&key, KEY, e))?;
        if let Some(j) = taints
            .iter()
            .position(|t| t.key == taint.key && t.effect == taint.effect)
        {
            let expected = format!("a taint whose key and effect differ from {KEY}[{j}]");
            return Err(ctx.invalid_at(&key, KEY, InvalidValue::string(expected, text)));
        }
        taints.push(taint);
    }
    Ok(taints)
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Loads `path` and then `<dir of path>/config.d/*.toml` in lexical (byte) order of file name,
/// merged over it: a later file's value for a key replaces the earlier one; tables (including
/// `node_labels`) merge key by key, arrays (`node_taints`) are replaced whole.
/// A missing main file is an error; a missing `config.d` is fine; non-`.toml` files are ignored.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let mut sources = vec![(path.to_owned(), read(path)?)];
    for dropin in dropin_files(&dropin_dir(path))? {
        let text = read(&dropin)?;
        sources.push((dropin, text));
    }
    from_sources(&sources)
}

/// Same as [`load`] from in-memory `(file name, text)` pairs in merge order; the first is the main
/// file.
pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Settings, ConfigError> {
    let (main, _) = sources.first().ok_or(ConfigError::NoSources)?;
    let mut merged = Table::new();
    let mut origin = BTreeMap::new();
    for (file, text) in sources {
        let table = parse_file(file, text)?;
        check_table(file, "", &table, ROOT)?;
        merge(&mut merged, table, file, "", &mut origin);
    }
    let raw: RawConfig = merged
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Schema {
            file: main.clone(),
            message: e.to_string(),
        })?;
    let ctx = Context {
        main: main.clone(),
        origin,
    };
    let files = sources.iter().map(|(file, _)| file.clone()).collect();
    validate(raw, &ctx, files)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn dropin_dir(main: &Path) -> PathBuf {
    match main.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(DROPIN_DIR),
        _ => PathBuf::from(DROPIN_DIR),
    }
}

/// The `*.toml` entries of `dir` (directories skipped), sorted by file name; none if `dir` is
/// absent.
fn dropin_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_dir_err = |source| ConfigError::ReadDir {
        path: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_dir_err(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(read_dir_err)?.path();
        if path.extension().is_some_and(|ext| ext == "toml") && !path.is_dir() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: &str = "/etc/tn-agent/config.toml";
    const POOL: &str = "/etc/tn-agent/config.d/10-pool.toml";

    const ETCD_MIN: &str = r#"
cluster = "prod"
role = "etcd"
state_bucket = "prod-tn-state"
"#;

    const WORKER: &str = r#"
cluster = "prod"
role = "worker"
state_bucket = "prod-tn-state"
internal_domain = "prod.int"
vpc_number = 5

[etcd]
asg = "prod-etcd"

[kubernetes]
version = "v1.31.4"
cluster_domain = "k8s.local"
node_labels = { "node.kubernetes.io/pool" = "gpu", team = "ml" }
node_taints = ["nvidia.com/gpu=present:NoSchedule", "dedicated=:PreferNoSchedule"]
"#;

    const MASTER: &str = r#"
cluster = "prod"
role = "master"
state_bucket = "prod.tn.state"

[etcd]
asg = "prod-etcd"

[kubernetes]
version = "v1.30.0"
apiserver = "https://10.0.1.10:6443/"
"#;

    /// Config sources in merge order: (file name, text).
    type Files = Vec<(&'static str, String)>;

    /// Only the main file.
    fn main(text: impl Into<String>) -> Files {
        vec![(MAIN, text.into())]
    }

    /// The main file and one drop-in.
    fn dropin(main_text: impl Into<String>, dropin_text: &str) -> Files {
        vec![(MAIN, main_text.into()), (POOL, dropin_text.to_owned())]
    }

    /// `base` with `extra` lines appended.
    fn plus(base: &str, extra: &str) -> String {
        format!("{base}\n{extra}\n")
    }

    fn parse(files: &Files) -> Result<Settings, ConfigError> {
        let sources: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), text.clone()))
            .collect();
        from_sources(&sources)
    }

    fn labels(settings: &Settings) -> Vec<(&str, &str)> {
        let k8s = settings.kubernetes.as_ref().expect("kubernetes settings");
        k8s.node_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    struct Good {
        name: &'static str,
        files: Files,
        check: fn(&Settings),
    }

    #[test]
    fn good_configs() {
        let cases = [
            Good {
                name: "minimal etcd config gets the defaults",
                files: main(ETCD_MIN),
                check: |s| {
                    assert_eq!(s.cluster.as_str(), "prod");
                    assert_eq!(s.role, Role::Etcd);
                    assert_eq!(s.state_bucket, "prod-tn-state");
                    assert_eq!(s.internal_domain, None);
                    assert_eq!(s.etcd.asg, None);
                    assert!(s.etcd.tls);
                    assert_eq!(s.etcd.data_dir, PathBuf::from("/var/lib/etcd"));
                    assert_eq!((s.etcd.client_port, s.etcd.peer_port), (2379, 2380));
                    assert_eq!(s.etcd.join_timeout, Duration::from_secs(600));
                    assert_eq!(s.vpc_number, 0);
                    assert_eq!(s.plan.vpc_cidr.to_string(), "10.0.0.0/16");
                    assert_eq!(s.plan.pod_cidr.to_string(), "10.1.0.0/17");
                    assert_eq!(s.plan.service_cidr.to_string(), "10.1.128.0/17");
                    assert_eq!(s.plan.api_service_ip, Ipv4Addr::new(10, 1, 128, 1));
                    assert_eq!(s.plan.dns_service_ip, Ipv4Addr::new(10, 1, 128, 10));
                    assert_eq!(s.kubernetes, None);
                    assert_eq!(s.sources, vec![PathBuf::from(MAIN)]);
                },
            },
            Good {
                name: "vpc_number 5 moves the whole plan",
                files: main(plus(ETCD_MIN, "vpc_number = 5")),
                check: |s| {
                    assert_eq!(s.vpc_number, 5);
                    assert_eq!(s.plan.vpc_cidr.to_string(), "10.5.0.0/16");
                    assert_eq!(s.plan.pod_cidr.to_string(), "10.6.0.0/17");
                    assert_eq!(s.plan.service_cidr.to_string(), "10.6.128.0/17");
                    assert_eq!(s.plan.api_service_ip, Ipv4Addr::new(10, 6, 128, 1));
                    assert_eq!(s.plan.dns_service_ip, Ipv4Addr::new(10, 6, 128, 10));
                    assert!(s.plan.service_cidr.contains(s.plan.dns_service_ip));
                },
            },
            Good {
                name: "vpc_number 254 is the last one",
                files: main(plus(ETCD_MIN, "vpc_number = 254")),
                check: |s| {
                    assert_eq!(s.plan.vpc_cidr.to_string(), "10.254.0.0/16");
                    assert_eq!(s.plan.dns_service_ip, Ipv4Addr::new(10, 255, 128, 10));
                },
            },
            Good {
                name: "every etcd setting is read",
                files: main(plus(
                    ETCD_MIN,
                    r#"
[etcd]
asg = "prod-etcd"
tls = false
data_dir = "/srv/etcd"
client_port = 12379
peer_port = 12380
join_timeout_seconds = 30"#,
                )),
                check: |s| {
                    let expected = EtcdSettings {
                        asg: Some("prod-etcd".to_owned()),
                        tls: false,
                        data_dir: PathBuf::from("/srv/etcd"),
                        client_port: 12379,
                        peer_port: 12380,
                        join_timeout: Duration::from_secs(30),
                    };
                    assert_eq!(s.etcd, expected);
                },
            },
            Good {
                name: "full worker config",
                files: main(WORKER),
                check: |s| {
                    assert_eq!(s.role, Role::Worker);
                    assert_eq!(s.internal_domain.as_deref(), Some("prod.int"));
                    let k = s
                        .kubernetes
                        .as_ref()
                        .expect("kubernetes settings for a worker");
                    assert_eq!(k.version.as_str(), "v1.31.4");
                    assert_eq!(k.apiserver.as_str(), "https://kubernetes.prod.int:443");
                    assert_eq!(k.apiserver.host(), "kubernetes.prod.int");
                    assert_eq!(k.apiserver.port(), 443);
                    assert_eq!(k.cluster_domain, "k8s.local");
                    assert_eq!(
                        labels(s),
                        [("node.kubernetes.io/pool", "gpu"), ("team", "ml")]
                    );
                    let taints: Vec<String> = k.node_taints.iter().map(Taint::to_string).collect();
                    assert_eq!(
                        taints,
                        [
                            "nvidia.com/gpu=present:NoSchedule",
                            "dedicated:PreferNoSchedule"
                        ]
                    );
                    assert_eq!(k.node_taints[0].key(), "nvidia.com/gpu");
                    assert_eq!(k.node_taints[0].value(), Some("present"));
                    assert_eq!(k.node_taints[0].effect(), TaintEffect::NoSchedule);
                    assert_eq!(k.node_taints[1].value(), None);
                },
            },
            Good {
                name: "master with an explicit apiserver and defaults for the rest",
                files: main(MASTER),
                check: |s| {
                    assert_eq!(s.role, Role::Master);
                    assert_eq!(s.etcd.asg.as_deref(), Some("prod-etcd"));
                    let k = s
                        .kubernetes
                        .as_ref()
                        .expect("kubernetes settings for a master");
                    assert_eq!(
                        (k.apiserver.host(), k.apiserver.port()),
                        ("10.0.1.10", 6443)
                    );
                    assert_eq!(k.cluster_domain, "cluster.local");
                    assert!(k.node_labels.is_empty());
                    assert!(k.node_taints.is_empty());
                },
            },
            Good {
                name: "a drop-in overrides a value and adds a label",
                files: dropin(
                    WORKER,
                    r#"
[etcd]
client_port = 12379

[kubernetes.node_labels]
"node.kubernetes.io/pool" = "a100"
extra = "yes"
"#,
                ),
                check: |s| {
                    assert_eq!(s.etcd.client_port, 12379);
                    assert_eq!(
                        s.etcd.asg.as_deref(),
                        Some("prod-etcd"),
                        "kept from the main file"
                    );
                    assert_eq!(
                        labels(s),
                        [
                            ("extra", "yes"),
                            ("node.kubernetes.io/pool", "a100"),
                            ("team", "ml")
                        ]
                    );
                    let k8s = s.kubernetes.as_ref().expect("kubernetes settings");
                    assert_eq!(k8s.node_taints.len(), 2, "taints kept from the main file");
                    assert_eq!(s.sources, vec![PathBuf::from(MAIN), PathBuf::from(POOL)]);
                },
            },
            Good {
                name: "a drop-in replaces node_taints whole",
                files: dropin(WORKER, "[kubernetes]\nnode_taints = [\"x:NoExecute\"]\n"),
                check: |s| {
                    let k8s = s.kubernetes.as_ref().expect("kubernetes settings");
                    assert_eq!(k8s.node_taints, vec!["x:NoExecute".parse().expect("taint")]);
                },
            },
            Good {
                name: "a drop-in may supply required keys",
                files: dropin(
                    "cluster = \"prod\"",
                    "role = \"etcd\"\nstate_bucket = \"b-1\"\n",
                ),
                check: |s| assert_eq!(s.state_bucket, "b-1"),
            },
        ];
        for case in cases {
            match parse(&case.files) {
                Ok(settings) => (case.check)(&settings),
                Err(e) => panic!("{}: unexpected error: {e}", case.name),
            }
        }
    }

    struct Bad {
        name: &'static str,
        files: Files,
        error: &'static str,
    }

    #[test]
    fn bad_configs() {
        let cases = [
            Bad {
                name: "unknown top-level key",
                files: main(plus(ETCD_MIN, "colour = \"blue\"")),
                error:
                    "/etc/tn-agent/config.toml: unknown key `colour`; expected one of: cluster, \
                        role, state_bucket, internal_domain, vpc_number, etcd, kubernetes",
            },
            Bad {
                name: "unknown key in [etcd]",
                files: main(plus(ETCD_MIN, "[etcd]\nclient-port = 2379")),
                error: "/etc/tn-agent/config.toml: unknown key `etcd.client-port`; expected one \
                        of: asg, tls, data_dir, client_port, peer_port, join_timeout_seconds",
            },
            Bad {
                name: "unknown key in a drop-in names the drop-in",
                files: dropin(ETCD_MIN, "[kubernetes]\nlabels = {}\n"),
                error: "/etc/tn-agent/config.d/10-pool.toml: unknown key `kubernetes.labels`; \
                        expected one of: version, apiserver, cluster_domain, node_labels, \
                        node_taints",
            },
            Bad {
                name: "wrong type for client_port",
                files: main(plus(ETCD_MIN, "[etcd]\nclient_port = \"2379\"")),
                error: "/etc/tn-agent/config.toml: key `etcd.client_port`: expected an integer, \
                        found string",
            },
            Bad {
                name: "wrong type for a table",
                files: main(plus(ETCD_MIN, "etcd = true")),
                error: "/etc/tn-agent/config.toml: key `etcd`: expected a table, found boolean",
            },
            Bad {
                name: "wrong type inside node_taints",
                files: dropin(
                    WORKER,
                    "[kubernetes]\nnode_taints = [\"a:NoSchedule\", 3]\n",
                ),
                error: "/etc/tn-agent/config.d/10-pool.toml: key `kubernetes.node_taints[1]`: \
                        expected a string, found integer",
            },
            Bad {
                name: "wrong type inside node_labels",
                files: dropin(
                    WORKER,
                    "[kubernetes.node_labels]\n\"node.kubernetes.io/pool\" = 1\n",
                ),
                error: "/etc/tn-agent/config.d/10-pool.toml: key \
                        `kubernetes.node_labels.\"node.kubernetes.io/pool\"`: expected a string, \
                        found integer",
            },
            Bad {
                name: "bad cluster name",
                files: main(ETCD_MIN.replace("\"prod\"", "\"Prod\"")),
                error: "/etc/tn-agent/config.toml: key `cluster`: expected a cluster name of 1-32 \
                        characters from a-z, 0-9 and '-', got \"Prod\"",
            },
            Bad {
                name: "cluster name too long",
                files: main(ETCD_MIN.replace("\"prod\"", &format!("\"{}\"", "a".repeat(33)))),
                error: "/etc/tn-agent/config.toml: key `cluster`: expected a cluster name of 1-32 \
                        characters from a-z, 0-9 and '-', got \
                        \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
            },
            Bad {
                name: "bad role",
                files: main(ETCD_MIN.replace("\"etcd\"", "\"Etcd\"")),
                error: "/etc/tn-agent/config.toml: key `role`: expected one of \"etcd\", \
                        \"master\", \"worker\", got \"Etcd\"",
            },
            Bad {
                name: "bad state bucket",
                files: main(ETCD_MIN.replace("prod-tn-state", "Prod_State")),
                error:
                    "/etc/tn-agent/config.toml: key `state_bucket`: expected an S3 bucket name: \
                        3-63 characters from a-z, 0-9, '.' and '-', starting and ending with a \
                        letter or digit, got \"Prod_State\"",
            },
            Bad {
                name: "bad internal domain",
                files: main(plus(ETCD_MIN, "internal_domain = \"-prod.int\"")),
                error:
                    "/etc/tn-agent/config.toml: key `internal_domain`: expected a lowercase DNS \
                        name: dot-separated labels of 1-63 characters from a-z, 0-9 and '-', not \
                        starting or ending with '-', at most 253 characters in all, got \
                        \"-prod.int\"",
            },
            Bad {
                name: "vpc_number 255",
                files: main(plus(ETCD_MIN, "vpc_number = 255")),
                error: "/etc/tn-agent/config.toml: key `vpc_number`: expected a VPC number from 0 \
                        to 254 (VPC 10.<n>.0.0/16, pods and services in 10.<n+1>.0.0/16), got 255",
            },
            Bad {
                name: "negative vpc_number",
                files: main(plus(ETCD_MIN, "vpc_number = -1")),
                error: "/etc/tn-agent/config.toml: key `vpc_number`: expected a VPC number from 0 \
                        to 254 (VPC 10.<n>.0.0/16, pods and services in 10.<n+1>.0.0/16), got -1",
            },
            Bad {
                name: "port out of range",
                files: main(plus(ETCD_MIN, "[etcd]\nclient_port = 70000")),
                error: "/etc/tn-agent/config.toml: key `etcd.client_port`: expected a TCP port \
                        from 1 to 65535, got 70000",
            },
            Bad {
                name: "same client and peer port",
                files: main(plus(ETCD_MIN, "[etcd]\npeer_port = 2379")),
                error:
                    "/etc/tn-agent/config.toml: key `etcd.peer_port`: expected a port different \
                        from etcd.client_port (2379), got 2379",
            },
            Bad {
                name: "client port moved onto the default peer port",
                files: dropin(ETCD_MIN, "[etcd]\nclient_port = 2380\n"),
                error: "/etc/tn-agent/config.d/10-pool.toml: key `etcd.client_port`: expected a \
                        port different from etcd.peer_port (2380), got 2380",
            },
            Bad {
                name: "relative data_dir",
                files: main(plus(ETCD_MIN, "[etcd]\ndata_dir = \"var/lib/etcd\"")),
                error:
                    "/etc/tn-agent/config.toml: key `etcd.data_dir`: expected an absolute path, \
                        got \"var/lib/etcd\"",
            },
            Bad {
                name: "join timeout out of range",
                files: main(plus(ETCD_MIN, "[etcd]\njoin_timeout_seconds = 0")),
                error: "/etc/tn-agent/config.toml: key `etcd.join_timeout_seconds`: expected a \
                        number of seconds from 1 to 3600, got 0",
            },
            Bad {
                name: "master without etcd.asg",
                files: main(MASTER.replace("asg = \"prod-etcd\"\n", "")),
                error: "key `etcd.asg` is required for role master (the masters need the etcd ASG \
                        to find the etcd members); set it in /etc/tn-agent/config.toml or a \
                        drop-in in /etc/tn-agent/config.d/",
            },
            Bad {
                name: "worker without version",
                files: main(WORKER.replace("version = \"v1.31.4\"\n", "")),
                error: "key `kubernetes.version` is required for roles master and worker (the \
                        Kubernetes version to run, like v1.31.4); set it in \
                        /etc/tn-agent/config.toml or a drop-in in /etc/tn-agent/config.d/",
            },
            Bad {
                name: "worker without a [kubernetes] table",
                files: main(ETCD_MIN.replace("\"etcd\"", "\"worker\"")),
                error: "key `kubernetes.version` is required for roles master and worker (the \
                        Kubernetes version to run, like v1.31.4); set it in \
                        /etc/tn-agent/config.toml or a drop-in in /etc/tn-agent/config.d/",
            },
            Bad {
                name: "bad version",
                files: main(WORKER.replace("v1.31.4", "1.31")),
                error:
                    "/etc/tn-agent/config.toml: key `kubernetes.version`: expected a Kubernetes \
                        version v<major>.<minor>.<patch>, like v1.31.4, got \"1.31\"",
            },
            Bad {
                name: "worker without apiserver and internal_domain",
                files: main(WORKER.replace("internal_domain = \"prod.int\"\n", "")),
                error: "key `kubernetes.apiserver` is required when `internal_domain` is not set \
                        (the default is https://kubernetes.<internal_domain>:443); set it in \
                        /etc/tn-agent/config.toml or a drop-in in /etc/tn-agent/config.d/",
            },
            Bad {
                name: "apiserver over http",
                files: main(
                    MASTER.replace("https://10.0.1.10:6443/", "http://kubernetes.prod.int"),
                ),
                error: "/etc/tn-agent/config.toml: key `kubernetes.apiserver`: expected an \
                        https:// URL with a host name or IPv4 address, an optional :port (1-65535) \
                        and no path, like https://kubernetes.prod.int:443, got \
                        \"http://kubernetes.prod.int\"",
            },
            Bad {
                name: "apiserver with a path",
                files: main(MASTER.replace("https://10.0.1.10:6443/", "https://k8s.prod.int/api")),
                error: "/etc/tn-agent/config.toml: key `kubernetes.apiserver`: expected an \
                        https:// URL with a host name or IPv4 address, an optional :port (1-65535) \
                        and no path, like https://kubernetes.prod.int:443, got \
                        \"https://k8s.prod.int/api\"",
            },
            Bad {
                name: "bad taint effect",
                files: main(WORKER.replace("present:NoSchedule", "present:NoSchedul")),
                error: "/etc/tn-agent/config.toml: key `kubernetes.node_taints[0]`: expected a \
                        taint `key[=value]:Effect` with Effect one of NoSchedule, \
                        PreferNoSchedule, NoExecute, got \"nvidia.com/gpu=present:NoSchedul\"",
            },
            Bad {
                name: "bad taint key",
                files: main(WORKER.replace("dedicated=:", "-dedicated=:")),
                error: "/etc/tn-agent/config.toml: key `kubernetes.node_taints[1]`: expected a \
                        taint `key[=value]:Effect` whose key is a label key `[prefix/]name`: an \
                        optional lowercase DNS subdomain prefix, then a name of 1-63 characters \
                        from A-Z, a-z, 0-9, '.', '_' and '-' that starts and ends with a letter or \
                        digit, got \"-dedicated=:PreferNoSchedule\"",
            },
            Bad {
                name: "the same taint key and effect twice",
                files: dropin(
                    WORKER,
                    "[kubernetes]\nnode_taints = [\"a=1:NoSchedule\", \"a=2:NoSchedule\"]\n",
                ),
                error: "/etc/tn-agent/config.d/10-pool.toml: key `kubernetes.node_taints[1]`: \
                        expected a taint whose key and effect differ from \
                        kubernetes.node_taints[0], got \"a=2:NoSchedule\"",
            },
            Bad {
                name: "bad label key",
                files: main(WORKER.replace("team = ", "\"Team Name\" = ")),
                error: "/etc/tn-agent/config.toml: key `kubernetes.node_labels.\"Team Name\"`: \
                        expected a label key `[prefix/]name`: an optional lowercase DNS subdomain \
                        prefix, then a name of 1-63 characters from A-Z, a-z, 0-9, '.', '_' and \
                        '-' that starts and ends with a letter or digit, got \"Team Name\"",
            },
            Bad {
                name: "a label the kubelet may not set on itself",
                files: main(WORKER.replace("team = ", "\"node-role.kubernetes.io/worker\" = ")),
                error: "/etc/tn-agent/config.toml: key \
                        `kubernetes.node_labels.\"node-role.kubernetes.io/worker\"`: expected a \
                        label the kubelet may set on its own node: in the kubernetes.io and k8s.io \
                        namespaces only node.kubernetes.io/*, kubelet.kubernetes.io/* and the \
                        well-known hostname, topology, instance-type, os and arch labels, got \
                        \"node-role.kubernetes.io/worker\"",
            },
            Bad {
                name: "bad label value in a drop-in names the drop-in",
                files: dropin(WORKER, "[kubernetes.node_labels]\nteam = \"ml team\"\n"),
                error: "/etc/tn-agent/config.d/10-pool.toml: key `kubernetes.node_labels.team`: \
                        expected a label value of at most 63 characters from A-Z, a-z, 0-9, '.', \
                        '_' and '-' that starts and ends with a letter or digit, got \"ml team\"",
            },
            Bad {
                name: "bad value in a drop-in names the drop-in",
                files: dropin(ETCD_MIN, "[etcd]\ndata_dir = \"etcd\"\n"),
                error: "/etc/tn-agent/config.d/10-pool.toml: key `etcd.data_dir`: expected an \
                        absolute path, got \"etcd\"",
            },
            Bad {
                name: "bad value in the main file names the main file, drop-ins or not",
                files: dropin(
                    ETCD_MIN.replace("\"prod\"", "\"p_r\""),
                    "[etcd]\ntls = false\n",
                ),
                error: "/etc/tn-agent/config.toml: key `cluster`: expected a cluster name of 1-32 \
                        characters from a-z, 0-9 and '-', got \"p_r\"",
            },
            Bad {
                name: "[kubernetes] in an etcd config",
                files: dropin(ETCD_MIN, "[kubernetes]\nversion = \"v1.31.4\"\n"),
                error: "/etc/tn-agent/config.d/10-pool.toml: key `kubernetes`: the [kubernetes] \
                        table applies to roles master and worker only; remove it for role etcd",
            },
            Bad {
                name: "missing cluster",
                files: main(ETCD_MIN.replace("cluster = \"prod\"\n", "")),
                error:
                    "key `cluster` is required (the cluster name, 1-32 characters from a-z, 0-9 \
                        and '-'); set it in /etc/tn-agent/config.toml or a drop-in in \
                        /etc/tn-agent/config.d/",
            },
            Bad {
                name: "TOML syntax error",
                files: main("cluster = \"prod\"\nrole = \"etcd\"\nstate_bucket = prod-tn-state\n"),
                error: "/etc/tn-agent/config.toml: line 3: string values must be quoted, expected \
                        literal string",
            },
            Bad {
                name: "TOML syntax error in a drop-in",
                files: dropin(ETCD_MIN, "\n[etcd]\ntls = true\ntls = false\n"),
                error: "/etc/tn-agent/config.d/10-pool.toml: line 4: duplicate key",
            },
        ];
        for case in cases {
            match parse(&case.files) {
                Ok(settings) => panic!("{}: expected an error, got {settings:?}", case.name),
                Err(e) => assert_eq!(e.to_string(), case.error, "{}", case.name),
            }
        }
    }

    #[test]
    fn no_sources_is_an_error() {
        let err = from_sources(&[]).unwrap_err();
        assert_eq!(err.to_string(), "no configuration files given");
    }

    #[test]
    fn load_merges_config_d_in_lexical_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let main_file = dir.path().join("config.toml");
        let dropins = dir.path().join("config.d");
        let write = |path: PathBuf, text: &str| std::fs::write(path, text).expect("write");
        std::fs::create_dir(&dropins).expect("config.d");
        write(main_file.clone(), WORKER);
        write(
            dropins.join("20-later.toml"),
            "[kubernetes.node_labels]\npool = \"b\"\n",
        );
        write(
            dropins.join("10-first.toml"),
            "[kubernetes.node_labels]\npool = \"a\"\nfirst = \"x\"\n",
        );
        write(dropins.join("README.txt"), "not = [toml");
        write(dropins.join("15-old.toml.bak"), "not = [toml");
        std::fs::create_dir(dropins.join("30-dir.toml")).expect("a directory named *.toml");

        let settings = load(&main_file).expect("config loads");

        let expected_sources = vec![
            main_file.clone(),
            dropins.join("10-first.toml"),
            dropins.join("20-later.toml"),
        ];
        assert_eq!(settings.sources, expected_sources);
        assert_eq!(
            labels(&settings),
            [
                ("first", "x"),
                ("node.kubernetes.io/pool", "gpu"),
                ("pool", "b"),
                ("team", "ml")
            ]
        );
    }

    #[test]
    fn load_without_config_d_and_errors_name_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let main_file = dir.path().join("config.toml");
        std::fs::write(&main_file, ETCD_MIN).expect("main file");
        assert_eq!(
            load(&main_file).expect("config loads").sources,
            vec![main_file.clone()]
        );

        let missing = dir.path().join("absent.toml");
        let err = load(&missing).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Read { path, .. } if *path == missing),
            "{err:?}"
        );
        let expected = format!("cannot read config file {}", missing.display());
        assert_eq!(err.to_string(), expected);

        let bad_dropin = dir.path().join("config.d").join("50-bad.toml");
        std::fs::create_dir(dir.path().join("config.d")).expect("config.d");
        std::fs::write(&bad_dropin, "[etcd]\npeer_port = 0\n").expect("drop-in");
        let expected = format!(
            "{}: key `etcd.peer_port`: expected a TCP port from 1 to 65535, got 0",
            bad_dropin.display()
        );
        assert_eq!(load(&main_file).unwrap_err().to_string(), expected);
    }

    #[test]
    fn ipv4_net() {
        let net = Ipv4Net::new(Ipv4Addr::new(10, 1, 128, 0), 17).expect("valid network");
        assert_eq!(net.to_string(), "10.1.128.0/17");
        assert!(net.contains(Ipv4Addr::new(10, 1, 128, 1)));
        assert!(net.contains(Ipv4Addr::new(10, 1, 255, 255)));
        assert!(!net.contains(Ipv4Addr::new(10, 1, 127, 255)));
        assert!(
            Ipv4Net::new(Ipv4Addr::new(10, 1, 128, 1), 17).is_none(),
            "host bits set"
        );
        assert!(
            Ipv4Net::new(Ipv4Addr::new(10, 1, 128, 0), 33).is_none(),
            "prefix too long"
        );
        let everything = Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).expect("default route");
        assert!(everything.contains(Ipv4Addr::BROADCAST));
        assert_eq!(AddressPlan::for_vpc_number(255), None);
    }

    #[test]
    fn value_types_parse_and_display() {
        for text in [
            "a:NoSchedule",
            "example.com/a=b:NoExecute",
            "k=v.1:PreferNoSchedule",
        ] {
            assert_eq!(text.parse::<Taint>().expect(text).to_string(), text);
        }
        let empty_value: Taint = "k=:NoSchedule".parse().expect("empty value");
        assert_eq!(empty_value.to_string(), "k:NoSchedule");
        for bad in [
            "NoSchedule",
            "k=v",
            "k:noschedule",
            "k=v=w:NoSchedule",
            ":NoSchedule",
        ] {
            assert!(bad.parse::<Taint>().is_err(), "{bad}");
        }
        for good in ["https://h", "https://h:1/", "https://a.b-c.d:65535"] {
            assert!(good.parse::<ApiServerUrl>().is_ok(), "{good}");
        }
        let bad_urls = [
            "https://",
            "https://:443",
            "https://h:0",
            "https://h:65536",
            "https://h:",
            "https://h:44a",
            "https://u@h",
            "https://h?x",
            "HTTPS://h",
        ];
        for bad in bad_urls {
            assert!(bad.parse::<ApiServerUrl>().is_err(), "{bad}");
        }
        for bad in ["v1.2", "v1.2.3-rc.1", "v1..3", "V1.2.3", "1.2.3"] {
            assert!(bad.parse::<KubeVersion>().is_err(), "{bad}");
        }
        assert_eq!(Role::Master.to_string(), "master");
        let name: ClusterName = "my-cluster-1".parse().expect("valid");
        assert_eq!(name.to_string(), "my-cluster-1");
        assert!(is_kubelet_settable("topology.kubernetes.io/zone"));
        assert!(is_kubelet_settable("x.node.kubernetes.io/a"));
        assert!(is_kubelet_settable("example.com/a"));
        assert!(!is_kubelet_settable("k8s.io/a"));
    }
}
