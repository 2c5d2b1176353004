//! The reboot window and durations of `[reboot]` (SPEC §9), in locksmith's syntax: a start
//! `"Thu 23:00"` (the day optional: every day) and a length `"1h30m"`, in UTC.

use std::fmt;
use std::time::Duration;

use time::{OffsetDateTime, Weekday};

/// When reboots may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `None`: every day.
    pub day: Option<Weekday>,
    /// Minutes after midnight UTC.
    pub minute: u32,
    pub length: Duration,
}

const WEEKDAYS: [(Weekday, &str); 7] = [
    (Weekday::Monday, "mon"),
    (Weekday::Tuesday, "tue"),
    (Weekday::Wednesday, "wed"),
    (Weekday::Thursday, "thu"),
    (Weekday::Friday, "fri"),
    (Weekday::Saturday, "sat"),
    (Weekday::Sunday, "sun"),
];

impl Window {
    /// `start` as `[Day ]HH:MM` (day names in English, three letters or whole, any case) and
    /// `length` as a duration; `Err` says what is expected.
    pub fn parse(start: &str, length: &str) -> Result<Window, String> {
        const START: &str = "a start like \"Thu 23:00\" or \"23:00\" (UTC)";
        let (day, clock) = match start.trim().split_once(' ') {
            Some((day, clock)) => {
                let day = day.to_ascii_lowercase();
                let found = WEEKDAYS.iter().find(|(_, short)| {
                    day.starts_with(short) && weekday_name(short).starts_with(&day)
                });
                (Some(found.ok_or(START)?.0), clock.trim())
            }
            None => (None, start.trim()),
        };
        let (h, m) = clock.split_once(':').ok_or(START)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| START)?, m.parse().map_err(|_| START)?);
        if h > 23 || m > 59 || clock.len() > 5 {
            return Err(START.into());
        }
        let length = parse_duration(length)?;
        if length.is_zero() || length > Duration::from_secs(7 * 24 * 3600) {
            return Err("a window length from 1s to 168h".into());
        }
        Ok(Window {
            day,
            minute: h * 60 + m,
            length,
        })
    }

    /// Whether `now` is inside the window.
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        let now = now.to_offset(time::UtcOffset::UTC);
        let period_days: i64 = if self.day.is_some() { 7 } else { 1 };
        let midnight = now.replace_time(time::Time::MIDNIGHT);
        let days_back = match self.day {
            None => 0,
            Some(day) => (now.weekday().number_days_from_monday() as i64
                - day.number_days_from_monday() as i64)
                .rem_euclid(7),
        };
        let mut start = midnight - time::Duration::days(days_back)
            + time::Duration::minutes(self.minute.into());
        if start > now {
            start -= time::Duration::days(period_days);
        }
        now < start + self.length
    }
}

fn weekday_name(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(day) = self.day {
            write!(f, "{day} ")?;
        }
        write!(
            f,
            "{:02}:{:02} UTC for {}",
            self.minute / 60,
            self.minute % 60,
            format_duration(self.length)
        )
    }
}

/// A duration the way the config writes them: `1h30m`, `15m`, `90s` as `1m30s`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let mut out = String::new();
    for (n, unit) in [(s / 3600, 'h'), (s / 60 % 60, 'm'), (s % 60, 's')] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// A duration as `90s`, `15m`, `1h30m` (hours, minutes, seconds, in that order, each at most
/// once, at least one).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const RULE: &str = "a duration like \"90s\", \"15m\" or \"1h30m\"";
    let mut total = 0u64;
    let mut number = String::new();
    let mut seen = Vec::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(RULE.into()),
        };
        let n: u64 = number.parse().map_err(|_| RULE)?;
        if seen.last().is_some_and(|&last| last <= unit) {
            return Err(RULE.into());
        }
        seen.push(unit);
        total = total
            .checked_add(n.checked_mul(unit).ok_or(RULE)?)
            .ok_or(RULE)?;
        number.clear();
    }
    if !number.is_empty() || seen.is_empty() {
        return Err(RULE.into());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "10", "m", "1m1h", "1h1h", "1d", "-1s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_weekly_window_opens_on_its_day_and_closes_after_its_length() {
        let w = Window::parse("Thu 23:00", "1h30m").unwrap();
        assert_eq!(w.day, Some(Weekday::Thursday));
        // 2026-12-03 is a Thursday.
        assert!(!w.is_open(datetime!(2026-12-03 22:59 UTC)));
        assert!(w.is_open(datetime!(2026-12-03 23:00 UTC)));
        assert!(w.is_open(datetime!(2026-12-04 00:29 UTC)), "past midnight");
        assert!(!w.is_open(datetime!(2026-12-04 00:30 UTC)));
        assert!(!w.is_open(datetime!(2026-12-10 22:00 UTC)));
        assert!(w.is_open(datetime!(2026-12-10 23:10 UTC)), "a week later");
        assert_eq!(
            Window::parse("thursday 23:00", "1h").unwrap().day,
            Some(Weekday::Thursday)
        );
    }

    #[test]
    fn a_daily_window_opens_every_day() {
        let w = Window::parse("23:30", "1h").unwrap();
        assert!(w.is_open(datetime!(2026-12-02 23:45 UTC)));
        assert!(w.is_open(datetime!(2026-12-03 00:15 UTC)));
        assert!(!w.is_open(datetime!(2026-12-03 00:30 UTC)));
        assert!(!w.is_open(datetime!(2026-12-03 12:00 UTC)));
        for (start, length) in [
            ("Thx 23:00", "1h"),
            ("24:00", "1h"),
            ("23:60", "1h"),
            ("23:00", "0s"),
            ("23", "1h"),
        ] {
            assert!(Window::parse(start, length).is_err(), "{start} {length}");
        }
    }
}
