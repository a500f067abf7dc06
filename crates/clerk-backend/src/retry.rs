//! When a rate-limited request is tried again.

use std::time::Duration;

use http_retry::{AskedWait, Backoff, Budget, Policy};

/// When to retry a rate-limited request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 3.
    pub max_attempts: u32,
    /// The wait when a 429 carries no `Retry-After`. Default 1 s.
    pub default_wait: Duration,
    /// Never wait longer than this in all; a `Retry-After` beyond it fails at once.
    /// Default 10 s.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            default_wait: Duration::from_secs(1),
            max_total_wait: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Sets the attempt count and the total wait bound.
    pub fn new(max_attempts: u32, default_wait: Duration, max_total_wait: Duration) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            default_wait,
            max_total_wait,
        }
    }

    /// The shared retry loop's policy: `Retry-After` as asked (else `default_wait`),
    /// the waits adding up to at most `max_total_wait`.
    pub(crate) fn schedule(&self) -> Policy {
        Policy::new(self.max_attempts, Backoff::Constant(self.default_wait))
            .asked_wait(AskedWait::Exact)
            .budget(Budget::Waited(self.max_total_wait))
    }
}
