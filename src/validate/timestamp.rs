//! Timestamps: the one grammar the service accepts and the one form it stores and shows.
//!
//! RFC 3339 / ISO 8601 date-times with `T`, `t` or a space between date and time, an
//! optional fraction (`.` or `,`), and `Z` or `±HH:MM` (none = UTC). Normalised to UTC as
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ`, truncated to microseconds (what PostgreSQL keeps), so the
//! text sorts in time order and round-trips exactly through `timestamptz`. Leap seconds and
//! UTC years outside 0001–9999 are refused: the stores cannot hold them exactly.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};

/// Parses an ISO 8601 / RFC 3339 date-time and renders it as UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn normalize_timestamp(s: &str) -> Result<String, String> {
    if is_normal(s.as_bytes()) {
        return Ok(s.to_owned());
    }
    parse_timestamp(s).map(|utc| render_utc(&utc))
}

/// Whether `b` is already what [`render_utc`] makes of it — `YYYY-MM-DDTHH:MM:SS.ffffffZ`, a
/// real date and time of day, year 0001 or later — as most senders' clocks write it; then
/// normalising it is copying it.
fn is_normal(b: &[u8]) -> bool {
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        i0,
        i1,
        b':',
        s0,
        s1,
        b'.',
        fraction @ ..,
        b'Z',
    ] = b
    else {
        return false;
    };
    let digits = [y0, y1, y2, y3, m0, m1, d0, d1, h0, h1, i0, i1, s0, s1];
    if fraction.len() != 6
        || !digits.iter().all(|d| d.is_ascii_digit())
        || !fraction.iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let n = |a: &u8, b: &u8| u32::from(a - b'0') * 10 + u32::from(b - b'0');
    let year = n(y0, y1) * 100 + n(y2, y3);
    let (month, day) = (n(m0, m1), n(d0, d1));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days).contains(&day) && n(h0, h1) < 24 && n(i0, i1) < 60 && n(s0, s1) < 60
}

/// Renders a UTC instant in the one format this service emits.
///
/// Writes the digits itself: every event's timestamp passes through here, and `format!` with
/// seven padded fields cost more than the rest of the timestamp's checks (issue 17's profile).
pub fn render_utc(t: &NaiveDateTime) -> String {
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for slot in out[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    // Years are 0001–9999 here (parse_timestamp and from_unix_nanos refuse the rest).
    put(0, 4, t.year().clamp(0, 9999) as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    put(20, 6, t.nanosecond() / 1_000);
    out.iter().map(|&b| char::from(b)).collect()
}

/// Renders nanoseconds since the Unix epoch (OTLP's and Loki's clocks), refusing what the
/// stores cannot hold (before year 0001 or after 9999).
pub fn from_unix_nanos(nanos: i128) -> Result<String, String> {
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000));
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    let at = secs
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, sub))
        .map(|t| t.naive_utc())
        .filter(|t| (1..=9999).contains(&t.year()))
        .ok_or_else(|| format!("{nanos} ns since the Unix epoch is outside years 0001-9999"))?;
    Ok(render_utc(&at))
}

/// Parses a timestamp into a UTC instant (see the module doc for the accepted grammar).
pub fn parse_timestamp(s: &str) -> Result<NaiveDateTime, String> {
    const HINT: &str = "must be an ISO 8601 date-time such as 2024-05-01T12:00:00Z";
    let b = s.as_bytes();
    if b.len() < 19 || b.len() > 64 {
        return Err(HINT.into());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let part = &b[range];
        if part.iter().all(u8::is_ascii_digit) {
            Ok(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        } else {
            Err(HINT.to_string())
        }
    };
    let sep_ok = b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b't' | b' ');
    if !sep_ok || b[13] != b':' || b[16] != b':' {
        return Err(HINT.into());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &b[19..];
    let mut micros = 0;
    if let [b'.' | b',', tail @ ..] = rest {
        let digits = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(HINT.into());
        }
        micros = tail[..digits]
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(6)
            .fold(0, |n, d| n * 10 + u32::from(d - b'0'));
        rest = &tail[digits..];
    }
    let offset_minutes: i64 = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(HINT.into());
            }
            let h = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let m = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if h > 23 || m > 59 {
                return Err("has an offset out of range (max ±23:59)".into());
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return Err(HINT.into()),
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)
        .ok_or_else(|| format!("is not a real calendar date ({year:04}-{month:02}-{day:02})"))?;
    if second > 59 {
        return Err("has seconds out of range (leap seconds are not supported)".into());
    }
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
        .ok_or_else(|| "has a time of day out of range".to_string())?;
    let utc = NaiveDateTime::new(date, time)
        .checked_sub_signed(TimeDelta::minutes(offset_minutes))
        .filter(|t| (1..=9999).contains(&t.year()))
        .ok_or_else(|| "is outside the years 0001-9999 once converted to UTC".to_string())?;
    Ok(utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_form_shortcut_agrees_with_the_full_path() {
        let mut rng = crate::testing::Rng(0x853c_49e6_748f_ea9b);
        let mut next = |n: u64| rng.below(n as usize) as u64;
        let mut normal = 0;
        for _ in 0..200_000 {
            let pick = |v: &[&'static str], r: u64| v[r as usize % v.len()];
            let t = format!(
                "{}-{}-{}{}{}:{}:{}{}{}",
                pick(
                    &[
                        "0000", "0001", "1900", "2000", "2023", "2024", "9999", "20a4"
                    ],
                    next(8)
                ),
                pick(&["00", "01", "02", "04", "09", "12", "13"], next(7)),
                pick(&["00", "01", "28", "29", "30", "31", "32"], next(7)),
                pick(&["T", "T", "T", "t", " "], next(5)),
                pick(&["00", "09", "23", "24"], next(4)),
                pick(&["00", "59", "60"], next(3)),
                pick(&["00", "59", "60"], next(3)),
                pick(
                    &[".000000", ".123456", ".12345", ".1234567", "", ".12345a"],
                    next(6)
                ),
                pick(&["Z", "Z", "Z", "z", "+00:00", ""], next(6)),
            );
            let fast = is_normal(t.as_bytes());
            normal += usize::from(fast);
            let full = parse_timestamp(&t).map(|utc| render_utc(&utc));
            if fast {
                assert_eq!(full.as_deref(), Ok(t.as_str()), "{t}");
            } else if let Ok(rendered) = full {
                assert_ne!(rendered, t, "{t} is normal but the shortcut missed it");
            }
        }
        assert!(normal > 1_000, "{normal} normal-form timestamps generated");
    }

    #[test]
    fn timestamps_normalise_to_utc_microseconds() {
        for (input, expected) in [
            ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000000Z"),
            ("2024-05-01t12:00:00z", "2024-05-01T12:00:00.000000Z"),
            ("2024-05-01 12:00:00", "2024-05-01T12:00:00.000000Z"),
            ("2024-05-01T12:00:00.5+02:00", "2024-05-01T10:00:00.500000Z"),
            (
                "2024-05-01T01:30:00.123456789-05:30",
                "2024-05-01T07:00:00.123456Z",
            ),
            ("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00.000000Z"),
            ("2024-03-01T00:10:00+00:20", "2024-02-29T23:50:00.000000Z"),
            ("2024-05-01T12:00:00,25", "2024-05-01T12:00:00.250000Z"),
            ("2024-05-01T12:00:00-00:00", "2024-05-01T12:00:00.000000Z"),
        ] {
            assert_eq!(
                normalize_timestamp(input).as_deref(),
                Ok(expected),
                "{input}"
            );
        }
    }

    #[test]
    fn bad_timestamps_are_rejected() {
        for input in [
            "",
            "2024-05-01",
            "2024-05-01T12:00",
            "2024-05-01X12:00:00Z",
            "2024-02-30T12:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:60:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+2:00",
            "2024-05-01T12:00:00+24:00",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00Z junk",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-00:01",
            "+2024-05-01T12:00:00Z",
            "２０２４-05-01T12:00:00Z",
            "1714564800",
        ] {
            assert!(
                normalize_timestamp(input).is_err(),
                "{input} should be rejected"
            );
        }
    }

    #[test]
    fn normalised_form_is_a_fixed_point() {
        let once = normalize_timestamp("2024-05-01T12:00:00.1234567+03:00").unwrap();
        assert_eq!(normalize_timestamp(&once).unwrap(), once);
    }

    #[test]
    fn unix_nanos() {
        assert_eq!(
            from_unix_nanos(1_544_712_660_300_000_123).unwrap(),
            "2018-12-13T14:51:00.300000Z"
        );
        assert_eq!(from_unix_nanos(0).unwrap(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(from_unix_nanos(-1).unwrap(), "1969-12-31T23:59:59.999999Z");
        assert!(from_unix_nanos(i128::from(i64::MAX) * 1_000_000_000).is_err());
        assert!(from_unix_nanos(-62_200_000_000 * 1_000_000_000).is_err());
    }

    #[test]
    fn rendering_pads_every_field() {
        let t = NaiveDate::from_ymd_opt(7, 3, 4)
            .unwrap()
            .and_hms_micro_opt(5, 6, 7, 89)
            .unwrap();
        assert_eq!(render_utc(&t), "0007-03-04T05:06:07.000089Z");
        let t = NaiveDate::from_ymd_opt(9999, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 999_999_999)
            .unwrap();
        assert_eq!(render_utc(&t), "9999-12-31T23:59:59.999999Z");
    }
}
