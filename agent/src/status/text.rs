//! The report as text for a person over SSH (`tn-agent status` without `--json`).

use super::{EtcdOutcome, EtcdReport, MemberState, Problem, Report, Severity, ETCD_BUDGET};

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
    if let Some(st) = &r.reboot {
        out.push_str(&format!(
            "reboot\n  {:?} (group {}) since {}{}\n",
            st.phase,
            st.group,
            st.since,
            st.why
                .as_deref()
                .map(|w| format!(": {w}"))
                .unwrap_or_default()
        ));
        if st.cordoned {
            out.push_str("  cordoned by tn-agent for this reboot (uncordoned after it)\n");
        }
    }
    if let Some(rec) = &r.reconcile {
        out.push_str(&format!(
            "reconcile\n  last {} ({} ms): {}\n",
            rec.at,
            rec.duration_ms,
            match (&rec.error, rec.changes.is_empty()) {
                (Some(e), _) => format!("failed: {e}"),
                (None, true) => "nothing to change".to_string(),
                (None, false) => rec.changes.join("; "),
            }
        ));
    }
    if let Some(b) = &r.backup {
        out.push_str("backups\n");
        match (&b.newest, b.newest_age_seconds) {
            (Some(n), Some(age)) => out.push_str(&format!(
                "  newest {} (revision {}), taken {} ({}s ago)\n",
                n.name, n.revision, n.taken_at, age
            )),
            _ => out.push_str("  none in the bucket yet\n"),
        }
        if let Some(run) = &b.last_run {
            out.push_str(&format!(
                "  last run here {}: {}: {}\n",
                run.at, run.outcome, run.detail
            ));
        }
    }
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
    let outcome = if b.ok && b.last_known_good.is_some() {
        "ok, with last-known-good files (AWS could not be used)".to_string()
    } else if b.ok {
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

#[cfg(test)]
mod tests;
