//! Dates for the command line: `--at` as Unix seconds or RFC 3339, and Unix seconds
//! shown as `YYYY-MM-DDTHH:MM:SSZ` with a relative age. Written here (civil-from-days
//! and its inverse) rather than pulling a date crate for two conversions.

/// Reads `text` as Unix seconds (`1649367553`) or an RFC 3339 date
/// (`2022-04-07T21:39:13Z`, `2022-04-07T23:39:13+02:00`, fractions ignored). `None`
/// when it is neither or before 1970.
pub(crate) fn parse_instant(text: &str) -> Option<u64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    parse_rfc3339(text)
}

fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let separators_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        // A leap second is read as the second before the next minute.
        && second <= 60;
    if !valid {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = &rest[1..];
            if zone.len() != 5 || zone.as_bytes()[2] != b':' {
                return None;
            }
            let hours: i64 = zone[..2].parse().ok()?;
            let minutes: i64 = zone[3..].parse().ok()?;
            if hours > 23
                || minutes > 59
                || !zone
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| i == 2 || b.is_ascii_digit())
            {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let local =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59);
    u64::try_from(local - offset).ok()
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days-from-civil: days since 1970-01-01.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn rfc3339(unix: u64) -> String {
    let unix = i64::try_from(unix).unwrap_or(i64::MAX);
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// How far `then` is from `now`, in words: `12 s ago`, `in 3 min`, `now`.
pub(crate) fn relative(then: u64, now: u64) -> String {
    let (distance, past) = if then <= now {
        (now - then, true)
    } else {
        (then - now, false)
    };
    if distance == 0 {
        return "now".to_owned();
    }
    let amount = match distance {
        0..120 => format!("{distance} s"),
        120..7200 => format!("{} min", distance / 60),
        7200..172_800 => format!("{} h", distance / 3600),
        _ => format!("{} days", distance / 86_400),
    };
    if past {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// A Unix time in a message: `2027-01-15 08:00:04 UTC, 6 s ago` (relative to `now`).
/// A time before 1970 is shown as its number of seconds.
pub(crate) fn shown(then: i64, now: i64) -> String {
    let (Ok(then_u), Ok(now_u)) = (u64::try_from(then), u64::try_from(now)) else {
        return format!("{then} (Unix seconds)");
    };
    let date = rfc3339(then_u)
        .replacen('T', " ", 1)
        .replacen('Z', " UTC", 1);
    format!("{date}, {}", relative(then_u, now_u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_in_a_message_is_a_date_and_an_age() {
        assert_eq!(
            shown(1_649_367_553, 1_649_367_733),
            "2022-04-07 21:39:13 UTC, 3 min ago"
        );
        assert_eq!(
            shown(1_649_367_553, 1_649_367_553),
            "2022-04-07 21:39:13 UTC, now"
        );
        assert_eq!(shown(-5, 0), "-5 (Unix seconds)");
    }

    #[test]
    fn unix_seconds_and_rfc3339_name_the_same_instant() {
        assert_eq!(parse_instant("1649367553"), Some(1_649_367_553));
        assert_eq!(parse_instant("2022-04-07T21:39:13Z"), Some(1_649_367_553));
        assert_eq!(
            parse_instant("2022-04-07T23:39:13.250+02:00"),
            Some(1_649_367_553)
        );
        assert_eq!(
            parse_instant("2022-04-07t20:09:13-01:30"),
            Some(1_649_367_553)
        );
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_instant("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(rfc3339(1_649_367_553), "2022-04-07T21:39:13Z");
        assert_eq!(rfc3339(1_709_164_800), "2024-02-29T00:00:00Z");
        for unix in [0, 59, 86_399, 951_782_400, 1_649_367_553, 4_102_444_800] {
            assert_eq!(parse_instant(&rfc3339(unix)), Some(unix), "{unix}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "-1",
            "1.5",
            "yesterday",
            "2022-04-07",
            "2022-04-07T21:39:13",
            "2022-04-07T21:39:13+0200",
            "2022-13-07T21:39:13Z",
            "2023-02-29T21:39:13Z",
            "2022-04-07T24:00:00Z",
            "2022-04-07T21:39:13.Z",
            "1969-12-31T23:59:59Z",
            "2022-04-07T21:39:13+2:000",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn ages_read_as_words() {
        assert_eq!(relative(100, 100), "now");
        assert_eq!(relative(90, 100), "10 s ago");
        assert_eq!(relative(100, 90), "in 10 s");
        assert_eq!(relative(0, 600), "10 min ago");
        assert_eq!(relative(0, 3 * 3600), "3 h ago");
        assert_eq!(relative(0, 10 * 86_400), "10 days ago");
    }
}
