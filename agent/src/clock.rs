//! The time everything time-based in the agent goes by: backup names and their retention,
//! reboot windows, the ages `status` reports, the times recorded in state files.
//!
//! It is the system clock, shifted by `TN_AGENT_CLOCK_OFFSET_SECONDS` when that is set (a whole
//! number of seconds, negative for the past). The shift exists so that a test or a soak run can
//! live a day, a month or a year of the cluster's life in minutes; a node never sets it. TLS is
//! not affected: certificates are issued and checked against the real clock.

use std::sync::OnceLock;

use time::{Duration, OffsetDateTime};

/// The variable that shifts the agent's clock.
pub const OFFSET_VAR: &str = "TN_AGENT_CLOCK_OFFSET_SECONDS";

/// Now, in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc() + offset()
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
