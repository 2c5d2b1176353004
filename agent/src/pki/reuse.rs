//! The keep-or-reissue decision for a leaf on disk, over the certificate and key text, the CA
//! and the request; pure given the time (`check_reuse_at`), [`check_reuse`] takes it as now.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use super::inspect::{cert_info, key_matches, not_signed_by, parse_cert, parse_key, CertInfo};
use super::pem::{pem_block, PEM_CERT};
use super::{Ca, LeafRequest, Usage};
use crate::exit::one_line;

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
///    signature verifies with the CA's public key (ring, through x509-parser);
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
        crate::clock::now(),
    );
    if let Reuse::Reissue(why) = &verdict {
        tracing::debug!(cn = %req.common_name, reason = %why, "certificate must be reissued");
    }
    verdict
}

pub(super) fn check_reuse_at(
    cert_pem: &str,
    key_pem: &str,
    ca: &Ca,
    req: &LeafRequest,
    renew_before: Duration,
    now: OffsetDateTime,
) -> Reuse {
    match reissue_reason(cert_pem, key_pem, &ca.parsed(), req, renew_before, now) {
        None => Reuse::Keep,
        Some(why) => Reuse::Reissue(why),
    }
}

/// [`check_reuse`] against a CA's certificate alone (PEM, the first certificate), as a node
/// keeps it on disk: whether the leaf would be kept by the next run that has the CA, without
/// fetching the CA. A CA certificate that does not parse is a `Reissue`.
pub fn check_reuse_against_cert(
    cert_pem: &str,
    key_pem: &str,
    ca_cert_pem: &str,
    req: &LeafRequest,
    renew_before: Duration,
) -> Reuse {
    let der = match pem_block(ca_cert_pem, PEM_CERT) {
        Ok(der) => der,
        Err(e) => return Reuse::Reissue(format!("CA certificate: {}", one_line(&e))),
    };
    let ca = match parse_cert(&der) {
        Ok(ca) => ca,
        Err(e) => return Reuse::Reissue(format!("CA certificate: {}", one_line(&e))),
    };
    let now = crate::clock::now();
    match reissue_reason(cert_pem, key_pem, &ca, req, renew_before, now) {
        None => Reuse::Keep,
        Some(why) => Reuse::Reissue(why),
    }
}

fn reissue_reason(
    cert_pem: &str,
    key_pem: &str,
    ca: &X509Certificate<'_>,
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
    if let Some(why) = not_signed_by(&cert, ca) {
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

/// `30 days`, `12 hours` or `90 seconds`.
pub(super) fn describe(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} hours", s / 3_600),
        s => format!("{s} seconds"),
    }
}
