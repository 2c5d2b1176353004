//! [`pem_certificates`]: the certificate blocks of a bundle.

use crate::pki::{pem_certificates, verifies, Ca};

#[test]
fn a_bundle_splits_into_its_certificate_blocks() {
    let ca = Ca::generate("a").unwrap();
    let other = Ca::generate("b").unwrap();
    let bundle = format!("{}{}", ca.cert_pem(), other.cert_pem());
    let blocks = pem_certificates(&bundle);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks, [ca.cert_pem(), other.cert_pem()]);
    assert!(verifies(other.cert_pem(), &blocks[1]));

    // Text around the blocks and other kinds of block are left out; each block ends in one
    // newline however it ended in the bundle.
    let cert = ca.cert_pem().trim_end();
    let text = format!("subject=CN=a\n{cert}\r\n\n{}junk\n{cert}", ca.key_pem());
    assert_eq!(
        pem_certificates(&text),
        [format!("{cert}\n"), format!("{cert}\n")]
    );

    // A last block without its end line is not a block.
    let cut = &ca.cert_pem()[..ca.cert_pem().len() - 10];
    assert_eq!(
        pem_certificates(&format!("{}{cut}", other.cert_pem())).len(),
        1
    );
    assert!(pem_certificates("").is_empty());
    assert!(pem_certificates(&ca.key_pem()).is_empty());
}
