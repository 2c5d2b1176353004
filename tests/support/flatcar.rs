//! What a Flatcar node of each role gets from its user data (which units, enabled or not, and
//! which ones coreos-cloudinit starts), and where the units are. The units and cloud_config
//! tests both read the deployments from here, so they test the same ones.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub const ROLES: [&str; 3] = ["etcd", "master", "worker"];

/// The agent's boot-time oneshot.
pub const BOOTSTRAP: &str = "tn-agent-bootstrap.service";
/// The legacy (cloud-config) installer of the agent and kubelet binaries.
pub const INSTALL: &str = "tn-agent-install.service";
/// The backup timer on etcd nodes, and the service it starts.
pub const BACKUP_TIMER: &str = "tn-agent-etcd-backup.timer";
pub const BACKUP: &str = "tn-agent-etcd-backup.service";
/// The etcdutl wrapper (a shell script, not a unit) the user data installs on etcd nodes as
/// [`ETCDUTL_PATH`]: Flatcar has no etcd tools on the host.
pub const ETCDUTL: &str = "etcdutl";
pub const ETCDUTL_PATH: &str = "/opt/bin/etcdutl";

/// Units our units refer to that Flatcar itself provides.
pub const FLATCAR_UNITS: [&str; 5] = [
    "network-online.target",
    "multi-user.target",
    "timers.target",
    "containerd.service",
    "docker.service",
];

/// The two kinds of user data in cloud-config/.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Ignition v3 (`ignition.json.tftpl`): current Flatcar.
    Ignition,
    /// coreos-cloudinit YAML (`cloud-config.yaml.tftpl`): legacy.
    CloudConfig,
}

pub const FORMATS: [Format; 2] = [Format::Ignition, Format::CloudConfig];

/// One unit as the user data installs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: &'static str,
    /// Enabled: its `[Install]` section is applied.
    pub enabled: bool,
    /// Started by coreos-cloudinit (`command: start`) on the boot that installs it.
    pub start: bool,
}

const fn unit(name: &'static str, enabled: bool, start: bool) -> Installed {
    Installed {
        name,
        enabled,
        start,
    }
}

/// The units the user data of `format` installs on a node of `role`, in the order it lists
/// them.
pub fn deployment(format: Format, role: &str) -> Vec<Installed> {
    // Every role reboots through tn-agent (SPEC §9) and reconciles (SPEC §11).
    let mut units = vec![
        unit(BOOTSTRAP, true, false),
        unit("tn-agent-reboot.service", true, false),
        unit("tn-agent-reconcile.service", false, false),
        unit(
            "tn-agent-reconcile.timer",
            true,
            format == Format::CloudConfig,
        ),
    ];
    if role == "etcd" {
        units.push(unit("etcd-member.service", true, false));
        units.push(unit("tn-agent-etcd-promote.service", false, false));
        units.push(unit("tn-agent-etcd-leave.service", false, false));
        let start = format == Format::CloudConfig;
        units.push(unit("tn-agent-etcd-leave.timer", true, start));
        units.push(unit(BACKUP, false, false));
        units.push(unit(BACKUP_TIMER, true, start));
    } else {
        units.push(unit("kubelet.service", true, false));
    }
    if format == Format::CloudConfig {
        units.push(unit(INSTALL, true, true));
    }
    units
}

/// units/ at the top of the workspace.
pub fn units_dir() -> PathBuf {
    tn_world::workspace_dir().join("units")
}

/// The files other than units the user data installs on a node of `role`: (path, file of
/// units/), all mode 0755.
pub fn installed_files(role: &str) -> Vec<(&'static str, &'static str)> {
    if role == "etcd" {
        vec![(ETCDUTL_PATH, ETCDUTL)]
    } else {
        Vec::new()
    }
}

/// The text of `units/<name>`.
pub fn read_unit(name: &str) -> String {
    let path = units_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The unit files in units/ (`*.service`, `*.timer`), sorted by name.
pub fn unit_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(units_dir())
        .expect("reading units/")
        .map(|e| e.expect("units/ entry").file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".service") || n.ends_with(".timer"))
        .collect();
    names.sort();
    names
}

/// Every file of units/ the user data carries by name, with its text: the units and the
/// etcdutl wrapper (as the README's `fileset()` expression gives them to Terraform).
pub fn units() -> BTreeMap<String, String> {
    unit_names()
        .into_iter()
        .chain([ETCDUTL.to_string()])
        .map(|n| {
            let text = read_unit(&n);
            (n, text)
        })
        .collect()
}
