//! A master's apiserver and the client certificates it started with. The apiserver reads its
//! client certificates (for etcd, the kubelets, the front proxy) only at start; its static pod's
//! manifest carries their SHA-256 ([`CLIENT_CERTS_MARK`]), set by bootstrap. After reconcile
//! renews them the mark is out of date, and the reboot manager restarts the apiserver through the
//! master group's lock by setting it again (the kubelet restarts a static pod whose manifest
//! changed), then waits for the mirror pod to carry the new mark and be Ready
//! (`reboot/watch.rs`).

use anyhow::{Context, Result};

use super::render;
use crate::files;
use crate::fsutil::Root;

/// The annotation on the apiserver's static pod: the SHA-256 of the client certificates it reads
/// only at start.
pub const CLIENT_CERTS_MARK: &str = "tn-agent/client-certs-sha256";

/// The client certificates the apiserver reads only at start.
const APISERVER_CLIENT_CERTS: [&str; 3] = [
    files::APISERVER_ETCD_CLIENT.cert,
    files::APISERVER_KUBELET_CLIENT.cert,
    files::FRONT_PROXY_CLIENT.cert,
];

/// [`CLIENT_CERTS_MARK`] of the apiserver's client certificates on disk (those present: the
/// etcd one only with etcd TLS).
pub fn client_certs_mark(root: &Root) -> Result<String> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for cert in APISERVER_CLIENT_CERTS {
        let file = root.path(cert);
        match std::fs::read(&file) {
            Ok(bytes) => {
                hash.update(cert.as_bytes());
                hash.update([0]);
                hash.update(&bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        }
    }
    Ok(hex::encode(hash.finalize()))
}

/// The apiserver's manifest with [`CLIENT_CERTS_MARK`] set to the certificates on disk,
/// when it is not already: `Some(text)` means the apiserver runs with older client
/// certificates than the node has, and writing `text` makes the kubelet restart it. `None`
/// also when there is no manifest (no apiserver on this node).
pub fn remarked_manifest(root: &Root) -> Result<Option<String>> {
    let file = root.path(files::APISERVER_MANIFEST);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let mark = client_certs_mark(root)?;
    let current = render::annotation(&text, CLIENT_CERTS_MARK)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if current.as_deref() == Some(mark.as_str()) {
        return Ok(None);
    }
    render::with_annotation(&text, CLIENT_CERTS_MARK, &mark)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// The mark the apiserver's manifest carries now.
pub fn manifest_mark(root: &Root) -> Result<Option<String>> {
    let file = root.path(files::APISERVER_MANIFEST);
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    render::annotation(&text, CLIENT_CERTS_MARK)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// The mirror pod's name of the apiserver's static pod on Node `node_name` (the kubelet
/// names it `<pod>-<node>`).
pub fn mirror_pod_name(node_name: &str) -> String {
    format!("kube-apiserver-{node_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n\
                            spec:\n  containers:\n  - name: kube-apiserver\n";

    fn write(root: &Root, path: &str, text: &str) {
        let file = root.path(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    #[test]
    fn a_restart_is_wanted_exactly_when_the_certificates_are_not_the_marked_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        // No apiserver on this node.
        assert_eq!(remarked_manifest(&root).unwrap(), None);
        write(&root, files::APISERVER_KUBELET_CLIENT.cert, "one");
        write(&root, files::FRONT_PROXY_CLIENT.cert, "two");
        let first = client_certs_mark(&root).unwrap();
        // A manifest without the mark (an older agent wrote it): marked now.
        write(&root, files::APISERVER_MANIFEST, MANIFEST);
        let marked = remarked_manifest(&root).unwrap().expect("a mark to set");
        assert_eq!(
            render::annotation(&marked, CLIENT_CERTS_MARK).unwrap(),
            Some(first.clone())
        );
        write(&root, files::APISERVER_MANIFEST, &marked);
        assert_eq!(remarked_manifest(&root).unwrap(), None);
        assert_eq!(manifest_mark(&root).unwrap(), Some(first.clone()));
        // One certificate renewed: another mark, and a restart wanted.
        write(&root, files::FRONT_PROXY_CLIENT.cert, "two, renewed");
        assert_ne!(client_certs_mark(&root).unwrap(), first);
        assert!(remarked_manifest(&root).unwrap().is_some());
        // A certificate that appears (etcd TLS turned on) changes the mark too.
        write(&root, files::FRONT_PROXY_CLIENT.cert, "two");
        assert_eq!(client_certs_mark(&root).unwrap(), first);
        write(&root, files::APISERVER_ETCD_CLIENT.cert, "three");
        assert_ne!(client_certs_mark(&root).unwrap(), first);
    }

    #[test]
    fn a_manifest_that_is_not_a_pod_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        write(&root, files::APISERVER_MANIFEST, "kind: Deployment\n");
        let e = remarked_manifest(&root).unwrap_err();
        assert!(
            format!("{e:#}").contains("kube-apiserver.yaml: not a Pod"),
            "{e:#}"
        );
    }
}
