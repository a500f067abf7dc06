//! The `Retry-After` header: delta-seconds or an HTTP date.

use std::time::{Duration, SystemTime};

/// Parses a `Retry-After` value: delta-seconds (fractions accepted, negatives and
/// non-numbers refused) or an HTTP date (one in the past means now).
///
/// ```
/// use std::time::Duration;
/// use http_retry::parse_retry_after;
///
/// assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
/// assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
/// assert_eq!(parse_retry_after("soon"), None);
/// ```
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The `Retry-After` header of an answer, parsed; `None` when absent or unreadable.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()
        .and_then(parse_retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_http_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = SystemTime::now() + Duration::from_secs(90);
        let wait = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            wait > Duration::from_secs(80) && wait <= Duration::from_secs(90),
            "{wait:?}"
        );
        for refused in ["-1", "soon", "inf", "NaN", ""] {
            assert_eq!(parse_retry_after(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn the_header_is_read_from_a_header_map() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}

/// The end of an error message about a wait the server asked for: `; retry after
/// 1.500 s`, or nothing when it asked for none. One wording for both clients.
///
/// ```
/// use std::time::Duration;
/// use http_retry::RetryAfterText;
///
/// assert_eq!(RetryAfterText(Some(Duration::from_millis(1500))).to_string(), "; retry after 1.500 s");
/// assert_eq!(RetryAfterText(None).to_string(), "");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfterText(pub Option<Duration>);

impl std::fmt::Display for RetryAfterText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(wait) => write!(f, "; retry after {:.3} s", wait.as_secs_f64()),
            None => Ok(()),
        }
    }
}
