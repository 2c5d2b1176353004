//! The systemd units in units/: `systemd-analyze verify` finds nothing to say about them; for
//! every role and kind of user data, what the node enables is started, and only after what it
//! needs (the ordering walk in support::systemd models systemd's jobs: pull-in by Wants=/
//! Requires= and [Install], order by After=/Before=); a late bootstrap success starts the role's
//! services; and the two shell snippets in the units (the legacy installer, the termination
//! check) are run for real, as is the etcdutl wrapper the etcd nodes get (against a stub
//! docker).

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tn_world::{FakeImds, ImdsData};

use crate::support::files::mode;
use crate::support::flatcar::{
    read_unit, unit_names, units_dir, Format, BACKUP, BACKUP_TIMER, BOOTSTRAP, ETCDUTL, FORMATS,
    INSTALL, ROLES,
};
use crate::support::systemd::NodeUnits;
use crate::support::unit_file::UnitFile;

/// The commands the units run: Flatcar ships the /usr/bin ones, the user data installs /opt/bin.
const EXECUTABLES: [&str; 5] = [
    "/opt/bin/tn-agent",
    "/opt/bin/kubelet",
    "/usr/bin/docker",
    "/usr/bin/mkdir",
    "/usr/bin/sh",
];

const EXEC_KEYS: [&str; 7] = [
    "ExecCondition",
    "ExecStartPre",
    "ExecStart",
    "ExecStartPost",
    "ExecReload",
    "ExecStop",
    "ExecStopPost",
];

// ---------------------------------------------------------------------------------------------
// systemd-analyze verify
// ---------------------------------------------------------------------------------------------

#[test]
fn every_unit_passes_systemd_analyze_verify_without_a_word() {
    let units: Vec<(String, String)> = unit_names()
        .into_iter()
        .map(|n| {
            let text = read_unit(&n);
            (n, text)
        })
        .collect();
    assert!(units.len() >= 10, "units/ lost files: {units:?}");
    if let Err(said) = verify(&units) {
        panic!("systemd-analyze verify:\n{said}");
    }
}

#[test]
fn verify_harness_reports_a_misspelt_key_and_a_missing_command() {
    let kubelet = read_unit("kubelet.service").replace("RestartSec=", "RestartSecs=");
    let said = verify(&[("kubelet.service".into(), kubelet)]).unwrap_err();
    assert!(said.contains("Unknown key 'RestartSecs'"), "{said}");

    let typo = read_unit("kubelet.service").replace("/opt/bin/kubelet", "/opt/bin/kubelt");
    let said = verify(&[("kubelet.service".into(), typo)]).unwrap_err();
    assert!(said.contains("/opt/bin/kubelt"), "{said}");
}

/// Runs `systemd-analyze verify` on `units` (name, text). It checks that every command exists,
/// so each unit is copied with its commands' paths moved under a directory of stubs; commands
/// outside [`EXECUTABLES`] get no stub (and so fail verification). Anything it prints, or a
/// non-zero exit, is an error: on systemd 252 as root in a container, a clean run prints nothing
/// at the default log level, so no noise needs filtering.
fn verify(units: &[(String, String)]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let stubs = dir.path().join("stub");
    for exe in EXECUTABLES {
        write_stub(&stubs, exe);
    }
    let unit_dir = dir.path().join("units");
    std::fs::create_dir(&unit_dir).unwrap();
    let mut files = Vec::new();
    for (name, text) in units {
        let path = unit_dir.join(name);
        std::fs::write(&path, stub_commands(text, &stubs)).unwrap();
        files.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .env("SYSTEMD_LOG_LEVEL", "info")
        .env_remove("SYSTEMD_UNIT_PATH")
        .output()
        .map_err(|e| {
            format!("running systemd-analyze (Debian package systemd; Flatcar has it): {e}")
        })?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{said}", out.status))
    }
}

fn write_stub(stubs: &Path, exe: &str) {
    let path = stubs.join(exe.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `text` with the command of every `Exec*=` line (after its `-@:+!` prefixes) moved under
/// `stubs`; arguments are left alone.
fn stub_commands(text: &str, stubs: &Path) -> String {
    let mut out = String::new();
    for line in text.lines() {
        match exec_command(line) {
            Some((start, command)) => {
                let end = start + command.len();
                let stub = format!("{}{command}", stubs.display());
                out.push_str(&format!("{}{stub}{}\n", &line[..start], &line[end..]));
            }
            None => out.push_str(&format!("{line}\n")),
        }
    }
    out
}

/// For an `Exec*=` line: where its command starts in the line, and the command.
fn exec_command(line: &str) -> Option<(usize, &str)> {
    let (key, value) = line.split_once('=')?;
    if !EXEC_KEYS.contains(&key.trim()) {
        return None;
    }
    let prefix = value.len() - value.trim_start_matches(['-', '@', ':', '+', '!']).len();
    let start = key.len() + 1 + prefix;
    let command = line[start..].split_whitespace().next()?;
    Some((start, command))
}

#[test]
fn units_run_only_flatcar_or_installed_commands_by_absolute_path() {
    for name in unit_names() {
        for line in read_unit(&name).lines() {
            if let Some((_, command)) = exec_command(line) {
                assert!(
                    EXECUTABLES.contains(&command),
                    "{name}: {command} is not one of {EXECUTABLES:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The bootstrap oneshot and its retries
// ---------------------------------------------------------------------------------------------

#[test]
fn bootstrap_is_a_oneshot_retried_forever_except_on_bad_input() {
    let unit = UnitFile::parse(&read_unit(BOOTSTRAP)).unwrap();
    let service = |key| unit.value("Service", key);
    assert_eq!(service("Type").as_deref(), Some("oneshot"));
    assert_eq!(service("RemainAfterExit").as_deref(), Some("yes"));
    assert_eq!(
        service("ExecStart").as_deref(),
        Some("/opt/bin/tn-agent bootstrap")
    );
    assert_eq!(service("Restart").as_deref(), Some("on-failure"));
    assert!(service("RestartSec").is_some());
    assert_eq!(
        unit.list("Service", "RestartPreventExitStatus"),
        ["2"],
        "exit 2 is bad input: retrying cannot help"
    );
    assert_eq!(
        unit.value("Unit", "StartLimitIntervalSec").as_deref(),
        Some("0")
    );
    assert_eq!(unit.list("Install", "WantedBy"), ["multi-user.target"]);
    let before = unit.list("Unit", "Before");
    for dependent in ["etcd-member.service", "kubelet.service"] {
        assert!(before.contains(&dependent.to_string()), "{before:?}");
    }
}

#[test]
fn etcd_member_runs_a_pinned_etcd_from_the_env_file_and_wants_the_promotion() {
    let unit = UnitFile::parse(&read_unit("etcd-member.service")).unwrap();
    assert_eq!(
        unit.values("Service", "EnvironmentFile"),
        ["/etc/etcd/etcd.env"]
    );
    let start = unit.value("Service", "ExecStart").unwrap();
    assert!(start.contains("--env-file /etc/etcd/etcd.env"), "{start}");
    assert!(
        start.contains("--volume ${ETCD_DATA_DIR}:${ETCD_DATA_DIR}"),
        "{start}"
    );
    assert!(
        unit.values("Service", "ExecStartPost").is_empty(),
        "a failed promotion must not stop etcd"
    );
    assert!(unit
        .list("Unit", "Wants")
        .contains(&"tn-agent-etcd-promote.service".to_string()));
    assert_eq!(unit.value("Service", "Restart").as_deref(), Some("always"));
    let image = etcd_image();
    let (_, digest) = image.split_once("@sha256:").expect("pinned by digest");
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{image}"
    );
}

/// The etcd image etcd-member.service runs (its `TN_ETCD_IMAGE`).
fn etcd_image() -> String {
    UnitFile::parse(&read_unit("etcd-member.service"))
        .unwrap()
        .values("Service", "Environment")
        .into_iter()
        .find_map(|e| e.strip_prefix("TN_ETCD_IMAGE=").map(str::to_string))
        .expect("TN_ETCD_IMAGE is set")
}

#[test]
fn promotion_is_its_own_unit_bound_to_etcd_and_retried() {
    let unit = UnitFile::parse(&read_unit("tn-agent-etcd-promote.service")).unwrap();
    let service = |key| unit.value("Service", key);
    assert_eq!(unit.list("Unit", "BindsTo"), ["etcd-member.service"]);
    assert_eq!(unit.list("Unit", "After"), ["etcd-member.service"]);
    assert_eq!(service("Type").as_deref(), Some("oneshot"));
    assert_eq!(
        service("ExecStart").as_deref(),
        Some("/opt/bin/tn-agent etcd promote")
    );
    assert_eq!(service("Restart").as_deref(), Some("on-failure"));
    assert!(service("RestartSec").is_some());
    assert_eq!(unit.list("Service", "RestartPreventExitStatus"), ["2"]);
    assert_eq!(
        unit.value("Unit", "StartLimitIntervalSec").as_deref(),
        Some("0")
    );
}

/// The units that run tn-agent are sandboxed: `systemd-analyze security` rates each "OK"
/// (exposure at most 3.0 of 10; a unit without sandboxing is 9.6) and it writes only where
/// the agent keeps its files.
#[test]
fn the_agent_units_are_sandboxed() {
    for name in [
        BOOTSTRAP,
        "tn-agent-etcd-promote.service",
        "tn-agent-etcd-leave.service",
        "tn-agent-reboot.service",
        "tn-agent-reconcile.service",
        BACKUP,
    ] {
        let path = units_dir().join(name);
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=30"])
            .arg(&path)
            .output()
            .expect("running systemd-analyze");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: exposure over 3.0:\n{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let unit = UnitFile::parse(&read_unit(name)).unwrap();
        let service = |key| unit.value("Service", key);
        assert_eq!(
            service("ProtectSystem").as_deref(),
            Some("strict"),
            "{name}"
        );
        assert_eq!(service("NoNewPrivileges").as_deref(), Some("yes"), "{name}");
        assert_eq!(service("UMask").as_deref(), Some("0077"), "{name}");
    }
    let unit = UnitFile::parse(&read_unit(BOOTSTRAP)).unwrap();
    let mut writable = unit.list("Service", "ReadWritePaths");
    writable.sort();
    assert_eq!(
        writable,
        [
            "-/var/lib/etcd",
            "-/var/lib/node_exporter",
            "/etc/etcd",
            "/etc/kubernetes",
            "/var/lib/kubelet",
            "/var/lib/tn-agent"
        ]
    );
    let backup = UnitFile::parse(&read_unit(BACKUP)).unwrap();
    assert_eq!(
        backup.list("Service", "ReadWritePaths"),
        ["/var/lib/tn-agent", "-/var/lib/node_exporter"],
        "the backup streams the snapshot: it writes only its state and its metrics"
    );
    let reconcile = UnitFile::parse(&read_unit("tn-agent-reconcile.service")).unwrap();
    assert_eq!(
        reconcile.list("Service", "ReadWritePaths"),
        [
            "/var/lib/tn-agent",
            "-/etc/etcd/pki",
            "-/etc/kubernetes",
            "-/var/lib/node_exporter"
        ],
        "reconcile writes its state, renewed certificates, kubeconfigs and the manifest, metrics"
    );
    // The same file, without its sandbox, is rated unsafe: the check can fail.
    let bare: String = read_unit(BOOTSTRAP)
        .lines()
        .filter(|l| {
            !l.starts_with("Protect") && !l.starts_with("Private") && !l.starts_with("Restrict")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(BOOTSTRAP);
    std::fs::write(&path, bare).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=30"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unsandboxed unit passed");
}

/// The backup: a oneshot the timer starts (so it must not stay active), that never starts etcd
/// or the bootstrap, and has no [Install] of its own.
#[test]
fn backup_is_a_oneshot_that_needs_etcd_running_and_never_starts_it() {
    let unit = UnitFile::parse(&read_unit(BACKUP)).unwrap();
    let service = |key| unit.value("Service", key);
    assert_eq!(service("Type").as_deref(), Some("oneshot"));
    assert_eq!(
        service("ExecStart").as_deref(),
        Some("/opt/bin/tn-agent etcd backup")
    );
    assert!(
        matches!(service("RemainAfterExit").as_deref(), None | Some("no")),
        "a unit that stays active is not started again by its timer"
    );
    assert_eq!(service("Restart"), None, "the next tick is the retry");
    let mut requisite = unit.list("Unit", "Requisite");
    requisite.sort();
    assert_eq!(requisite, ["etcd-member.service", BOOTSTRAP]);
    let after = unit.list("Unit", "After");
    for dep in [BOOTSTRAP, "etcd-member.service"] {
        assert!(after.contains(&dep.to_string()), "{after:?}");
    }
    for key in ["Requires", "Wants", "BindsTo"] {
        assert!(unit.list("Unit", key).is_empty(), "{key}= would start etcd");
    }
    assert!(!unit.has_section("Install"), "started by its timer only");
}

/// Every member ticks at the same wall-clock moments, 15 minutes apart (`[backup] interval`'s
/// default), on the quarter hour: only the member leading at the tick uploads.
#[test]
fn backup_timer_ticks_every_15_minutes_on_the_quarter_hour() {
    let timer = UnitFile::parse(&read_unit(BACKUP_TIMER)).unwrap();
    assert_eq!(timer.list("Install", "WantedBy"), ["timers.target"]);
    assert_eq!(timer.value("Timer", "Unit"), None, "starts {BACKUP}");
    assert_eq!(timer.value("Timer", "AccuracySec").as_deref(), Some("1s"));
    for key in [
        "OnBootSec",
        "OnActiveSec",
        "OnStartupSec",
        "OnUnitActiveSec",
        "OnUnitInactiveSec",
        "RandomizedDelaySec",
    ] {
        assert_eq!(
            timer.value("Timer", key),
            None,
            "{key}: ticks differ per node"
        );
    }
    let calendar = timer.values("Timer", "OnCalendar");
    assert_eq!(calendar.len(), 1, "{calendar:?}");
    let ticks = calendar_ticks(&calendar[0], "2026-12-02 10:50:00 UTC", 9);
    assert_eq!(ticks[0], 11 * 3600, "first tick after 10:50: {ticks:?}");
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 15 * 60, "{ticks:?}");
    }
}

/// The first `n` elapses of the calendar spec `spec` after `base`, as seconds since midnight
/// UTC (all on `base`'s day), by `systemd-analyze calendar`.
fn calendar_ticks(spec: &str, base: &str, n: usize) -> Vec<u32> {
    let out = Command::new("systemd-analyze")
        .args(["calendar", &format!("--iterations={n}")])
        .arg(format!("--base-time={base}"))
        .arg(spec)
        .env("TZ", "UTC")
        .output()
        .expect("running systemd-analyze");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{spec}: {said}{out:?}");
    let ticks: Vec<u32> = said
        .lines()
        .filter(|l| l.contains("Next elapse:") || l.contains("Iter. #"))
        .map(|l| {
            let time = l.split_whitespace().rev().nth(1).expect("HH:MM:SS UTC");
            time.split(':')
                .map(|p| p.parse::<u32>().unwrap())
                .fold(0, |acc, p| acc * 60 + p)
        })
        .collect();
    assert_eq!(ticks.len(), n, "{said}");
    ticks
}

#[test]
fn bootstrap_and_etcd_wait_for_the_data_dirs_mount() {
    for name in ["tn-agent-bootstrap.service", "etcd-member.service"] {
        let unit = UnitFile::parse(&read_unit(name)).unwrap();
        assert_eq!(
            unit.values("Unit", "RequiresMountsFor"),
            ["/var/lib/etcd"],
            "{name}"
        );
    }
}

#[test]
fn kubelet_takes_all_its_flags_from_kubelet_env() {
    let unit = UnitFile::parse(&read_unit("kubelet.service")).unwrap();
    assert_eq!(
        unit.values("Service", "EnvironmentFile"),
        ["/etc/kubernetes/kubelet.env"]
    );
    assert_eq!(
        unit.values("Service", "ExecStart"),
        ["/opt/bin/kubelet $KUBELET_ARGS"],
        "unbraced, so systemd splits it into one argument per flag"
    );
    assert_eq!(unit.value("Service", "Restart").as_deref(), Some("always"));
}

// ---------------------------------------------------------------------------------------------
// The ordering walk
// ---------------------------------------------------------------------------------------------

#[test]
fn every_role_starts_what_it_enables_after_what_it_needs() {
    let mut problems = Vec::new();
    for format in FORMATS {
        for role in ROLES {
            problems.extend(NodeUnits::new(format, role, &[]).problems());
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_late_bootstrap_success_starts_the_role_services() {
    // What systemd does when the bootstrap's automatic restart finally succeeds: the restart
    // job pulls in the bootstrap's wants, which enabling the role's services created.
    for role in ROLES {
        let node = NodeUnits::new(Format::Ignition, role, &[]);
        let started = node.closure(&[BOOTSTRAP]);
        let service = if role == "etcd" {
            "etcd-member.service"
        } else {
            "kubelet.service"
        };
        assert!(started.contains(service), "{role}: {started:?}");
        assert!(node.before(BOOTSTRAP, service), "{role}");
    }
}

#[test]
fn the_walk_catches_a_missing_order_a_cycle_and_a_lost_restart() {
    let kubelet = read_unit("kubelet.service");
    let no_containerd = kubelet.replace(
        "After=tn-agent-bootstrap.service containerd.service",
        "After=tn-agent-bootstrap.service",
    );
    let problems = NodeUnits::new(
        Format::Ignition,
        "worker",
        &[("kubelet.service", &no_containerd)],
    )
    .problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("kubelet.service pulls in containerd.service without ordering")),
        "{problems:#?}"
    );

    // Ordered only by the bootstrap's Before= until both sides lose it.
    let unordered = kubelet.replace(
        "After=tn-agent-bootstrap.service containerd.service",
        "After=containerd.service",
    );
    let bootstrap_no_before =
        read_unit(BOOTSTRAP).replace("Before=etcd-member.service kubelet.service\n", "");
    let replace = [
        ("kubelet.service", unordered.as_str()),
        (BOOTSTRAP, bootstrap_no_before.as_str()),
    ];
    let problems = NodeUnits::new(Format::Ignition, "worker", &replace).problems();
    assert!(
        problems.iter().any(|p| p
            .contains("kubelet.service requires tn-agent-bootstrap.service but is not ordered")),
        "{problems:#?}"
    );

    let bootstrap = read_unit(BOOTSTRAP).replace(
        "After=network-online.target",
        "After=kubelet.service network-online.target",
    );
    let problems =
        NodeUnits::new(Format::Ignition, "worker", &[(BOOTSTRAP, &bootstrap)]).problems();
    assert!(
        problems.iter().any(|p| p.contains("ordering cycle")),
        "{problems:#?}"
    );

    // A backup that requires the bootstrap would start etcd through the bootstrap's wants.
    let backup = read_unit(BACKUP).replace(
        "Requisite=tn-agent-bootstrap.service etcd-member.service",
        "Requires=tn-agent-bootstrap.service\nRequisite=etcd-member.service",
    );
    let problems = NodeUnits::new(Format::Ignition, "etcd", &[(BACKUP, &backup)]).problems();
    assert!(
        problems.iter().any(|p| p.contains(&format!(
            "a tick of {BACKUP_TIMER} starts etcd-member.service"
        ))),
        "{problems:#?}"
    );
    let unordered = read_unit(BACKUP).replace(
        "After=tn-agent-bootstrap.service etcd-member.service",
        "After=tn-agent-bootstrap.service",
    );
    let problems = NodeUnits::new(Format::Ignition, "etcd", &[(BACKUP, &unordered)]).problems();
    assert!(
        problems.iter().any(|p| p.contains(
            "tn-agent-etcd-backup.service needs etcd-member.service active but is not ordered"
        )),
        "{problems:#?}"
    );

    let no_restart = kubelet.replace(
        "WantedBy=multi-user.target tn-agent-bootstrap.service",
        "WantedBy=multi-user.target",
    );
    let problems = NodeUnits::new(
        Format::CloudConfig,
        "master",
        &[("kubelet.service", &no_restart)],
    )
    .problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("a (re)start of the bootstrap must start kubelet.service")),
        "{problems:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The shell in the units, run for real
// ---------------------------------------------------------------------------------------------

/// The `sh -c` script of `unit`'s `key`, as the shell gets it: systemd's `$$` is `$`.
fn shell_script(unit: &str, key: &str) -> String {
    let file = UnitFile::parse(&read_unit(unit)).unwrap();
    let line = file.value("Service", key).unwrap();
    assert!(line.starts_with("/usr/bin/sh -"), "{unit} {key}: {line}");
    let (start, end) = (line.find('\'').unwrap(), line.rfind('\'').unwrap());
    let script = &line[start + 1..end];
    assert!(
        !script.contains(['%', '\\']),
        "systemd would rewrite % and \\ in {unit} {key}: handle them here"
    );
    script.replace("$$", "$")
}

fn sha512(path: &Path) -> String {
    let out = Command::new("sha512sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..128].to_string()
}

struct Installer {
    root: tempfile::TempDir,
    script: String,
}

impl Installer {
    fn new() -> Installer {
        let root = tempfile::tempdir().unwrap();
        let script = shell_script(INSTALL, "ExecStart");
        assert!(script.contains("/opt/bin") && script.contains("/etc/tn-agent/install.sha512"));
        let script = script
            .replace(
                "/opt/bin",
                &root.path().join("opt/bin").display().to_string(),
            )
            .replace(
                "/etc/tn-agent/",
                &format!("{}/etc/tn-agent/", root.path().display()),
            );
        std::fs::create_dir_all(root.path().join("etc/tn-agent")).unwrap();
        std::fs::create_dir_all(root.path().join("src")).unwrap();
        Installer { root, script }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.path().join(p)
    }

    /// Puts a release of `name` with `content` at src/<name>-<tag> and returns its URL.
    fn publish(&self, name: &str, tag: &str, content: &str) -> String {
        let path = self.path(&format!("src/{name}-{tag}"));
        std::fs::write(&path, content).unwrap();
        format!("file://{}", path.display())
    }

    /// Writes install.sha512 with the checksums of `(name, src file)`.
    fn expect(&self, files: &[(&str, &str)]) {
        let lines: String = files
            .iter()
            .map(|(name, src)| format!("{}  {name}\n", sha512(&self.path(src))))
            .collect();
        std::fs::write(self.path("etc/tn-agent/install.sha512"), lines).unwrap();
    }

    fn run(&self, tn_install: &str) -> std::process::Output {
        Command::new("sh")
            .args(["-euc", &self.script])
            .env("TN_INSTALL", tn_install)
            .output()
            .unwrap()
    }

    fn installed(&self, name: &str) -> (String, u32) {
        let path = self.path(&format!("opt/bin/{name}"));
        (std::fs::read_to_string(&path).unwrap(), mode(&path))
    }
}

#[test]
fn installer_verifies_checksums_and_skips_the_download_when_installed() {
    let inst = Installer::new();
    let agent = inst.publish("tn-agent", "v1", "agent v1");
    let kubelet = inst.publish("kubelet", "v1", "kubelet v1");
    inst.expect(&[
        ("tn-agent", "src/tn-agent-v1"),
        ("kubelet", "src/kubelet-v1"),
    ]);
    let out = inst.run(&format!("tn-agent {agent} kubelet {kubelet}"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(inst.installed("tn-agent"), ("agent v1".into(), 0o755));
    assert_eq!(inst.installed("kubelet"), ("kubelet v1".into(), 0o755));
    assert!(!inst.path("opt/bin/.tn-install").exists());

    // A reboot: the URLs are gone, the binaries match: nothing to fetch, success.
    let gone = "tn-agent file:///nonexistent/a kubelet file:///nonexistent/k";
    let out = inst.run(gone);
    assert!(out.status.success(), "{out:?}");

    // A new version whose download does not match its checksum: fails, the old one stays.
    let agent_v2 = inst.publish("tn-agent", "v2", "agent v2");
    inst.publish("tn-agent", "v2-expected", "agent v2, the real one");
    inst.expect(&[
        ("tn-agent", "src/tn-agent-v2-expected"),
        ("kubelet", "src/kubelet-v1"),
    ]);
    let out = inst.run(&format!("tn-agent {agent_v2} kubelet {kubelet}"));
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("tn-agent: FAILED"),
        "{out:?}"
    );
    assert_eq!(inst.installed("tn-agent"), ("agent v1".into(), 0o755));

    // The right download: replaced.
    inst.expect(&[
        ("tn-agent", "src/tn-agent-v2"),
        ("kubelet", "src/kubelet-v1"),
    ]);
    let out = inst.run(&format!("tn-agent {agent_v2} kubelet {kubelet}"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(inst.installed("tn-agent"), ("agent v2".into(), 0o755));
}

#[test]
fn installer_fails_when_a_download_fails() {
    let inst = Installer::new();
    let agent = inst.publish("tn-agent", "v1", "agent v1");
    inst.expect(&[("tn-agent", "src/tn-agent-v1")]);
    let out = inst.run("tn-agent file:///nonexistent/tn-agent");
    assert!(!out.status.success(), "{out:?}");
    assert!(!inst.path("opt/bin/tn-agent").exists());
    let out = inst.run(&format!("tn-agent {agent}"));
    assert!(out.status.success(), "{out:?}");
}

/// Runs the leave unit's ExecCondition against `imds`; its exit code.
fn leave_condition(imds: &FakeImds) -> i32 {
    let script = shell_script("tn-agent-etcd-leave.service", "ExecCondition");
    assert!(script.contains("http://169.254.169.254/"));
    let script = script.replace("http://169.254.169.254", &imds.url());
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    out.status.code().expect("exited")
}

#[test]
fn leave_runs_only_when_the_asg_terminates_the_instance() {
    let mut imds = FakeImds::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        ImdsData::new("i-0abc", Ipv4Addr::new(127, 0, 1, 7)),
    )
    .unwrap();
    // 1-254 skips the unit without failing it; 0 runs `tn-agent etcd leave`.
    let skipped = |code: i32| (1..=254).contains(&code);
    assert!(skipped(leave_condition(&imds)), "InService");
    imds.set_target_lifecycle_state(None);
    assert!(skipped(leave_condition(&imds)), "no lifecycle state (404)");
    imds.set_target_lifecycle_state(Some("Terminated"));
    assert_eq!(leave_condition(&imds), 0, "Terminated");

    let seen = imds.requests();
    let put = seen
        .iter()
        .find(|r| r.method == "PUT")
        .expect("a token PUT");
    assert_eq!(put.path, "/latest/api/token");
    assert_eq!(put.token_ttl.as_deref(), Some("60"));
    let gets: Vec<_> = seen.iter().filter(|r| r.method == "GET").collect();
    assert!(!gets.is_empty());
    assert!(
        gets.iter().all(|r| r.token.is_some()),
        "IMDSv2 only: {gets:#?}"
    );

    imds.down();
    assert!(skipped(leave_condition(&imds)), "IMDS unreachable");
}

// ---------------------------------------------------------------------------------------------
// The etcdutl wrapper, run for real against a stub docker
// ---------------------------------------------------------------------------------------------

/// units/etcdutl with its docker replaced by a stub that writes its arguments, one a line, to
/// `$ARGS_FILE` and exits `$STUB_EXIT`; the wrapper's path in `dir`.
fn stubbed_etcdutl(dir: &Path) -> PathBuf {
    let script = read_unit(ETCDUTL);
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    assert_eq!(
        script.matches("/usr/bin/docker").count(),
        1,
        "runs Flatcar's docker, once: {script}"
    );
    let docker = dir.join("docker");
    std::fs::write(
        &docker,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$ARGS_FILE\"\nexit \"${STUB_EXIT:-0}\"\n",
    )
    .unwrap();
    let wrapper = dir.join(ETCDUTL);
    std::fs::write(
        &wrapper,
        script.replace("/usr/bin/docker", &docker.display().to_string()),
    )
    .unwrap();
    for path in [&docker, &wrapper] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    wrapper
}

/// Runs the stubbed wrapper with `args` (and `TN_ETCD_IMAGE` if given): its exit code and the
/// arguments docker got.
fn run_etcdutl(dir: &Path, args: &[&str], image: Option<&str>, exit: i32) -> (i32, Vec<String>) {
    let wrapper = stubbed_etcdutl(dir);
    let args_file = dir.join("docker-args");
    let _ = std::fs::remove_file(&args_file);
    let mut command = Command::new(&wrapper);
    command
        .args(args)
        .env("ARGS_FILE", &args_file)
        .env("STUB_EXIT", exit.to_string())
        .env_remove("TN_ETCD_IMAGE");
    if let Some(image) = image {
        command.env("TN_ETCD_IMAGE", image);
    }
    let out = command.output().unwrap();
    let got = std::fs::read_to_string(&args_file).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (
        out.status.code().expect("exited"),
        got.lines().map(str::to_string).collect(),
    )
}

#[test]
fn etcdutl_wrapper_runs_etcdutl_from_the_etcd_image_without_network() {
    assert_eq!(mode(&units_dir().join(ETCDUTL)), 0o755);
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "snapshot",
        "restore",
        "/var/lib/tn-agent/restore/snapshot.db",
        "--data-dir",
        "/var/lib/etcd/restore-20261202T101500Z",
        "--initial-cluster",
        "i-0abc=https://10.0.1.12:2380",
        "--name",
        "with space",
    ];
    let (code, got) = run_etcdutl(dir.path(), &args, None, 0);
    assert_eq!(code, 0);
    let mut want: Vec<String> = [
        "run",
        "--rm",
        "--network",
        "none",
        "--volume",
        "/var/lib:/var/lib",
        "--entrypoint",
        "/usr/local/bin/etcdutl",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    want.push(etcd_image());
    want.extend(args.iter().map(|a| a.to_string()));
    assert_eq!(
        got, want,
        "the image etcd-member.service runs, arguments as given"
    );

    // etcdutl's exit code is the wrapper's; TN_ETCD_IMAGE picks another image.
    let (code, _) = run_etcdutl(dir.path(), &["version"], None, 3);
    assert_eq!(code, 3);
    let other = "registry.example/etcd:v3.6.0";
    let (code, got) = run_etcdutl(dir.path(), &["version"], Some(other), 0);
    assert_eq!(code, 0);
    assert_eq!(got[8..], [other, "version"]);
}
