//! `tn-iam-check <dir>`: after the test suite, with the IAM requests every world wrote to
//! `<dir>` (`TN_IAM_CALLS`), checks each role's policy in `docs/iam/` both ways: every action
//! and resource each `Allow` statement lists was needed by some request, and every request is
//! allowed (a second look: a world writes its requests only when its own check found all of
//! them allowed). Exits 1 with the list otherwise.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tn_world::iam::{self, Policies, Policy, Record};

fn main() {
    if let Err(e) = run() {
        eprintln!("tn-iam-check: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .context("usage: tn-iam-check <directory of IAM request records>")?,
    );
    let mut records = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let record: Record = serde_json::from_str(line)
                .with_context(|| format!("{}:{}", path.display(), n + 1))?;
            records.push(record);
        }
    }
    let policy_dir = iam::policy_dir();
    let mut problems = iam::violations(&records, &policy_dir);

    // (role, statement, "action"/"resource", index) of every part some request matched.
    let mut used = BTreeSet::new();
    let mut policies = Policies::new(&policy_dir);
    for r in &records {
        if let Ok(policy) = policies.get(r) {
            for (s, a, res) in policy.allows(&r.request).unwrap_or_default() {
                used.insert((r.role.clone(), s, "action", a));
                used.insert((r.role.clone(), s, "resource", res));
            }
        }
    }
    let mut roles: Vec<String> = std::fs::read_dir(&policy_dir)
        .with_context(|| format!("reading {}", policy_dir.display()))?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    roles.sort();
    for role in &roles {
        let calls = records.iter().filter(|r| &r.role == role).count();
        let policy = Policy::load(&policy_dir, role, "bucket", "cluster")?;
        for (s, statement) in policy.statements.iter().enumerate() {
            if !statement.allow {
                continue;
            }
            for (kind, list) in [
                ("action", &statement.actions),
                ("resource", &statement.resources),
            ] {
                for (i, item) in list.iter().enumerate() {
                    if !used.contains(&(role.clone(), s, kind, i)) {
                        problems.push(format!(
                            "{role}: {}: {kind} {item} was needed by none of the role's {calls} \
                             requests",
                            statement.name
                        ));
                    }
                }
            }
        }
    }
    let by_role: Vec<String> = roles
        .iter()
        .map(|role| {
            let n = records.iter().filter(|r| &r.role == role).count();
            format!("{role} {n}")
        })
        .collect();
    if !problems.is_empty() {
        bail!(
            "docs/iam/ and the calls the test suite's nodes made disagree:\n  {}",
            problems.join("\n  ")
        );
    }
    println!(
        "IAM: every request allowed and every statement needed (requests by role: {})",
        by_role.join(", ")
    );
    Ok(())
}
