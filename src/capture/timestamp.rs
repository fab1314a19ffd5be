//! RFC 3339 UTC timestamps from unix milliseconds, without a date crate
//! (the filter only ever needs this one format).

use crate::calendar::civil_from_days;

/// `unix_ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let secs = unix_ms / 1_000;
    let millis = unix_ms % 1_000;
    let second_of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(secs / 86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // Expected values from Python's datetime.fromtimestamp(..., timezone.utc).
        for (ms, want) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_769_774_400_123, "2026-01-30T12:00:00.123Z"),
            (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(rfc3339_millis(ms), want, "{ms}");
        }
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // Walk 1970..2100 day by day: dates must be strictly increasing and
        // each month must end on its real last day.
        let mut previous = civil_from_days(0);
        for days in 1..47_482 {
            let date = civil_from_days(days);
            assert!(date > previous, "{days}: {date:?} after {previous:?}");
            if date.1 != previous.1 {
                let (y, m, d) = previous;
                let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
                let last = match m {
                    2 if leap => 29,
                    2 => 28,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                assert_eq!(d, last, "{previous:?}");
                assert_eq!(date.2, 1);
            }
            previous = date;
        }
    }
}
