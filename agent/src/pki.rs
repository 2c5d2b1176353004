//! Certificates on the node: leaf keys generated here and never sent anywhere, signed with a CA
//! whose key is held in memory only.
//!
//! A leaf on disk is kept across runs when [`check_reuse`] finds it still fits the request;
//! otherwise [`ensure_leaf`] issues a new key and certificate and writes both atomically.
//! Signatures are verified with x509-parser's `verify-aws` support, which rcgen's `aws_lc_rs`
//! feature turns on (the same aws-lc that signs).

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Cursor};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::error::{PEMError, X509Error};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::exit::one_line;
use crate::fsutil::{self, MODE_PUBLIC, MODE_SECRET};

/// How long a leaf is valid.
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long a CA made by [`Ca::generate`] is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far `notBefore` is set in the past, for clocks a little behind ours.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Smallest RSA CA key accepted.
const MIN_RSA_BITS: usize = 2048;

const PEM_CERT: &str = "CERTIFICATE";
const PEM_PKCS8: &str = "PRIVATE KEY";

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
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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
        // Before loading the key: aws-lc refuses small RSA keys with a less helpful error.
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
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
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
    /// `notBefore` 5 minutes back, signed by this CA. basicConstraints CA:FALSE, keyUsage
    /// digitalSignature + keyEncipherment, extendedKeyUsage from `usages`, SANs, subject key id,
    /// authority key id, random positive 128-bit serial.
    pub fn issue(&self, req: &LeafRequest) -> Result<Leaf, PkiError> {
        let now = std::time::SystemTime::now();
        self.issue_with_validity(req, now - BACKDATE, now + LEAF_VALIDITY)
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
    fn parsed(&self) -> X509Certificate<'_> {
        parse_cert(&self.cert_der).expect("CA certificate checked in Ca::from_pem")
    }
}

/// What an existing cert on disk looks like, parsed with x509-parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject_cn: Option<String>,
    /// Subject O attributes, in order.
    pub organizations: Vec<String>,
    pub dns_names: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub server_auth: bool,
    pub client_auth: bool,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    pub issuer_dn: String,
    pub subject_dn: String,
    /// Serial number, hex bytes separated by `:`.
    pub serial: String,
}

/// Parses the first certificate of `cert_pem`.
pub fn inspect(cert_pem: &str) -> Result<CertInfo, PkiError> {
    let der = pem_block(cert_pem, PEM_CERT).map_err(PkiError::BadCert)?;
    let cert = parse_cert(&der).map_err(PkiError::BadCert)?;
    Ok(cert_info(&cert))
}

fn cert_info(cert: &X509Certificate<'_>) -> CertInfo {
    let mut dns_names = BTreeSet::new();
    let mut ips = BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => {
                    dns_names.insert(dns.to_string());
                }
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        ips.insert(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let (server_auth, client_auth) = match cert.extended_key_usage() {
        Ok(Some(eku)) => (
            eku.value.server_auth || eku.value.any,
            eku.value.client_auth || eku.value.any,
        ),
        _ => (false, false),
    };
    CertInfo {
        subject_cn: cert
            .subject()
            .iter_common_name()
            .find_map(|a| a.as_str().ok())
            .map(str::to_string),
        organizations: cert
            .subject()
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .map(str::to_string)
            .collect(),
        dns_names,
        ips,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        server_auth,
        client_auth,
        is_ca: matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca),
        issuer_dn: cert.issuer().to_string(),
        subject_dn: cert.subject().to_string(),
        serial: cert.raw_serial_as_string(),
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Whether a leaf on disk can be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reuse {
    Keep,
    /// Issue a new one; the string says why, for the log.
    Reissue(String),
}

/// Whether an existing leaf (cert + key PEM) can be kept for `req` signed by `ca`. Keep when all
/// of these hold, checked in this order (the first that fails is the reason):
///
/// 1. the certificate parses (first PEM block, `CERTIFICATE`) and the key is a PKCS#8
///    `PRIVATE KEY` that rcgen can load;
/// 2. the key's public key is the certificate's (raw subjectPublicKey bits compared);
/// 3. it was signed by this CA: the issuer name equals the CA's subject name (DER bytes), the
///    authority key identifier equals the CA's subject key identifier when both exist, and the
///    signature verifies with the CA's public key (aws-lc, through x509-parser);
/// 4. it is not a CA certificate;
/// 5. the subject CN and O equal the request's;
/// 6. the DNS SANs (compared case-insensitively) and IP SANs equal the request's exactly;
/// 7. its extended key usages include every requested one;
/// 8. it is valid now and does not expire within `renew_before`.
///
/// Unparseable files are a `Reissue`, never an error.
pub fn check_reuse(
    cert_pem: &str,
    key_pem: &str,
    ca: &Ca,
    req: &LeafRequest,
    renew_before: Duration,
) -> Reuse {
    let verdict = check_reuse_at(
        cert_pem,
        key_pem,
        ca,
        req,
        renew_before,
        OffsetDateTime::now_utc(),
    );
    if let Reuse::Reissue(why) = &verdict {
        tracing::debug!(cn = %req.common_name, reason = %why, "certificate must be reissued");
    }
    verdict
}

fn check_reuse_at(
    cert_pem: &str,
    key_pem: &str,
    ca: &Ca,
    req: &LeafRequest,
    renew_before: Duration,
    now: OffsetDateTime,
) -> Reuse {
    match reissue_reason(cert_pem, key_pem, ca, req, renew_before, now) {
        None => Reuse::Keep,
        Some(why) => Reuse::Reissue(why),
    }
}

fn reissue_reason(
    cert_pem: &str,
    key_pem: &str,
    ca: &Ca,
    req: &LeafRequest,
    renew_before: Duration,
    now: OffsetDateTime,
) -> Option<String> {
    let der = match pem_block(cert_pem, PEM_CERT) {
        Ok(der) => der,
        Err(e) => return Some(format!("existing certificate: {}", one_line(&e))),
    };
    let cert = match parse_cert(&der) {
        Ok(cert) => cert,
        Err(e) => return Some(format!("existing certificate: {}", one_line(&e))),
    };
    let key = match parse_key(key_pem) {
        Ok(key) => key,
        Err(e) => return Some(format!("existing key: {}", one_line(&e))),
    };
    if !key_matches(&key, &cert) {
        return Some("key does not match the certificate".to_string());
    }
    if let Some(why) = not_signed_by(&cert, &ca.parsed()) {
        return Some(format!("signed by another CA ({why})"));
    }
    let info = cert_info(&cert);
    if info.is_ca {
        return Some("is a CA certificate".to_string());
    }
    if info.subject_cn.as_deref() != Some(req.common_name.as_str()) {
        return Some(format!(
            "subject CN changed: {:?} -> {:?}",
            info.subject_cn.unwrap_or_default(),
            req.common_name
        ));
    }
    let want_orgs: Vec<String> = req.organization.iter().cloned().collect();
    if info.organizations != want_orgs {
        return Some(format!(
            "subject O changed: {:?} -> {:?}",
            info.organizations, want_orgs
        ));
    }
    let sans = san_changes(&info, req);
    if !sans.is_empty() {
        return Some(format!("SANs changed: {}", sans.join(" ")));
    }
    let missing: Vec<String> = req
        .usages
        .iter()
        .filter(|u| match u {
            Usage::ServerAuth => !info.server_auth,
            Usage::ClientAuth => !info.client_auth,
        })
        .map(Usage::to_string)
        .collect();
    if !missing.is_empty() {
        return Some(format!("usages lack {}", missing.join(", ")));
    }
    if info.not_before > now {
        return Some(format!("not valid before {}", info.not_before));
    }
    if info.not_after <= now {
        return Some(format!("expired {}", info.not_after.date()));
    }
    if info.not_after - now < renew_before {
        return Some(format!(
            "expires {}, within {}",
            info.not_after.date(),
            describe(renew_before)
        ));
    }
    None
}

/// `+name` for each SAN requested but missing, `-name` for each present but not requested;
/// DNS names first, then IPs.
fn san_changes(info: &CertInfo, req: &LeafRequest) -> Vec<String> {
    let have_dns: BTreeSet<String> = info.dns_names.iter().map(|d| d.to_lowercase()).collect();
    let want_dns: BTreeSet<String> = req.dns_names.iter().map(|d| d.to_lowercase()).collect();
    let want_ips: BTreeSet<IpAddr> = req.ips.iter().copied().collect();
    let mut changes = Vec::new();
    changes.extend(want_dns.difference(&have_dns).map(|d| format!("+{d}")));
    changes.extend(have_dns.difference(&want_dns).map(|d| format!("-{d}")));
    changes.extend(want_ips.difference(&info.ips).map(|ip| format!("+{ip}")));
    changes.extend(info.ips.difference(&want_ips).map(|ip| format!("-{ip}")));
    changes
}

/// `None` when `cert` was signed by `ca`, else what differs.
fn not_signed_by(cert: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> Option<String> {
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Some(format!("issuer is {}", cert.issuer()));
    }
    if let (Some(aki), Some(ski)) = (authority_key_id(cert), subject_key_id(ca)) {
        if aki != ski {
            return Some("authority key identifier differs".to_string());
        }
    }
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return Some("signature does not verify with this CA's key".to_string());
    }
    None
}

fn authority_key_id<'a>(cert: &X509Certificate<'a>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .map(|id| id.0)
}

fn subject_key_id<'a>(cert: &X509Certificate<'a>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
            _ => None,
        })
}

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

/// The DER of the first PEM block, which must carry `label`.
fn pem_block(pem: &str, label: &'static str) -> Result<Vec<u8>, ParseError> {
    let (block, _) = Pem::read(Cursor::new(pem.as_bytes())).map_err(ParseError::Pem)?;
    if block.label != label {
        return Err(ParseError::Label {
            found: block.label,
            expected: label,
        });
    }
    Ok(block.contents)
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, ParseError> {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => Ok(cert),
        Err(x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e)) => {
            Err(ParseError::X509(e))
        }
        Err(x509_parser::nom::Err::Incomplete(_)) => {
            Err(ParseError::X509(X509Error::InvalidCertificate))
        }
    }
}

/// A PKCS#8 PEM private key (label `PRIVATE KEY`, so that [`Ca::key_pem`] writes it back as
/// PKCS#8).
fn parse_key(pem: &str) -> Result<KeyPair, ParseError> {
    let der = pem_block(pem, PEM_PKCS8)?;
    KeyPair::try_from(der.as_slice()).map_err(ParseError::Key)
}

fn key_matches(key: &KeyPair, cert: &X509Certificate<'_>) -> bool {
    key.public_key_raw() == cert.public_key().subject_public_key.data.as_ref()
}

/// 16 random bytes, positive and not starting with a zero byte.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

/// `30 days`, `12 hours` or `90 seconds`.
fn describe(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} hours", s / 3_600),
        s => format!("{s} seconds"),
    }
}

/// Whether `cert_pem` was signed by the CA `ca_cert_pem`: its issuer name is the CA's subject
/// (DER bytes), its authority key identifier is the CA's subject key identifier when both exist,
/// and its signature verifies with the CA's public key. Input that does not parse is `false`.
pub fn verifies(cert_pem: &str, ca_cert_pem: &str) -> bool {
    let (Ok(cert_der), Ok(ca_der)) = (
        pem_block(cert_pem, PEM_CERT),
        pem_block(ca_cert_pem, PEM_CERT),
    ) else {
        return false;
    };
    match (parse_cert(&cert_der), parse_cert(&ca_der)) {
        (Ok(cert), Ok(ca)) => not_signed_by(&cert, &ca).is_none(),
        _ => false,
    }
}

/// A key pair used outside X.509, both halves PEM.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    const DAY: Duration = Duration::from_secs(86_400);
    const RENEW: Duration = Duration::from_secs(30 * 86_400);

    fn server_request() -> LeafRequest {
        LeafRequest {
            common_name: "ip-127-0-1-4.ec2.internal".to_string(),
            organization: None,
            dns_names: vec![
                "localhost".to_string(),
                "ip-127-0-1-4.ec2.internal".to_string(),
            ],
            ips: vec!["127.0.1.4".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            usages: vec![Usage::ServerAuth, Usage::ClientAuth],
        }
    }

    /// Runs openssl in `dir`, asserting it succeeds; returns stdout.
    fn openssl(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn error_chain(err: &PkiError) -> String {
        one_line(err)
    }

    fn reason(r: Reuse) -> String {
        match r {
            Reuse::Reissue(why) => why,
            Reuse::Keep => panic!("expected Reissue, got Keep"),
        }
    }

    #[test]
    fn openssl_accepts_an_issued_server_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("etcd-ca").unwrap();
        let leaf = ca.issue(&server_request()).unwrap();
        fs::write(dir.path().join("ca.crt"), ca.cert_pem()).unwrap();
        fs::write(dir.path().join("leaf.crt"), &leaf.cert_pem).unwrap();
        fs::write(dir.path().join("leaf.key"), &leaf.key_pem).unwrap();

        let verified = openssl(
            dir.path(),
            &["verify", "-x509_strict", "-CAfile", "ca.crt", "leaf.crt"],
        );
        assert_eq!(verified.trim(), "leaf.crt: OK");
        for purpose in ["sslserver", "sslclient"] {
            let out = openssl(
                dir.path(),
                &[
                    "verify", "-purpose", purpose, "-CAfile", "ca.crt", "leaf.crt",
                ],
            );
            assert_eq!(out.trim(), "leaf.crt: OK", "{purpose}");
        }

        let ext = openssl(
            dir.path(),
            &[
                "x509",
                "-in",
                "leaf.crt",
                "-noout",
                "-ext",
                "subjectAltName,extendedKeyUsage,basicConstraints,keyUsage",
            ],
        );
        for want in [
            "DNS:localhost",
            "DNS:ip-127-0-1-4.ec2.internal",
            "IP Address:127.0.1.4",
            "IP Address:127.0.0.1",
            "TLS Web Server Authentication, TLS Web Client Authentication",
            "CA:FALSE",
            "Digital Signature, Key Encipherment",
        ] {
            assert!(ext.contains(want), "{want:?} missing from:\n{ext}");
        }
        let text = openssl(dir.path(), &["x509", "-in", "leaf.crt", "-noout", "-text"]);
        assert!(
            text.contains("X509v3 Subject Key Identifier"),
            "no subject key id:\n{text}"
        );
        assert!(
            text.contains("X509v3 Authority Key Identifier"),
            "no authority key id:\n{text}"
        );
        assert!(text.contains("prime256v1"), "not P-256:\n{text}");
        let subject = openssl(
            dir.path(),
            &[
                "x509", "-in", "leaf.crt", "-noout", "-subject", "-nameopt", "RFC2253",
            ],
        );
        assert_eq!(subject.trim(), "subject=CN=ip-127-0-1-4.ec2.internal");

        // The key is the certificate's, and PKCS#8.
        assert!(leaf.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let from_key = openssl(dir.path(), &["pkey", "-in", "leaf.key", "-pubout"]);
        let from_cert = openssl(
            dir.path(),
            &["x509", "-in", "leaf.crt", "-pubkey", "-noout"],
        );
        assert_eq!(from_key, from_cert);
        assert!(from_key.starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn organization_goes_into_the_subject() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("kubernetes").unwrap();
        let req = LeafRequest {
            common_name: "kube-apiserver-etcd-client".to_string(),
            organization: Some("system:masters".to_string()),
            dns_names: vec![],
            ips: vec![],
            usages: vec![Usage::ClientAuth],
        };
        let leaf = ca.issue(&req).unwrap();
        fs::write(dir.path().join("leaf.crt"), &leaf.cert_pem).unwrap();
        let subject = openssl(
            dir.path(),
            &[
                "x509", "-in", "leaf.crt", "-noout", "-subject", "-nameopt", "RFC2253",
            ],
        );
        assert_eq!(
            subject.trim(),
            "subject=O=system:masters,CN=kube-apiserver-etcd-client"
        );
        let info = inspect(&leaf.cert_pem).unwrap();
        assert_eq!(info.organizations, vec!["system:masters".to_string()]);
        assert!(info.client_auth && !info.server_auth);
        assert!(info.dns_names.is_empty() && info.ips.is_empty());
    }

    #[test]
    fn validity_is_a_year_for_leaves_and_ten_years_for_the_ca() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let leaf = ca.issue(&server_request()).unwrap();
        let now = OffsetDateTime::now_utc();
        let info = inspect(&leaf.cert_pem).unwrap();
        let ahead = info.not_after - now;
        assert!((ahead - 365 * DAY).abs() < time::Duration::DAY, "{ahead}");
        let back = now - info.not_before;
        assert!(
            back >= time::Duration::minutes(4) && back <= time::Duration::minutes(6),
            "{back}"
        );
        let ca_info = inspect(ca.cert_pem()).unwrap();
        let ca_ahead = ca_info.not_after - now;
        assert!(
            (ca_ahead - 3650 * DAY).abs() < time::Duration::DAY,
            "{ca_ahead}"
        );
        assert!(ca_info.is_ca);
        assert_eq!(ca_info.subject_cn.as_deref(), Some("etcd-ca"));
        assert_eq!(info.issuer_dn, ca_info.subject_dn);
        assert_eq!(
            info.subject_cn.as_deref(),
            Some("ip-127-0-1-4.ec2.internal")
        );
        assert_eq!(
            info.ips,
            BTreeSet::from(["127.0.1.4".parse().unwrap(), "127.0.0.1".parse().unwrap()])
        );
        assert!(info.server_auth && info.client_auth && !info.is_ca);
        // Serials are random, 16 bytes, positive.
        let other = inspect(&ca.issue(&server_request()).unwrap().cert_pem).unwrap();
        assert_ne!(info.serial, other.serial);
        assert_eq!(info.serial.split(':').count(), 16, "{}", info.serial);
    }

    #[test]
    fn a_ca_round_trips_through_its_pem() {
        let ca = Ca::generate("etcd-ca").unwrap();
        assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let loaded = Ca::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        assert_eq!(loaded.key_pem(), ca.key_pem());
        assert_eq!(loaded.subject_dn(), "CN=etcd-ca");
        // A leaf issued by the reloaded CA is one the original accepts, and the other way round.
        let leaf = loaded.issue(&server_request()).unwrap();
        let req = server_request();
        assert_eq!(
            check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &req, RENEW),
            Reuse::Keep
        );
        let leaf = ca.issue(&req).unwrap();
        assert_eq!(
            check_reuse(&leaf.cert_pem, &leaf.key_pem, &loaded, &req, RENEW),
            Reuse::Keep
        );
        // Debug never shows the key.
        assert!(!format!("{loaded:?}").contains("PRIVATE"));
        assert!(!format!("{leaf:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_ca_key_that_is_not_the_certificates_is_rejected() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let other = Ca::generate("etcd-ca").unwrap();
        let err = Ca::from_pem(ca.cert_pem(), &other.key_pem()).unwrap_err();
        assert!(matches!(err, PkiError::CaKeyMismatch), "{err:?}");
        assert_eq!(err.to_string(), "CA key does not match the CA certificate");
    }

    #[test]
    fn a_leaf_is_not_accepted_as_a_ca() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let leaf = ca.issue(&server_request()).unwrap();
        let err = Ca::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
        assert!(matches!(err, PkiError::NotCa(_)), "{err:?}");
        assert!(err.to_string().contains("CA:TRUE"), "{err}");
    }

    #[test]
    fn garbage_pem_is_an_error_naming_what_was_bad() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let err = Ca::from_pem("garbage", &ca.key_pem()).unwrap_err();
        assert!(matches!(err, PkiError::CaCert(_)), "{err:?}");
        assert_eq!(err.to_string(), "cannot parse the CA certificate");
        assert!(
            error_chain(&err).contains("not valid PEM"),
            "{}",
            error_chain(&err)
        );

        let err = Ca::from_pem(ca.cert_pem(), "garbage").unwrap_err();
        assert_eq!(err.to_string(), "cannot parse the CA key");

        // A key where a certificate belongs, and the other way round.
        let err = Ca::from_pem(&ca.key_pem(), &ca.key_pem()).unwrap_err();
        assert_eq!(
            error_chain(&err),
            "cannot parse the CA certificate: PEM block is \"PRIVATE KEY\", expected \"CERTIFICATE\""
        );
        let err = Ca::from_pem(ca.cert_pem(), ca.cert_pem()).unwrap_err();
        assert!(matches!(err, PkiError::CaKey(_)), "{err:?}");

        // Not PKCS#8.
        let sec1 = ca.key_pem().replace("PRIVATE KEY", "EC PRIVATE KEY");
        let err = Ca::from_pem(ca.cert_pem(), &sec1).unwrap_err();
        assert!(
            error_chain(&err).contains("\"EC PRIVATE KEY\", expected \"PRIVATE KEY\""),
            "{}",
            error_chain(&err)
        );

        // PEM framing around bytes that are not a certificate.
        let bad = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let err = Ca::from_pem(bad, &ca.key_pem()).unwrap_err();
        assert!(
            error_chain(&err).contains("not a valid X.509 certificate"),
            "{}",
            error_chain(&err)
        );
        let err = inspect(bad).unwrap_err();
        assert_eq!(err.to_string(), "cannot parse certificate");
    }

    #[test]
    fn an_rsa_ca_made_by_openssl_signs_leaves() {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/O=tn/CN=rsa-ca",
                "-days",
                "30",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let cert = fs::read_to_string(dir.path().join("ca.crt")).unwrap();
        let key = fs::read_to_string(dir.path().join("ca.key")).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        let ca = Ca::from_pem(&cert, &key).unwrap();
        let req = server_request();
        let leaf = ca.issue(&req).unwrap();
        fs::write(dir.path().join("leaf.crt"), &leaf.cert_pem).unwrap();
        let verified = openssl(
            dir.path(),
            &["verify", "-x509_strict", "-CAfile", "ca.crt", "leaf.crt"],
        );
        assert_eq!(verified.trim(), "leaf.crt: OK");
        assert_eq!(
            check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &req, RENEW),
            Reuse::Keep
        );
        // A leaf of another CA is not this CA's.
        let other = Ca::generate("rsa-ca").unwrap();
        let leaf = other.issue(&req).unwrap();
        assert!(
            reason(check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &req, RENEW))
                .starts_with("signed by another CA")
        );
    }

    #[test]
    fn a_small_rsa_ca_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:1024",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=weak",
                "-days",
                "30",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ],
        );
        let cert = fs::read_to_string(dir.path().join("ca.crt")).unwrap();
        let key = fs::read_to_string(dir.path().join("ca.key")).unwrap();
        let err = Ca::from_pem(&cert, &key).unwrap_err();
        assert!(matches!(err, PkiError::WeakCaKey { bits: 1024 }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the CA key is RSA 1024 bits; at least 2048 are required"
        );
    }

    #[test]
    fn the_same_request_keeps_the_leaf() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let req = server_request();
        let leaf = ca.issue(&req).unwrap();
        assert_eq!(
            check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &req, RENEW),
            Reuse::Keep
        );
        // Order and case of names do not matter; asking for fewer usages does not either.
        let mut same = req.clone();
        same.dns_names.reverse();
        same.dns_names[0] = same.dns_names[0].to_uppercase();
        same.ips.reverse();
        same.usages = vec![Usage::ServerAuth];
        assert_eq!(
            check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &same, RENEW),
            Reuse::Keep
        );
    }

    #[test]
    fn a_changed_ip_san_means_reissue() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let req = server_request();
        let leaf = ca.issue(&req).unwrap();
        let mut moved = req.clone();
        moved.ips[0] = "127.0.1.9".parse().unwrap();
        let why = reason(check_reuse(
            &leaf.cert_pem,
            &leaf.key_pem,
            &ca,
            &moved,
            RENEW,
        ));
        assert_eq!(why, "SANs changed: +127.0.1.9 -127.0.1.4");

        let mut renamed = req.clone();
        renamed.dns_names.push("etcd.internal".to_string());
        let why = reason(check_reuse(
            &leaf.cert_pem,
            &leaf.key_pem,
            &ca,
            &renamed,
            RENEW,
        ));
        assert_eq!(why, "SANs changed: +etcd.internal");

        let mut fewer = req.clone();
        fewer.ips.pop();
        let why = reason(check_reuse(
            &leaf.cert_pem,
            &leaf.key_pem,
            &ca,
            &fewer,
            RENEW,
        ));
        assert_eq!(why, "SANs changed: -127.0.0.1");
    }

    #[test]
    fn a_changed_subject_means_reissue() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let req = server_request();
        let leaf = ca.issue(&req).unwrap();
        let mut other = req.clone();
        other.common_name = "etcd-1".to_string();
        let why = reason(check_reuse(
            &leaf.cert_pem,
            &leaf.key_pem,
            &ca,
            &other,
            RENEW,
        ));
        assert!(why.starts_with("subject CN changed"), "{why}");
        let mut org = req.clone();
        org.organization = Some("system:masters".to_string());
        let why = reason(check_reuse(&leaf.cert_pem, &leaf.key_pem, &ca, &org, RENEW));
        assert!(why.starts_with("subject O changed"), "{why}");
    }

    #[test]
    fn another_ca_means_reissue() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let req = server_request();
        let leaf = ca.issue(&req).unwrap();
        // Another CA with another name.
        let other = Ca::generate("other-ca").unwrap();
        let why = reason(check_reuse(
            &leaf.cert_pem,
            &leaf.key_pem,
            &other,
            &req,
            RENEW,
        ));
        assert!(
            why.starts_with("signed by another CA (issuer is CN=etcd-ca"),
            "{why}"
        );
        // Another CA with the same name: caught by the key identifier.
        let twin = Ca::generate("etcd-ca").unwrap();
        let why = reason(check_reuse(
            &leaf.cert_pem,
            &leaf.key_pem,
            &twin,
            &req,
            RENEW,
        ));
        assert_eq!(
            why,
            "signed by another CA (authority key identifier differs)"
        );
    }

    #[test]
    fn a_forged_signature_is_caught() {
        // A leaf with the right issuer name and key identifiers, signed by another key: only
        // the signature check can tell.
        let ca = Ca::generate("etcd-ca").unwrap();
        let impostor_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let impostor = Issuer::from_ca_cert_pem(ca.cert_pem(), impostor_key).unwrap();
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec![
            "localhost".to_string(),
            "ip-127-0-1-4.ec2.internal".to_string(),
            "127.0.1.4".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "ip-127-0-1-4.ec2.internal");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LEAF_VALIDITY;
        let forged = params.signed_by(&leaf_key, &impostor).unwrap();
        let why = reason(check_reuse(
            &forged.pem(),
            &leaf_key.serialize_pem(),
            &ca,
            &server_request(),
            RENEW,
        ));
        assert_eq!(
            why,
            "signed by another CA (signature does not verify with this CA's key)"
        );
    }

    #[test]
    fn a_missing_usage_means_reissue() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let mut server_only = server_request();
        server_only.usages = vec![Usage::ServerAuth];
        let leaf = ca.issue(&server_only).unwrap();
        let why = reason(check_reuse(
            &leaf.cert_pem,
            &leaf.key_pem,
            &ca,
            &server_request(),
            RENEW,
        ));
        assert_eq!(why, "usages lack clientAuth");
    }

    #[test]
    fn expiring_soon_means_reissue() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let req = server_request();
        let leaf = ca.issue(&req).unwrap();
        let why = reason(check_reuse(
            &leaf.cert_pem,
            &leaf.key_pem,
            &ca,
            &req,
            400 * DAY,
        ));
        let expiry = inspect(&leaf.cert_pem).unwrap().not_after.date();
        assert_eq!(why, format!("expires {expiry}, within 400 days"));

        let info = inspect(&leaf.cert_pem).unwrap();
        let later = info.not_after + time::Duration::HOUR;
        let why = reason(check_reuse_at(
            &leaf.cert_pem,
            &leaf.key_pem,
            &ca,
            &req,
            RENEW,
            later,
        ));
        assert_eq!(why, format!("expired {expiry}"));
        let earlier = info.not_before - time::Duration::HOUR;
        let why = reason(check_reuse_at(
            &leaf.cert_pem,
            &leaf.key_pem,
            &ca,
            &req,
            RENEW,
            earlier,
        ));
        assert!(why.starts_with("not valid before"), "{why}");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_means_reissue() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let req = server_request();
        let one = ca.issue(&req).unwrap();
        let two = ca.issue(&req).unwrap();
        let why = reason(check_reuse(&one.cert_pem, &two.key_pem, &ca, &req, RENEW));
        assert_eq!(why, "key does not match the certificate");
    }

    #[test]
    fn garbage_files_mean_reissue() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let req = server_request();
        let leaf = ca.issue(&req).unwrap();
        let why = reason(check_reuse("", &leaf.key_pem, &ca, &req, RENEW));
        assert!(
            why.starts_with("existing certificate: not valid PEM"),
            "{why}"
        );
        let why = reason(check_reuse(&leaf.cert_pem, "garbage", &ca, &req, RENEW));
        assert!(why.starts_with("existing key: not valid PEM"), "{why}");
        let truncated = &leaf.cert_pem[..leaf.cert_pem.len() / 2];
        let why = reason(check_reuse(truncated, &leaf.key_pem, &ca, &req, RENEW));
        assert!(why.starts_with("existing certificate"), "{why}");
        let why = reason(check_reuse(&leaf.key_pem, &leaf.cert_pem, &ca, &req, RENEW));
        assert!(
            why.starts_with("existing certificate: PEM block is"),
            "{why}"
        );
        // A CA certificate where a leaf belongs.
        let why = reason(check_reuse(ca.cert_pem(), &ca.key_pem(), &ca, &req, RENEW));
        assert_eq!(why, "is a CA certificate");
    }

    #[test]
    fn ensure_leaf_issues_keeps_and_reissues() {
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("etc/etcd/pki/server.crt");
        let key_path = dir.path().join("etc/etcd/pki/server.key");
        let ca = Ca::generate("etcd-ca").unwrap();
        let req = server_request();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;

        let first = ensure_leaf(&cert_path, &key_path, &ca, &req, RENEW).unwrap();
        assert_eq!(
            first,
            LeafOutcome::Issued {
                why: "no certificate yet".to_string()
            }
        );
        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(mode(&cert_path), 0o644);
        let cert1 = fs::read(&cert_path).unwrap();
        let key1 = fs::read(&key_path).unwrap();
        fs::write(dir.path().join("ca.crt"), ca.cert_pem()).unwrap();
        let verified = openssl(
            dir.path(),
            &["verify", "-CAfile", "ca.crt", cert_path.to_str().unwrap()],
        );
        assert!(verified.trim().ends_with(": OK"), "{verified}");

        let second = ensure_leaf(&cert_path, &key_path, &ca, &req, RENEW).unwrap();
        assert_eq!(second, LeafOutcome::Kept);
        assert_eq!(fs::read(&cert_path).unwrap(), cert1);
        assert_eq!(fs::read(&key_path).unwrap(), key1);

        let mut moved = req.clone();
        moved.ips[0] = "127.0.1.9".parse().unwrap();
        let third = ensure_leaf(&cert_path, &key_path, &ca, &moved, RENEW).unwrap();
        assert_eq!(
            third,
            LeafOutcome::Issued {
                why: "SANs changed: +127.0.1.9 -127.0.1.4".to_string()
            }
        );
        assert_ne!(fs::read(&cert_path).unwrap(), cert1);
        assert_ne!(fs::read(&key_path).unwrap(), key1);
        assert_eq!(mode(&key_path), 0o600);
        let info = inspect(&fs::read_to_string(&cert_path).unwrap()).unwrap();
        assert!(info.ips.contains(&"127.0.1.9".parse::<IpAddr>().unwrap()));

        // A lost key means a new pair.
        fs::remove_file(&key_path).unwrap();
        let fourth = ensure_leaf(&cert_path, &key_path, &ca, &moved, RENEW).unwrap();
        assert_eq!(
            fourth,
            LeafOutcome::Issued {
                why: "no key yet".to_string()
            }
        );
        assert_eq!(
            ensure_leaf(&cert_path, &key_path, &ca, &moved, RENEW).unwrap(),
            LeafOutcome::Kept
        );
    }

    #[test]
    fn ensure_leaf_reports_files_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("etcd-ca").unwrap();
        // A directory where the certificate should be.
        let cert_path = dir.path().join("server.crt");
        fs::create_dir(&cert_path).unwrap();
        let err = ensure_leaf(
            &cert_path,
            &dir.path().join("server.key"),
            &ca,
            &server_request(),
            RENEW,
        )
        .unwrap_err();
        assert!(matches!(err, PkiError::Read { .. }), "{err:?}");
        assert!(err.to_string().starts_with("reading "), "{err}");
    }

    #[test]
    fn a_ca_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Ca>();
        shareable::<PkiError>();
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(describe(RENEW), "30 days");
        assert_eq!(describe(Duration::from_secs(7200)), "2 hours");
        assert_eq!(describe(Duration::from_secs(90)), "90 seconds");
    }

    #[test]
    fn verifies_tells_the_signing_ca_from_others() {
        let ca = Ca::generate("etcd-ca").unwrap();
        let now = std::time::SystemTime::now();
        let short = ca
            .issue_with_validity(&server_request(), now - BACKDATE, now + 3 * DAY)
            .unwrap();
        assert!(verifies(&short.cert_pem, ca.cert_pem()));
        assert!(
            verifies(ca.cert_pem(), ca.cert_pem()),
            "a root signs itself"
        );
        let left = inspect(&short.cert_pem).unwrap().not_after - OffsetDateTime::now_utc();
        assert!(
            left <= 3 * DAY && left > 3 * DAY - Duration::from_secs(60),
            "{left}"
        );
        let twin = Ca::generate("etcd-ca").unwrap();
        assert!(!verifies(&short.cert_pem, twin.cert_pem()));
        assert!(!verifies(&short.cert_pem, "garbage"));
        assert!(!verifies(ca.cert_pem(), &short.cert_pem));
    }
}
