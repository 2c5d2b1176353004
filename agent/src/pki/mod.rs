//! Certificates on the node: leaf keys generated here and never sent anywhere, signed with a CA
//! whose key is held in memory only.
//!
//! A leaf on disk is kept across runs when [`check_reuse`] finds it still fits the request;
//! otherwise [`ensure_leaf`] issues a new key and certificate and writes both atomically.
//! Signatures are verified with x509-parser's `verify` support, which rcgen's `ring` feature
//! turns on (the same ring that signs, and that TLS uses).
//!
//! The parts: [`Ca`] loads, generates and issues (`ca`); [`inspect`] and [`verifies`] read
//! certificates (`inspect`, over the PEM helpers of `pem`); [`check_reuse`] decides keep or
//! reissue (`reuse`); [`ensure_leaf`] does the file I/O (`leaf`). [`token`] is the kubelet
//! bootstrap token, [`encryption`] the apiserver's Secrets key, and [`init`] is `pki init` on an operator's workstation. The public items of
//! the private parts are re-exported here, at `crate::pki::<name>`.

use std::fmt;
use std::net::IpAddr;

use x509_parser::error::{PEMError, X509Error};

mod ca;
pub mod encryption;
pub mod init;
mod inspect;
mod leaf;
mod pem;
mod reuse;
pub mod token;

#[cfg(test)]
pub(crate) mod tests;

pub use self::ca::{Ca, Leaf};
pub use self::inspect::{inspect, verifies, CertInfo};
pub use self::leaf::{generate_key_pair, KeyPairPem};
pub use self::pem::pem_certificates;
pub use self::reuse::{check_reuse, check_reuse_against_cert, Reuse};

use self::ca::MIN_RSA_BITS;

/// A certificate operation that failed. Display names what failed; the cause is the source.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot parse the CA certificate")]
    CaCert(#[source] ParseError),
    #[error("cannot parse the CA key")]
    CaKey(#[source] ParseError),
    #[error("the CA certificate is not a CA: {0}")]
    NotCa(&'static str),
    #[error("CA key does not match the CA certificate")]
    CaKeyMismatch,
    #[error("the CA key is RSA {bits} bits; at least {MIN_RSA_BITS} are required")]
    WeakCaKey { bits: usize },
    #[error("the CA certificate cannot be used to sign")]
    CaUnusable(#[source] rcgen::Error),
    #[error("cannot generate a key pair")]
    Generate(#[source] rcgen::Error),
    #[error("cannot issue a certificate for {cn:?}")]
    Issue {
        cn: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("the certificate issued for {cn:?} does not chain to the CA: {what}")]
    SelfCheck { cn: String, what: String },
    #[error("cannot parse certificate")]
    BadCert(#[source] ParseError),
}

/// Why a PEM certificate or key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not valid PEM")]
    Pem(#[source] PEMError),
    #[error("PEM block is {found:?}, expected {expected:?}")]
    Label {
        found: String,
        expected: &'static str,
    },
    #[error("not a valid X.509 certificate")]
    X509(#[source] X509Error),
    #[error("not a usable private key")]
    Key(#[source] rcgen::Error),
}

/// An extended key usage a leaf can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Usage {
    ServerAuth,
    ClientAuth,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Usage::ServerAuth => "serverAuth",
            Usage::ClientAuth => "clientAuth",
        })
    }
}

/// What a leaf certificate must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRequest {
    pub common_name: String,
    pub organization: Option<String>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub usages: Vec<Usage>,
}
