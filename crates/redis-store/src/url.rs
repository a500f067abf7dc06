//! [`RedisUrl`]: the address of the Redis server, whose password never shows.

use std::fmt;

use crate::error::{Error, RedisText};

/// A `redis://` or `rediss://` (TLS) URL:
/// `redis[s]://[[user]:password@]host[:port][/db]`. Its password is a secret: `Display`
/// and `Debug` show `***` in its place, and error texts never carry it.
///
/// ```
/// use redis_store::RedisUrl;
///
/// let url = RedisUrl::parse("rediss://default:s3cr3t@cache.internal:6380/2")?;
/// assert_eq!(url.to_string(), "rediss://default:***@cache.internal:6380/2");
/// assert_eq!(url.server(), "cache.internal:6380");
/// assert!(url.is_tls());
/// assert!(RedisUrl::parse("http://cache.internal").is_err());
/// # Ok::<(), redis_store::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisUrl {
    raw: String,
    redacted: String,
    server: String,
    tls: bool,
    /// The password as written and percent-decoded, to scrub from error texts.
    secrets: Vec<String>,
}

impl RedisUrl {
    /// Checks the URL: the scheme is `redis` or `rediss`, it names a host, and the Redis
    /// client accepts it. The error never contains the URL.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |problem| Error::InvalidUrl { problem };
        let url = redis::parse_redis_url(text.trim()).ok_or(invalid("it is not a url"))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            _ => return Err(invalid("the scheme must be redis:// or rediss:// (tls)")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(invalid("it names no host"))?;
        if url.fragment().is_some() {
            // `#insecure` would turn off the certificate check (and the client is not
            // built to allow it); any other fragment means nothing.
            return Err(invalid("it has a #fragment (#insecure is not supported)"));
        }
        let server = format!("{host}:{}", url.port().unwrap_or(6379));
        let mut secrets = Vec::new();
        if let Some(password) = url.password().filter(|p| !p.is_empty()) {
            secrets.push(password.to_owned());
            let decoded = percent_decode(password);
            if decoded != password {
                secrets.push(decoded);
            }
        }
        let mut shown = url.clone();
        if url.password().is_some() {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = shown.set_password(Some("***"));
        }
        let raw = url.to_string();
        let this = RedisUrl {
            redacted: shown.to_string(),
            raw,
            server,
            tls,
            secrets,
        };
        redis::Client::open(this.raw.as_str()).map_err(|e| Error::UnusableUrl {
            source: this.scrub(&e),
        })?;
        Ok(this)
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether the connection uses TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The URL itself, password included, for the Redis client. Do not log it.
    pub(crate) fn expose(&self) -> &str {
        &self.raw
    }

    /// A Redis client error's text, with the password (if any) replaced by `***`.
    pub(crate) fn scrub(&self, error: &redis::RedisError) -> RedisText {
        let mut text = error.to_string();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        RedisText::new(text)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({:?})", self.redacted)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        let url = RedisUrl::parse("redis://app:p%40ss-w0rd@10.0.0.5/1").unwrap();
        assert_eq!(url.to_string(), "redis://app:***@10.0.0.5/1");
        assert_eq!(
            format!("{url:?}"),
            "RedisUrl(\"redis://app:***@10.0.0.5/1\")"
        );
        assert_eq!(url.server(), "10.0.0.5:6379");
        assert!(!url.is_tls());
        assert!(url.expose().contains("p%40ss-w0rd"));
        assert_eq!(url.secrets, ["p%40ss-w0rd", "p@ss-w0rd"]);
        let plain = RedisUrl::parse("redis://127.0.0.1:7000").unwrap();
        assert_eq!(plain.to_string(), "redis://127.0.0.1:7000");
    }

    #[test]
    fn unusable_urls_are_refused_without_echoing_them() {
        let cases = [
            ("", "it is not a url"),
            ("not a url with hunter2", "it is not a url"),
            ("http://u:hunter2@host", "it is not a url"),
            (
                "unix:///tmp/hunter2.sock",
                "the scheme must be redis:// or rediss:// (tls)",
            ),
        ];
        for (text, problem) in cases {
            let err = RedisUrl::parse(text).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidUrl { problem: p } if *p == problem),
                "{text}: {err:?}"
            );
            assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
        }
        let err = RedisUrl::parse("rediss://u:hunter2@host/#insecure").unwrap_err();
        assert!(
            matches!(err, Error::InvalidUrl { problem } if problem.contains("#insecure")),
            "{err:?}"
        );
        let err = RedisUrl::parse("redis://u:hunter2@host:99999").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    }

    #[test]
    fn client_errors_lose_the_password() {
        let url = RedisUrl::parse("redis://app:p%40ss-w0rd@10.0.0.5").unwrap();
        let error = redis::RedisError::from((
            redis::ErrorKind::Io,
            "connection failed",
            "redis://app:p%40ss-w0rd@10.0.0.5 with p@ss-w0rd".to_owned(),
        ));
        let text = url.scrub(&error).to_string();
        assert!(!text.contains("w0rd"), "{text}");
        assert!(text.contains("redis://app:***@10.0.0.5 with ***"), "{text}");
    }
}
