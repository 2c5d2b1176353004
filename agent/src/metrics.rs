//! The node's health as Prometheus metrics (SPEC §11): `<[metrics] textfile_dir>/tn_agent.prom`
//! in the text exposition format, for node_exporter's textfile collector. Written atomically by
//! `bootstrap`, `reconcile`, `etcd backup` and `reboot watch` (at each phase change), each time
//! from the whole of what `status` gathers, so whichever wrote last the file is complete (but
//! for bootstrap, which does not wait for etcd: its write has no etcd metrics).
//!
//! Times are exported as Unix timestamps (`..._timestamp_seconds`), not ages: the file is
//! written at moments, and an age would stop growing between writes. Alerts compute ages with
//! `time() - metric` (docs/alerts.md). Lock holders are per node (`tn_agent_reboot_slot_held`);
//! a group's holders are their sum across the fleet.

use std::fmt::Write as _;

use crate::config::Settings;
use crate::etcd::model::quorum;
use crate::fsutil::{self, Root};
use crate::reboot::phase::Phase;
use crate::status::{EtcdOutcome, Report};

/// The file's name in the textfile directory.
pub const FILE: &str = "tn_agent.prom";

/// Whether a write asks etcd for its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Etcd {
    Ask,
    /// At the end of a bootstrap: etcd on this node has not started yet, and a boot must not
    /// wait for peers that may not answer; the next writer fills the etcd metrics in.
    Skip,
}

/// Writes the metrics when `[metrics] textfile_dir` is set; a failure is logged, never fatal
/// (metrics must not stop a bootstrap or a reboot).
pub async fn write(settings: &Settings, root: &Root, etcd: Etcd) {
    let Some(dir) = &settings.metrics_textfile_dir else {
        return;
    };
    let report = crate::status::gather_with(settings, root, etcd == Etcd::Ask).await;
    let path = root.path(dir.join(FILE));
    let text = render(&report);
    if let Err(e) = std::fs::create_dir_all(root.path(dir))
        .and_then(|()| fsutil::write_atomic(&path, text.as_bytes(), fsutil::MODE_PUBLIC))
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the metrics file");
    }
}

/// The exposition text of a status report.
pub fn render(r: &Report) -> String {
    let mut m = Metrics::default();
    m.gauge(
        "tn_agent_info",
        "The node as tn-agent sees it; always 1.",
        &[
            ("cluster", r.node.cluster.as_str()),
            ("role", r.node.role.as_str()),
            ("instance_id", r.node.instance_id.as_deref().unwrap_or("")),
            ("version", r.agent_version.as_str()),
        ],
        1.0,
    );
    m.gauge(
        "tn_agent_healthy",
        "1 when status finds no problem of severity error.",
        &[],
        bool_value(r.healthy),
    );
    if let Some(b) = &r.bootstrap {
        m.gauge(
            "tn_agent_bootstrap_success",
            "1 when the last bootstrap succeeded.",
            &[],
            bool_value(b.ok),
        );
        if let Some(at) = b.finished_at.as_deref().and_then(unix) {
            m.gauge(
                "tn_agent_bootstrap_last_run_timestamp_seconds",
                "When the last bootstrap finished.",
                &[],
                at,
            );
        }
        if let (Some(start), Some(end)) =
            (unix(&b.started_at), b.finished_at.as_deref().and_then(unix))
        {
            m.gauge(
                "tn_agent_bootstrap_duration_seconds",
                "How long the last bootstrap took.",
                &[],
                end - start,
            );
        }
    }
    if let Some(rec) = &r.reconcile {
        m.gauge(
            "tn_agent_reconcile_success",
            "1 when the last reconcile succeeded.",
            &[],
            bool_value(rec.ok),
        );
        if let Some(at) = unix(&rec.at) {
            m.gauge(
                "tn_agent_reconcile_last_run_timestamp_seconds",
                "When the last reconcile finished.",
                &[],
                at,
            );
        }
        m.gauge(
            "tn_agent_reconcile_duration_seconds",
            "How long the last reconcile took.",
            &[],
            rec.duration_ms as f64 / 1000.0,
        );
    }
    if let Some(etcd) = &r.etcd {
        let up = etcd.outcome == EtcdOutcome::Answered;
        m.gauge(
            "tn_agent_etcd_up",
            "1 when an etcd member answered this node.",
            &[],
            bool_value(up),
        );
        if up {
            let (voters, healthy) = etcd.voters_and_healthy();
            m.gauge(
                "tn_agent_etcd_members",
                "etcd members, learners included.",
                &[],
                etcd.members.len() as f64,
            );
            m.gauge(
                "tn_agent_etcd_voters",
                "etcd members that vote.",
                &[],
                voters as f64,
            );
            m.gauge(
                "tn_agent_etcd_healthy_voters",
                "Voting etcd members that answered.",
                &[],
                healthy as f64,
            );
            m.gauge(
                "tn_agent_etcd_quorum_margin",
                "Healthy voters beyond quorum: 0 means one more failure loses quorum, \
                 negative means quorum is lost.",
                &[],
                healthy as f64 - quorum(voters) as f64,
            );
            m.gauge(
                "tn_agent_etcd_leader_present",
                "1 when the etcd cluster has a leader.",
                &[],
                bool_value(etcd.leader.is_some()),
            );
        }
    }
    if let Some(b) = &r.backup {
        let fresh = b
            .newest
            .as_ref()
            .and_then(|n| n.fresh_since())
            .map(|t| t.unix_timestamp() as f64);
        if let Some(fresh) = fresh {
            m.gauge(
                "tn_agent_etcd_backup_last_success_timestamp_seconds",
                "The last moment the newest backup in S3 held all of etcd's data (taken then, \
                 or found current by a later run).",
                &[],
                fresh,
            );
        }
        if let Some(run) = &b.last_run {
            m.gauge(
                "tn_agent_etcd_backup_last_run_success",
                "1 when the last backup run on this node did not fail.",
                &[],
                bool_value(run.outcome != "failed"),
            );
        }
    }
    for cert in &r.certificates {
        if let Some(at) = cert.not_after.as_deref().and_then(unix) {
            m.gauge(
                "tn_agent_certificate_expiry_timestamp_seconds",
                "When the certificate in the file expires.",
                &[("path", cert.path.as_str())],
                at,
            );
        }
    }
    if let Some(st) = &r.reboot {
        for phase in [
            Phase::Idle,
            Phase::Waiting,
            Phase::Locking,
            Phase::Locked,
            Phase::Draining,
            Phase::Rebooting,
            Phase::Restarting,
        ] {
            m.gauge(
                "tn_agent_reboot_phase",
                "1 for the phase this node's reboot is in.",
                &[("group", st.group.as_str()), ("phase", phase_name(phase))],
                bool_value(st.phase == phase),
            );
        }
        if let Some(since) = unix(&st.since) {
            m.gauge(
                "tn_agent_reboot_phase_since_timestamp_seconds",
                "When this node's reboot entered its phase.",
                &[("group", st.group.as_str())],
                since,
            );
        }
        let held = matches!(
            st.phase,
            Phase::Locked | Phase::Draining | Phase::Rebooting | Phase::Restarting
        );
        m.gauge(
            "tn_agent_reboot_slot_held",
            "1 while this node holds a slot of its reboot group's lock; a group's holders are \
             the sum over its nodes.",
            &[("group", st.group.as_str())],
            bool_value(held),
        );
    }
    m.text
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Idle => "idle",
        Phase::Waiting => "waiting",
        Phase::Locking => "locking",
        Phase::Locked => "locked",
        Phase::Draining => "draining",
        Phase::Rebooting => "rebooting",
        Phase::Restarting => "restarting",
    }
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// An RFC 3339 time as Unix seconds.
fn unix(rfc3339: &str) -> Option<f64> {
    crate::state::parse_rfc3339(rfc3339).map(|t| t.unix_timestamp() as f64)
}

/// The exposition text, each metric's `# HELP` and `# TYPE` once, before its first sample.
#[derive(Default)]
struct Metrics {
    text: String,
    declared: Vec<&'static str>,
}

impl Metrics {
    fn gauge(&mut self, name: &'static str, help: &str, labels: &[(&str, &str)], value: f64) {
        if !self.declared.contains(&name) {
            self.declared.push(name);
            let _ = writeln!(self.text, "# HELP {name} {help}");
            let _ = writeln!(self.text, "# TYPE {name} gauge");
        }
        self.text.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.text, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the exposition format writes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_follow_their_help_and_type_once_and_labels_are_escaped() {
        let mut m = Metrics::default();
        m.gauge("a_total", "A.", &[("k", "x\"y\\z")], 1.0);
        m.gauge("a_total", "A.", &[("k", "w")], 2.5);
        assert_eq!(
            m.text,
            "# HELP a_total A.\n# TYPE a_total gauge\na_total{k=\"x\\\"y\\\\z\"} 1\na_total{k=\"w\"} 2.5\n"
        );
        assert_eq!(unix("1970-01-01T00:01:00Z"), Some(60.0));
    }
}
