//! The etcd node's certificates: the etcd CA from the state bucket (its key in memory only),
//! server and peer leaves generated and signed here (SPEC §6).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result};

use super::client::ClientTls;
use super::env::TlsFiles;
use crate::files;
use crate::fsutil::{self, Root};
use crate::identity::NodeIdentity;
use crate::pki::{self, LeafOutcome, LeafRequest, Usage};
use crate::state::BootState;
use crate::store::{CaName, Store};

/// Leaves are reissued this long before they expire.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The SANs of a node's etcd certificates: its private IP, its hostnames, 127.0.0.1 and
/// localhost (etcd checks a peer's client cert against the connection's source address, which
/// on loopback is 127.0.0.1).
pub fn leaf_request(me: &NodeIdentity, usages: Vec<Usage>) -> LeafRequest {
    let mut dns_names = vec![me.hostname.clone()];
    if let Some((short, _)) = me.hostname.split_once('.') {
        dns_names.push(short.to_string());
    }
    dns_names.push("localhost".into());
    dns_names.dedup();
    let mut ips = vec![IpAddr::V4(me.private_ip)];
    if !me.private_ip.is_loopback() || me.private_ip.octets() != [127, 0, 0, 1] {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    LeafRequest {
        common_name: me.instance_id.clone(),
        organization: None,
        dns_names,
        ips,
        usages,
    }
}

/// Fetches the etcd CA, writes `ca.crt`, and makes sure the server and peer certificates exist
/// and fit (kept when still valid for this node, reissued otherwise).
pub async fn prepare(
    store: &Store<'_>,
    root: &Root,
    me: &NodeIdentity,
    state: &mut BootState,
) -> Result<(ClientTls, TlsFiles)> {
    let (ca, _) = store
        .ca(CaName::Etcd)
        .await
        .with_context(|| store.pki_context())?;
    let tls_files = TlsFiles {
        ca: root.path(files::ETCD_NODE_CA),
        server_cert: root.path(files::ETCD_SERVER.cert),
        server_key: root.path(files::ETCD_SERVER.key),
        peer_cert: root.path(files::ETCD_PEER.cert),
        peer_key: root.path(files::ETCD_PEER.key),
    };
    files::write(
        root,
        state,
        files::ETCD_NODE_CA,
        ca.cert_pem().as_bytes(),
        fsutil::MODE_PUBLIC,
    )?;
    let both = vec![Usage::ServerAuth, Usage::ClientAuth];
    for (what, cert, key) in [
        ("server", &tls_files.server_cert, &tls_files.server_key),
        ("peer", &tls_files.peer_cert, &tls_files.peer_key),
    ] {
        let outcome = pki::ensure_leaf(
            cert,
            key,
            &ca,
            &leaf_request(me, both.clone()),
            RENEW_BEFORE,
        )
        .with_context(|| format!("making the etcd {what} certificate"))?;
        match outcome {
            LeafOutcome::Kept => tracing::debug!("kept the etcd {what} certificate"),
            LeafOutcome::Issued { why } => {
                state.decide(format!("issued etcd {what} certificate"), why);
                state.wrote(root, cert);
                state.wrote(root, key);
            }
        }
    }
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let client = ClientTls {
        ca_pem: ca.cert_pem().to_string(),
        cert_pem: read(&tls_files.server_cert)?,
        key_pem: read(&tls_files.server_key)?,
    };
    Ok((client, tls_files))
}
