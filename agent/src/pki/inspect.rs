//! Reading certificates: what a certificate says ([`inspect`]), whether a CA signed it
//! ([`verifies`]), and the x509-parser and rcgen parsing the other parts share.

use std::collections::BTreeSet;
use std::net::IpAddr;

use rcgen::KeyPair;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::pem::{pem_block, PEM_CERT, PEM_PKCS8};
use super::{ParseError, PkiError};

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

pub(super) fn cert_info(cert: &X509Certificate<'_>) -> CertInfo {
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

/// `None` when `cert` was signed by `ca`, else what differs.
pub(super) fn not_signed_by(
    cert: &X509Certificate<'_>,
    ca: &X509Certificate<'_>,
) -> Option<String> {
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

pub(super) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, ParseError> {
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
pub(super) fn parse_key(pem: &str) -> Result<KeyPair, ParseError> {
    let der = pem_block(pem, PEM_PKCS8)?;
    KeyPair::try_from(der.as_slice()).map_err(ParseError::Key)
}

pub(super) fn key_matches(key: &KeyPair, cert: &X509Certificate<'_>) -> bool {
    key.public_key_raw() == cert.public_key().subject_public_key.data.as_ref()
}
