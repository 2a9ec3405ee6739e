//! Calendar time (UTC) of the unix milliseconds the host passes (`now_ms`): plugins have no
//! clock, and timestamps in requests need the civil date.

/// A UTC date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

/// The UTC date and time of unix milliseconds (Howard Hinnant's civil_from_days).
pub fn utc(ms: i64) -> Utc {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Utc { year, month, day, hour: rem / 3600, minute: rem % 3600 / 60, second: rem % 60 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates_including_leap_days_and_before_1970() {
        let t = super::utc(951_782_400_000 + 3_723_000);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (2000, 2, 29, 1, 2, 3));
        let t = super::utc(-1000);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (1969, 12, 31, 23, 59, 59));
    }
}
