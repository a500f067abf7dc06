//! The crate's errors: [`Error`] for a configuration that cannot work (fix it), and
//! [`Outage`], the source of [`auth_core::StoreError::Unavailable`] when Redis did not
//! serve a call (retry later). Neither ever carries a password or a stored value.

use std::fmt;
use std::time::Duration;

use crate::sealing::KeyError;

/// A configuration the store cannot work with: fix the setting.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL is not a `redis://` or `rediss://` URL naming a host.
    #[error("invalid redis url: {problem}")]
    InvalidUrl {
        /// What is wrong with it (never the URL itself).
        problem: &'static str,
    },
    /// The Redis client refused the URL (its text, password removed, is the source).
    #[error("invalid redis url: the redis client refuses it")]
    UnusableUrl {
        /// The client's reason.
        #[source]
        source: RedisText,
    },
    /// The encryption keys are unusable. (Its text is the [`KeyError`]'s.)
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// Why Redis did not serve a call: the source of
/// [`auth_core::StoreError::Unavailable`]. Names the server (`host:port`, no password)
/// and the store method.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Outage {
    /// No answer within the time allowed (connecting included).
    #[error("redis at {server} did not answer {op} within {}", Secs(*after))]
    Timeout {
        /// `host:port`.
        server: String,
        /// The store method.
        op: &'static str,
        /// The time allowed.
        after: Duration,
    },
    /// The connection failed or Redis answered with an error.
    #[error("redis at {server} failed {op}")]
    Failed {
        /// `host:port`.
        server: String,
        /// The store method.
        op: &'static str,
        /// The Redis client's error text, password removed.
        #[source]
        source: RedisText,
    },
    /// A session that does not open was removed, and another took its place, again
    /// and again: someone is writing values to the store's keys.
    #[error("redis at {server} keeps holding sessions that do not open ({op})")]
    Unopenable {
        /// `host:port`.
        server: String,
        /// The store method.
        op: &'static str,
    },
    /// A session is sealed with a key this store does not have: another replica's
    /// keys differ. It is left for the replicas that can open it (removing it would
    /// leave its InstantDB token alive with no entry holding it).
    #[error(
        "redis at {server} holds a session sealed with a key this replica does not have; give every replica the same encryption keys"
    )]
    SealedElsewhere {
        /// `host:port`.
        server: String,
    },
}

impl Outage {
    /// Whether Redis did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Outage::Timeout { .. })
    }
}

/// The text of a Redis client error, with the URL's password removed.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RedisText(String);

impl RedisText {
    pub(crate) fn new(text: String) -> Self {
        RedisText(text)
    }
}

impl fmt::Debug for RedisText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A duration in seconds or milliseconds, for messages.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{} s", ms / 1000)
        } else {
            write!(f, "{ms} ms")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_name_the_server_and_the_call() {
        let timeout = Outage::Timeout {
            server: "127.0.0.1:6379".into(),
            op: "get",
            after: Duration::from_secs(3),
        };
        assert_eq!(
            timeout.to_string(),
            "redis at 127.0.0.1:6379 did not answer get within 3 s"
        );
        assert!(timeout.is_timeout());
        let failed = Outage::Failed {
            server: "cache:6380".into(),
            op: "insert",
            source: RedisText::new("Connection refused (os error 111)".into()),
        };
        assert_eq!(failed.to_string(), "redis at cache:6380 failed insert");
        assert_eq!(
            std::error::Error::source(&failed).unwrap().to_string(),
            "Connection refused (os error 111)"
        );
        let ms = Outage::Timeout {
            server: "s:1".into(),
            op: "ping",
            after: Duration::from_millis(1500),
        };
        assert!(ms.to_string().ends_with("within 1500 ms"), "{ms}");
    }
}
