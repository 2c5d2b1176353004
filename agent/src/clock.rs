//! The time everything time-based in the agent goes by: backup names and their retention,
//! reboot windows, the ages `status` reports, the times recorded in state files.
//!
//! It is the system clock, shifted by `TN_AGENT_CLOCK_OFFSET_SECONDS` when that is set (a whole
//! number of seconds, negative for the past). The shift exists so that a test or a soak run can
//! live a day, a month or a year of the cluster's life in minutes; a node never sets it.
//! Certificates go by it too: whether one is due for renewal, expired or not valid yet is
//! judged by this clock, and one issued now is valid by both clocks ([`validity`]), as TLS peers
//! (etcd, the apiserver) check it against the system's.

use std::sync::OnceLock;

use time::{Duration, OffsetDateTime};

/// The variable that shifts the agent's clock.
pub const OFFSET_VAR: &str = "TN_AGENT_CLOCK_OFFSET_SECONDS";

/// Now, in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc() + offset()
}

/// The validity of a certificate issued now for `lifetime`: from `backdate` before the earlier
/// of the system clock and this one, to `lifetime` after the later. Without a shift, the usual
/// `[now - backdate, now + lifetime]`.
pub fn validity(
    backdate: std::time::Duration,
    lifetime: std::time::Duration,
) -> (OffsetDateTime, OffsetDateTime) {
    validity_with(OffsetDateTime::now_utc(), offset(), backdate, lifetime)
}

fn validity_with(
    system: OffsetDateTime,
    offset: Duration,
    backdate: std::time::Duration,
    lifetime: std::time::Duration,
) -> (OffsetDateTime, OffsetDateTime) {
    let shifted = system + offset;
    (
        system.min(shifted) - backdate,
        system.max(shifted) + lifetime,
    )
}

fn offset() -> Duration {
    static OFFSET: OnceLock<Duration> = OnceLock::new();
    *OFFSET.get_or_init(|| match std::env::var(OFFSET_VAR) {
        Ok(text) => match text.trim().parse::<i64>() {
            Ok(secs) => Duration::seconds(secs),
            Err(_) => {
                tracing::warn!(variable = OFFSET_VAR, value = %text, "ignoring a clock offset that is not a whole number of seconds");
                Duration::ZERO
            }
        },
        Err(_) => Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

    #[test]
    fn a_certificate_is_valid_by_both_clocks() {
        let system = time::macros::datetime!(2026-12-03 12:00 UTC);
        let backdate = std::time::Duration::from_secs(300);
        let unshifted = validity_with(system, Duration::ZERO, backdate, 365 * DAY);
        assert_eq!(unshifted, (system - backdate, system + 365 * DAY));
        // A year ahead: valid now by the system clock, and for a year by the shifted one.
        let ahead = validity_with(system, Duration::days(365), backdate, 365 * DAY);
        assert_eq!(ahead, (system - backdate, system + 730 * DAY));
        // Behind: valid from the shifted now, for a year from the system's.
        let behind = validity_with(system, Duration::days(-10), backdate, 365 * DAY);
        assert_eq!(behind, (system - 10 * DAY - backdate, system + 365 * DAY));
    }
}
