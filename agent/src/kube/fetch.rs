//! What a master and a worker read from the state bucket, all fetched and checked (by
//! [`crate::store`]) before the node writes anything; and the bootstrap token's format.

use std::fmt;
use std::str::FromStr;

use crate::pki::Ca;
use crate::store::{CaName, Store, StoreError};

/// A kubelet bootstrap token, `<id>.<secret>`: 6 then 16 characters from `a-z0-9`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

impl BootstrapToken {
    /// The public half: names the token's Secret, `bootstrap-token-<id>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The whole token, as a kubelet sends it.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.[elided])", self.id)
    }
}

/// Why a bootstrap token was refused; never shows the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a bootstrap token: expected <6 of a-z0-9>.<16 of a-z0-9> on one line")]
pub struct BadToken;

impl FromStr for BootstrapToken {
    type Err = BadToken;

    /// Surrounding whitespace (a trailing newline) is ignored.
    fn from_str(s: &str) -> Result<Self, BadToken> {
        let (id, secret) = s.trim().split_once('.').ok_or(BadToken)?;
        let part_ok = |p: &str, len: usize| {
            p.len() == len
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        if !(part_ok(id, 6) && part_ok(secret, 16)) {
            return Err(BadToken);
        }
        Ok(BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }
}

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
}

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
        let token = store.bootstrap_token().await?;
        Ok(MasterPki {
            cluster_ca,
            cluster_ca_key_pem,
            etcd_ca,
            front_proxy_ca,
            sa_key_pem,
            sa_pub_pem,
            token,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_tokens_have_the_kubernetes_format() {
        let t: BootstrapToken = "abcdef.0123456789abcdef\n".parse().unwrap();
        assert_eq!(t.id(), "abcdef");
        assert_eq!(t.secret(), "0123456789abcdef");
        assert_eq!(t.token(), "abcdef.0123456789abcdef");
        assert_eq!(format!("{t:?}"), "BootstrapToken(abcdef.[elided])");
        for bad in [
            "",
            "abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdefg",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef0",
            "abcdef.0123456789abcdef.x",
            "abcdef.0123456789abcdef\nsecond line",
        ] {
            assert_eq!(bad.parse::<BootstrapToken>(), Err(BadToken), "{bad:?}");
        }
        // The error never shows what was given.
        assert!(!BadToken.to_string().contains("0123"));
    }
}
