//! The cluster's PKI objects from the state bucket (SPEC §5), fetched and checked before the node
//! writes anything. A missing or unreadable object is a failure a retry may fix (exit 1); a
//! malformed one is bad input (exit 2). Either way the message names the S3 key.

use std::io::Cursor;

use anyhow::{Context, Result};
use rcgen::KeyPair;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::aws::Aws;
use crate::etcd::tls::pki_key;
use crate::exit::BadInput;
use crate::pki::token::{BadToken, BootstrapToken};
use crate::pki::{self, Ca, PkiError};

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
    pub async fn fetch(aws: &Aws, bucket: &str, cluster: &str, etcd_tls: bool) -> Result<Self> {
        let b = Bucket {
            aws,
            bucket,
            cluster,
        };
        let (cluster_ca, cluster_ca_key_pem) = b.ca("ca").await?;
        let etcd_ca = match etcd_tls {
            true => Some(b.ca("etcd-ca").await?.0),
            false => None,
        };
        let (front_proxy_ca, _) = b.ca("front-proxy-ca").await?;
        let sa_key_pem = b.text("sa.key").await?;
        let sa_pub_pem = b.text("sa.pub").await?;
        check_key_pair(&sa_key_pem, &sa_pub_pem).map_err(|e| {
            let what = match e {
                SaProblem::Private => format!("{} is not a PKCS#8 private key", b.url("sa.key")),
                SaProblem::Public => {
                    format!("{} is not a PEM public key (PUBLIC KEY)", b.url("sa.pub"))
                }
                SaProblem::Mismatch => format!(
                    "{} is not the public key of {}",
                    b.url("sa.pub"),
                    b.url("sa.key")
                ),
            };
            anyhow::Error::new(BadInput(what))
        })?;
        let token = b.token().await?;
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
    pub async fn fetch(aws: &Aws, bucket: &str, cluster: &str) -> Result<Self> {
        let b = Bucket {
            aws,
            bucket,
            cluster,
        };
        let ca_pem = b.text("ca.crt").await?;
        let not_ca =
            |why: &str| BadInput(format!("{} is not a CA certificate{why}", b.url("ca.crt")));
        match pki::inspect(&ca_pem) {
            Ok(info) if info.is_ca => {}
            Ok(_) => return Err(not_ca(" (basicConstraints CA:TRUE missing)").into()),
            Err(e) => return Err(anyhow::Error::new(e).context(not_ca(""))),
        }
        let token = b.token().await?;
        Ok(WorkerPki { ca_pem, token })
    }
}

/// The cluster's PKI prefix in the state bucket.
struct Bucket<'a> {
    aws: &'a Aws,
    bucket: &'a str,
    cluster: &'a str,
}

impl Bucket<'_> {
    fn url(&self, name: &str) -> String {
        format!("s3://{}/{}", self.bucket, pki_key(self.cluster, name))
    }

    /// An object that must exist, as text.
    async fn text(&self, name: &str) -> Result<String> {
        let key = pki_key(self.cluster, name);
        let bytes = self
            .aws
            .get_required(self.bucket, &key)
            .await
            .with_context(|| format!("fetching {}", self.url(name)))?;
        String::from_utf8(bytes)
            .map_err(|_| BadInput(format!("{} is not PEM text", self.url(name))).into())
    }

    /// The CA `<name>.crt` + `<name>.key`, and the key's text.
    async fn ca(&self, name: &str) -> Result<(Ca, String)> {
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        let cert_pem = self.text(&crt).await?;
        let key_pem = self.text(&key).await?;
        match Ca::from_pem(&cert_pem, &key_pem) {
            Ok(ca) => Ok((ca, key_pem)),
            Err(e) => {
                let what = match &e {
                    PkiError::CaKey(_) => format!("{} is not a usable CA key", self.url(&key)),
                    PkiError::CaKeyMismatch => {
                        format!("{} is not the key of {}", self.url(&key), self.url(&crt))
                    }
                    _ => format!("{} is not a usable CA certificate", self.url(&crt)),
                };
                Err(anyhow::Error::new(e).context(BadInput(what)))
            }
        }
    }

    async fn token(&self) -> Result<BootstrapToken> {
        let name = "bootstrap-token";
        let text = self.text(name).await?;
        text.parse().map_err(|e: BadToken| {
            anyhow::Error::new(e).context(BadInput(format!("{} is malformed", self.url(name))))
        })
    }
}

/// What is wrong with a service-account key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SaProblem {
    Private,
    Public,
    Mismatch,
}

/// Checks that `key_pem` is a PKCS#8 private key and `pub_pem` its public key (SPKI PEM).
fn check_key_pair(key_pem: &str, pub_pem: &str) -> Result<(), SaProblem> {
    let block = |pem: &str, label: &str| {
        Pem::read(Cursor::new(pem.as_bytes()))
            .ok()
            .filter(|(p, _)| p.label == label)
            .map(|(p, _)| p.contents)
    };
    let key_der = block(key_pem, "PRIVATE KEY").ok_or(SaProblem::Private)?;
    let key = KeyPair::try_from(key_der.as_slice()).map_err(|_| SaProblem::Private)?;
    let pub_der = block(pub_pem, "PUBLIC KEY").ok_or(SaProblem::Public)?;
    let (_, spki) = SubjectPublicKeyInfo::from_der(&pub_der).map_err(|_| SaProblem::Public)?;
    if spki.subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(SaProblem::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_key_pair_is_checked() {
        let one = KeyPair::generate().unwrap();
        let two = KeyPair::generate().unwrap();
        let (key, public) = (one.serialize_pem(), one.public_key_pem());
        assert_eq!(check_key_pair(&key, &public), Ok(()));
        assert_eq!(
            check_key_pair(&key, &two.public_key_pem()),
            Err(SaProblem::Mismatch)
        );
        assert_eq!(check_key_pair("junk", &public), Err(SaProblem::Private));
        assert_eq!(check_key_pair(&public, &public), Err(SaProblem::Private));
        assert_eq!(check_key_pair(&key, &key), Err(SaProblem::Public));
        let truncated = &public[..public.len() / 2];
        assert_eq!(check_key_pair(&key, truncated), Err(SaProblem::Public));
    }
}
