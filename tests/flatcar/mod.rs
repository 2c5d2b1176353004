//! What a Flatcar node of each role gets from its user data (which units, enabled or not, and
//! which ones coreos-cloudinit starts), and a small parser for systemd unit files. Shared by
//! tests/units.rs and tests/cloud_config.rs, so both test the same deployments.

// Each of the two test crates uses a part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

pub const ROLES: [&str; 3] = ["etcd", "master", "worker"];

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
    let mut units = vec![unit("tn-agent-bootstrap.service", true, false)];
    if role == "etcd" {
        units.push(unit("etcd-member.service", true, false));
        units.push(unit("tn-agent-etcd-leave.service", false, false));
        let start = format == Format::CloudConfig;
        units.push(unit("tn-agent-etcd-leave.timer", true, start));
    } else {
        units.push(unit("kubelet.service", true, false));
    }
    if format == Format::CloudConfig {
        units.push(unit("tn-agent-install.service", true, true));
    }
    units
}

/// units/ at the top of the workspace.
pub fn units_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("units")
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

/// A parsed unit file: sections of `Key=value` assignments in file order, with systemd's
/// comment and line-continuation rules.
#[derive(Debug, Clone, Default)]
pub struct UnitFile {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl UnitFile {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut file = UnitFile::default();
        for (n, line) in logical_lines(text) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                file.sections.push((name.to_string(), Vec::new()));
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {n}: not `Key=value`: {line}"))?;
            let (_, entries) = file
                .sections
                .last_mut()
                .ok_or_else(|| format!("line {n}: assignment outside a section"))?;
            entries.push((key.trim().to_string(), value.trim().to_string()));
        }
        Ok(file)
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.iter().any(|(s, _)| s == section)
    }

    /// Every value assigned to `key` in `section`, in order; an empty assignment resets the
    /// list, as in systemd.
    pub fn values(&self, section: &str, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (_, entries) in self.sections.iter().filter(|(s, _)| s == section) {
            for (_, v) in entries.iter().filter(|(k, _)| k == key) {
                if v.is_empty() {
                    out.clear();
                } else {
                    out.push(v.clone());
                }
            }
        }
        out
    }

    /// The last value of `key` in `section`.
    pub fn value(&self, section: &str, key: &str) -> Option<String> {
        self.values(section, key).pop()
    }

    /// A space-separated list setting (`After=`, `Wants=`, `WantedBy=` ...), all assignments
    /// joined.
    pub fn list(&self, section: &str, key: &str) -> Vec<String> {
        self.values(section, key)
            .iter()
            .flat_map(|v| v.split_whitespace().map(str::to_string))
            .collect()
    }
}

/// Joins lines ending in a backslash with the next (the backslash becomes a space, as systemd
/// does), numbering each logical line by its first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let (n, mut acc) = current.take().unwrap_or((i + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                acc.push(' ');
                current = Some((n, acc));
            }
            None => {
                acc.push_str(line);
                out.push((n, acc));
            }
        }
    }
    out.extend(current);
    out
}
