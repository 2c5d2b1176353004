//! What a master and a worker read from the state bucket, all fetched and checked (by
//! [`crate::store`]) before the node writes anything.

use crate::pki::encryption::EncryptionKey;
use crate::pki::token::BootstrapToken;
use crate::pki::Ca;
use crate::store::{CaName, Store, StoreError};

/// What a master reads: three CAs (keys in memory), the service-account key pair and the
/// bootstrap token.
pub struct MasterPki {
    pub cluster_ca: Ca,
    /// The cluster CA key as stored, for the controller-manager's CSR signer.
    pub cluster_ca_key_pem: String,
    /// `None` when etcd runs without TLS.
    pub etcd_ca: Option<Ca>,
    pub front_proxy_ca: Ca,
    pub sa_key_pem: String,
    pub sa_pub_pem: String,
    pub token: BootstrapToken,
    /// The Secrets encryption key; `None` for a cluster whose PKI predates it.
    pub encryption_key: Option<EncryptionKey>,
    /// When the token's object was stored: its Secret expires [`TOKEN_LIFETIME`] after.
    pub token_stored_at: Option<std::time::SystemTime>,
}

/// How long a bootstrap token's Secret is valid after the token was stored in the bucket;
/// `pki init --rotate-bootstrap-token` stores a new one (docs/pki.md).
pub const TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// What a worker reads: the cluster CA certificate and the bootstrap token. Never a CA key.
pub struct WorkerPki {
    pub ca_pem: String,
    pub token: BootstrapToken,
}

impl MasterPki {
    pub async fn fetch(store: &Store<'_>, etcd_tls: bool) -> Result<Self, StoreError> {
        let (cluster_ca, cluster_ca_key_pem) = store.ca(CaName::Cluster).await?;
        let etcd_ca = match etcd_tls {
            true => Some(store.ca(CaName::Etcd).await?.0),
            false => None,
        };
        let (front_proxy_ca, _) = store.ca(CaName::FrontProxy).await?;
        let (sa_key_pem, sa_pub_pem) = store.service_account_keys().await?;
        let (token, token_stored_at) = store.bootstrap_token_dated().await?;
        let encryption_key = store.encryption_key().await?;
        Ok(MasterPki {
            cluster_ca,
            cluster_ca_key_pem,
            etcd_ca,
            front_proxy_ca,
            sa_key_pem,
            sa_pub_pem,
            token,
            encryption_key,
            token_stored_at,
        })
    }
}

impl WorkerPki {
    pub async fn fetch(store: &Store<'_>) -> Result<Self, StoreError> {
        let ca_pem = store.ca_cert(CaName::Cluster).await?;
        let token = store.bootstrap_token().await?;
        Ok(WorkerPki { ca_pem, token })
    }
}
