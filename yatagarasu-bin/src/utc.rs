//! UTC timestamps in RFC 3339 for log lines and audit records, written without a date-time crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Digits after the seconds' decimal point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fraction {
    Millis,
    /// Request lines (feature `cli`).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    Micros,
}

/// Append `t` as `YYYY-MM-DDTHH:MM:SS.fffZ` (or `.ffffffZ`); times before 1970 as the epoch.
pub(crate) fn write_rfc3339(out: &mut Vec<u8>, t: SystemTime, fraction: Fraction) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let two = |out: &mut Vec<u8>, v: u64| {
        out.push(b'0' + (v / 10 % 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    out.extend_from_slice(itoa::Buffer::new().format(year).as_bytes());
    out.push(b'-');
    two(out, month);
    out.push(b'-');
    two(out, day);
    out.push(b'T');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem / 60 % 60);
    out.push(b':');
    two(out, rem % 60);
    out.push(b'.');
    let (value, width) = match fraction {
        Fraction::Millis => (since.subsec_millis(), 3),
        Fraction::Micros => (since.subsec_micros(), 6),
    };
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(value);
    out.extend(std::iter::repeat_n(b'0', width - digits.len()));
    out.extend_from_slice(digits.as_bytes());
    out.push(b'Z');
}

/// `t` as an RFC 3339 string with milliseconds.
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339(&mut out, t, Fraction::Millis);
    String::from_utf8(out).unwrap_or_default()
}

/// The UTC day of `t`, as days since 1970-01-01.
pub(crate) fn utc_day(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        / 86_400
}

/// Year, month, day of the `days`-th day after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
    }

    fn micros(t: SystemTime) -> String {
        let mut out = Vec::new();
        write_rfc3339(&mut out, t, Fraction::Micros);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        for (secs, us, millis_form, micros_form) in [
            (
                0,
                0,
                "1970-01-01T00:00:00.000Z",
                "1970-01-01T00:00:00.000000Z",
            ),
            // A leap day, its last microsecond, and the day after.
            (
                951_782_400,
                7_000,
                "2000-02-29T00:00:00.007Z",
                "2000-02-29T00:00:00.007000Z",
            ),
            (
                951_868_799,
                999_999,
                "2000-02-29T23:59:59.999Z",
                "2000-02-29T23:59:59.999999Z",
            ),
            (
                951_868_800,
                0,
                "2000-03-01T00:00:00.000Z",
                "2000-03-01T00:00:00.000000Z",
            ),
            (
                1_795_719_599,
                7,
                "2026-11-26T18:59:59.000Z",
                "2026-11-26T18:59:59.000007Z",
            ),
            // 2100 is not a leap year.
            (
                4_107_542_400,
                120_000,
                "2100-03-01T00:00:00.120Z",
                "2100-03-01T00:00:00.120000Z",
            ),
        ] {
            assert_eq!(rfc3339_millis(at(secs, us)), millis_form);
            assert_eq!(micros(at(secs, us)), micros_form);
        }
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(utc_day(at(86_400 * 3 + 5, 0)), 3);
    }
}
