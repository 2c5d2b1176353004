//! The key the apiserver encrypts Secrets with at rest (`--encryption-provider-config`): 32
//! random bytes, stored base64 on one line as `pki/secrets-encryption-key` (SPEC §5, made by `pki
//! init`). Neither its Debug nor its parse error shows the key.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use rand::RngCore;

/// The key's length: secretbox (XSalsa20-Poly1305) takes 32 bytes.
const KEY_LEN: usize = 32;

/// The name the key has in the EncryptionConfiguration; it is written into every encrypted
/// value (`k8s:enc:secretbox:v1:<name>:`), so a later rotation adds keys with other names.
pub const KEY_NAME: &str = "tn-1";

#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey([u8; KEY_LEN]);

impl EncryptionKey {
    pub fn generate(rng: &mut impl RngCore) -> Self {
        let mut key = [0u8; KEY_LEN];
        rng.fill_bytes(&mut key);
        EncryptionKey(key)
    }

    /// The key as the object and the EncryptionConfiguration hold it.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey([elided])")
    }
}

/// Why an encryption key was refused; never shows the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an encryption key: expected the base64 of 32 bytes on one line")]
pub struct BadEncryptionKey;

impl FromStr for EncryptionKey {
    type Err = BadEncryptionKey;

    /// One line of base64 (a final newline allowed) decoding to exactly 32 bytes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let line = s.strip_suffix('\n').unwrap_or(s);
        if line.contains(['\n', '\r', ' ']) {
            return Err(BadEncryptionKey);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .map_err(|_| BadEncryptionKey)?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| BadEncryptionKey)?;
        Ok(EncryptionKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_and_bad_ones_are_refused_without_showing_them() {
        let key = EncryptionKey::generate(&mut rand::rng());
        let text = format!("{}\n", key.base64());
        assert_eq!(text.parse::<EncryptionKey>().unwrap(), key);
        assert_eq!(format!("{key:?}"), "EncryptionKey([elided])");
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        for bad in [short.as_str(), "not base64!", "", "AAAA\nAAAA"] {
            assert_eq!(
                bad.parse::<EncryptionKey>(),
                Err(BadEncryptionKey),
                "{bad:?}"
            );
        }
    }
}
