//! Key pairs used outside X.509 ([`generate_key_pair`]). Leaf files on a node are kept or
//! issued by [`crate::files::ensure_leaf`].

use std::fmt;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};

use super::PkiError;

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
