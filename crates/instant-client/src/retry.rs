//! When and how long to wait before trying a call again.

use std::time::Duration;

use http_retry::{Backoff, Budget, Policy};

/// How failed calls are retried.
///
/// Reads (query, get user, verify refresh token) are retried on 429, 502, 503, 504,
/// timeouts and connection failures, with exponential backoff and jitter, waiting at
/// least what a 429's `Retry-After` asks. Writes and sign-ins are retried the same way
/// only with [`RetryPolicy::retry_writes`]: a write that timed out may have been
/// applied, and every sign-in without a refresh token mints a new one.
///
/// No wait is longer than `max_delay` (a `Retry-After` beyond it ends the retries and
/// is reported in the error), and no retry starts once `max_elapsed` has passed since
/// the first attempt; later attempts get only the time left as their timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 3; 1 disables retries.
    pub max_attempts: u32,
    /// The wait before the first retry; doubled for each further one, then jittered
    /// down by up to half. Default 200 ms.
    pub base_delay: Duration,
    /// The longest single wait. Default 5 s.
    pub max_delay: Duration,
    /// No retry starts after this long since the first attempt. Default 20 s.
    pub max_elapsed: Duration,
    /// Whether writes and sign-ins are retried too. Default `false`.
    pub retry_writes: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(20),
            retry_writes: false,
        }
    }
}

impl RetryPolicy {
    /// One attempt, never retried.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Sets the number of attempts (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the first wait.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Sets the longest single wait.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets the total time after which no retry starts.
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = elapsed;
        self
    }

    /// Sets whether writes and sign-ins are retried.
    pub fn retry_writes(mut self, retry: bool) -> Self {
        self.retry_writes = retry;
        self
    }

    /// The shared retry loop's policy: doubling backoff with jitter, `Retry-After` as
    /// a floor, `max_delay` per wait, `max_elapsed` since the first attempt.
    pub(crate) fn schedule(&self) -> Policy {
        Policy::new(
            self.max_attempts,
            Backoff::ExponentialJitter {
                base: self.base_delay,
            },
        )
        .max_delay(self.max_delay)
        .budget(Budget::Elapsed(self.max_elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO: Duration = Duration::ZERO;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default()
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(500));
        let waits: Vec<_> = (1..=5)
            .map(|a| p.schedule().backoff(a).as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(p.schedule().backoff(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_varies() {
        let p = RetryPolicy::default().base_delay(Duration::from_millis(1000));
        let waits: Vec<_> = (0..50)
            .map(|_| p.schedule().wait(1, None, ZERO, ZERO).unwrap())
            .collect();
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_millis(500) && *w <= Duration::from_millis(1000))
        );
        assert!(waits.iter().any(|w| *w != waits[0]), "no jitter");
    }

    #[test]
    fn retry_after_is_a_floor_and_too_long_a_wait_ends_retries() {
        let p = RetryPolicy::default()
            .base_delay(Duration::from_millis(1))
            .max_delay(Duration::from_secs(2));
        assert_eq!(
            p.schedule()
                .wait(1, Some(Duration::from_secs(1)), ZERO, ZERO),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            p.schedule()
                .wait(1, Some(Duration::from_secs(3)), ZERO, ZERO),
            None
        );
        assert_eq!(RetryPolicy::default().max_attempts(0).max_attempts, 1);
    }
}
