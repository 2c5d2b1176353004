//! The kubelet TLS bootstrap token, `<id>.<secret>`: 6 then 16 characters from `a-z0-9`.
//! `pki init` generates it, the nodes read it back from the state bucket (SPEC §5). Neither
//! its Debug nor its parse error shows the secret.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// The characters of a bootstrap token.
const CHARS: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

/// A kubelet bootstrap token, `<id>.<secret>`: 6 then 16 characters from `a-z0-9`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

impl BootstrapToken {
    /// A new token, each character drawn uniformly from `a-z0-9`.
    pub fn generate(rng: &mut impl Rng) -> BootstrapToken {
        let mut pick = |n: usize| -> String {
            (0..n)
                .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
                .collect()
        };
        let id = pick(ID_LEN);
        let secret = pick(SECRET_LEN);
        BootstrapToken { id, secret }
    }

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
        let part_ok = |p: &str, len: usize| p.len() == len && p.bytes().all(|b| CHARS.contains(&b));
        if !(part_ok(id, ID_LEN) && part_ok(secret, SECRET_LEN)) {
            return Err(BadToken);
        }
        Ok(BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }
}
