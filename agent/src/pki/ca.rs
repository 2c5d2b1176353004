//! The CA: loaded from PEM or generated, its key held in memory only, and the leaves it issues.

use std::fmt;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::public_key::PublicKey;

use super::inspect::{key_matches, not_signed_by, parse_cert, parse_key};
use super::pem::{pem_block, PEM_CERT};
use super::{LeafRequest, PkiError, Usage};

/// How long a leaf is valid.
pub(super) const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long a CA made by [`Ca::generate`] is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far `notBefore` is set in the past, for clocks a little behind ours.
pub(super) const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Smallest RSA CA key accepted.
pub(super) const MIN_RSA_BITS: usize = 2048;

/// A newly issued leaf: certificate and its PKCS#8 key, both PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leaf")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// A CA loaded from PEM (cert + PKCS#8 key), usable to sign leaves. The key never touches disk.
pub struct Ca {
    /// Exactly as loaded (or generated).
    cert_pem: String,
    /// DER of the first certificate in `cert_pem`, checked by [`Ca::from_pem`].
    cert_der: Vec<u8>,
    subject_dn: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("subject", &self.subject_dn)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Loads a CA from its certificate and PKCS#8 key. Checks that the certificate is a CA
    /// (basicConstraints CA:TRUE, and keyCertSign when it has a keyUsage), that the key is the
    /// certificate's, and that an RSA key has at least 2048 bits. The first certificate in
    /// `cert_pem` is the CA.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let cert_der = pem_block(cert_pem, PEM_CERT).map_err(PkiError::CaCert)?;
        let cert = parse_cert(&cert_der).map_err(PkiError::CaCert)?;
        match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            _ => return Err(PkiError::NotCa("basicConstraints CA:TRUE missing")),
        }
        if let Ok(Some(ku)) = cert.key_usage() {
            if !ku.value.key_cert_sign() {
                return Err(PkiError::NotCa("keyUsage lacks keyCertSign"));
            }
        }
        // Before loading the key: ring refuses small RSA keys with a less helpful error.
        if let Ok(PublicKey::RSA(rsa)) = cert.public_key().parsed() {
            let bits = rsa.key_size();
            if bits < MIN_RSA_BITS {
                return Err(PkiError::WeakCaKey { bits });
            }
        }
        let key = parse_key(key_pem).map_err(PkiError::CaKey)?;
        if !key_matches(&key, &cert) {
            return Err(PkiError::CaKeyMismatch);
        }
        let subject_dn = cert.subject().to_string();
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)
            .map_err(PkiError::CaUnusable)?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            cert_der,
            subject_dn,
            issuer,
        })
    }

    /// The CA certificate, PEM, as loaded.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's subject, e.g. `CN=kubernetes`.
    pub fn subject_dn(&self) -> &str {
        &self.subject_dn
    }

    /// Create a new self-signed CA (ECDSA P-256, 10 years, CN given, keyUsage
    /// keyCertSign+cRLSign+digitalSignature) — used by tests and later by `pki init`.
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(PkiError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (params.not_before, params.not_after) = crate::clock::validity(BACKDATE, CA_VALIDITY);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(|source| PkiError::Issue {
            cn: common_name.to_string(),
            source,
        })?;
        Ca::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// The CA key, PKCS#8 PEM; only for `pki init` writing it out and for tests.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issue a leaf: new ECDSA P-256 key generated here, validity 1 year from now with
    /// `notBefore` 5 minutes back (by the agent's clock and the system's, [`crate::clock`]),
    /// signed by this CA. basicConstraints CA:FALSE, keyUsage
    /// digitalSignature + keyEncipherment, extendedKeyUsage from `usages`, SANs, subject key id,
    /// authority key id, random positive 128-bit serial.
    pub fn issue(&self, req: &LeafRequest) -> Result<Leaf, PkiError> {
        let (not_before, not_after) = crate::clock::validity(BACKDATE, LEAF_VALIDITY);
        self.issue_with_validity(req, not_before.into(), not_after.into())
    }

    /// [`Ca::issue`] with the given validity period: for tests (certificates close to expiry)
    /// and for short-lived certificates.
    pub fn issue_with_validity(
        &self,
        req: &LeafRequest,
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
    ) -> Result<Leaf, PkiError> {
        let cn = &req.common_name;
        let issue_err = |source| PkiError::Issue {
            cn: cn.clone(),
            source,
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(PkiError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, cn.as_str());
        if let Some(org) = &req.organization {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org.as_str());
        }
        for name in &req.dns_names {
            let name = name.as_str().try_into().map_err(issue_err)?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(req.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        for usage in &req.usages {
            params.insert_extended_key_usage(match usage {
                Usage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
                Usage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
            });
        }
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.serial_number = Some(random_serial());
        let cert = params.signed_by(&key, &self.issuer).map_err(issue_err)?;

        // rcgen re-encodes the CA's subject as the issuer name: make sure the result chains.
        let parsed = parse_cert(cert.der()).map_err(|e| PkiError::SelfCheck {
            cn: cn.clone(),
            what: e.to_string(),
        })?;
        if let Some(what) = not_signed_by(&parsed, &self.parsed()) {
            return Err(PkiError::SelfCheck {
                cn: cn.clone(),
                what,
            });
        }
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA certificate, parsed.
    pub(super) fn parsed(&self) -> X509Certificate<'_> {
        parse_cert(&self.cert_der).expect("CA certificate checked in Ca::from_pem")
    }
}

/// 16 random bytes, positive and not starting with a zero byte.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}
