//! The ordering walk: a model of systemd's jobs over one node's units (pull-in by `Wants=`,
//! `Requires=` and `[Install]`, order by `After=`/`Before=`; `Requisite=` checks without
//! pulling in), and what it finds wrong for the node's role: an enabled unit nothing starts, a
//! prerequisite not ordered before its user, a role service the bootstrap does not start, a
//! backup that would start etcd, an ordering cycle.

use std::collections::{BTreeMap, BTreeSet};

use super::flatcar::{
    deployment, read_unit, Format, BACKUP, BACKUP_TIMER, BOOTSTRAP, FLATCAR_UNITS, INSTALL,
};
use super::unit_file::UnitFile;

/// The units of one node as systemd would see them after the user data ran.
pub struct NodeUnits {
    format: Format,
    role: &'static str,
    files: BTreeMap<String, UnitFile>,
    enabled: BTreeSet<String>,
    /// What coreos-cloudinit starts on the boot that installs the units.
    started: Vec<String>,
}

impl NodeUnits {
    /// The node of `format` and `role`, with units/ as it is except for `replace` (name, text).
    pub fn new(format: Format, role: &'static str, replace: &[(&str, &str)]) -> NodeUnits {
        let mut node = NodeUnits {
            format,
            role,
            files: BTreeMap::new(),
            enabled: BTreeSet::new(),
            started: Vec::new(),
        };
        for unit in deployment(format, role) {
            let text = match replace.iter().find(|(n, _)| *n == unit.name) {
                Some((_, text)) => text.to_string(),
                None => read_unit(unit.name),
            };
            let file = UnitFile::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", unit.name));
            node.files.insert(unit.name.to_string(), file);
            if unit.enabled {
                node.enabled.insert(unit.name.to_string());
            }
            if unit.start {
                node.started.push(unit.name.to_string());
            }
        }
        node
    }

    fn list(&self, unit: &str, key: &str) -> Vec<String> {
        self.files
            .get(unit)
            .map(|f| f.list("Unit", key))
            .unwrap_or_default()
    }

    /// What `unit` requires: `Requires=`, and enabled units' `RequiredBy=` it.
    fn requires(&self, unit: &str) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.list(unit, "Requires").into_iter().collect();
        out.extend(self.installed_into(unit, "RequiredBy"));
        out
    }

    /// What must be active already for `unit` to start (`Requisite=`): checked, never started.
    fn requisites(&self, unit: &str) -> Vec<String> {
        self.list(unit, "Requisite")
    }

    /// What a start of `unit` pulls in: its requirements, `Wants=`, enabled units'
    /// `WantedBy=` it, and for a timer its service. A start of a unit that is already active
    /// pulls these in all the same: systemd builds the whole transaction, and drops only the
    /// jobs with nothing to do.
    fn pulls_in(&self, unit: &str) -> BTreeSet<String> {
        let mut out = self.requires(unit);
        out.extend(self.list(unit, "Wants"));
        out.extend(self.installed_into(unit, "WantedBy"));
        if let Some(base) = unit.strip_suffix(".timer") {
            out.insert(format!("{base}.service"));
        }
        out
    }

    /// Enabled units whose `[Install]` `key` names `target`.
    fn installed_into(&self, target: &str, key: &str) -> Vec<String> {
        self.enabled
            .iter()
            .filter(|u| {
                self.files[*u]
                    .list("Install", key)
                    .iter()
                    .any(|t| t == target)
            })
            .cloned()
            .collect()
    }

    /// Whether systemd orders `a` before `b` (an `After=` on b or a `Before=` on a; a timer is
    /// implicitly before its service).
    pub fn before(&self, a: &str, b: &str) -> bool {
        self.list(b, "After").iter().any(|u| u == a)
            || self.list(a, "Before").iter().any(|u| u == b)
            || a.strip_suffix(".timer")
                .map(|t| format!("{t}.service"))
                .as_deref()
                == Some(b)
    }

    /// Every unit a start of `roots` brings up.
    pub fn closure(&self, roots: &[&str]) -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
        while let Some(unit) = todo.pop() {
            if seen.insert(unit.clone()) {
                todo.extend(self.pulls_in(&unit));
            }
        }
        seen
    }

    fn name(&self) -> String {
        format!("{:?} {}", self.format, self.role)
    }

    /// Everything wrong with this node's unit graph; empty when it is right.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let at_boot = self.closure(&["multi-user.target", "timers.target"]);
        self.check_all_enabled_start(&at_boot, "at boot", &mut problems);
        if self.format == Format::CloudConfig {
            let started: Vec<&str> = self.started.iter().map(String::as_str).collect();
            let first = self.closure(&started);
            self.check_all_enabled_start(
                &first,
                "when coreos-cloudinit installs them",
                &mut problems,
            );
        }
        for unit in &at_boot {
            if self.files.contains_key(unit) {
                self.check_prerequisites(unit, &mut problems);
            }
        }
        self.check_role(&mut problems);
        if let Some(cycle) = self.ordering_cycle() {
            problems.push(format!("ordering cycle among {cycle:?}"));
        }
        problems
            .into_iter()
            .map(|p| format!("{}: {p}", self.name()))
            .collect()
    }

    fn check_all_enabled_start(
        &self,
        up: &BTreeSet<String>,
        when: &str,
        problems: &mut Vec<String>,
    ) {
        for unit in &self.enabled {
            if !up.contains(unit) {
                problems.push(format!("{unit} is enabled but nothing starts it {when}"));
            }
        }
    }

    /// What `unit` requires exists and starts before it; what it wants is ordered one way or
    /// the other (before it: a prerequisite; after it: a dependent it starts), never both
    /// running at once by accident.
    fn check_prerequisites(&self, unit: &str, problems: &mut Vec<String>) {
        for dep in self.requires(unit) {
            if !self.files.contains_key(&dep) && !FLATCAR_UNITS.contains(&dep.as_str()) {
                problems.push(format!("{unit} requires {dep}, which is not installed"));
            }
            if !self.before(&dep, unit) {
                problems.push(format!("{unit} requires {dep} but is not ordered after it"));
            }
        }
        for dep in self.requisites(unit) {
            if !self.files.contains_key(&dep) && !FLATCAR_UNITS.contains(&dep.as_str()) {
                problems.push(format!("{unit} needs {dep} active, which is not installed"));
            }
            if !self.before(&dep, unit) {
                problems.push(format!(
                    "{unit} needs {dep} active but is not ordered after it"
                ));
            }
        }
        for dep in self.pulls_in(unit) {
            if !self.before(&dep, unit) && !self.before(unit, &dep) {
                problems.push(format!("{unit} pulls in {dep} without ordering against it"));
            }
        }
    }

    /// What each role needs, said directly.
    fn check_role(&self, problems: &mut Vec<String>) {
        let mut need = |ok: bool, what: &str| {
            if !ok {
                problems.push(what.to_string());
            }
        };
        let online = "network-online.target";
        need(
            self.pulls_in(BOOTSTRAP).contains(online) && self.before(online, BOOTSTRAP),
            "bootstrap must want and follow network-online.target",
        );
        let services: &[&str] = if self.role == "etcd" {
            &["etcd-member.service"]
        } else {
            &["kubelet.service"]
        };
        for service in services {
            need(
                self.requires(service).contains(BOOTSTRAP) && self.before(BOOTSTRAP, service),
                &format!("{service} must require and follow the bootstrap"),
            );
            need(
                self.closure(&[BOOTSTRAP]).contains(*service),
                &format!("a (re)start of the bootstrap must start {service}"),
            );
        }
        if self.role == "etcd" {
            need(
                self.before("docker.service", "etcd-member.service"),
                "etcd-member must follow docker",
            );
            need(
                self.before("etcd-member.service", "tn-agent-etcd-leave.service"),
                "the leave unit must follow etcd-member",
            );
            need(
                self.requires("tn-agent-reboot.service").contains(BOOTSTRAP)
                    && self.before(BOOTSTRAP, "tn-agent-reboot.service")
                    && self.before("etcd-member.service", "tn-agent-reboot.service"),
                "the reboot watch must require the bootstrap and follow it and etcd-member",
            );
            need(
                self.before("etcd-member.service", "tn-agent-etcd-promote.service")
                    && self
                        .closure(&[BOOTSTRAP])
                        .contains("tn-agent-etcd-promote.service"),
                "the promotion must follow etcd-member and start with it",
            );
            let tick = self.closure(&[BACKUP_TIMER]);
            need(
                tick.contains(BACKUP),
                &format!("{BACKUP_TIMER} must start {BACKUP}"),
            );
            for service in ["etcd-member.service", BOOTSTRAP] {
                need(
                    !tick.contains(service),
                    &format!("a tick of {BACKUP_TIMER} starts {service}"),
                );
                need(
                    self.requisites(BACKUP).iter().any(|u| u == service)
                        && self.before(service, BACKUP),
                    &format!("the backup must need {service} active and follow it"),
                );
            }
        } else {
            need(
                self.before("containerd.service", "kubelet.service"),
                "kubelet must follow containerd",
            );
        }
        if self.format == Format::CloudConfig {
            need(
                self.requires(BOOTSTRAP).contains(INSTALL) && self.before(INSTALL, BOOTSTRAP),
                "on cloud-config nodes the bootstrap must require and follow the installer",
            );
            let after_install = self.closure(&[INSTALL]);
            need(
                services.iter().all(|s| after_install.contains(*s)),
                "a (re)start of the installer must start the bootstrap and the role's services",
            );
        }
    }

    /// A cycle in the ordering among every unit named, if any (Kahn's algorithm).
    fn ordering_cycle(&self) -> Option<BTreeSet<String>> {
        let mut nodes: BTreeSet<String> = self.files.keys().cloned().collect();
        for unit in self.files.keys() {
            nodes.extend(self.list(unit, "After"));
            nodes.extend(self.list(unit, "Before"));
        }
        let mut left = nodes.clone();
        loop {
            let ready: Vec<String> = left
                .iter()
                .filter(|b| !left.iter().any(|a| a != *b && self.before(a, b)))
                .cloned()
                .collect();
            if ready.is_empty() {
                return (!left.is_empty()).then_some(left);
            }
            for unit in ready {
                left.remove(&unit);
            }
        }
    }
}
