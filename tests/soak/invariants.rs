//! The soak's safety rules and how each fared: checked continuously by the monitor and at the
//! points the driver knows (after each reboot, roll and day), counted, the first violation of
//! each kept with its simulated time.

use std::sync::Mutex;

/// The rules, in the order the table prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    NoWriteLost,
    OneMemberDown,
    Quorum,
    LockHolders,
    GroupDown,
    MasterEndpoints,
    CertsValid,
    BackupAge,
    Retention,
    BackAfterReboot,
}

impl Rule {
    pub const ALL: [Rule; 10] = [
        Rule::NoWriteLost,
        Rule::OneMemberDown,
        Rule::Quorum,
        Rule::LockHolders,
        Rule::GroupDown,
        Rule::MasterEndpoints,
        Rule::CertsValid,
        Rule::BackupAge,
        Rule::Retention,
        Rule::BackAfterReboot,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Rule::NoWriteLost => "no acknowledged write lost",
            Rule::OneMemberDown => "never more than one etcd member down",
            Rule::Quorum => "quorum never lost",
            Rule::LockHolders => "lock holders never over a group's max",
            Rule::GroupDown => "nodes rebooting never over a group's max",
            Rule::MasterEndpoints => "masters' etcd servers hold a quorum of live members",
            Rule::CertsValid => "no certificate expired in use",
            Rule::BackupAge => "backup age never over two intervals",
            Rule::Retention => "backups pruned to the retention",
            Rule::BackAfterReboot => "every node back and healthy after every reboot",
        }
    }
}

#[derive(Default, Clone)]
struct Tally {
    checks: u64,
    violations: u64,
    first: Option<String>,
}

/// How each rule fared so far; shared by the monitor and the driver.
#[derive(Default)]
pub struct Invariants {
    tallies: Mutex<Vec<Tally>>,
}

impl Invariants {
    pub fn new() -> Self {
        Invariants {
            tallies: Mutex::new(vec![Tally::default(); Rule::ALL.len()]),
        }
    }

    /// Counts a check of `rule` at simulated `day`; `detail` says what was wrong when `ok` is
    /// false (printed at once, and the first one kept).
    pub fn check(&self, rule: Rule, day: f64, ok: bool, detail: impl FnOnce() -> String) {
        let mut tallies = self.tallies.lock().expect("invariants");
        let tally = &mut tallies[index(rule)];
        tally.checks += 1;
        if !ok {
            tally.violations += 1;
            let line = format!("day {day:.2}: {}", detail());
            if tally.violations <= 3 {
                eprintln!("VIOLATION of \"{}\": {line}", rule.text());
            }
            tally.first.get_or_insert(line);
        }
    }

    pub fn violations(&self) -> u64 {
        let tallies = self.tallies.lock().expect("invariants");
        tallies.iter().map(|t| t.violations).sum()
    }

    /// Rules never checked: a run that checked nothing proves nothing.
    pub fn unchecked(&self) -> Vec<Rule> {
        let tallies = self.tallies.lock().expect("invariants");
        Rule::ALL
            .into_iter()
            .filter(|r| tallies[index(*r)].checks == 0)
            .collect()
    }

    /// The table: each rule, pass or FAIL, checks, violations and the first one.
    pub fn table(&self) -> String {
        let tallies = self.tallies.lock().expect("invariants");
        let mut out = format!(
            "{:<52} {:<6} {:>9} {:>10}\n",
            "invariant", "result", "checks", "violations"
        );
        for rule in Rule::ALL {
            let t = &tallies[index(rule)];
            let result = match (t.checks, t.violations) {
                (0, _) => "NONE",
                (_, 0) => "pass",
                _ => "FAIL",
            };
            out.push_str(&format!(
                "{:<52} {:<6} {:>9} {:>10}\n",
                rule.text(),
                result,
                t.checks,
                t.violations
            ));
            if let Some(first) = &t.first {
                out.push_str(&format!("    first: {first}\n"));
            }
        }
        out
    }
}

fn index(rule: Rule) -> usize {
    Rule::ALL
        .iter()
        .position(|r| *r == rule)
        .expect("every rule is in ALL")
}
