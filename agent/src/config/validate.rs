//! Step 3: the merged raw values validated into [`Settings`], each bad value blamed on the file
//! that supplied it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schema::{
    dropin_dir, join_key, RawBackup, RawBootstrap, RawConfig, RawEtcd, RawKubernetes, RawReboot,
};
use super::types::{
    is_bucket_name, is_dns_name, is_kubelet_settable, is_label_key, is_label_value, BUCKET_RULE,
    DNS_RULE, KUBELET_LABEL_RULE, LABEL_KEY_RULE, LABEL_VALUE_RULE,
};
use super::{
    AddressPlan, BackupSettings, BootstrapSettings, ClusterName, ConfigError, EtcdSettings,
    InvalidValue, KubeVersion, KubernetesSettings, MasterSettings, RebootSettings, Role,
    RoleSettings, Settings, Taint,
};

const ASG_RULE: &str = "an autoscaling group name of 1-255 characters without control characters";
const PATH_RULE: &str = "an absolute path";
const CLEAN_PATH_RULE: &str = "an absolute path in normal form (no `.`, `..` or empty parts, \
     no trailing `/`) of A-Z, a-z, 0-9, '.', '_', '-' and '/'";
const PORT_RULE: &str = "a TCP port from 1 to 65535";
const TIMEOUT_RULE: &str = "a number of seconds from 1 to 3600";
const DELAY_RULE: &str = "a number of seconds from 0 to 3600";
const INSECURE_RULE: &str = "`insecure = true` next to it (etcd without TLS sends every key, \
     Secrets included, in clear text and lets anyone who reaches its ports in)";
const HOOK_RULE: &str =
    "a lifecycle hook name of 1-255 characters from A-Z, a-z, 0-9, '-', '_' and '/'";
/// The hook name the Terraform examples give the etcd ASG (docs/node.md).
const DEFAULT_LEAVE_HOOK: &str = "tn-etcd-leave";

/// What validation needs besides the values: where each key came from and where to point for fixes.
pub(super) struct Context {
    pub(super) main: PathBuf,
    pub(super) origin: BTreeMap<String, PathBuf>,
}

impl Context {
    fn file_of(&self, key: &str) -> PathBuf {
        self.origin.get(key).unwrap_or(&self.main).clone()
    }

    /// A bad value at `key`, blamed on the file that supplied `origin_key` (usually `key` itself).
    fn invalid_at(&self, key: &str, origin_key: &str, invalid: InvalidValue) -> ConfigError {
        ConfigError::Value {
            file: self.file_of(origin_key),
            key: key.to_owned(),
            invalid,
        }
    }

    fn invalid(&self, key: &str) -> impl Fn(InvalidValue) -> ConfigError + '_ {
        let key = key.to_owned();
        move |invalid| self.invalid_at(&key, &key, invalid)
    }

    fn missing(&self, key: &str, requirement: &str) -> ConfigError {
        ConfigError::Missing {
            key: key.to_owned(),
            requirement: requirement.to_owned(),
            main: self.main.clone(),
            dropin_dir: dropin_dir(&self.main),
        }
    }

    fn required<T>(
        &self,
        value: Option<T>,
        key: &str,
        requirement: &str,
    ) -> Result<T, ConfigError> {
        value.ok_or_else(|| self.missing(key, requirement))
    }
}

pub(super) fn validate(
    raw: RawConfig,
    ctx: &Context,
    sources: Vec<PathBuf>,
) -> Result<Settings, ConfigError> {
    let cluster = ctx.required(
        raw.cluster,
        "cluster",
        "(the cluster name, 1-32 characters from a-z, 0-9 and '-')",
    )?;
    let cluster: ClusterName = cluster.parse().map_err(ctx.invalid("cluster"))?;
    let role = ctx.required(
        raw.role,
        "role",
        r#"(this node's role: "etcd", "master" or "worker")"#,
    )?;
    let role: Role = role.parse().map_err(ctx.invalid("role"))?;
    let bucket = ctx.required(
        raw.state_bucket,
        "state_bucket",
        "(the S3 bucket holding the cluster's PKI and state)",
    )?;
    let state_bucket =
        check_str(&bucket, is_bucket_name, BUCKET_RULE).map_err(ctx.invalid("state_bucket"))?;
    let internal_domain = raw
        .internal_domain
        .map(|d| check_str(&d, is_dns_name, DNS_RULE))
        .transpose()
        .map_err(ctx.invalid("internal_domain"))?;
    let (vpc_number, plan) =
        check_vpc_number(raw.vpc_number.unwrap_or(0)).map_err(ctx.invalid("vpc_number"))?;

    let bootstrap = validate_bootstrap(raw.bootstrap.unwrap_or_default(), ctx)?;
    let reboot = validate_reboot(raw.reboot.unwrap_or_default(), role, ctx)?;
    let backup = validate_backup(raw.backup.unwrap_or_default(), ctx)?;
    let metrics_textfile_dir = raw
        .metrics
        .unwrap_or_default()
        .textfile_dir
        .map(|d| check_data_dir(&d))
        .transpose()
        .map_err(ctx.invalid("metrics.textfile_dir"))?;
    let (etcd, etcd_asg) = validate_etcd(raw.etcd.unwrap_or_default(), role, ctx)?;
    let kubernetes = |raw: Option<RawKubernetes>| {
        validate_kubernetes(
            raw.unwrap_or_default(),
            role,
            internal_domain.as_deref(),
            ctx,
        )
    };
    let role_settings = match etcd_asg {
        EtcdAsg::Etcd(_) if raw.kubernetes.is_some() => {
            return Err(ConfigError::KubernetesForEtcd {
                file: ctx.file_of("kubernetes"),
            });
        }
        EtcdAsg::Etcd(etcd_asg) => RoleSettings::Etcd { etcd_asg },
        EtcdAsg::Master(etcd_asg) => RoleSettings::Master(MasterSettings {
            etcd_asg,
            kubernetes: kubernetes(raw.kubernetes)?,
        }),
        EtcdAsg::Worker(etcd_asg) => RoleSettings::Worker {
            etcd_asg,
            kubernetes: kubernetes(raw.kubernetes)?,
        },
    };

    Ok(Settings {
        cluster,
        state_bucket,
        internal_domain,
        vpc_number,
        plan,
        bootstrap,
        reboot,
        backup,
        metrics_textfile_dir,
        etcd,
        role_settings,
        sources,
    })
}

fn validate_backup(raw: RawBackup, ctx: &Context) -> Result<BackupSettings, ConfigError> {
    use crate::reboot::window::parse_duration;
    let text = raw.interval.as_deref().unwrap_or("15m");
    let interval = parse_duration(text)
        .ok()
        .filter(|d| *d >= Duration::from_secs(60) && *d <= Duration::from_secs(24 * 3600))
        .ok_or_else(|| {
            ctx.invalid_at(
                "backup.interval",
                "backup.interval",
                InvalidValue::string("a duration like \"15m\" or \"1h\", from 1m to 24h", text),
            )
        })?;
    let integer = |key: &str,
                   value: Option<i64>,
                   default: i64,
                   range: std::ops::RangeInclusive<i64>,
                   rule: &str| {
        let n = value.unwrap_or(default);
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(ctx.invalid_at(key, key, InvalidValue::integer(rule, n)))
        }
    };
    let hourly = integer(
        "backup.keep_hourly_days",
        raw.keep_hourly_days,
        7,
        0..=366,
        "a number of days from 0 to 366",
    )?;
    let daily = integer(
        "backup.keep_daily_days",
        raw.keep_daily_days,
        365,
        0..=3660,
        "a number of days from 0 to 3660",
    )?;
    let part_mib = integer(
        "backup.part_size_mib",
        raw.part_size_mib,
        16,
        5..=512,
        "a number of MiB from 5 (S3's smallest part) to 512",
    )?;
    let restore_tool = raw.restore_tool.unwrap_or_else(|| "etcdutl".into());
    let tool_ok = !restore_tool.is_empty()
        && !restore_tool
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        && (Path::new(&restore_tool).is_absolute() || !restore_tool.contains('/'));
    if !tool_ok {
        return Err(ctx.invalid_at(
            "backup.restore_tool",
            "backup.restore_tool",
            InvalidValue::string(
                "a program name on PATH (etcdutl, etcdctl) or an absolute path, without spaces",
                &restore_tool,
            ),
        ));
    }
    Ok(BackupSettings {
        interval,
        retention: crate::backup::retention::Retention {
            keep_hourly_days: hourly as u32,
            keep_daily_days: daily as u32,
        },
        restore_tool,
        part_size: part_mib as usize * 1024 * 1024,
    })
}

fn validate_reboot(
    raw: RawReboot,
    role: Role,
    ctx: &Context,
) -> Result<RebootSettings, ConfigError> {
    use crate::reboot::lock::{is_group_name, is_kube_group_name};
    use crate::reboot::window::{parse_duration, Window};
    let string = |key: &str, got: &str, expected: String| {
        ctx.invalid_at(key, key, InvalidValue::string(expected, got))
    };
    const KUBE_GROUP_RULE: &str = "a group name that ends a ConfigMap name tn-reboot-<group>: \
                                   lowercase letters, digits, '-' and '.', ending alphanumeric";
    let group = match raw.group {
        Some(g) if role != Role::Etcd && !is_kube_group_name(&g) => {
            return Err(string("reboot.group", &g, KUBE_GROUP_RULE.into()))
        }
        Some(g) if is_group_name(&g) => Some(g),
        Some(g) => {
            return Err(string(
                "reboot.group",
                &g,
                "a group name of 1-255 characters without '/' or control characters".into(),
            ))
        }
        None => None,
    };
    let worker_groups = raw.worker_groups.unwrap_or_default();
    if let Some(bad) = worker_groups.iter().find(|g| !is_kube_group_name(g)) {
        return Err(string("reboot.worker_groups", bad, KUBE_GROUP_RULE.into()));
    }
    let window = match (&raw.window_start, &raw.window_length) {
        (None, None) => None,
        (Some(start), Some(length)) => Some(
            Window::parse(start, length)
                .map_err(|e| string("reboot.window_start", &format!("{start} for {length}"), e))?,
        ),
        (Some(_), None) => {
            return Err(ctx.missing("reboot.window_length", "with reboot.window_start"))
        }
        (None, Some(_)) => {
            return Err(ctx.missing("reboot.window_start", "with reboot.window_length"))
        }
    };
    let duration = |key: &str, value: Option<&str>, default: &str, max: Duration| {
        let text = value.unwrap_or(default);
        parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero() && *d <= max)
            .ok_or_else(|| {
                string(
                    key,
                    text,
                    format!(
                        "a duration like \"90s\", \"15m\" or \"1h30m\", from 1s to {}h",
                        max.as_secs() / 3600
                    ),
                )
            })
    };
    let drain_timeout = duration(
        "reboot.drain_timeout",
        raw.drain_timeout.as_deref(),
        "15m",
        Duration::from_secs(24 * 3600),
    )?;
    let check_interval = duration(
        "reboot.check_interval",
        raw.check_interval.as_deref(),
        "60s",
        Duration::from_secs(3600),
    )?;
    let command = match raw.command {
        None => None,
        Some(argv)
            if argv.first().is_some_and(|c| c.starts_with('/'))
                && argv.iter().all(|a| !a.is_empty()) =>
        {
            Some(argv)
        }
        Some(argv) => {
            return Err(string(
                "reboot.command",
                &format!("{argv:?}"),
                "an argv array whose first element is an absolute path, no element empty".into(),
            ))
        }
    };
    Ok(RebootSettings {
        group,
        window,
        drain_timeout,
        command,
        check_interval,
        worker_groups,
    })
}

fn validate_bootstrap(raw: RawBootstrap, ctx: &Context) -> Result<BootstrapSettings, ConfigError> {
    let n = raw.retry_max_delay_seconds.unwrap_or(300);
    let retry_max_delay = u64::try_from(n)
        .ok()
        .filter(|s| *s <= 3600)
        .map(Duration::from_secs)
        .ok_or_else(|| InvalidValue::integer(DELAY_RULE, n))
        .map_err(ctx.invalid("bootstrap.retry_max_delay_seconds"))?;
    Ok(BootstrapSettings { retry_max_delay })
}

/// `etcd.asg` as the role has it: required for a master, optional for the others.
enum EtcdAsg {
    Etcd(Option<String>),
    Master(String),
    Worker(Option<String>),
}

fn validate_etcd(
    raw: RawEtcd,
    role: Role,
    ctx: &Context,
) -> Result<(EtcdSettings, EtcdAsg), ConfigError> {
    let asg = raw
        .asg
        .map(|a| check_asg(&a))
        .transpose()
        .map_err(ctx.invalid("etcd.asg"))?;
    let asg = match role {
        Role::Etcd => EtcdAsg::Etcd(asg),
        Role::Master => EtcdAsg::Master(ctx.required(
            asg,
            "etcd.asg",
            "for role master (the masters need the etcd ASG to find the etcd members)",
        )?),
        Role::Worker => EtcdAsg::Worker(asg),
    };
    let data_dir = raw.data_dir.as_deref().unwrap_or("/var/lib/etcd");
    let data_dir = check_data_dir(data_dir).map_err(ctx.invalid("etcd.data_dir"))?;
    let client_port =
        check_port(raw.client_port.unwrap_or(2379)).map_err(ctx.invalid("etcd.client_port"))?;
    let peer_port =
        check_port(raw.peer_port.unwrap_or(2380)).map_err(ctx.invalid("etcd.peer_port"))?;
    if client_port == peer_port {
        // Blame the key the operator set; if both were set, the peer port.
        let (key, other) = if raw.peer_port.is_some() {
            ("etcd.peer_port", "etcd.client_port")
        } else {
            ("etcd.client_port", "etcd.peer_port")
        };
        let expected = format!("a port different from {other} ({client_port})");
        return Err(ctx.invalid_at(
            key,
            key,
            InvalidValue::integer(expected, i64::from(client_port)),
        ));
    }
    let join_timeout = check_timeout(raw.join_timeout_seconds.unwrap_or(600))
        .map_err(ctx.invalid("etcd.join_timeout_seconds"))?;
    let learner_timeout = check_timeout(raw.learner_timeout_seconds.unwrap_or(600))
        .map_err(ctx.invalid("etcd.learner_timeout_seconds"))?;
    let tls = raw.tls.unwrap_or(true);
    if !tls && raw.insecure != Some(true) {
        return Err(ctx.invalid_at(
            "etcd.tls",
            "etcd.tls",
            InvalidValue {
                expected: INSECURE_RULE.into(),
                got: format!(
                    "tls = false with insecure = {}",
                    raw.insecure.map_or("unset".into(), |b| b.to_string())
                ),
            },
        ));
    }
    let leave_hook = check_str(
        raw.leave_hook.as_deref().unwrap_or(DEFAULT_LEAVE_HOOK),
        |s| {
            (1..=255).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'))
        },
        HOOK_RULE,
    )
    .map_err(ctx.invalid("etcd.leave_hook"))?;
    let etcd = EtcdSettings {
        tls,
        data_dir,
        client_port,
        peer_port,
        join_timeout,
        learner_timeout,
        leave_hook,
    };
    Ok((etcd, asg))
}

/// The taints a master registers with unless `kubernetes.node_taints` says otherwise (an
/// explicit `[]` makes masters schedulable): ordinary pods stay off the nodes that hold CA keys.
pub const MASTER_DEFAULT_TAINT: &str = "node-role.kubernetes.io/control-plane:NoSchedule";

fn validate_kubernetes(
    raw: RawKubernetes,
    role: Role,
    internal_domain: Option<&str>,
    ctx: &Context,
) -> Result<KubernetesSettings, ConfigError> {
    let version = ctx.required(
        raw.version,
        "kubernetes.version",
        "for roles master and worker (the Kubernetes version to run, like v1.31.4)",
    )?;
    let version: KubeVersion = version.parse().map_err(ctx.invalid("kubernetes.version"))?;
    let apiserver = match (raw.apiserver, internal_domain) {
        (Some(url), _) => url.parse().map_err(ctx.invalid("kubernetes.apiserver"))?,
        (None, Some(domain)) => format!("https://kubernetes.{domain}:443")
            .parse()
            .map_err(ctx.invalid("internal_domain"))?,
        (None, None) => {
            return Err(ctx.missing(
                "kubernetes.apiserver",
                "when `internal_domain` is not set \
                 (the default is https://kubernetes.<internal_domain>:443)",
            ))
        }
    };
    let cluster_domain = raw.cluster_domain.as_deref().unwrap_or("cluster.local");
    let cluster_domain = check_str(cluster_domain, is_dns_name, DNS_RULE)
        .map_err(ctx.invalid("kubernetes.cluster_domain"))?;
    let node_labels = raw.node_labels.unwrap_or_default();
    for (name, value) in &node_labels {
        let key = join_key("kubernetes.node_labels", name);
        if !is_label_key(name) {
            return Err(ctx.invalid_at(&key, &key, InvalidValue::string(LABEL_KEY_RULE, name)));
        }
        if !is_kubelet_settable(name) {
            return Err(ctx.invalid_at(&key, &key, InvalidValue::string(KUBELET_LABEL_RULE, name)));
        }
        if !is_label_value(value) {
            return Err(ctx.invalid_at(&key, &key, InvalidValue::string(LABEL_VALUE_RULE, value)));
        }
    }
    let node_taints = match raw.node_taints {
        Some(taints) => validate_taints(taints, ctx)?,
        None if role == Role::Master => {
            vec![MASTER_DEFAULT_TAINT
                .parse()
                .expect("the default taint parses")]
        }
        None => Vec::new(),
    };
    Ok(KubernetesSettings {
        version,
        apiserver,
        cluster_domain,
        node_labels,
        node_taints,
    })
}

fn validate_taints(raw: Vec<String>, ctx: &Context) -> Result<Vec<Taint>, ConfigError> {
    const KEY: &str = "kubernetes.node_taints";
    let mut taints: Vec<Taint> = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let key = format!("{KEY}[{i}]");
        let taint: Taint = text.parse().map_err(|e| ctx.invalid_at(&key, KEY, e))?;
        if let Some(j) = taints
            .iter()
            .position(|t| t.key() == taint.key() && t.effect() == taint.effect())
        {
            let expected = format!("a taint whose key and effect differ from {KEY}[{j}]");
            return Err(ctx.invalid_at(&key, KEY, InvalidValue::string(expected, text)));
        }
        taints.push(taint);
    }
    Ok(taints)
}

fn check_str(s: &str, ok: fn(&str) -> bool, rule: &str) -> Result<String, InvalidValue> {
    if ok(s) {
        Ok(s.to_owned())
    } else {
        Err(InvalidValue::string(rule, s))
    }
}

fn check_asg(s: &str) -> Result<String, InvalidValue> {
    check_str(
        s,
        |s| (1..=255).contains(&s.chars().count()) && !s.chars().any(char::is_control),
        ASG_RULE,
    )
}

/// An absolute path in normal form, of characters that need no quoting anywhere it goes (the
/// env file, unit files, a `docker --volume`).
fn check_data_dir(s: &str) -> Result<PathBuf, InvalidValue> {
    if !Path::new(s).is_absolute() {
        return Err(InvalidValue::string(PATH_RULE, s));
    }
    let clean = s.len() > 1
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        && s[1..]
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if clean {
        Ok(PathBuf::from(s))
    } else {
        Err(InvalidValue::string(CLEAN_PATH_RULE, s))
    }
}

fn check_port(n: i64) -> Result<u16, InvalidValue> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| InvalidValue::integer(PORT_RULE, n))
}

fn check_vpc_number(n: i64) -> Result<(u8, AddressPlan), InvalidValue> {
    let invalid = || InvalidValue::integer(AddressPlan::RULE, n);
    let n = u8::try_from(n).map_err(|_| invalid())?;
    Ok((n, AddressPlan::for_vpc_number(n).ok_or_else(invalid)?))
}

fn check_timeout(n: i64) -> Result<Duration, InvalidValue> {
    u64::try_from(n)
        .ok()
        .filter(|s| (1..=3600).contains(s))
        .map(Duration::from_secs)
        .ok_or_else(|| InvalidValue::integer(TIMEOUT_RULE, n))
}
