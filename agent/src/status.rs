//! `tn-agent status` (SPEC §8): what this node is, what it decided at boot, and the health it
//! can see. [`gather`] collects facts into a [`Report`] (the `--json` schema, documented in
//! `docs/status.md`) without IMDS or AWS; [`assess`] is a pure function from those facts to the
//! problems; [`render_text`] prints the report for a person over SSH.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::{Role, Settings};
use crate::etcd::client::{ClientTls, EtcdAccess};
use crate::etcd::model::{self, ClusterView, Me};
use crate::fsutil::Root;
use crate::state::{BootState, Decision};

/// Version of the `--json` schema; bumped on incompatible changes.
pub const SCHEMA: u32 = 1;
/// The whole etcd look must end within this, so that `status` answers within 3 s.
pub const ETCD_BUDGET: Duration = Duration::from_millis(2500);
/// One connection to an etcd member, and one request: a member that does not answer costs at
/// most their sum, so that the members that do answer are heard within [`ETCD_BUDGET`].
const ETCD_CONNECT_TIMEOUT: Duration = Duration::from_millis(400);
const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_millis(800);
/// A certificate expiring within this many days is a problem (exit 1).
pub const EXPIRY_PROBLEM_DAYS: i64 = 7;
/// A certificate expiring within this many days is a warning (shown, exit 0).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// How deep below a PKI directory certificates are looked for.
const PKI_DEPTH: usize = 3;

/// A master's client certificate for etcd, and where the etcd CA may be (kubeadm's layout
/// first).
const MASTER_ETCD_CLIENT: (&str, &str) = (
    "/etc/kubernetes/pki/apiserver-etcd-client.crt",
    "/etc/kubernetes/pki/apiserver-etcd-client.key",
);
const MASTER_ETCD_CA: [&str; 2] = [
    "/etc/kubernetes/pki/etcd/ca.crt",
    "/etc/kubernetes/pki/etcd-ca.crt",
];
/// A master learns the etcd members from its apiserver's `--etcd-servers`.
const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";

/// Everything `status` found, and what it makes of it. Serialised, this is `status --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: u32,
    pub agent_version: String,
    /// When the facts were gathered, RFC 3339 UTC.
    pub checked_at: String,
    pub node: NodeReport,
    /// The last `bootstrap` run from `state.json`; `None` when there is none.
    pub bootstrap: Option<BootstrapReport>,
    /// Why `state.json` could not be read, when it exists but is unreadable.
    pub state_error: Option<String>,
    /// `None` for workers: they have nothing to do with etcd.
    pub etcd: Option<EtcdReport>,
    pub certificates: Vec<CertReport>,
    /// The files SPEC §6 says `bootstrap` writes for this role.
    pub files: Vec<FileReport>,
    /// No problem of severity `error` (warnings allowed): exit 0.
    pub healthy: bool,
    /// What [`assess`] found, errors first.
    pub problems: Vec<Problem>,
}

/// Who the node is: role and cluster from the config, the rest as `bootstrap` recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub role: String,
    pub cluster: String,
    pub instance_id: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub availability_zone: Option<String>,
    pub region: Option<String>,
    /// The node's own autoscaling group.
    pub asg: Option<String>,
}

/// The last `bootstrap` run, from `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootstrapReport {
    pub agent_version: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub ok: bool,
    pub error: Option<String>,
    pub decisions: Vec<Decision>,
    pub files_written: Vec<String>,
    pub timings_ms: BTreeMap<String, u64>,
    pub aws_calls: u32,
}

/// What came of asking etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EtcdOutcome {
    /// A member answered: `members` and `leader` are filled in.
    Answered,
    /// Nobody answered at `endpoints`.
    NoAnswer,
    /// The look did not end within [`ETCD_BUDGET`].
    TimedOut,
    /// Not asked: nothing to ask yet (files not written, identity unknown); `note` says why.
    Skipped,
    /// Not asked: this node's etcd client files exist but cannot be read (e.g. the key is
    /// readable by root only); `note` says which.
    NoAccess,
}

/// This node's place in the etcd cluster (role etcd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    Voter,
    Learner,
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdReport {
    pub outcome: EtcdOutcome,
    pub note: Option<String>,
    /// Client URLs asked.
    pub endpoints: Vec<String>,
    pub members: Vec<MemberReport>,
    /// The leader's name (its id in hex when it has no name).
    pub leader: Option<String>,
    /// Role etcd, when a member answered and the node's identity is known.
    pub this_member: Option<MemberState>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberReport {
    /// Member id, 16 hex digits as `etcdctl member list -w table` shows it.
    pub id: String,
    /// The instance id; empty for a learner that has not started yet.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub learner: bool,
    /// It answered a status request just now.
    pub healthy: bool,
    pub leader: bool,
}

/// One certificate file (its first certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertReport {
    /// As on the node, without `--root`.
    pub path: String,
    /// Why the file could not be read; the other fields are empty when set.
    pub error: Option<String>,
    pub subject: Option<String>,
    pub common_name: Option<String>,
    pub issuer: Option<String>,
    pub is_ca: bool,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    /// Whole days until `not_after` (rounded down; negative once expired).
    pub days_left: Option<i64>,
    /// `not_before` is still in the future.
    pub not_yet_valid: bool,
    pub dns_names: Vec<String>,
    pub ips: Vec<String>,
    /// The CA certificate file (under the same PKI directory) whose key signed it; itself for a
    /// self-signed CA; `None` when no CA there did.
    pub signed_by: Option<String>,
}

/// An expected file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    pub exists: bool,
    /// Permission bits in octal, e.g. `0600`.
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The node is not healthy: exit 1.
    Error,
    /// Shown, but the node is healthy.
    Warning,
}

/// Something wrong, as one sentence saying what and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// Stable identifier for scripts, e.g. `cert_expires_soon` (docs/status.md lists them).
    pub kind: &'static str,
    pub message: String,
}

impl Problem {
    fn error(kind: &'static str, message: String) -> Self {
        Problem {
            severity: Severity::Error,
            kind,
            message,
        }
    }

    fn warning(kind: &'static str, message: String) -> Self {
        Problem {
            severity: Severity::Warning,
            kind,
            message,
        }
    }
}

impl Report {
    /// Fills in `problems` and `healthy` from the facts.
    pub fn assessed(mut self) -> Self {
        self.problems = assess(&self);
        self.healthy = !self.problems.iter().any(|p| p.severity == Severity::Error);
        self
    }
}

/// Gathers the facts and assesses them. Reads only the node's files and asks only etcd (within
/// [`ETCD_BUDGET`]); never IMDS or AWS, so it answers quickly when they are slow.
pub async fn gather(settings: &Settings, root: &Root) -> Report {
    let now = OffsetDateTime::now_utc();
    let (state, state_error) = match BootState::load(root) {
        Ok(state) => (state, None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let etcd = match settings.role() {
        Role::Etcd | Role::Master => Some(etcd_report(settings, root, state.as_ref()).await),
        Role::Worker => None,
    };
    Report {
        schema: SCHEMA,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        checked_at: rfc3339(now),
        node: node_report(settings, state.as_ref()),
        bootstrap: state.as_ref().map(bootstrap_report),
        state_error,
        etcd,
        certificates: certificates(root, now),
        files: crate::files::expected(settings.role(), settings.etcd.tls)
            .into_iter()
            .map(|path| file_report(root, path))
            .collect(),
        healthy: false,
        problems: Vec::new(),
    }
    .assessed()
}

fn node_report(settings: &Settings, state: Option<&BootState>) -> NodeReport {
    let id = state.and_then(|s| s.identity.as_ref());
    NodeReport {
        role: settings.role().as_str().to_string(),
        cluster: settings.cluster.as_str().to_string(),
        instance_id: id.map(|i| i.instance_id.clone()),
        private_ip: id.map(|i| i.private_ip),
        hostname: id.map(|i| i.hostname.clone()),
        availability_zone: id.map(|i| i.availability_zone.clone()),
        region: id.map(|i| i.region.clone()),
        asg: state.and_then(|s| s.asg.as_ref()).map(|a| a.name.clone()),
    }
}

fn bootstrap_report(s: &BootState) -> BootstrapReport {
    BootstrapReport {
        agent_version: s.agent_version.clone(),
        started_at: s.started_at.clone(),
        finished_at: s.finished_at.clone(),
        ok: s.ok,
        error: s.error.clone(),
        decisions: s.decisions.clone(),
        files_written: s.files_written.clone(),
        timings_ms: s.timings_ms.clone(),
        aws_calls: s.aws_calls,
    }
}

fn file_report(root: &Root, path: &str) -> FileReport {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(root.path(path)).ok();
    FileReport {
        path: path.to_string(),
        exists: meta.is_some(),
        mode: meta.map(|m| format!("{:04o}", m.permissions().mode() & 0o7777)),
    }
}

/// Every `*.crt` under the PKI directories, sorted by path, each checked against the CA
/// certificates under the same PKI directory.
fn certificates(root: &Root, now: OffsetDateTime) -> Vec<CertReport> {
    let mut out = Vec::new();
    for dir in crate::files::PKI_DIRS {
        let files: Vec<(String, Option<String>)> = crt_files(root, dir)
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(root.path(&path)).ok();
                (path, text)
            })
            .collect();
        let cas = ca_certificates(&files);
        out.extend(
            files
                .iter()
                .map(|(path, text)| cert_report(path, text.as_deref(), &cas, now)),
        );
    }
    out
}

/// Node paths of the `*.crt` files under `dir` (as a node path), sorted, at most
/// [`PKI_DEPTH`] directories down.
fn crt_files(root: &Root, dir: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![(dir.to_string(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.path(&dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = format!("{dir}/{name}");
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && depth < PKI_DEPTH {
                stack.push((path, depth + 1));
            } else if kind.is_file() && name.ends_with(".crt") && !name.starts_with('.') {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The CA certificates among `files`: (node path, PEM of one certificate), every certificate
/// of a bundle.
fn ca_certificates(files: &[(String, Option<String>)]) -> Vec<(String, String)> {
    files
        .iter()
        .filter_map(|(path, text)| Some((path, text.as_ref()?)))
        .flat_map(|(path, text)| {
            pem_certificates(text)
                .into_iter()
                .filter(|pem| crate::pki::inspect(pem).is_ok_and(|i| i.is_ca))
                .map(move |pem| (path.clone(), pem))
        })
        .collect()
}

/// Each `CERTIFICATE` PEM block of `text`.
fn pem_certificates(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    out
}

fn cert_report(
    path: &str,
    text: Option<&str>,
    cas: &[(String, String)],
    now: OffsetDateTime,
) -> CertReport {
    let unreadable = |error: String| CertReport {
        path: path.to_string(),
        error: Some(error),
        subject: None,
        common_name: None,
        issuer: None,
        is_ca: false,
        not_before: None,
        not_after: None,
        days_left: None,
        not_yet_valid: false,
        dns_names: Vec::new(),
        ips: Vec::new(),
        signed_by: None,
    };
    let Some(text) = text else {
        return unreadable("cannot read the file".into());
    };
    let info = match crate::pki::inspect(text) {
        Ok(info) => info,
        Err(e) => return unreadable(crate::exit::one_line(&e)),
    };
    // Same directory first, so that `ca.crt` next to a leaf is named when it signed it.
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let mut signers: Vec<&(String, String)> = cas.iter().collect();
    signers.sort_by_key(|(ca_path, _)| ca_path.rsplit_once('/').map_or("", |(d, _)| d) != dir);
    let signed_by = signers
        .into_iter()
        .find(|(_, ca_pem)| crate::pki::verifies(text, ca_pem))
        .map(|(ca_path, _)| ca_path.clone());
    let seconds_left = (info.not_after - now).whole_seconds();
    CertReport {
        path: path.to_string(),
        error: None,
        subject: Some(info.subject_dn.clone()),
        common_name: info.subject_cn.clone(),
        issuer: Some(info.issuer_dn.clone()),
        is_ca: info.is_ca,
        not_before: Some(rfc3339(info.not_before)),
        not_after: Some(rfc3339(info.not_after)),
        days_left: Some(seconds_left.div_euclid(86_400)),
        not_yet_valid: info.not_before > now,
        dns_names: info.dns_names.iter().cloned().collect(),
        ips: info.ips.iter().map(|ip| ip.to_string()).collect(),
        signed_by,
    }
}

/// Where and how to ask etcd from this node.
struct EtcdTarget {
    access: EtcdAccess,
    endpoints: Vec<String>,
    /// This node as a member (role etcd).
    me: Option<Me>,
}

async fn etcd_report(settings: &Settings, root: &Root, state: Option<&BootState>) -> EtcdReport {
    let started = Instant::now();
    let target = match settings.role() {
        Role::Etcd => etcd_member_target(settings, root, state),
        _ => master_target(settings, root),
    };
    let target = match target {
        Ok(t) => t,
        Err((outcome, note)) => return unanswered(outcome, Some(note)),
    };
    let looked = tokio::time::timeout(ETCD_BUDGET, target.access.observe(&target.endpoints)).await;
    let mut report = match looked {
        Ok(Some(view)) => answered(&view, target.me.as_ref()),
        Ok(None) => unanswered(EtcdOutcome::NoAnswer, None),
        Err(_) => unanswered(
            EtcdOutcome::TimedOut,
            Some(format!(
                "no answer within {:.1} s",
                ETCD_BUDGET.as_secs_f64()
            )),
        ),
    };
    report.endpoints = target.endpoints;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report
}

/// A report without members.
fn unanswered(outcome: EtcdOutcome, note: Option<String>) -> EtcdReport {
    EtcdReport {
        outcome,
        note,
        endpoints: Vec::new(),
        members: Vec::new(),
        leader: None,
        this_member: None,
        elapsed_ms: 0,
    }
}

fn access(settings: &Settings, tls: Option<ClientTls>) -> EtcdAccess {
    EtcdAccess::with_timeouts(
        tls,
        crate::etcd::endpoints(&settings.etcd),
        ETCD_CONNECT_TIMEOUT,
        ETCD_REQUEST_TIMEOUT,
    )
}

/// Why etcd is not asked: [`EtcdOutcome::Skipped`] or [`EtcdOutcome::NoAccess`], and a note.
type NotAsked = (EtcdOutcome, String);

/// Role etcd: the node's own server certificate; its own client URL, the peers of its member
/// record and the instances of its ASG as seen at boot.
fn etcd_member_target(
    settings: &Settings,
    root: &Root,
    state: Option<&BootState>,
) -> Result<EtcdTarget, NotAsked> {
    let Some(ident) = state.and_then(|s| s.identity.as_ref()) else {
        return Err((
            EtcdOutcome::Skipped,
            "this node's identity is not known yet (no successful bootstrap)".into(),
        ));
    };
    let tls = if settings.etcd.tls {
        use crate::files::{ETCD_NODE_CA, ETCD_SERVER};
        Some(read_tls(
            root,
            ETCD_NODE_CA,
            ETCD_SERVER.cert,
            ETCD_SERVER.key,
        )?)
    } else {
        None
    };
    let access = access(settings, tls);
    let endpoints = crate::etcd::candidate_urls(
        &access,
        ident.private_ip,
        state.and_then(|s| s.asg.as_ref()),
        crate::etcd::read_record(root).as_ref(),
    );
    let me = Me::new(&ident.instance_id, ident.private_ip, access.endpoints());
    Ok(EtcdTarget {
        access,
        endpoints,
        me: Some(me),
    })
}

/// Role master: the apiserver's etcd client certificate and its `--etcd-servers`.
fn master_target(settings: &Settings, root: &Root) -> Result<EtcdTarget, NotAsked> {
    let tls = if settings.etcd.tls {
        let ca = MASTER_ETCD_CA
            .into_iter()
            .find(|p| root.path(p).exists())
            .unwrap_or(MASTER_ETCD_CA[0]);
        Some(read_tls(
            root,
            ca,
            MASTER_ETCD_CLIENT.0,
            MASTER_ETCD_CLIENT.1,
        )?)
    } else {
        None
    };
    let manifest = std::fs::read_to_string(root.path(APISERVER_MANIFEST)).unwrap_or_default();
    let endpoints = etcd_servers(&manifest);
    if endpoints.is_empty() {
        return Err((
            EtcdOutcome::Skipped,
            format!("no etcd servers known yet ({APISERVER_MANIFEST} has no --etcd-servers)"),
        ));
    }
    Ok(EtcdTarget {
        access: access(settings, tls),
        endpoints,
        me: None,
    })
}

/// The client TLS files; a file that does not exist yet is a skip, one that cannot be read
/// (an operator not root: keys are 0600) is no access.
fn read_tls(root: &Root, ca: &str, cert: &str, key: &str) -> Result<ClientTls, NotAsked> {
    let read = |p: &str| {
        std::fs::read_to_string(root.path(p)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                (EtcdOutcome::Skipped, format!("{p} does not exist yet"))
            }
            std::io::ErrorKind::PermissionDenied => (
                EtcdOutcome::NoAccess,
                format!("cannot read {p} (permission denied): run `sudo tn-agent status`"),
            ),
            _ => (EtcdOutcome::NoAccess, format!("cannot read {p}: {e}")),
        })
    };
    Ok(ClientTls {
        ca_pem: read(ca)?,
        cert_pem: read(cert)?,
        key_pem: read(key)?,
    })
}

/// The URLs of the first `--etcd-servers=` flag in a kube-apiserver manifest.
pub fn etcd_servers(manifest: &str) -> Vec<String> {
    const FLAG: &str = "--etcd-servers=";
    let Some(at) = manifest.find(FLAG) else {
        return Vec::new();
    };
    manifest[at + FLAG.len()..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// The report for a cluster view; `me` is this node when it is an etcd member.
fn answered(view: &ClusterView, me: Option<&Me>) -> EtcdReport {
    let members: Vec<MemberReport> = view
        .members
        .iter()
        .map(|m| MemberReport {
            id: format!("{:016x}", m.id),
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: m.client_urls.clone(),
            learner: m.is_learner,
            healthy: m.healthy,
            leader: view.leader == Some(m.id),
        })
        .collect();
    let leader = view.leader.map(|id| {
        view.members
            .iter()
            .find(|m| m.id == id && !m.name.is_empty())
            .map_or_else(|| format!("{id:016x}"), |m| m.name.clone())
    });
    let this_member = me.map(|me| match view.find_me(me) {
        None => MemberState::Absent,
        Some(m) if m.is_learner => MemberState::Learner,
        Some(_) => MemberState::Voter,
    });
    EtcdReport {
        outcome: EtcdOutcome::Answered,
        note: None,
        endpoints: Vec::new(),
        members,
        leader,
        this_member,
        elapsed_ms: 0,
    }
}

/// What is wrong, from the facts alone (`healthy` and `problems` of `r` are not looked at).
/// Errors first, then warnings, each in the order found.
pub fn assess(r: &Report) -> Vec<Problem> {
    let mut out = Vec::new();
    bootstrap_problems(r, &mut out);
    if r.bootstrap.is_some() {
        file_problems(r, &mut out);
    }
    for cert in &r.certificates {
        cert_problems(cert, &mut out);
    }
    if let Some(etcd) = &r.etcd {
        etcd_problems(r, etcd, &mut out);
    }
    out.sort_by_key(|p| p.severity);
    out
}

fn bootstrap_problems(r: &Report, out: &mut Vec<Problem>) {
    if let Some(err) = &r.state_error {
        out.push(Problem::error(
            "state_unreadable",
            format!(
                "{} cannot be read ({err}): run `tn-agent bootstrap` to write it again",
                crate::files::STATE
            ),
        ));
        return;
    }
    match &r.bootstrap {
        None => out.push(Problem::error(
            "never_bootstrapped",
            format!(
                "this node was never bootstrapped ({} does not exist): run `tn-agent bootstrap`, \
                 or see why it did not run in `journalctl -t tn-agent`",
                crate::files::STATE
            ),
        )),
        Some(b) if !b.ok => out.push(Problem::error(
            "bootstrap_failed",
            format!(
                "the last bootstrap (started {}) failed: {}; fix the cause (`journalctl -t \
                 tn-agent`) and run `tn-agent bootstrap` again",
                b.started_at,
                b.error.as_deref().unwrap_or("no reason recorded")
            ),
        )),
        Some(_) => {}
    }
}

fn file_problems(r: &Report, out: &mut Vec<Problem>) {
    for f in r.files.iter().filter(|f| !f.exists) {
        out.push(Problem::error(
            "file_missing",
            format!(
                "{} is missing: run `tn-agent bootstrap` to write it",
                f.path
            ),
        ));
    }
}

fn cert_problems(c: &CertReport, out: &mut Vec<Problem>) {
    let path = &c.path;
    if let Some(err) = &c.error {
        out.push(Problem::error(
            "cert_unreadable",
            format!(
                "{path} is not a readable certificate ({err}): run `tn-agent bootstrap` to \
                 write it again"
            ),
        ));
        return;
    }
    let renew = if c.is_ca {
        "rotate this CA (docs/status.md, \"Renewing certificates\")"
    } else {
        "run `tn-agent bootstrap` (it reissues certificates that expire within 30 days), then \
         restart the service that uses it"
    };
    let until = c.not_after.as_deref().unwrap_or("?");
    match c.days_left {
        Some(days) if days < 0 => out.push(Problem::error(
            "cert_expired",
            format!("{path} expired at {until}: {renew}"),
        )),
        Some(days) if days < EXPIRY_PROBLEM_DAYS => out.push(Problem::error(
            "cert_expires_soon",
            format!("{path} expires in {} ({until}): {renew}", days_text(days)),
        )),
        Some(days) if days < EXPIRY_WARNING_DAYS => out.push(Problem::warning(
            "cert_expiring",
            format!("{path} expires in {} ({until}): {renew}", days_text(days)),
        )),
        _ => {}
    }
    if c.not_yet_valid {
        out.push(Problem::error(
            "cert_not_yet_valid",
            format!(
                "{path} is not valid before {}: check the node's clock (`timedatectl`)",
                c.not_before.as_deref().unwrap_or("?")
            ),
        ));
    }
    if c.signed_by.is_none() {
        let dir = crate::files::PKI_DIRS
            .into_iter()
            .find(|d| path.starts_with(&format!("{d}/")))
            .unwrap_or("its directory");
        out.push(Problem::error(
            "cert_not_signed",
            format!(
                "{path} is not signed by a CA certificate under {dir} (its issuer is {}): run \
                 `tn-agent bootstrap` to reissue it from the cluster's CA",
                c.issuer.as_deref().unwrap_or("?")
            ),
        ));
    }
}

fn days_text(days: i64) -> String {
    match days {
        0 => "less than a day".to_string(),
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    }
}

fn etcd_problems(r: &Report, etcd: &EtcdReport, out: &mut Vec<Problem>) {
    let is_member = r.node.role == Role::Etcd.as_str();
    let asked = etcd.endpoints.join(", ");
    match etcd.outcome {
        EtcdOutcome::Skipped => {
            // A master whose control plane is not written yet, or a node never bootstrapped
            // (already reported), has nothing to ask.
            if is_member && r.bootstrap.is_some() {
                out.push(Problem::error(
                    "etcd_not_checked",
                    format!(
                        "etcd was not checked: {}",
                        etcd.note.as_deref().unwrap_or("no reason")
                    ),
                ));
            }
        }
        EtcdOutcome::NoAccess => out.push(Problem::error(
            "etcd_not_checked",
            format!(
                "etcd was not checked: {}",
                etcd.note.as_deref().unwrap_or("no reason")
            ),
        )),
        EtcdOutcome::TimedOut => out.push(Problem::error(
            "etcd_timeout",
            format!(
                "etcd did not answer within {:.1} s (asked {asked}): check that etcd runs on \
                 this node and its peers, and that the client port is reachable",
                ETCD_BUDGET.as_secs_f64()
            ),
        )),
        EtcdOutcome::NoAnswer => out.push(Problem::error(
            "etcd_unreachable",
            format!(
                "no etcd member answered (asked {asked}): check that etcd runs on these nodes \
                 (its log is in the journal) and that the client port is reachable"
            ),
        )),
        EtcdOutcome::Answered => member_problems(r, etcd, is_member, out),
    }
}

fn member_problems(r: &Report, etcd: &EtcdReport, is_member: bool, out: &mut Vec<Problem>) {
    let me = r.node.instance_id.as_deref().unwrap_or("this node");
    if is_member {
        match etcd.this_member {
            Some(MemberState::Absent) => out.push(Problem::error(
                "etcd_member_absent",
                format!(
                    "this node ({me}) is not a member of the etcd cluster: run `tn-agent \
                     bootstrap` so that it joins (docs/etcd.md)"
                ),
            )),
            Some(MemberState::Learner) => out.push(Problem::error(
                "etcd_member_learner",
                format!(
                    "this node's member ({me}) is still a learner: run `tn-agent etcd promote` \
                     (it waits until the learner has caught up)"
                ),
            )),
            _ => {}
        }
    }
    for m in etcd.members.iter().filter(|m| !m.healthy) {
        let name = if m.name.is_empty() {
            "(not started)"
        } else {
            &m.name
        };
        let message = if is_member && m.name == me {
            format!(
                "this node's etcd member {name} ({}) does not answer: check the etcd service \
                 on this node and its log in the journal",
                m.id
            )
        } else {
            format!(
                "etcd member {name} ({}, {}) does not answer: check that instance; if it is \
                 gone for good, terminate it so that its ASG replaces it",
                m.id,
                m.peer_urls.join(",")
            )
        };
        out.push(Problem::error("etcd_member_down", message));
    }
    if etcd.leader.is_none() {
        out.push(Problem::error(
            "etcd_no_leader",
            "the etcd cluster has no leader: check that a quorum of members runs and that they \
             reach each other on the peer port"
                .to_string(),
        ));
    }
    let voters = etcd.members.iter().filter(|m| !m.learner).count();
    let healthy = etcd
        .members
        .iter()
        .filter(|m| !m.learner && m.healthy)
        .count();
    if healthy < model::quorum(voters) {
        out.push(Problem::error(
            "etcd_no_quorum",
            format!(
                "only {healthy} of {voters} etcd voters answer and quorum needs {}: the cluster \
                 cannot take writes; bring members back, or restore (docs/etcd.md)",
                model::quorum(voters)
            ),
        ));
    }
}

/// The report for a person: sections node, last bootstrap, etcd, certificates, files, then
/// warnings and `healthy` or the problems.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    render_node(r, &mut out);
    render_bootstrap(r, &mut out);
    if let Some(etcd) = &r.etcd {
        render_etcd(etcd, &mut out);
    }
    render_certificates(r, &mut out);
    out.push_str("files\n");
    let rows = r
        .files
        .iter()
        .map(|f| {
            vec![
                if f.exists { "ok" } else { "MISSING" }.to_string(),
                f.mode.clone().unwrap_or_default(),
                f.path.clone(),
            ]
        })
        .collect();
    out.push_str(&table(rows));
    let list = |out: &mut String, title: &str, severity: Severity| {
        let items: Vec<&Problem> = r
            .problems
            .iter()
            .filter(|p| p.severity == severity)
            .collect();
        if !items.is_empty() {
            out.push_str(title);
            out.push('\n');
            for p in items {
                out.push_str(&format!("  - {}\n", p.message));
            }
        }
    };
    list(&mut out, "warnings:", Severity::Warning);
    if r.healthy {
        out.push_str("healthy\n");
    } else {
        list(&mut out, "problems:", Severity::Error);
    }
    out
}

fn render_node(r: &Report, out: &mut String) {
    let n = &r.node;
    let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
    out.push_str("node\n");
    out.push_str(&format!(
        "  {} of cluster {}, instance {}\n",
        n.role,
        n.cluster,
        or_unknown(&n.instance_id)
    ));
    out.push_str(&format!(
        "  ip {}, {}, az {}, asg {}\n",
        n.private_ip
            .map_or_else(|| "unknown".to_string(), |ip| ip.to_string()),
        or_unknown(&n.hostname),
        or_unknown(&n.availability_zone),
        or_unknown(&n.asg)
    ));
}

fn render_bootstrap(r: &Report, out: &mut String) {
    out.push_str("last bootstrap\n");
    let Some(b) = &r.bootstrap else {
        match &r.state_error {
            Some(e) => out.push_str(&format!("  unknown: {e}\n")),
            None => out.push_str(&format!(
                "  never ({} does not exist)\n",
                crate::files::STATE
            )),
        }
        return;
    };
    let outcome = if b.ok {
        "ok".to_string()
    } else {
        format!(
            "FAILED: {}",
            b.error.as_deref().unwrap_or("no reason recorded")
        )
    };
    out.push_str(&format!(
        "  {} to {}: {outcome}\n",
        b.started_at,
        b.finished_at.as_deref().unwrap_or("(not finished)")
    ));
    let mut facts = vec![
        format!("tn-agent {}", b.agent_version),
        format!("{} AWS calls", b.aws_calls),
    ];
    facts.extend(b.timings_ms.iter().map(|(k, v)| format!("{k} {v} ms")));
    out.push_str(&format!("  {}\n", facts.join(", ")));
    for d in &b.decisions {
        out.push_str(&format!("  {}: {}\n", d.what, d.why));
    }
    if !b.files_written.is_empty() {
        out.push_str(&format!("  wrote {} files:\n", b.files_written.len()));
        out.push_str(&wrap(&b.files_written, "    ", 100));
    }
}

/// `items` joined by `, ` in lines of at most `width` columns (longer items alone on theirs),
/// each line starting with `indent`.
fn wrap(items: &[String], indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() {
            format!("{item},")
        } else {
            item.clone()
        };
        if !line.is_empty() && indent.len() + line.len() + 1 + piece.len() > width {
            out.push_str(&format!("{indent}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&piece);
    }
    if !line.is_empty() {
        out.push_str(&format!("{indent}{line}\n"));
    }
    out
}

fn render_etcd(etcd: &EtcdReport, out: &mut String) {
    let asked = etcd.endpoints.join(", ");
    match etcd.outcome {
        EtcdOutcome::Skipped | EtcdOutcome::NoAccess => {
            out.push_str(&format!(
                "etcd: not checked: {}\n",
                etcd.note.as_deref().unwrap_or("")
            ));
            return;
        }
        EtcdOutcome::TimedOut => {
            out.push_str(&format!(
                "etcd: no answer within {:.1} s (asked {asked})\n",
                ETCD_BUDGET.as_secs_f64()
            ));
            return;
        }
        EtcdOutcome::NoAnswer => {
            out.push_str(&format!("etcd: no member answered (asked {asked})\n"));
            return;
        }
        EtcdOutcome::Answered => {}
    }
    let this = match etcd.this_member {
        Some(MemberState::Voter) => ", this member: voter",
        Some(MemberState::Learner) => ", this member: learner",
        Some(MemberState::Absent) => ", this member: absent",
        None => "",
    };
    let count = match etcd.members.len() {
        1 => "1 member".to_string(),
        n => format!("{n} members"),
    };
    out.push_str(&format!(
        "etcd: {count}, leader {}{this} ({} ms)\n",
        etcd.leader.as_deref().unwrap_or("NONE"),
        etcd.elapsed_ms
    ));
    let rows = etcd
        .members
        .iter()
        .map(|m| {
            vec![
                if m.name.is_empty() {
                    "(not started)".to_string()
                } else {
                    m.name.clone()
                },
                m.id.clone(),
                if m.learner { "learner" } else { "voter" }.to_string(),
                if m.healthy { "healthy" } else { "DOWN" }.to_string(),
                m.peer_urls.join(","),
                if m.leader { "leader" } else { "" }.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(rows));
}

fn render_certificates(r: &Report, out: &mut String) {
    out.push_str("certificates\n");
    if r.certificates.is_empty() {
        out.push_str("  none\n");
        return;
    }
    let rows = r
        .certificates
        .iter()
        .map(|c| match &c.error {
            Some(e) => vec![c.path.clone(), format!("UNREADABLE: {e}")],
            None => vec![
                c.path.clone(),
                c.common_name.clone().unwrap_or_default(),
                format!(
                    "until {}",
                    c.not_after
                        .as_deref()
                        .and_then(|t| t.split_once('T'))
                        .map_or("?", |(date, _)| date)
                ),
                c.days_left
                    .map_or_else(String::new, |d| format!("{d} days")),
                match &c.signed_by {
                    Some(ca) if ca == &c.path => "self-signed".to_string(),
                    Some(ca) => format!("signed by {ca}"),
                    None => "NOT SIGNED by a CA here".to_string(),
                },
            ],
        })
        .collect();
    out.push_str(&table(rows));
}

/// Rows indented by two spaces, columns padded to their widest cell.
fn table(rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            line.push(' ');
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 1));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::model::MemberInfo;

    fn member(id: u64, name: &str, learner: bool, healthy: bool, leader: bool) -> MemberReport {
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
    fn healthy() -> Report {
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
                    mode: Some("0644".into()),
                })
                .collect(),
            healthy: false,
            problems: Vec::new(),
        }
    }

    fn etcd(r: &mut Report) -> &mut EtcdReport {
        r.etcd.as_mut().unwrap()
    }

    /// (case, change to a healthy report, expected (severity, kind) list).
    type Case = (
        &'static str,
        fn(&mut Report),
        &'static [(Severity, &'static str)],
    );

    #[test]
    fn assess_table() {
        use Severity::{Error as E, Warning as W};
        let cases: &[Case] = &[
            ("healthy", |_| {}, &[]),
            (
                "never bootstrapped: one problem, not one per file",
                |r| {
                    r.bootstrap = None;
                    r.files.iter_mut().for_each(|f| f.exists = false);
                    *etcd(r) = EtcdReport {
                        outcome: EtcdOutcome::Skipped,
                        note: Some("no identity".into()),
                        ..etcd(r).clone()
                    };
                },
                &[(E, "never_bootstrapped")],
            ),
            (
                "unreadable state",
                |r| {
                    r.bootstrap = None;
                    r.state_error = Some("not JSON".into());
                },
                &[(E, "state_unreadable")],
            ),
            (
                "failed bootstrap",
                |r| {
                    let b = r.bootstrap.as_mut().unwrap();
                    b.ok = false;
                    b.error = Some("etcd is not ready".into());
                },
                &[(E, "bootstrap_failed")],
            ),
            (
                "missing file",
                |r| r.files[2].exists = false,
                &[(E, "file_missing")],
            ),
            (
                "cert 29 days: warning only",
                |r| r.certificates[1].days_left = Some(29),
                &[(W, "cert_expiring")],
            ),
            (
                "cert 7 days: warning",
                |r| r.certificates[1].days_left = Some(7),
                &[(W, "cert_expiring")],
            ),
            (
                "cert 6 days: problem",
                |r| r.certificates[1].days_left = Some(6),
                &[(E, "cert_expires_soon")],
            ),
            (
                "cert 30 days: fine",
                |r| r.certificates[1].days_left = Some(30),
                &[],
            ),
            (
                "cert expired",
                |r| r.certificates[1].days_left = Some(-1),
                &[(E, "cert_expired")],
            ),
            (
                "cert of another CA",
                |r| r.certificates[1].signed_by = None,
                &[(E, "cert_not_signed")],
            ),
            (
                "cert not yet valid",
                |r| r.certificates[1].not_yet_valid = true,
                &[(E, "cert_not_yet_valid")],
            ),
            (
                "cert unreadable",
                |r| r.certificates[1].error = Some("not PEM".into()),
                &[(E, "cert_unreadable")],
            ),
            (
                "a peer down: quorum holds",
                |r| etcd(r).members[2].healthy = false,
                &[(E, "etcd_member_down")],
            ),
            (
                "two down: no quorum, no leader",
                |r| {
                    let e = etcd(r);
                    e.members[1].healthy = false;
                    e.members[2].healthy = false;
                    e.leader = None;
                },
                &[
                    (E, "etcd_member_down"),
                    (E, "etcd_member_down"),
                    (E, "etcd_no_leader"),
                    (E, "etcd_no_quorum"),
                ],
            ),
            (
                "this member absent",
                |r| etcd(r).this_member = Some(MemberState::Absent),
                &[(E, "etcd_member_absent")],
            ),
            (
                "this member a learner",
                |r| {
                    etcd(r).this_member = Some(MemberState::Learner);
                    etcd(r).members[0].learner = true;
                },
                &[(E, "etcd_member_learner")],
            ),
            (
                "a healthy learner joining is fine",
                |r| etcd(r).members.push(member(4, "", true, true, false)),
                &[],
            ),
            (
                "nobody answers",
                |r| {
                    *etcd(r) = EtcdReport {
                        outcome: EtcdOutcome::NoAnswer,
                        members: vec![],
                        leader: None,
                        this_member: None,
                        ..etcd(r).clone()
                    }
                },
                &[(E, "etcd_unreachable")],
            ),
            (
                "etcd client key not readable (not root), on a master too",
                |r| {
                    r.node.role = "master".into();
                    r.files.clear();
                    let e = etcd(r);
                    e.outcome = EtcdOutcome::NoAccess;
                    e.this_member = None;
                },
                &[(E, "etcd_not_checked")],
            ),
            (
                "etcd too slow",
                |r| etcd(r).outcome = EtcdOutcome::TimedOut,
                &[(E, "etcd_timeout")],
            ),
            (
                "etcd not checked on a bootstrapped etcd node",
                |r| {
                    etcd(r).outcome = EtcdOutcome::Skipped;
                    etcd(r).note = Some("/etc/etcd/pki/ca.crt does not exist yet".into());
                },
                &[(E, "etcd_not_checked")],
            ),
            (
                "etcd not checked on a master: a note, not a problem",
                |r| {
                    r.node.role = "master".into();
                    r.files.clear();
                    let e = etcd(r);
                    e.outcome = EtcdOutcome::Skipped;
                    e.this_member = None;
                },
                &[],
            ),
            (
                "warnings come after errors",
                |r| {
                    r.certificates[0].days_left = Some(20);
                    r.certificates[1].days_left = Some(2);
                },
                &[(E, "cert_expires_soon"), (W, "cert_expiring")],
            ),
        ];
        for (name, change, want) in cases {
            let mut r = healthy();
            change(&mut r);
            let got: Vec<(Severity, &str)> =
                assess(&r).iter().map(|p| (p.severity, p.kind)).collect();
            assert_eq!(&got, want, "{name}");
            let r = r.assessed();
            assert_eq!(r.healthy, !want.iter().any(|(s, _)| *s == E), "{name}");
        }
    }

    #[test]
    fn problems_say_what_and_what_to_do() {
        let mut r = healthy();
        r.certificates[1].days_left = Some(3);
        etcd(&mut r).members[2].healthy = false;
        let messages: Vec<String> = assess(&r).into_iter().map(|p| p.message).collect();
        assert_eq!(
            messages[0],
            "/etc/etcd/pki/server.crt expires in 3 days (2026-01-01T00:00:00Z): run `tn-agent \
             bootstrap` (it reissues certificates that expire within 30 days), then restart the \
             service that uses it"
        );
        assert!(
            messages[1].starts_with(
                "etcd member i-0c (0000000000000003, https://10.0.1.3:2380) does not answer"
            ),
            "{}",
            messages[1]
        );
        r.etcd.as_mut().unwrap().members[0].healthy = false;
        let own = assess(&r)
            .into_iter()
            .find(|p| p.message.contains("i-0a"))
            .unwrap();
        assert!(
            own.message.starts_with("this node's etcd member i-0a"),
            "{}",
            own.message
        );
    }

    #[test]
    fn text_has_every_section_and_the_verdict() {
        let r = healthy().assessed();
        let text = render_text(&r);
        for part in [
            "node\n",
            "last bootstrap\n",
            "etcd: 3 members, leader i-0a, this member: voter",
            "certificates\n",
            "files\n",
            "seeded cluster: lowest instance id",
            "/etc/etcd/pki/server.crt  i-0a  until 2026-01-01  364 days   signed by /etc/etcd/pki/ca.crt",
            "self-signed",
        ] {
            assert!(text.contains(part), "{part:?} not in:\n{text}");
        }
        assert!(text.ends_with("healthy\n"), "{text}");

        let mut r = healthy();
        r.certificates[1].days_left = Some(20);
        etcd(&mut r).members[1].healthy = false;
        let text = render_text(&r.assessed());
        let warnings = text
            .find("warnings:\n  - /etc/etcd/pki/server.crt")
            .unwrap();
        let problems = text.find("problems:\n  - etcd member i-0b").unwrap();
        assert!(warnings < problems, "{text}");
        assert!(!text.contains("healthy\n"), "{text}");
        assert!(text.contains("DOWN"), "{text}");
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

    #[test]
    fn the_answer_names_leader_and_this_member() {
        let info = |id, name: &str, learner, healthy| MemberInfo {
            id,
            name: name.into(),
            peer_urls: vec![format!("https://10.0.1.{id}:2380")],
            client_urls: vec![format!("https://10.0.1.{id}:2379")],
            is_learner: learner,
            healthy,
        };
        let view = ClusterView {
            members: vec![info(1, "i-0a", false, true), info(2, "", true, false)],
            leader: Some(1),
        };
        let me = |name: &str, ip| Me {
            name: name.into(),
            ip: Ipv4Addr::new(10, 0, 1, ip),
            peer_url: format!("https://10.0.1.{ip}:2380"),
        };
        let r = answered(&view, Some(&me("i-0a", 1)));
        assert_eq!(r.leader.as_deref(), Some("i-0a"));
        assert_eq!(r.this_member, Some(MemberState::Voter));
        assert!(r.members[0].leader && !r.members[1].leader);
        // An unstarted learner is found by its peer URL.
        let r = answered(&view, Some(&me("i-0b", 2)));
        assert_eq!(r.this_member, Some(MemberState::Learner));
        let r = answered(&view, Some(&me("i-0c", 3)));
        assert_eq!(r.this_member, Some(MemberState::Absent));
        assert_eq!(answered(&view, None).this_member, None);
        let nameless = ClusterView {
            leader: Some(2),
            ..view
        };
        assert_eq!(
            answered(&nameless, None).leader.as_deref(),
            Some("0000000000000002")
        );
    }

    #[test]
    fn client_files_missing_are_a_skip_unreadable_no_access() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let read = || match read_tls(&root, "/pki/ca.crt", "/pki/c.crt", "/pki/c.key") {
            Ok(_) => panic!("read files that are not there"),
            Err(e) => e,
        };
        let err = read();
        assert_eq!(
            err,
            (
                EtcdOutcome::Skipped,
                "/pki/ca.crt does not exist yet".to_string()
            )
        );
        for name in ["ca.crt", "c.crt"] {
            std::fs::create_dir_all(dir.path().join("pki")).unwrap();
            std::fs::write(dir.path().join("pki").join(name), "pem").unwrap();
        }
        // Root reads every file, so a directory stands in for a file it cannot read.
        std::fs::create_dir(dir.path().join("pki/c.key")).unwrap();
        let (outcome, note) = read();
        assert_eq!(outcome, EtcdOutcome::NoAccess);
        assert!(note.starts_with("cannot read /pki/c.key: "), "{note}");
    }

    #[test]
    fn long_lists_wrap() {
        let items: Vec<String> = (0..5).map(|i| format!("/etc/file-{i}")).collect();
        assert_eq!(
            wrap(&items, "  ", 30),
            "  /etc/file-0, /etc/file-1,\n  /etc/file-2, /etc/file-3,\n  /etc/file-4\n"
        );
        assert_eq!(wrap(&items[..1], "  ", 5), "  /etc/file-0\n");
        assert_eq!(wrap(&[], "  ", 30), "");
    }

    #[test]
    fn expected_files_follow_spec_6() {
        assert_eq!(
            crate::files::expected(Role::Etcd, false),
            vec!["/etc/etcd/etcd.env"]
        );
        assert_eq!(crate::files::expected(Role::Etcd, true).len(), 6);
        assert!(
            crate::files::expected(Role::Master, true).contains(&"/etc/kubernetes/kubelet.conf")
        );
        assert!(crate::files::expected(Role::Worker, true)
            .contains(&"/etc/kubernetes/bootstrap-kubelet.conf"));
        assert!(
            crate::files::expected(Role::Worker, true).contains(&"/var/lib/kubelet/config.yaml")
        );
    }

    #[test]
    fn etcd_servers_come_from_the_apiserver_flag() {
        let manifest = "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    \
                        - --etcd-servers=https://10.0.1.1:2379,https://10.0.1.2:2379\n    \
                        - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt\n";
        assert_eq!(
            etcd_servers(manifest),
            vec!["https://10.0.1.1:2379", "https://10.0.1.2:2379"]
        );
        assert_eq!(
            etcd_servers("- \"--etcd-servers=http://a:2379\"\n"),
            vec!["http://a:2379"]
        );
        assert!(etcd_servers("kind: Pod\n").is_empty());
    }

    #[test]
    fn hosts_and_pem_blocks_are_split() {
        use crate::etcd::model::host_of;
        assert_eq!(host_of("https://10.0.1.1:2380"), Some("10.0.1.1"));
        assert_eq!(host_of("http://etcd-a"), Some("etcd-a"));
        assert_eq!(host_of("nonsense"), None);
        let ca = crate::pki::Ca::generate("a").unwrap();
        let other = crate::pki::Ca::generate("b").unwrap();
        let bundle = format!("{}{}", ca.cert_pem(), other.cert_pem());
        let blocks = pem_certificates(&bundle);
        assert_eq!(blocks.len(), 2);
        assert!(crate::pki::verifies(other.cert_pem(), &blocks[1]));
    }

    #[test]
    fn a_leaf_is_checked_against_the_cas_beside_it() {
        let ca = crate::pki::Ca::generate("etcd-ca").unwrap();
        let twin = crate::pki::Ca::generate("etcd-ca").unwrap();
        let req = crate::pki::LeafRequest {
            common_name: "i-0a".into(),
            organization: None,
            dns_names: vec!["localhost".into()],
            ips: vec![],
            usages: vec![crate::pki::Usage::ServerAuth],
        };
        let leaf = ca.issue(&req).unwrap();
        let files = vec![
            (
                "/etc/etcd/pki/ca.crt".to_string(),
                Some(ca.cert_pem().to_string()),
            ),
            (
                "/etc/etcd/pki/server.crt".to_string(),
                Some(leaf.cert_pem.clone()),
            ),
        ];
        let cas = ca_certificates(&files);
        assert_eq!(cas.len(), 1);
        let now = OffsetDateTime::now_utc();
        let report = cert_report("/etc/etcd/pki/server.crt", Some(&leaf.cert_pem), &cas, now);
        assert_eq!(report.signed_by.as_deref(), Some("/etc/etcd/pki/ca.crt"));
        assert_eq!(report.days_left, Some(364));
        assert_eq!(report.common_name.as_deref(), Some("i-0a"));
        let report = cert_report("/etc/etcd/pki/ca.crt", Some(ca.cert_pem()), &cas, now);
        assert_eq!(report.signed_by.as_deref(), Some("/etc/etcd/pki/ca.crt"));
        assert!(report.is_ca);
        let twin_cas = ca_certificates(&[(
            "/etc/etcd/pki/ca.crt".to_string(),
            Some(twin.cert_pem().to_string()),
        )]);
        let report = cert_report(
            "/etc/etcd/pki/server.crt",
            Some(&leaf.cert_pem),
            &twin_cas,
            now,
        );
        assert_eq!(report.signed_by, None);
        let report = cert_report("/etc/etcd/pki/x.crt", Some("junk"), &cas, now);
        assert!(report.error.is_some());
    }
}
