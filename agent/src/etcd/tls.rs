//! The etcd node's certificates: the etcd CA from the state bucket (its key in memory only),
//! server and peer leaves generated and signed here (SPEC §6).

use std::net::IpAddr;

use anyhow::{Context, Result};

use super::client::ClientTls;
use super::env::TlsFiles;
use crate::files;
use crate::fsutil::{self, Root};
use crate::identity::NodeIdentity;
use crate::pki::{Ca, LeafRequest, Usage};
use crate::state::BootState;
use crate::store::{CaName, Store};

/// The usages of both etcd leaves: `server.crt` also serves as a client certificate (an operator's
/// `etcdctl` on the node, tn-agent itself).
pub const USAGES: [Usage; 2] = [Usage::ServerAuth, Usage::ClientAuth];

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
    let ca = fetch_ca(store).await?;
    write(&ca, root, me, state)
}

/// The etcd CA from the state bucket (its key in memory only).
pub async fn fetch_ca(store: &Store<'_>) -> Result<Ca> {
    let (ca, _) = store
        .ca(CaName::Etcd)
        .await
        .with_context(|| store.pki_context())?;
    Ok(ca)
}

/// Writes `ca.crt` and makes sure the server and peer certificates exist and fit (kept when
/// still valid for this node, reissued otherwise).
pub fn write(
    ca: &Ca,
    root: &Root,
    me: &NodeIdentity,
    state: &mut BootState,
) -> Result<(ClientTls, TlsFiles)> {
    let tls_files = node_files(root);
    files::write(
        root,
        state,
        files::ETCD_NODE_CA,
        ca.cert_pem().as_bytes(),
        fsutil::MODE_PUBLIC,
    )?;
    let request = leaf_request(me, USAGES.to_vec());
    let server = files::ensure_leaf(root, state, "etcd server", files::ETCD_SERVER, ca, &request)?;
    files::ensure_leaf(root, state, "etcd peer", files::ETCD_PEER, ca, &request)?;
    let client = ClientTls {
        ca_pem: ca.cert_pem().to_string(),
        cert_pem: server.cert_pem,
        key_pem: server.key_pem,
    };
    Ok((client, tls_files))
}

/// Where the node's etcd TLS files are, as the env file names them.
pub fn node_files(root: &Root) -> TlsFiles {
    TlsFiles {
        ca: root.path(files::ETCD_NODE_CA),
        server_cert: root.path(files::ETCD_SERVER.cert),
        server_key: root.path(files::ETCD_SERVER.key),
        peer_cert: root.path(files::ETCD_PEER.cert),
        peer_key: root.path(files::ETCD_PEER.key),
    }
}
