//! Collecting the facts of a [`Report`]: the node's own files (`state.json`, the files SPEC §6
//! names, its certificates) and one look at etcd within [`ETCD_BUDGET`]; never IMDS or AWS.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{
    BootstrapReport, CertReport, EtcdOutcome, EtcdReport, FileReport, MemberReport, MemberState,
    NodeReport, Report, ETCD_BUDGET, SCHEMA,
};
use crate::config::{Role, Settings};
use crate::etcd::client::{ClientTls, EtcdAccess};
use crate::etcd::model::{ClusterView, Me};
use crate::files;
use crate::fsutil::Root;
use crate::state::BootState;

/// One connection to an etcd member, and one request: a member that does not answer costs at
/// most their sum, so that the members that do answer are heard within [`ETCD_BUDGET`].
const ETCD_CONNECT_TIMEOUT: Duration = Duration::from_millis(400);
const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_millis(800);
/// How deep below a PKI directory certificates are looked for.
const PKI_DEPTH: usize = 3;

/// Gathers the facts and assesses them. Reads only the node's files and asks only etcd (within
/// [`ETCD_BUDGET`]); never IMDS or AWS, so it answers quickly when they are slow.
pub async fn gather(settings: &Settings, root: &Root) -> Report {
    gather_with(settings, root, true).await
}

/// [`gather`], without asking etcd when `ask_etcd` is false (the report has no etcd section):
/// for a caller that knows etcd cannot answer yet and must not wait for it.
pub async fn gather_with(settings: &Settings, root: &Root, ask_etcd: bool) -> Report {
    let now = crate::clock::now();
    let (state, state_error) = match BootState::load(root) {
        Ok(state) => (state, None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let etcd = match settings.role() {
        Role::Etcd | Role::Master if ask_etcd => {
            Some(etcd_report(settings, root, state.as_ref()).await)
        }
        _ => None,
    };
    Report {
        schema: SCHEMA,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        checked_at: rfc3339(now),
        node: node_report(settings, state.as_ref()),
        bootstrap: state.as_ref().map(|s| bootstrap_report(s, now)),
        state_error,
        etcd,
        certificates: certificates(root, now),
        files: file_reports(settings, root),
        reboot: reboot_state(root),
        reconcile: state.as_ref().and_then(|s| s.last_reconcile.clone()),
        backup: match settings.role() {
            Role::Etcd => backup_report(settings, root, now),
            _ => None,
        },
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
        asg: state.and_then(BootState::own_asg).map(str::to_owned),
    }
}

fn bootstrap_report(s: &BootState, now: OffsetDateTime) -> BootstrapReport {
    let token_days_left = s.bootstrap_token_expires.as_deref().and_then(|t| {
        let at = crate::state::parse_rfc3339(t)?;
        Some((at - now).whole_days())
    });
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
        aws_calls_by_service: s.aws_calls_by_service.clone(),
        last_known_good: s.last_known_good.clone(),
        bootstrap_token_expires: s.bootstrap_token_expires.clone(),
        bootstrap_token_days_left: token_days_left,
    }
}

/// The backups as this node's last `etcd backup` run saw them.
fn backup_report(
    settings: &Settings,
    root: &Root,
    now: OffsetDateTime,
) -> Option<super::BackupReport> {
    let record = crate::backup::record::BackupRecord::load(root)?;
    let newest_age_seconds = record.newest.as_ref().and_then(|n| {
        let at = crate::state::parse_rfc3339(&n.taken_at)?;
        Some((now - at).whole_seconds())
    });
    let stale_seconds = record
        .newest
        .as_ref()
        .and_then(|n| n.fresh_since())
        .map(|since| (now - since).whole_seconds());
    Some(super::BackupReport {
        interval_seconds: settings.backup.interval.as_secs(),
        newest: record.newest,
        newest_age_seconds,
        stale_seconds,
        last_run: record.last_run,
        last_failure: record.last_failure,
    })
}

/// This node's reboot state, when `reboot.json` exists and can be read.
fn reboot_state(root: &Root) -> Option<crate::reboot::phase::RebootState> {
    match crate::reboot::phase::RebootState::saved(root) {
        Ok(st) => st,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "ignoring the reboot state");
            None
        }
    }
}

/// The expected files, then every other private key under the PKI directories (their modes are
/// checked).
fn file_reports(settings: &Settings, root: &Root) -> Vec<FileReport> {
    let expected = files::expected(settings.role(), settings.etcd.tls);
    let mut out: Vec<FileReport> = expected.iter().map(|p| file_report(root, p)).collect();
    for dir in files::PKI_DIRS {
        for key in pki_files(root, dir, ".key") {
            if !expected.contains(&key.as_str()) {
                out.push(file_report(root, &key));
            }
        }
    }
    out
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
    for dir in files::PKI_DIRS {
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
    pki_files(root, dir, ".crt")
}

/// The files under a PKI directory whose names end with `suffix`, sorted.
fn pki_files(root: &Root, dir: &str, suffix: &str) -> Vec<String> {
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
            } else if kind.is_file() && name.ends_with(suffix) && !name.starts_with('.') {
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
            crate::pki::pem_certificates(text)
                .into_iter()
                .filter(|pem| crate::pki::inspect(pem).is_ok_and(|i| i.is_ca))
                .map(move |pem| (path.clone(), pem))
        })
        .collect()
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
        _ => master_target(settings, root, state),
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
        Some(read_tls(
            root,
            files::ETCD_NODE_CA,
            files::ETCD_SERVER.cert,
            files::ETCD_SERVER.key,
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

/// Role master: the apiserver's etcd client certificate and the etcd servers bootstrap gave
/// the apiserver (recorded in `state.json`).
fn master_target(
    settings: &Settings,
    root: &Root,
    state: Option<&BootState>,
) -> Result<EtcdTarget, NotAsked> {
    let tls = if settings.etcd.tls {
        Some(read_tls(
            root,
            files::ETCD_CA_CERT,
            files::APISERVER_ETCD_CLIENT.cert,
            files::APISERVER_ETCD_CLIENT.key,
        )?)
    } else {
        None
    };
    let endpoints = state.map(|s| s.etcd_servers.clone()).unwrap_or_default();
    if endpoints.is_empty() {
        return Err((
            EtcdOutcome::Skipped,
            format!(
                "no etcd servers known yet ({} records none: the apiserver is not configured)",
                files::STATE
            ),
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

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests;
