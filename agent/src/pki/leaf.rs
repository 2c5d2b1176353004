//! Leaf files on the node: [`ensure_leaf`] keeps a fitting key and certificate or writes new
//! ones, and [`generate_key_pair`] makes key pairs used outside X.509.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};

use super::{check_reuse, Ca, LeafRequest, PkiError, Reuse};
use crate::fsutil::{self, MODE_PUBLIC, MODE_SECRET};

/// What [`ensure_leaf`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafOutcome {
    Kept,
    /// `why` is "no certificate yet", "no key yet" or the [`Reuse::Reissue`] reason.
    Issued {
        why: String,
    },
}

/// Ensures the leaf files exist and fit: keeps them when [`check_reuse`] says Keep, else issues
/// a new one and writes key (0600) then cert (0644), each atomically. Writing the key first
/// means a crash in between leaves a cert that does not match its key, which the next run
/// reissues. Logs an event when it issues.
pub fn ensure_leaf(
    cert_path: &Path,
    key_path: &Path,
    ca: &Ca,
    req: &LeafRequest,
    renew_before: Duration,
) -> Result<LeafOutcome, PkiError> {
    let cert = read_optional(cert_path)?;
    let key = read_optional(key_path)?;
    let why = match (cert, key) {
        (None, _) => "no certificate yet".to_string(),
        (Some(_), None) => "no key yet".to_string(),
        (Some(cert), Some(key)) => match check_reuse(&cert, &key, ca, req, renew_before) {
            Reuse::Keep => return Ok(LeafOutcome::Kept),
            Reuse::Reissue(why) => why,
        },
    };
    let leaf = ca.issue(req)?;
    write(key_path, &leaf.key_pem, MODE_SECRET)?;
    write(cert_path, &leaf.cert_pem, MODE_PUBLIC)?;
    tracing::info!(
        cn = %req.common_name,
        cert = %cert_path.display(),
        reason = %why,
        "issued certificate"
    );
    Ok(LeafOutcome::Issued { why })
}

/// The file's contents, `None` when it does not exist. Bytes that are not UTF-8 are kept
/// (lossily) so that they fail to parse and get replaced.
fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    fsutil::write_atomic(path, contents.as_bytes(), mode).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Clone)]
pub struct KeyPairPem {
    /// PKCS#8 (`PRIVATE KEY`).
    pub private_pem: String,
    /// SubjectPublicKeyInfo (`PUBLIC KEY`).
    pub public_pem: String,
}

impl fmt::Debug for KeyPairPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPairPem")
            .field("private_pem", &"[elided]")
            .field("public_pem", &self.public_pem)
            .finish()
    }
}

/// A new ECDSA P-256 key pair, e.g. the service-account token signing key (`sa.key`/`sa.pub`).
pub fn generate_key_pair() -> Result<KeyPairPem, PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(PkiError::Generate)?;
    Ok(KeyPairPem {
        private_pem: key.serialize_pem(),
        public_pem: key.public_key_pem(),
    })
}
