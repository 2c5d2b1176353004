//! Value types of the configuration, each unable to hold a bad value, and the rules they check.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::InvalidValue;

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

/// What this node is. Serialised as its lowercase name, as in the config (`state.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
    pub(super) const RULE: &'static str =
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

pub(super) const BUCKET_RULE: &str =
    "an S3 bucket name: 3-63 characters from a-z, 0-9, '.' and '-', \
     starting and ending with a letter or digit";
pub(super) const DNS_RULE: &str =
    "a lowercase DNS name: dot-separated labels of 1-63 characters from a-z, 0-9 and '-', \
     not starting or ending with '-', at most 253 characters in all";
pub(super) const LABEL_KEY_RULE: &str =
    "a label key `[prefix/]name`: an optional lowercase DNS subdomain \
     prefix, then a name of 1-63 characters from A-Z, a-z, 0-9, '.', '_' and '-' that starts and \
     ends with a letter or digit";
pub(super) const LABEL_VALUE_RULE: &str =
    "a label value of at most 63 characters from A-Z, a-z, 0-9, '.', '_' and '-' \
     that starts and ends with a letter or digit";
pub(super) const KUBELET_LABEL_RULE: &str =
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

pub(super) fn is_bucket_name(s: &str) -> bool {
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge_ok(s.as_bytes().first())
        && edge_ok(s.as_bytes().last())
}

/// A lowercase DNS name: dot-separated labels of 1-63 characters from `a-z`, `0-9` and `-`, none
/// starting or ending with `-`, at most 253 characters in all.
pub fn is_dns_name(s: &str) -> bool {
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

pub(super) fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns_name(prefix) && is_label_text(name, false),
        None => is_label_text(key, false),
    }
}

pub(super) fn is_label_value(value: &str) -> bool {
    is_label_text(value, true)
}

/// Mirrors the kubelet's check on `--node-labels`: labels in the kubernetes.io and k8s.io
/// namespaces must be ones the kubelet is allowed to set on itself.
pub(super) fn is_kubelet_settable(key: &str) -> bool {
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
