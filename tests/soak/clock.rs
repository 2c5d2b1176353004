//! The simulated clock: the soak's time, shared with every tn-agent it starts through
//! `TN_AGENT_CLOCK_OFFSET_SECONDS`. It runs at the system clock's pace and jumps forward when the
//! soak skips time (to the next timer, the next day).

use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

pub const DAY: i64 = 86_400;
pub const HOUR: i64 = 3_600;

pub struct SimClock {
    /// The simulated time of day 0, 00:00.
    start: OffsetDateTime,
    /// Simulated minus system time, in seconds.
    offset: AtomicI64,
}

impl SimClock {
    /// A clock whose day 0 starts at the next midnight (UTC) after now: the agents' clock is
    /// never behind the system's, so nothing the operator made at the start is "not valid yet".
    pub fn new() -> Self {
        let now = OffsetDateTime::now_utc();
        let start = now.replace_time(time::Time::MIDNIGHT) + Duration::days(1);
        let clock = SimClock {
            start,
            offset: AtomicI64::new(0),
        };
        clock.jump_to(0);
        clock
    }

    /// Simulated now.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + Duration::seconds(self.offset())
    }

    /// The offset to give the agents now.
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::SeqCst)
    }

    /// Simulated seconds since day 0, 00:00.
    pub fn elapsed(&self) -> i64 {
        (self.now() - self.start).whole_seconds()
    }

    /// Simulated days since day 0, 00:00 (fractional).
    pub fn day(&self) -> f64 {
        (self.now() - self.start).as_seconds_f64() / DAY as f64
    }

    /// Moves the clock to `at` seconds after day 0, 00:00; never backwards (time spent on
    /// earlier work is kept).
    pub fn jump_to(&self, at: i64) {
        let target = self.start + Duration::seconds(at);
        let offset = (target - OffsetDateTime::now_utc()).whole_seconds();
        self.offset.fetch_max(offset, Ordering::SeqCst);
    }
}
