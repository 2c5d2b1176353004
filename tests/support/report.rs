//! `tn-agent status --json` read into types, as a script would read it: the schema of
//! docs/status.md (`schema: 1`), the fields the tests look at. (tn-agent's own `status::Report`
//! is written, never read, so it has no deserialiser; the documented schema is the contract.)
//! Values the schema spells as words (`outcome`, `this_member`, `severity`, `kind`) stay words.

use std::net::Ipv4Addr;

use serde::Deserialize;
use tn_agent::state::Decision;
use tn_world::Run;

#[derive(Debug, Deserialize)]
pub struct Report {
    pub schema: u32,
    pub node: NodeReport,
    /// The last bootstrap; `None` when `state.json` does not exist or cannot be read.
    pub bootstrap: Option<BootstrapReport>,
    /// `None` for workers.
    pub etcd: Option<EtcdReport>,
    pub certificates: Vec<CertReport>,
    pub files: Vec<FileReport>,
    pub healthy: bool,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Deserialize)]
pub struct NodeReport {
    pub role: String,
    pub instance_id: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
    pub asg: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct BootstrapReport {
    pub ok: bool,
    pub decisions: Vec<Decision>,
}

#[derive(Debug, Deserialize)]
pub struct EtcdReport {
    /// `answered`, `no_answer`, `timed_out`, `skipped` or `no_access`.
    pub outcome: String,
    pub note: Option<String>,
    pub members: Vec<MemberReport>,
    pub leader: Option<String>,
    /// `voter`, `learner` or `absent`; `None` on masters or when nobody answered.
    pub this_member: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct MemberReport {
    pub id: String,
    pub name: String,
    pub learner: bool,
    pub healthy: bool,
    pub leader: bool,
}

#[derive(Debug, Deserialize)]
pub struct CertReport {
    pub path: String,
    pub common_name: Option<String>,
    pub is_ca: bool,
    pub days_left: Option<i64>,
    pub ips: Vec<String>,
    pub signed_by: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct FileReport {
    pub path: String,
    pub exists: bool,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Problem {
    /// `error` or `warning`.
    pub severity: String,
    pub kind: String,
    pub message: String,
}

impl Report {
    /// The report `run` printed; panics with the whole run when its stdout is not one.
    pub fn of(run: &Run) -> Report {
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("status --json is not a report ({e}):\n{run:?}"))
    }

    /// The etcd section; panics when there is none.
    pub fn etcd(&self) -> &EtcdReport {
        self.etcd
            .as_ref()
            .unwrap_or_else(|| panic!("the report has no etcd section: {self:#?}"))
    }

    /// The kinds of the problems, in order.
    pub fn kinds(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.kind.as_str()).collect()
    }

    /// The report on the certificate at node path `path`; panics when there is none.
    pub fn certificate(&self, path: &str) -> &CertReport {
        self.certificates
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("no {path}"))
    }

    /// The CA certificate that signed the certificate at `path` (see [`Report::certificate`]).
    pub fn signer(&self, path: &str) -> Option<&str> {
        self.certificate(path).signed_by.as_deref()
    }
}
