//! Node files (SPEC §6): every path tn-agent reads or writes on a node, which of them each role
//! must have, and the one way they are written. Paths are as on a real node: taken under
//! `--root` when used, and written root-prefixed into the files that refer to them.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::Role;
use crate::fsutil::{self, Root, MODE_PUBLIC, MODE_SECRET};
use crate::pki::{check_reuse, check_reuse_against_cert, Ca, Leaf, LeafRequest, Reuse};
use crate::state::BootState;

/// Leaves are reissued this long before they expire.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// What the last `bootstrap` found and decided (read by `status`).
pub const STATE: &str = "/var/lib/tn-agent/state.json";
/// The agent's record of the etcd data dir it configured.
pub const ETCD_MEMBER_RECORD: &str = "/var/lib/tn-agent/etcd-member.json";

/// When this node first saw each other etcd learner unhealthy (member id → Unix seconds), kept
/// across bootstrap runs.
pub const ETCD_LEARNER_WATCH: &str = "/var/lib/tn-agent/etcd-learners.json";

/// What this node's last `etcd backup` runs did and the newest backup they saw (read by
/// `status` and the reboot gates: neither asks S3).
pub const BACKUP_RECORD: &str = "/var/lib/tn-agent/backup.json";

/// A reboot is wanted: Flatcar's postinstall creates it when an update is staged, `tn-agent
/// reboot request` does too (SPEC §9).
pub const REBOOT_SENTINEL: &str = "/run/reboot-required";

/// Where this node is in its reboot (SPEC §9).
pub const REBOOT_STATE: &str = "/var/lib/tn-agent/reboot.json";
/// The OS release; its `VERSION` is the booted Flatcar version.
pub const OS_RELEASE: &str = "/etc/os-release";
/// The kernel's id of the current boot: a reboot changes it.
pub const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// etcd's own variables, read by its unit with `EnvironmentFile=`.
pub const ETCD_ENV: &str = "/etc/etcd/etcd.env";
/// The etcd node's certificate directory.
pub const ETCD_PKI_DIR: &str = "/etc/etcd/pki";
/// The etcd CA certificate on an etcd node.
pub const ETCD_NODE_CA: &str = "/etc/etcd/pki/ca.crt";
/// The etcd member's serving certificate (also a client certificate, for `etcdctl` and the
/// agent).
pub const ETCD_SERVER: LeafFiles = LeafFiles {
    cert: "/etc/etcd/pki/server.crt",
    key: "/etc/etcd/pki/server.key",
};
/// The etcd member's peer certificate.
pub const ETCD_PEER: LeafFiles = LeafFiles {
    cert: "/etc/etcd/pki/peer.crt",
    key: "/etc/etcd/pki/peer.key",
};

/// Certificates and keys of the control plane and the kubelet.
pub const KUBE_PKI_DIR: &str = "/etc/kubernetes/pki";
/// Static pod manifests the kubelet runs (masters).
pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";

/// The cluster CA certificate (every node).
pub const CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";
/// The cluster CA key: on masters only, for the controller-manager's CSR signer.
pub const CA_KEY: &str = "/etc/kubernetes/pki/ca.key";
/// The etcd CA certificate, to verify etcd's serving certificates (masters).
pub const ETCD_CA_CERT: &str = "/etc/kubernetes/pki/etcd/ca.crt";
/// The front-proxy CA certificate (masters).
pub const FRONT_PROXY_CA_CERT: &str = "/etc/kubernetes/pki/front-proxy-ca.crt";
/// The service-account token signing key and its public half (masters).
pub const SA_KEY: &str = "/etc/kubernetes/pki/sa.key";
pub const SA_PUB: &str = "/etc/kubernetes/pki/sa.pub";

/// The kubelet's configuration file (KubeletConfiguration).
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// The kubelet unit's `EnvironmentFile=`: its flags.
pub const KUBELET_ENV: &str = "/etc/kubernetes/kubelet.env";
/// The kubelet's kubeconfig: written by the agent on masters, by the kubelet's TLS bootstrap on
/// workers.
pub const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
/// The client certificate and key (one PEM) a worker's kubelet got by TLS bootstrap and rotates
/// itself, in its `--cert-dir`: once it holds one, the bootstrap token is not used again.
pub const KUBELET_CLIENT_CURRENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
/// The workers' bootstrap kubeconfig (the bootstrap token).
pub const BOOTSTRAP_KUBECONFIG: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// Kubeconfigs of the controller-manager and the scheduler (masters).
pub const CONTROLLER_MANAGER_KUBECONFIG: &str = "/etc/kubernetes/controller-manager.conf";
pub const SCHEDULER_KUBECONFIG: &str = "/etc/kubernetes/scheduler.conf";
/// The apiserver's EncryptionConfiguration: Secrets encrypted at rest with the key from the
/// state bucket (masters).
pub const ENCRYPTION_CONFIG: &str = "/etc/kubernetes/encryption-config.yaml";
/// The bootstrap token's Secret and the TLS bootstrap RBAC, for an operator to apply (masters).
pub const TLS_BOOTSTRAP_ADDON: &str = "/etc/kubernetes/addons/tls-bootstrap.yaml";
/// The reboot locks' ConfigMaps and RBAC (SPEC §9), applied like the TLS bootstrap addon.
pub const REBOOT_LOCKS_ADDON: &str = "/etc/kubernetes/addons/reboot-locks.yaml";

/// Static pod manifests.
pub const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
pub const CONTROLLER_MANAGER_MANIFEST: &str =
    "/etc/kubernetes/manifests/kube-controller-manager.yaml";
pub const SCHEDULER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-scheduler.yaml";

/// A leaf certificate and its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafFiles {
    pub cert: &'static str,
    pub key: &'static str,
}

/// The apiserver's serving certificate.
pub const APISERVER: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/apiserver.crt",
    key: "/etc/kubernetes/pki/apiserver.key",
};
/// The apiserver's client certificate for etcd (signed by the etcd CA).
pub const APISERVER_ETCD_CLIENT: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/apiserver-etcd-client.crt",
    key: "/etc/kubernetes/pki/apiserver-etcd-client.key",
};
/// The apiserver's client certificate for the kubelets.
pub const APISERVER_KUBELET_CLIENT: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
    key: "/etc/kubernetes/pki/apiserver-kubelet-client.key",
};
/// The apiserver's client certificate as the front proxy (signed by the front-proxy CA).
pub const FRONT_PROXY_CLIENT: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/front-proxy-client.crt",
    key: "/etc/kubernetes/pki/front-proxy-client.key",
};
/// The controller-manager's client certificate (also embedded in its kubeconfig).
pub const CONTROLLER_MANAGER: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/controller-manager.crt",
    key: "/etc/kubernetes/pki/controller-manager.key",
};
/// The scheduler's client certificate (also embedded in its kubeconfig).
pub const SCHEDULER: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/scheduler.crt",
    key: "/etc/kubernetes/pki/scheduler.key",
};
/// A master kubelet's first client certificate (also embedded in its kubeconfig); the kubelet
/// rotates it from there.
pub const KUBELET_CLIENT: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/kubelet-client.crt",
    key: "/etc/kubernetes/pki/kubelet-client.key",
};

/// The node's certificate directories, searched by `status` for `*.crt`.
pub const PKI_DIRS: [&str; 2] = [ETCD_PKI_DIR, KUBE_PKI_DIR];

/// The files `bootstrap` writes for `role` (besides [`STATE`]), as node paths.
pub fn expected(role: Role, etcd_tls: bool) -> Vec<&'static str> {
    match role {
        Role::Etcd => {
            let mut files = vec![ETCD_ENV];
            if etcd_tls {
                files.extend([
                    ETCD_NODE_CA,
                    ETCD_SERVER.cert,
                    ETCD_SERVER.key,
                    ETCD_PEER.cert,
                    ETCD_PEER.key,
                ]);
            }
            files
        }
        Role::Master | Role::Worker => {
            let kubeconfig = if role == Role::Master {
                KUBELET_KUBECONFIG
            } else {
                BOOTSTRAP_KUBECONFIG
            };
            vec![KUBELET_CONFIG, CA_CERT, KUBELET_ENV, kubeconfig]
        }
    }
}

/// The first of `paths` (node paths) that does not exist on the node.
pub fn first_missing<'a>(root: &Root, paths: &[&'a str]) -> Option<&'a str> {
    paths.iter().copied().find(|p| !root.path(p).exists())
}

/// Writes a node file atomically with `mode` (0600 for keys and tokens), unless it already has
/// exactly these contents and mode, so a re-run touches nothing; records it in the state when
/// written. `Ok(true)` when it wrote.
pub fn write(
    root: &Root,
    state: &mut BootState,
    node_path: &str,
    contents: &[u8],
    mode: u32,
) -> Result<bool> {
    let path = root.path(node_path);
    let same = std::fs::metadata(&path)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o7777 == mode)
        && std::fs::read(&path).is_ok_and(|old| old == contents);
    if same {
        return Ok(false);
    }
    fsutil::write_atomic(&path, contents, mode)
        .with_context(|| format!("writing {}", path.display()))?;
    state.wrote(root, &path);
    Ok(true)
}

/// Keeps the leaf at `files` when it still fits `req` and `ca` ([`check_reuse`]), else issues a
/// new one and writes the key (0600) then the certificate, so a crash in between leaves a pair
/// that does not match, which the next run reissues. An issue is recorded as the decision
/// "issued <what> certificate" with its reason. Returns the leaf as it is on disk.
pub fn ensure_leaf(
    root: &Root,
    state: &mut BootState,
    what: &str,
    files: LeafFiles,
    ca: &Ca,
    req: &LeafRequest,
) -> Result<Leaf> {
    let cert = read_optional(root, files.cert)?;
    let key = read_optional(root, files.key)?;
    let why = match (cert, key) {
        (None, _) => "no certificate yet".to_string(),
        (Some(_), None) => "no key yet".to_string(),
        (Some(cert_pem), Some(key_pem)) => {
            match check_reuse(&cert_pem, &key_pem, ca, req, RENEW_BEFORE) {
                Reuse::Keep => {
                    tracing::debug!("kept the {what} certificate");
                    keep_secret(root, state, files.key)?;
                    return Ok(Leaf { cert_pem, key_pem });
                }
                Reuse::Reissue(why) => why,
            }
        }
    };
    let leaf = ca
        .issue(req)
        .with_context(|| format!("issuing the {what} certificate"))?;
    write(root, state, files.key, leaf.key_pem.as_bytes(), MODE_SECRET)?;
    write(
        root,
        state,
        files.cert,
        leaf.cert_pem.as_bytes(),
        MODE_PUBLIC,
    )?;
    state.decide(format!("issued {what} certificate"), why);
    Ok(leaf)
}

/// Sets a kept secret file's mode back to 0600 when something widened it (recorded as a
/// decision): a key is never left readable by others.
pub fn keep_secret(root: &Root, state: &mut BootState, node_path: &str) -> Result<()> {
    let path = root.path(node_path);
    let mode = std::fs::metadata(&path)
        .with_context(|| format!("reading the mode of {}", path.display()))?
        .permissions()
        .mode()
        & 0o7777;
    if mode != MODE_SECRET {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(MODE_SECRET))
            .with_context(|| format!("setting the mode of {} to 0600", path.display()))?;
        state.decide(
            "fixed key mode",
            format!("{node_path} had mode {mode:04o}; keys are 0600"),
        );
    }
    Ok(())
}

/// Why the node's certificate at `node_path` cannot be used as it is (missing, not a
/// certificate, outside its validity); `None` when it can.
pub fn unusable_cert(root: &Root, node_path: &str) -> Option<String> {
    let path = root.path(node_path);
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => pem,
        Err(e) => return Some(format!("{node_path}: {e}")),
    };
    let info = match crate::pki::inspect(&pem) {
        Ok(info) => info,
        Err(e) => return Some(format!("{node_path}: {e}")),
    };
    let now = crate::clock::now();
    if now < info.not_before || now >= info.not_after {
        return Some(format!(
            "{node_path} is valid from {} to {}, not now",
            info.not_before, info.not_after
        ));
    }
    None
}

/// Why the leaf at `files` would not be kept as it is by a run with the CA whose certificate is
/// at `ca_cert` on this node ([`check_reuse_against_cert`]): missing, not fitting `req`, or
/// within [`RENEW_BEFORE`] of expiry. `None` when it would be kept.
pub fn leaf_not_kept(
    root: &Root,
    files: LeafFiles,
    ca_cert: &str,
    req: &LeafRequest,
) -> Option<String> {
    let read = |node_path: &str| std::fs::read_to_string(root.path(node_path));
    let (cert, key, ca) = match (read(files.cert), read(files.key), read(ca_cert)) {
        (Ok(cert), Ok(key), Ok(ca)) => (cert, key, ca),
        (Err(e), _, _) => return Some(format!("{}: {e}", files.cert)),
        (_, Err(e), _) => return Some(format!("{}: {e}", files.key)),
        (_, _, Err(e)) => return Some(format!("{ca_cert}: {e}")),
    };
    match check_reuse_against_cert(&cert, &key, &ca, req, RENEW_BEFORE) {
        Reuse::Keep => None,
        Reuse::Reissue(why) => Some(format!("{}: {why}", files.cert)),
    }
}

/// The file's text, `None` when it does not exist. Bytes that are not UTF-8 are kept (lossily)
/// so that they fail to parse and get replaced.
fn read_optional(root: &Root, node_path: &str) -> Result<Option<String>> {
    let path = root.path(node_path);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::net::IpAddr;

    use super::*;
    use crate::config::Role;
    use crate::pki::inspect;
    use crate::pki::tests::{openssl, server_request};

    #[test]
    fn write_skips_a_file_that_is_already_right() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let path = "/etc/kubernetes/a.conf";
        let mut state = BootState::new("prod", Role::Worker);
        assert!(write(&root, &mut state, path, b"x\n", MODE_SECRET).unwrap());
        assert_eq!(state.files_written, [path]);
        let mut again = BootState::new("prod", Role::Worker);
        assert!(!write(&root, &mut again, path, b"x\n", MODE_SECRET).unwrap());
        assert!(again.files_written.is_empty(), "same contents and mode");
        assert!(write(&root, &mut again, path, b"x\n", MODE_PUBLIC).unwrap());
        assert!(write(&root, &mut again, path, b"y\n", MODE_PUBLIC).unwrap());
        assert_eq!(again.files_written, [path]);
        let on_disk = root.path(path);
        assert_eq!(std::fs::read_to_string(&on_disk).unwrap(), "y\n");
        let mode = std::fs::metadata(&on_disk).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn expected_files_follow_spec_6() {
        assert_eq!(expected(Role::Etcd, false), vec!["/etc/etcd/etcd.env"]);
        assert_eq!(expected(Role::Etcd, true).len(), 6);
        assert!(expected(Role::Master, true).contains(&"/etc/kubernetes/kubelet.conf"));
        assert!(expected(Role::Worker, true).contains(&"/etc/kubernetes/bootstrap-kubelet.conf"));
        assert!(expected(Role::Worker, true).contains(&"/var/lib/kubelet/config.yaml"));
    }

    const SERVER: LeafFiles = LeafFiles {
        cert: "/etc/etcd/pki/server.crt",
        key: "/etc/etcd/pki/server.key",
    };

    /// The reason of the last "issued" decision, when the last decision is one.
    fn issued(state: &BootState) -> Option<&str> {
        state
            .decisions
            .last()
            .filter(|d| d.what == "issued etcd server certificate")
            .map(|d| d.why.as_str())
    }

    #[test]
    fn ensure_leaf_issues_keeps_and_reissues() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let (cert_path, key_path) = (root.path(SERVER.cert), root.path(SERVER.key));
        let ca = Ca::generate("etcd-ca").unwrap();
        let req = server_request();
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let ensure = |req: &LeafRequest| {
            let mut state = BootState::new("prod", Role::Etcd);
            let leaf = ensure_leaf(&root, &mut state, "etcd server", SERVER, &ca, req).unwrap();
            (leaf, state)
        };

        let (first, state) = ensure(&req);
        assert_eq!(issued(&state), Some("no certificate yet"));
        assert_eq!(state.files_written, [SERVER.key, SERVER.cert]);
        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(mode(&cert_path), 0o644);
        assert_eq!(fs::read_to_string(&cert_path).unwrap(), first.cert_pem);
        assert_eq!(fs::read_to_string(&key_path).unwrap(), first.key_pem);
        fs::write(dir.path().join("ca.crt"), ca.cert_pem()).unwrap();
        let verified = openssl(
            dir.path(),
            &["verify", "-CAfile", "ca.crt", cert_path.to_str().unwrap()],
        );
        assert!(verified.trim().ends_with(": OK"), "{verified}");

        let (second, state) = ensure(&req);
        assert_eq!(issued(&state), None);
        assert!(state.files_written.is_empty());
        assert_eq!(second.cert_pem, first.cert_pem);
        assert_eq!(second.key_pem, first.key_pem);

        let mut moved = req.clone();
        moved.ips[0] = "127.0.1.9".parse().unwrap();
        let (third, state) = ensure(&moved);
        assert_eq!(issued(&state), Some("SANs changed: +127.0.1.9 -127.0.1.4"));
        assert_ne!(third.cert_pem, first.cert_pem);
        assert_ne!(third.key_pem, first.key_pem);
        assert_eq!(mode(&key_path), 0o600);
        let info = inspect(&fs::read_to_string(&cert_path).unwrap()).unwrap();
        assert!(info.ips.contains(&"127.0.1.9".parse::<IpAddr>().unwrap()));

        // A lost key means a new pair.
        fs::remove_file(&key_path).unwrap();
        let (_, state) = ensure(&moved);
        assert_eq!(issued(&state), Some("no key yet"));
        let (_, state) = ensure(&moved);
        assert_eq!(issued(&state), None);
    }

    #[test]
    fn ensure_leaf_reports_files_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let ca = Ca::generate("etcd-ca").unwrap();
        // A directory where the certificate should be.
        fs::create_dir_all(root.path(SERVER.cert)).unwrap();
        let mut state = BootState::new("prod", Role::Etcd);
        let err = ensure_leaf(
            &root,
            &mut state,
            "etcd server",
            SERVER,
            &ca,
            &server_request(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("reading "), "{err}");
        assert!(state.files_written.is_empty());
    }
}
