//! RFC 3339 UTC timestamps from unix milliseconds, without a date crate
//! (the filter only ever needs this one format).

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

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar: Howard Hinnant's `civil_from_days`, restricted to days >= 0 so
/// everything stays unsigned.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
