//! [`inspect`] and [`verifies`].

use time::OffsetDateTime;

use super::*;
use crate::pki::ca::BACKDATE;
use crate::pki::{inspect, verifies, Ca};

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
