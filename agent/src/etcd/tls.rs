//! The etcd node's certificates: the etcd CA from the state bucket (its key in memory only),
//! server and peer leaves generated and signed here (SPEC §6).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result};

use super::client::ClientTls;
use super::env::{TlsFiles, PKI_DIR};
use crate::aws::Aws;
use crate::exit::BadInput;
use crate::fsutil::{self, Root};
use crate::identity::NodeIdentity;
use crate::pki::{self, Ca, LeafOutcome, LeafRequest, Usage};
use crate::state::BootState;

/// Leaves are reissued this long before they expire.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// S3 key of a PKI object of the cluster.
pub fn pki_key(cluster: &str, name: &str) -> String {
    format!("{cluster}/pki/{name}")
}

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
    aws: &Aws,
    bucket: &str,
    cluster: &str,
    root: &Root,
    me: &NodeIdentity,
    state: &mut BootState,
) -> Result<(ClientTls, TlsFiles)> {
    let ca = load_ca(aws, bucket, cluster, "etcd-ca").await?;
    let files = TlsFiles {
        ca: root.path(format!("{PKI_DIR}/ca.crt")),
        server_cert: root.path(format!("{PKI_DIR}/server.crt")),
        server_key: root.path(format!("{PKI_DIR}/server.key")),
        peer_cert: root.path(format!("{PKI_DIR}/peer.crt")),
        peer_key: root.path(format!("{PKI_DIR}/peer.key")),
    };
    fsutil::write_atomic(&files.ca, ca.cert_pem().as_bytes(), fsutil::MODE_PUBLIC)
        .with_context(|| format!("writing {}", files.ca.display()))?;
    state.wrote(root, &files.ca);
    let both = vec![Usage::ServerAuth, Usage::ClientAuth];
    for (what, cert, key) in [
        ("server", &files.server_cert, &files.server_key),
        ("peer", &files.peer_cert, &files.peer_key),
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
        cert_pem: read(&files.server_cert)?,
        key_pem: read(&files.server_key)?,
    };
    Ok((client, files))
}

/// A CA from the state bucket: `<name>.crt` and `<name>.key`, the key kept in memory only.
pub async fn load_ca(aws: &Aws, bucket: &str, cluster: &str, name: &str) -> Result<Ca> {
    let cert_key = pki_key(cluster, &format!("{name}.crt"));
    let key_key = pki_key(cluster, &format!("{name}.key"));
    let cert = aws
        .get_required(bucket, &cert_key)
        .await
        .context("fetching the CA certificate (create the cluster's PKI first: `tn-agent pki init --upload` or Terraform)")?;
    let key = aws
        .get_required(bucket, &key_key)
        .await
        .context("fetching the CA key")?;
    let text = |bytes: Vec<u8>, key: &str| {
        String::from_utf8(bytes)
            .map_err(|_| BadInput(format!("s3://{bucket}/{key} is not PEM text")))
    };
    let (cert, key) = (text(cert, &cert_key)?, text(key, &key_key)?);
    Ca::from_pem(&cert, &key).map_err(|e| {
        anyhow::Error::new(e).context(BadInput(format!(
            "s3://{bucket}/{cert_key} and {key_key} are not a usable CA"
        )))
    })
}
