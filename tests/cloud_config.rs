//! The user-data templates in cloud-config/, rendered for every role as Terraform's
//! `templatefile()` would: by the small renderer in support::template for the subset of template
//! syntax they use (so the tests run where Terraform is not installed), checked against
//! `terraform console` where it is. The Ignition output must be a valid Ignition 3.3 config with
//! no unknown keys, the legacy cloud-config must use underscore keys only, both must embed the
//! units of units/ byte for byte, and every rendering must fit EC2's 16 KB of user data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use base64::Engine;
use ignition_config::Config as Ignition;

use crate::support::flatcar::{
    deployment, installed_files, read_unit, units, units_dir, Format, BACKUP, BACKUP_TIMER,
    ETCDUTL_PATH, FORMATS, ROLES,
};
use crate::support::template::{json_string, render, variables, Value};
use crate::support::unit_file::UnitFile;
use crate::support::{terraform_console, terraform_installed};

/// The files of units/ the README's Terraform passes as `units`: `fileset()`'s pattern.
const UNITS_FILESET: &str = "{*.service,*.timer,etcdutl}";

/// EC2 takes at most 16 KB of user data (before base64).
const USER_DATA_LIMIT: usize = 16 * 1024;

/// The variables each template takes: cloud-config/README.md's table.
const VARIABLES: [&str; 8] = [
    "config_toml",
    "flatcar_channel",
    "kubelet_sha512",
    "kubelet_url",
    "role",
    "tn_agent_sha512",
    "tn_agent_url",
    "units",
];

const AGENT_SHA512: &str = "62fa1eb7d000a6f36954e5837d9772910d7cb25ab9ceb0e594832a362609b8265b3e6ca6c87e6041910caaef5a8b4b3b13e57b78c33267557481374f6c27194a";
const KUBELET_SHA512: &str = "ff05e3e75f94f8b7f63fec2573fef77fea13768dfadd718a61bdfa07b97c9f319a157e9f72beaadf2c410d0cb76fb9a09f1c9471e903dfe78130c8cf9d8987c6";
const KUBELET_URL: &str = "https://dl.k8s.io/release/v1.31.4/bin/linux/amd64/kubelet";

fn template_path(format: Format) -> PathBuf {
    let name = match format {
        Format::Ignition => "ignition.json.tftpl",
        Format::CloudConfig => "cloud-config.yaml.tftpl",
    };
    tn_world::workspace_dir().join("cloud-config").join(name)
}

/// A node's config.toml as Terraform would render it (SPEC §4). The worker's has quotes, and a
/// comment with `<`, `&` and `>`, which Terraform's jsonencode escapes as \u003c and friends.
fn config_toml(role: &str) -> String {
    let head = format!(
        "# rendered by Terraform <cluster prod> & friends\ncluster = \"prod\"\nrole = \"{role}\"\n\
         state_bucket = \"prod-tn-state\"\ninternal_domain = \"prod.int\"\nvpc_number = 0\n"
    );
    let tail = match role {
        "etcd" => "\n[etcd]\ntls = true\n".to_string(),
        "master" => "\n[etcd]\nasg = \"prod-etcd\"\n\n[kubernetes]\nversion = \"v1.31.4\"\n".into(),
        _ => "\n[etcd]\nasg = \"prod-etcd\"\n\n[kubernetes]\nversion = \"v1.31.4\"\n\
              node_labels = { \"node.kubernetes.io/pool\" = \"gpu\" }\n\
              node_taints = [\"nvidia.com/gpu=present:NoSchedule\"]\n"
            .into(),
    };
    head + &tail
}

/// What the README's Terraform passes for `role` (units excepted: see [`all_vars`]).
fn string_vars(format: Format, role: &str) -> BTreeMap<String, String> {
    let agent_url = match format {
        Format::Ignition => "s3://prod-tn-artifacts/tn-agent/v0.1.0/tn-agent",
        Format::CloudConfig => {
            "https://prod-tn-artifacts.s3.amazonaws.com/tn-agent/v0.1.0/tn-agent"
        }
    };
    let (kubelet_url, kubelet_sha) = if role == "etcd" {
        ("", "")
    } else {
        (KUBELET_URL, KUBELET_SHA512)
    };
    [
        ("role", role),
        ("config_toml", &config_toml(role)),
        ("tn_agent_url", agent_url),
        ("tn_agent_sha512", AGENT_SHA512),
        ("kubelet_url", kubelet_url),
        ("kubelet_sha512", kubelet_sha),
        ("flatcar_channel", "stable"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn all_vars(format: Format, role: &str) -> BTreeMap<String, Value> {
    let mut vars: BTreeMap<String, Value> = string_vars(format, role)
        .into_iter()
        .map(|(k, v)| (k, Value::Str(v)))
        .collect();
    vars.insert("units".into(), Value::Map(units()));
    vars
}

fn render_for(format: Format, role: &str) -> String {
    let template = std::fs::read_to_string(template_path(format)).unwrap();
    render(&template, &all_vars(format, role))
        .unwrap_or_else(|e| panic!("rendering {format:?} for {role}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Ignition
// ---------------------------------------------------------------------------------------------

#[test]
fn ignition_is_a_valid_3_3_config_with_no_unknown_keys_for_every_role() {
    for role in ROLES {
        let text = render_for(Format::Ignition, role);
        let (config, warnings) = Ignition::parse_str(&text)
            .unwrap_or_else(|e| panic!("{role}: not an Ignition config: {e}\n{text}"));
        let warnings: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert!(warnings.is_empty(), "{role}: {warnings:?}");
        let Ignition::V3_3(config) = config else {
            panic!("{role}: not spec 3.3.0: {config:?}");
        };
        check_ignition_files(role, &config);
        check_ignition_units(role, &config);
    }
}

fn check_ignition_files(role: &str, config: &ignition_config::v3_3::Config) {
    let files = config
        .storage
        .as_ref()
        .and_then(|s| s.files.clone())
        .unwrap();
    let by_path: BTreeMap<&str, &ignition_config::v3_3::File> =
        files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut expected = vec![
        "/etc/flatcar/update.conf",
        "/etc/tn-agent/config.toml",
        "/opt/bin/tn-agent",
    ];
    if role != "etcd" {
        expected.push("/opt/bin/kubelet");
    }
    expected.extend(installed_files(role).iter().map(|(path, _)| *path));
    expected.sort();
    assert_eq!(
        by_path.keys().copied().collect::<Vec<_>>(),
        expected,
        "{role}"
    );
    for f in &files {
        assert_eq!(f.overwrite, Some(true), "{role} {}", f.path);
    }

    let vars = string_vars(Format::Ignition, role);
    let mut binaries = vec![("/opt/bin/tn-agent", "tn_agent_url", "tn_agent_sha512")];
    if role != "etcd" {
        binaries.push(("/opt/bin/kubelet", "kubelet_url", "kubelet_sha512"));
    }
    for (path, url, sha) in binaries {
        let file = by_path[path];
        assert_eq!(file.mode, Some(0o755), "{path}");
        let contents = file.contents.as_ref().unwrap();
        assert_eq!(
            contents.source.as_deref(),
            Some(vars[url].as_str()),
            "{path}"
        );
        let hash = contents.verification.as_ref().and_then(|v| v.hash.clone());
        assert_eq!(hash, Some(format!("sha512-{}", vars[sha])), "{path}");
        assert_eq!(vars[sha].len(), 128);
    }

    for (path, file) in installed_files(role) {
        assert_eq!(by_path[path].mode, Some(0o755), "{role} {path}");
        assert_eq!(data_url(by_path[path]), read_unit(file), "{role} {path}");
    }

    let config_toml = data_url(by_path["/etc/tn-agent/config.toml"]);
    assert_eq!(config_toml, vars["config_toml"], "{role}: config.toml");
    assert_eq!(by_path["/etc/tn-agent/config.toml"].mode, Some(0o644));
    let update = data_url(by_path["/etc/flatcar/update.conf"]);
    assert_eq!(update, "GROUP=stable\nREBOOT_STRATEGY=off\n", "{role}");
}

/// The text of a file whose contents are a `data:` URL (base64 or percent-encoded).
fn data_url(file: &ignition_config::v3_3::File) -> String {
    let source = file.contents.as_ref().unwrap().source.clone().unwrap();
    if let Some(b64) = source.strip_prefix("data:;base64,") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        return String::from_utf8(bytes).unwrap();
    }
    let raw = source.strip_prefix("data:,").expect("a data URL");
    percent_decode(raw)
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn check_ignition_units(role: &str, config: &ignition_config::v3_3::Config) {
    let (masked, units): (Vec<_>, Vec<_>) = config
        .systemd
        .as_ref()
        .and_then(|s| s.units.clone())
        .unwrap()
        .into_iter()
        .partition(|u| u.mask == Some(true));
    let masked: Vec<(&str, bool)> = masked
        .iter()
        .map(|u| (u.name.as_str(), u.contents.is_none()))
        .collect();
    assert_eq!(masked, [(MASKED, true)], "{role}");
    let got: Vec<(String, bool)> = units
        .iter()
        .map(|u| (u.name.clone(), u.enabled.unwrap_or(false)))
        .collect();
    let want: Vec<(String, bool)> = deployment(Format::Ignition, role)
        .into_iter()
        .map(|u| (u.name.to_string(), u.enabled))
        .collect();
    assert_eq!(got, want, "{role}");
    for unit in &units {
        let file = read_unit(&unit.name);
        assert!(
            unit.contents.as_deref() == Some(file.as_str()),
            "{role}: {} differs from units/{}",
            unit.name,
            unit.name
        );
        check_enabled_iff_installable(&unit.name, unit.enabled.unwrap_or(false));
    }
}

/// A unit is enabled exactly when it has an `[Install]` section (enabling one without it does
/// nothing but warn).
fn check_enabled_iff_installable(name: &str, enabled: bool) {
    let has_install = UnitFile::parse(&read_unit(name))
        .unwrap()
        .has_section("Install");
    assert_eq!(
        enabled, has_install,
        "{name}: enabled={enabled}, [Install]={has_install}"
    );
}

// ---------------------------------------------------------------------------------------------
// cloud-config
// ---------------------------------------------------------------------------------------------

/// Every key the cloud-config may use: the coreos-cloudinit keys for what it needs. Anything
/// else (a typo, a hyphenated spelling) would be silently ignored on the node.
/// locksmith reboots nodes through etcd's v2 API, which etcd 3.4 turned off: masked on every
/// role (tn-agent reboots them, SPEC §9).
const MASKED: &str = "locksmithd.service";

const CLOUD_CONFIG_KEYS: [&str; 13] = [
    "coreos",
    "update",
    "group",
    "reboot_strategy",
    "units",
    "name",
    "enable",
    "mask",
    "command",
    "content",
    "write_files",
    "path",
    "permissions",
];

#[test]
fn cloud_config_uses_known_underscore_keys_and_embeds_the_units_for_every_role() {
    for role in ROLES {
        let text = render_for(Format::CloudConfig, role);
        assert!(text.starts_with("#cloud-config\n"), "{role}");
        // coreos-cloudinit reads YAML 1.1, where a bare `off` is the boolean false.
        assert!(text.contains("reboot_strategy: \"off\"\n"), "{role}");
        let doc: yaml_serde::Value =
            yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{role}: not YAML: {e}\n{text}"));
        let mut keys = BTreeSet::new();
        collect_keys(&doc, &mut keys);
        for key in &keys {
            assert!(!key.contains('-'), "{role}: hyphenated key {key}");
            assert!(
                CLOUD_CONFIG_KEYS.contains(&key.as_str()),
                "{role}: unknown key {key}"
            );
        }
        assert_eq!(doc["coreos"]["update"]["group"].as_str(), Some("stable"));
        assert_eq!(
            doc["coreos"]["update"]["reboot_strategy"].as_str(),
            Some("off")
        );
        check_cloud_config_units(role, &doc);
        check_cloud_config_files(role, &doc);
    }
}

fn collect_keys(value: &yaml_serde::Value, keys: &mut BTreeSet<String>) {
    match value {
        yaml_serde::Value::Mapping(map) => {
            for (k, v) in map {
                keys.insert(k.as_str().expect("string keys").to_string());
                collect_keys(v, keys);
            }
        }
        yaml_serde::Value::Sequence(items) => items.iter().for_each(|v| collect_keys(v, keys)),
        _ => {}
    }
}

fn check_cloud_config_units(role: &str, doc: &yaml_serde::Value) {
    let (masked, units): (Vec<_>, Vec<_>) = doc["coreos"]["units"]
        .as_sequence()
        .unwrap()
        .iter()
        .partition(|u| u.get("mask").is_some());
    let masked: Vec<(&str, bool)> = masked
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap(),
                u["mask"].as_bool() == Some(true),
            )
        })
        .collect();
    assert_eq!(masked, [(MASKED, true)], "{role}");
    let got: Vec<(String, bool, bool)> = units
        .iter()
        .map(|u| {
            let command = u.get("command").map(|c| c.as_str().unwrap());
            assert!(
                matches!(command, None | Some("start")),
                "{role}: {command:?}"
            );
            (
                u["name"].as_str().unwrap().to_string(),
                u.get("enable")
                    .map(|e| e.as_bool().unwrap())
                    .unwrap_or(false),
                command == Some("start"),
            )
        })
        .collect();
    let want: Vec<(String, bool, bool)> = deployment(Format::CloudConfig, role)
        .into_iter()
        .map(|u| (u.name.to_string(), u.enabled, u.start))
        .collect();
    assert_eq!(got, want, "{role}");
    for unit in units {
        let name = unit["name"].as_str().unwrap();
        assert!(
            unit["content"].as_str() == Some(read_unit(name).as_str()),
            "{role}: {name} differs from units/{name}"
        );
        check_enabled_iff_installable(name, unit.get("enable").is_some());
    }
}

fn check_cloud_config_files(role: &str, doc: &yaml_serde::Value) {
    let vars = string_vars(Format::CloudConfig, role);
    let installed = installed_files(role);
    let files: BTreeMap<&str, &str> = doc["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap();
            let want = if installed.iter().any(|(p, _)| *p == path) {
                "0755"
            } else {
                "0644"
            };
            assert_eq!(f["permissions"].as_str(), Some(want), "{role} {path}");
            (path, f["content"].as_str().unwrap())
        })
        .collect();
    assert_eq!(files.len(), 3 + installed.len(), "{role}: {files:?}");
    for (path, file) in &installed {
        assert_eq!(files[path], read_unit(file), "{role} {path}");
    }
    assert_eq!(
        files["/etc/tn-agent/config.toml"], vars["config_toml"],
        "{role}"
    );
    let (env, sums) = if role == "etcd" {
        (
            format!("TN_INSTALL=tn-agent {}\n", vars["tn_agent_url"]),
            format!("{AGENT_SHA512}  tn-agent\n"),
        )
    } else {
        (
            format!(
                "TN_INSTALL=tn-agent {} kubelet {KUBELET_URL}\n",
                vars["tn_agent_url"]
            ),
            format!("{AGENT_SHA512}  tn-agent\n{KUBELET_SHA512}  kubelet\n"),
        )
    };
    assert_eq!(files["/etc/tn-agent/install.env"], env, "{role}");
    assert_eq!(files["/etc/tn-agent/install.sha512"], sums, "{role}");
}

// ---------------------------------------------------------------------------------------------
// Both formats
// ---------------------------------------------------------------------------------------------

/// The backups run on etcd nodes only (the timer, its service and the etcdutl wrapper a
/// restore uses there); masters and workers get none of them.
#[test]
fn only_etcd_nodes_get_the_backup_timer_and_the_etcdutl_wrapper() {
    for format in FORMATS {
        for role in ROLES {
            let names: Vec<&str> = deployment(format, role).iter().map(|u| u.name).collect();
            let enabled: Vec<&str> = deployment(format, role)
                .iter()
                .filter(|u| u.enabled)
                .map(|u| u.name)
                .collect();
            let text = render_for(format, role);
            let etcd = role == "etcd";
            assert_eq!(enabled.contains(&BACKUP_TIMER), etcd, "{format:?} {role}");
            assert_eq!(names.contains(&BACKUP), etcd, "{format:?} {role}");
            for needle in [BACKUP_TIMER, BACKUP, ETCDUTL_PATH] {
                assert_eq!(text.contains(needle), etcd, "{format:?} {role}: {needle}");
            }
        }
    }
}

#[test]
fn user_data_fits_in_16_kb_for_every_role() {
    for format in FORMATS {
        for role in ROLES {
            let size = render_for(format, role).len();
            assert!(
                size < USER_DATA_LIMIT,
                "{format:?} {role}: {size} bytes, EC2 takes {USER_DATA_LIMIT}"
            );
        }
    }
}

#[test]
fn templates_take_exactly_the_documented_variables() {
    for format in FORMATS {
        let template = std::fs::read_to_string(template_path(format)).unwrap();
        let used = variables(&template).unwrap();
        let want: BTreeSet<String> = VARIABLES.iter().map(|v| v.to_string()).collect();
        assert_eq!(used, want, "{format:?}");
    }
    let readme =
        std::fs::read_to_string(template_path(Format::Ignition).with_file_name("README.md"))
            .unwrap();
    for var in VARIABLES {
        assert!(
            readme.contains(&format!("| `{var}` |")),
            "README.md lacks {var}"
        );
    }
    let fileset = format!("fileset(\"${{path.module}}/units\", \"{UNITS_FILESET}\")");
    assert!(readme.contains(&fileset), "README.md lacks {fileset}");
}

/// The README's launch template keeps pods away from the node role's credentials: IMDSv2
/// required and a response hop limit of 1 (one hop further, on the pod network, gets nothing).
#[test]
fn the_terraform_example_requires_imdsv2_with_one_hop() {
    let readme =
        std::fs::read_to_string(template_path(Format::Ignition).with_file_name("README.md"))
            .unwrap();
    let template = readme
        .split("resource \"aws_launch_template\"")
        .nth(1)
        .expect("a launch template example");
    let block = template
        .split("metadata_options {")
        .nth(1)
        .and_then(|b| b.split('}').next())
        .expect("metadata_options in the launch template");
    let settings: BTreeSet<String> = block
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect();
    for want in [
        "http_tokens = \"required\"",
        "http_put_response_hop_limit = 1",
    ] {
        assert!(settings.contains(want), "{want} not in {settings:?}");
    }
}

#[test]
fn the_config_each_role_gets_is_valid_for_that_role() {
    for role in ROLES {
        let settings = tn_agent::config::from_sources(&[(
            PathBuf::from("/etc/tn-agent/config.toml"),
            config_toml(role),
        )])
        .unwrap_or_else(|e| panic!("{role}: {e}"));
        assert_eq!(settings.role().as_str(), role);
    }
}

#[test]
fn renderer_agrees_with_terraform_where_terraform_is_installed() {
    let jobs: Vec<(Format, &str)> = FORMATS
        .iter()
        .flat_map(|f| ROLES.iter().map(move |r| (*f, *r)))
        .collect();
    let Some(theirs) = terraform_render(&jobs) else {
        eprintln!("terraform is not installed: compared with the local renderer only");
        return;
    };
    for ((format, role), theirs) in jobs.iter().zip(theirs) {
        let ours = render_for(*format, role);
        assert!(
            ours == theirs,
            "{format:?} {role}:\n--- ours\n{ours}\n--- terraform\n{theirs}"
        );
    }
}

/// Renders each job with `terraform console`, units from the README's `fileset()` expression.
/// `None` when there is no terraform.
fn terraform_render(jobs: &[(Format, &str)]) -> Option<Vec<String>> {
    if !terraform_installed() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let units = units_dir().canonicalize().unwrap();
    let main_tf = format!(
        "locals {{\n  vars  = jsondecode(file(\"vars.json\"))\n  units = {{ for f in \
         fileset(\"{u}\", \"{UNITS_FILESET}\") : f => file(\"{u}/${{f}}\") }}\n}}\n",
        u = units.display()
    );
    std::fs::write(dir.path().join("main.tf"), main_tf).unwrap();
    let vars: Vec<BTreeMap<String, String>> =
        jobs.iter().map(|(f, r)| string_vars(*f, r)).collect();
    std::fs::write(
        dir.path().join("vars.json"),
        serde_json::to_vec(&vars).unwrap(),
    )
    .unwrap();
    // One expression: a non-interactive console prints only the last result.
    let renders: Vec<String> = jobs
        .iter()
        .enumerate()
        .map(|(i, (format, _))| {
            format!(
                "base64encode(templatefile(\"{}\", merge(local.vars[{i}], {{ units = local.units }})))",
                template_path(*format).canonicalize().unwrap().display()
            )
        })
        .collect();
    let line = terraform_console(
        dir.path(),
        &format!("join(\",\", [{}])", renders.join(", ")),
    );
    let joined = line.strip_prefix('"').and_then(|l| l.strip_suffix('"'));
    let rendered: Vec<String> = joined
        .unwrap_or_else(|| panic!("terraform console said:\n{line}"))
        .split(',')
        .map(|b64| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            String::from_utf8(bytes).unwrap()
        })
        .collect();
    assert_eq!(
        rendered.len(),
        jobs.len(),
        "terraform console said:\n{line}"
    );
    Some(rendered)
}

// ---------------------------------------------------------------------------------------------
// The renderer (support::template) against what Terraform does
// ---------------------------------------------------------------------------------------------

fn str_vars(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
        .collect()
}

#[test]
fn renderer_handles_strip_markers_escapes_and_branches_as_terraform_does() {
    let vars = str_vars(&[("role", "etcd"), ("x", "a\"<&>\n")]);
    let t = "a\n%{ if role == \"etcd\" ~}\n  yes\n%{ else ~}\n  no\n%{ endif ~}\n  \
             %{~ if role != \"etcd\" } inline %{ endif }\nb ${jsonencode(x)} $${lit} %%{lit}";
    assert_eq!(
        render(t, &vars).unwrap(),
        "a\n  yes\n\nb \"a\\\"\\u003c\\u0026\\u003e\\n\" ${lit} %{lit}"
    );
    assert_eq!(render("${base64encode(x)}", &vars).unwrap(), "YSI8Jj4K");
    let mut with_map = str_vars(&[]);
    with_map.insert(
        "units".into(),
        Value::Map([("a.service".to_string(), "A".to_string())].into()),
    );
    assert_eq!(render("${units[\"a.service\"]}", &with_map).unwrap(), "A");
}

#[test]
fn renderer_refuses_what_it_does_not_know() {
    let vars = str_vars(&[("role", "etcd")]);
    // Like Terraform: a variable in a branch not taken must still be given.
    let err = render("%{ if role == \"x\" }${missing}%{ endif }", &vars).unwrap_err();
    assert!(err.contains("missing"), "{err}");
    for t in [
        "%{ for x in role }x%{ endfor }",
        "${upper(role)}",
        "${role == \"a\" ? 1 : 2}",
        "${\"a${role}\"}",
        "%{ if role == \"etcd\" }never closed",
        "${role",
    ] {
        assert!(render(t, &vars).is_err(), "{t}");
    }
}

#[test]
fn renderer_matches_go_json_string_escaping() {
    assert_eq!(
        json_string("a\u{1}\u{2028}\t\\"),
        "\"a\\u0001\\u2028\\t\\\\\""
    );
}
