//! The state bucket (SPEC §5): every object under `s3://<state_bucket>/<cluster>/`, read and
//! checked here, and the cluster marker's conditional put. Nothing else builds an S3 key.
//!
//! A fault names the object by its `s3://` URL. Every fault is one a retry may fix (exit 1): an
//! object that cannot be read (missing, denied, the network), and one that is malformed, which
//! may be half-way through an update (Terraform replacing `ca.crt` before `ca.key`). Bad input
//! that no retry fixes (exit 2) is the node's own: its config, its flags.

use std::io::Cursor;

use rcgen::KeyPair;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::aws::{Aws, AwsError};
use crate::backup::catalog::{BackupName, BadMeta, Catalog, Meta, META_FILE, SNAPSHOT_FILE};
use crate::etcd::model::{BadMarker, Marker};
use crate::pki::encryption::{BadEncryptionKey, EncryptionKey};
use crate::pki::token::{BadToken, BootstrapToken};
use crate::pki::{self, Ca, PkiError};

/// The three CAs of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaName {
    /// The cluster CA (`ca`): apiserver, kubelets, clients.
    Cluster,
    /// The etcd CA (`etcd-ca`): etcd peers and clients.
    Etcd,
    /// The front-proxy CA (`front-proxy-ca`): the aggregation layer.
    FrontProxy,
}

impl CaName {
    fn stem(self) -> &'static str {
        match self {
            CaName::Cluster => "ca",
            CaName::Etcd => "etcd-ca",
            CaName::FrontProxy => "front-proxy-ca",
        }
    }
}

/// An object of the cluster in the state bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    CaCert(CaName),
    CaKey(CaName),
    /// The service-account signing key (PKCS#8).
    SaKey,
    /// Its public key (SPKI PEM).
    SaPub,
    /// The kubelet bootstrap token.
    BootstrapToken,
    /// The key the apiserver encrypts Secrets with.
    EncryptionKey,
    /// `etcd/cluster.json`: the marker the seeder writes once.
    Marker,
}

impl Object {
    /// The PKI objects, in the order `pki init --upload` puts them.
    pub const PKI: [Object; 10] = [
        Object::CaCert(CaName::Cluster),
        Object::CaKey(CaName::Cluster),
        Object::CaCert(CaName::Etcd),
        Object::CaKey(CaName::Etcd),
        Object::CaCert(CaName::FrontProxy),
        Object::CaKey(CaName::FrontProxy),
        Object::SaKey,
        Object::SaPub,
        Object::BootstrapToken,
        Object::EncryptionKey,
    ];

    /// The object's path under the cluster's prefix.
    pub fn path(self) -> String {
        match self {
            Object::CaCert(ca) => format!("pki/{}.crt", ca.stem()),
            Object::CaKey(ca) => format!("pki/{}.key", ca.stem()),
            Object::SaKey => "pki/sa.key".into(),
            Object::SaPub => "pki/sa.pub".into(),
            Object::BootstrapToken => "pki/bootstrap-token".into(),
            Object::EncryptionKey => "pki/secrets-encryption-key".into(),
            Object::Marker => "etcd/cluster.json".into(),
        }
    }

    /// The PKI object `pki init` writes to a file of this name, if any.
    pub fn pki_file(name: &str) -> Option<Object> {
        Object::PKI
            .into_iter()
            .find(|o| o.path().strip_prefix("pki/") == Some(name))
    }
}

/// What is wrong with a CA in the bucket.
#[derive(Debug, thiserror::Error)]
pub enum CaFault {
    #[error("{url} is not a usable CA certificate")]
    Cert {
        url: String,
        #[source]
        source: PkiError,
    },
    #[error("{url} is not a usable CA key")]
    Key {
        url: String,
        #[source]
        source: PkiError,
    },
    #[error("{key_url} is not the key of {cert_url}")]
    Mismatch { key_url: String, cert_url: String },
}

/// A state-bucket object that could not be read, or is not what it should be.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("fetching {url}")]
    Fetch {
        url: String,
        #[source]
        source: AwsError,
    },
    #[error("writing {url}")]
    Put {
        url: String,
        #[source]
        source: AwsError,
    },
    #[error("listing {url}")]
    List {
        url: String,
        #[source]
        source: AwsError,
    },
    #[error("deleting expired backups under {url}")]
    Delete {
        url: String,
        #[source]
        source: AwsError,
    },
    #[error("{url} is not a backup description written by tn-agent")]
    NotMeta {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{url} does not describe this backup")]
    BadMeta {
        url: String,
        #[source]
        source: BadMeta,
    },
    #[error("{url} is not PEM text")]
    NotText { url: String },
    #[error("{cert_url} and {key} are not a usable CA")]
    BadCa {
        cert_url: String,
        /// The key's object key (the bucket is named once, in `cert_url`).
        key: String,
        #[source]
        fault: CaFault,
    },
    #[error("{url} is not a CA certificate{why}")]
    NotCaCert {
        url: String,
        why: &'static str,
        #[source]
        source: Option<PkiError>,
    },
    #[error("{url} is not a PKCS#8 private key")]
    BadSaKey { url: String },
    #[error("{url} is not a PEM public key (PUBLIC KEY)")]
    BadSaPub { url: String },
    #[error("{pub_url} is not the public key of {key_url}")]
    SaMismatch { pub_url: String, key_url: String },
    #[error("{url} is malformed")]
    BadEncryptionKey {
        url: String,
        #[source]
        source: BadEncryptionKey,
    },
    #[error("{url} is malformed")]
    BadToken {
        url: String,
        #[source]
        source: BadToken,
    },
    #[error("{url} is not a cluster marker written by tn-agent")]
    NotMarker {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{url} is not a usable cluster marker")]
    BadMarker {
        url: String,
        #[source]
        source: BadMarker,
    },
}

/// The cluster's prefix in its state bucket.
#[derive(Clone, Copy)]
pub struct Store<'a> {
    aws: &'a Aws,
    bucket: &'a str,
    cluster: &'a str,
}

impl<'a> Store<'a> {
    pub fn new(aws: &'a Aws, bucket: &'a str, cluster: &'a str) -> Self {
        Store {
            aws,
            bucket,
            cluster,
        }
    }

    pub fn bucket(&self) -> &str {
        self.bucket
    }

    /// The object's S3 key.
    pub fn key(&self, object: Object) -> String {
        format!("{}/{}", self.cluster, object.path())
    }

    /// The object's `s3://bucket/key` URL, as messages name it.
    pub fn url(&self, object: Object) -> String {
        format!("s3://{}/{}", self.bucket, self.key(object))
    }

    /// Context for any fault reading the cluster's PKI: where it should be and who puts it there.
    pub fn pki_context(&self) -> String {
        format!(
            "reading the cluster's PKI from s3://{}/{}/pki/ (put there by `tn-agent pki init --upload` or Terraform)",
            self.bucket, self.cluster
        )
    }

    async fn get(&self, object: Object) -> Result<Option<Vec<u8>>, StoreError> {
        self.aws
            .get_object(self.bucket, &self.key(object))
            .await
            .map_err(|source| StoreError::Fetch {
                url: self.url(object),
                source,
            })
    }

    /// An object that must exist, as text.
    pub async fn text(&self, object: Object) -> Result<String, StoreError> {
        let bytes = self.get(object).await?.ok_or_else(|| StoreError::Fetch {
            url: self.url(object),
            source: AwsError::NoSuchObject {
                bucket: self.bucket.to_string(),
                key: self.key(object),
            },
        })?;
        String::from_utf8(bytes).map_err(|_| StoreError::NotText {
            url: self.url(object),
        })
    }

    /// A CA, its key in memory only, and the key's text as stored.
    pub async fn ca(&self, name: CaName) -> Result<(Ca, String), StoreError> {
        let (cert, key) = (Object::CaCert(name), Object::CaKey(name));
        let cert_pem = self.text(cert).await?;
        let key_pem = self.text(key).await?;
        match Ca::from_pem(&cert_pem, &key_pem) {
            Ok(ca) => Ok((ca, key_pem)),
            Err(e) => {
                let fault = match e {
                    PkiError::CaKey(_) => CaFault::Key {
                        url: self.url(key),
                        source: e,
                    },
                    PkiError::CaKeyMismatch => CaFault::Mismatch {
                        key_url: self.url(key),
                        cert_url: self.url(cert),
                    },
                    _ => CaFault::Cert {
                        url: self.url(cert),
                        source: e,
                    },
                };
                Err(StoreError::BadCa {
                    cert_url: self.url(cert),
                    key: self.key(key),
                    fault,
                })
            }
        }
    }

    /// A CA certificate alone (what a worker may read): checked to be a CA.
    pub async fn ca_cert(&self, name: CaName) -> Result<String, StoreError> {
        let object = Object::CaCert(name);
        let pem = self.text(object).await?;
        let not_ca = |why, source| StoreError::NotCaCert {
            url: self.url(object),
            why,
            source,
        };
        match pki::inspect(&pem) {
            Ok(info) if info.is_ca => Ok(pem),
            Ok(_) => Err(not_ca(" (basicConstraints CA:TRUE missing)", None)),
            Err(e) => Err(not_ca("", Some(e))),
        }
    }

    /// The service-account key pair, checked to be one: `(private PKCS#8, public SPKI)`.
    pub async fn service_account_keys(&self) -> Result<(String, String), StoreError> {
        let key_pem = self.text(Object::SaKey).await?;
        let pub_pem = self.text(Object::SaPub).await?;
        check_key_pair(&key_pem, &pub_pem).map_err(|problem| match problem {
            SaProblem::Private => StoreError::BadSaKey {
                url: self.url(Object::SaKey),
            },
            SaProblem::Public => StoreError::BadSaPub {
                url: self.url(Object::SaPub),
            },
            SaProblem::Mismatch => StoreError::SaMismatch {
                pub_url: self.url(Object::SaPub),
                key_url: self.url(Object::SaKey),
            },
        })?;
        Ok((key_pem, pub_pem))
    }

    pub async fn bootstrap_token(&self) -> Result<BootstrapToken, StoreError> {
        Ok(self.bootstrap_token_dated().await?.0)
    }

    /// The Secrets encryption key; `None` for a cluster made before `pki init` made one.
    pub async fn encryption_key(&self) -> Result<Option<EncryptionKey>, StoreError> {
        let object = Object::EncryptionKey;
        let Some(bytes) = self.get(object).await? else {
            return Ok(None);
        };
        let url = || self.url(object);
        let text = String::from_utf8(bytes).map_err(|_| StoreError::NotText { url: url() })?;
        text.parse()
            .map(Some)
            .map_err(|source| StoreError::BadEncryptionKey { url: url(), source })
    }

    /// The bootstrap token and when its object was stored (a rotation stores a new one).
    pub async fn bootstrap_token_dated(
        &self,
    ) -> Result<(BootstrapToken, Option<std::time::SystemTime>), StoreError> {
        let object = Object::BootstrapToken;
        let url = || self.url(object);
        let (bytes, stored_at) = self
            .aws
            .get_object_dated(self.bucket, &self.key(object))
            .await
            .map_err(|source| StoreError::Fetch { url: url(), source })?
            .ok_or_else(|| StoreError::Fetch {
                url: url(),
                source: AwsError::NoSuchObject {
                    bucket: self.bucket.to_string(),
                    key: self.key(object),
                },
            })?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::NotText { url: url() })?;
        let token = text
            .parse()
            .map_err(|source| StoreError::BadToken { url: url(), source })?;
        Ok((token, stored_at))
    }

    /// The cluster marker, parsed strictly and checked to be this cluster's; `None` before the
    /// cluster was seeded.
    pub async fn marker(&self) -> Result<Option<Marker>, StoreError> {
        let Some(bytes) = self.get(Object::Marker).await? else {
            return Ok(None);
        };
        let url = || self.url(Object::Marker);
        let marker: Marker = serde_json::from_slice(&bytes)
            .map_err(|source| StoreError::NotMarker { url: url(), source })?;
        marker
            .check(self.cluster)
            .map_err(|source| StoreError::BadMarker { url: url(), source })?;
        Ok(Some(marker))
    }

    /// Writes the marker only if there is none (`If-None-Match: *`): `Ok(false)` when another
    /// node's was there first.
    pub async fn create_marker(&self, marker: &Marker) -> Result<bool, StoreError> {
        let body = serde_json::to_vec_pretty(marker).expect("marker serialises");
        self.put_if_absent(Object::Marker, body).await
    }

    /// The folder all backups are under: `<cluster>/etcd/backups/`.
    pub fn backups_prefix(&self) -> String {
        format!("{}/etcd/backups/", self.cluster)
    }

    /// The S3 key of one file of a backup.
    pub fn backup_key(&self, name: &BackupName, file: &str) -> String {
        format!("{}{name}/{file}", self.backups_prefix())
    }

    /// The `s3://` URL of one file of a backup.
    pub fn backup_url(&self, name: &BackupName, file: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.backup_key(name, file))
    }

    /// The backups in the bucket (one listing of the backups folder).
    pub async fn backups(&self) -> Result<Catalog, StoreError> {
        let prefix = self.backups_prefix();
        let keys = self
            .aws
            .list_keys(self.bucket, &prefix)
            .await
            .map_err(|source| StoreError::List {
                url: format!("s3://{}/{prefix}", self.bucket),
                source,
            })?;
        Ok(Catalog::from_relative_keys(
            keys.iter().filter_map(|(k, _)| k.strip_prefix(&prefix)),
        ))
    }

    /// A backup's `meta.json`, parsed strictly and checked to be this cluster's and the
    /// folder's; `None` when the backup does not exist (no meta.json).
    pub async fn backup_meta(&self, name: &BackupName) -> Result<Option<Meta>, StoreError> {
        let url = || self.backup_url(name, META_FILE);
        let Some(bytes) = self
            .aws
            .get_object(self.bucket, &self.backup_key(name, META_FILE))
            .await
            .map_err(|source| StoreError::Fetch { url: url(), source })?
        else {
            return Ok(None);
        };
        let meta: Meta = serde_json::from_slice(&bytes)
            .map_err(|source| StoreError::NotMeta { url: url(), source })?;
        meta.check(self.cluster, name)
            .map_err(|source| StoreError::BadMeta { url: url(), source })?;
        Ok(Some(meta))
    }

    /// Writes a backup's `meta.json` (last, after its snapshot).
    pub async fn put_backup_meta(&self, name: &BackupName, meta: &Meta) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(meta).expect("meta serialises");
        self.aws
            .put_object(self.bucket, &self.backup_key(name, META_FILE), body)
            .await
            .map_err(|source| StoreError::Put {
                url: self.backup_url(name, META_FILE),
                source,
            })
    }

    /// Deletes backups: each one's `meta.json` first, so that a backup is gone for every
    /// reader before its snapshot is.
    pub async fn delete_backups(&self, names: &[BackupName]) -> Result<(), StoreError> {
        for file in [META_FILE, SNAPSHOT_FILE] {
            let keys: Vec<String> = names.iter().map(|n| self.backup_key(n, file)).collect();
            self.aws
                .delete_keys(self.bucket, &keys)
                .await
                .map_err(|source| StoreError::Delete {
                    url: format!("s3://{}/{}", self.bucket, self.backups_prefix()),
                    source,
                })?;
        }
        Ok(())
    }

    /// Deletes a backup's snapshot alone (one whose meta.json could not be written).
    pub async fn delete_snapshot(&self, name: &BackupName) -> Result<(), StoreError> {
        self.aws
            .delete_keys(self.bucket, &[self.backup_key(name, SNAPSHOT_FILE)])
            .await
            .map_err(|source| StoreError::Delete {
                url: self.backup_url(name, SNAPSHOT_FILE),
                source,
            })
    }

    /// The cluster marker with its ETag, for a conditional replacement; `None` before the
    /// cluster was seeded.
    pub async fn marker_tagged(&self) -> Result<Option<(Marker, String)>, StoreError> {
        let url = || self.url(Object::Marker);
        let Some((bytes, etag)) = self
            .aws
            .get_object_tagged(self.bucket, &self.key(Object::Marker))
            .await
            .map_err(|source| StoreError::Fetch { url: url(), source })?
        else {
            return Ok(None);
        };
        let marker: Marker = serde_json::from_slice(&bytes)
            .map_err(|source| StoreError::NotMarker { url: url(), source })?;
        marker
            .check(self.cluster)
            .map_err(|source| StoreError::BadMarker { url: url(), source })?;
        Ok(Some((marker, etag)))
    }

    /// Replaces the marker only if its ETag is still `etag`: `Ok(false)` when it changed since.
    pub async fn replace_marker(&self, marker: &Marker, etag: &str) -> Result<bool, StoreError> {
        let body = serde_json::to_vec_pretty(marker).expect("marker serialises");
        self.aws
            .put_object_if_match(self.bucket, &self.key(Object::Marker), body, etag)
            .await
            .map_err(|source| StoreError::Put {
                url: self.url(Object::Marker),
                source,
            })
    }

    /// Whether the object exists.
    pub async fn exists(&self, object: Object) -> Result<bool, StoreError> {
        self.aws
            .object_exists(self.bucket, &self.key(object))
            .await
            .map_err(|source| StoreError::Fetch {
                url: self.url(object),
                source,
            })
    }

    /// Writes the object, replacing what is there.
    pub async fn put(&self, object: Object, body: Vec<u8>) -> Result<(), StoreError> {
        self.aws
            .put_object(self.bucket, &self.key(object), body)
            .await
            .map_err(|source| StoreError::Put {
                url: self.url(object),
                source,
            })
    }

    /// Writes the object only if there is none: `Ok(false)` when one was there.
    pub async fn put_if_absent(&self, object: Object, body: Vec<u8>) -> Result<bool, StoreError> {
        self.aws
            .put_object_if_absent(self.bucket, &self.key(object), body)
            .await
            .map_err(|source| StoreError::Put {
                url: self.url(object),
                source,
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
    fn every_object_has_its_spec_key() {
        let keys: Vec<String> = Object::PKI
            .iter()
            .chain([&Object::Marker])
            .map(|o| o.path())
            .collect();
        assert_eq!(
            keys,
            [
                "pki/ca.crt",
                "pki/ca.key",
                "pki/etcd-ca.crt",
                "pki/etcd-ca.key",
                "pki/front-proxy-ca.crt",
                "pki/front-proxy-ca.key",
                "pki/sa.key",
                "pki/sa.pub",
                "pki/bootstrap-token",
                "pki/secrets-encryption-key",
                "etcd/cluster.json",
            ]
        );
        assert_eq!(Object::pki_file("sa.pub"), Some(Object::SaPub));
        assert_eq!(Object::pki_file("admin.key"), None);
    }

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
