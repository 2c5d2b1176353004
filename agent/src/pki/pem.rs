//! PEM text: the DER of a first block with a given label, and the certificate blocks of a
//! bundle.

use std::io::Cursor;

use x509_parser::pem::Pem;

use super::ParseError;

/// The label of a certificate block.
pub(super) const PEM_CERT: &str = "CERTIFICATE";
/// The label of a PKCS#8 private key block.
pub(super) const PEM_PKCS8: &str = "PRIVATE KEY";

/// The DER of the first PEM block, which must carry `label`.
pub(super) fn pem_block(pem: &str, label: &'static str) -> Result<Vec<u8>, ParseError> {
    let (block, _) = Pem::read(Cursor::new(pem.as_bytes())).map_err(ParseError::Pem)?;
    if block.label != label {
        return Err(ParseError::Label {
            found: block.label,
            expected: label,
        });
    }
    Ok(block.contents)
}

/// Each `CERTIFICATE` PEM block of `text`, in order, as text from its `-----BEGIN` line to its
/// `-----END` line plus a newline. Other blocks, text between blocks and a last block without
/// its end line are left out; the blocks are not decoded.
pub fn pem_certificates(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    out
}
