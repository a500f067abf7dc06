//! How long to wait after a failed attempt, and when to stop.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The wait before a retry when the server asked for none (and the floor under the
/// one it asked for, with [`AskedWait::Floor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backoff {
    /// The same wait before every retry.
    Constant(Duration),
    /// `base` doubled after each failed attempt, capped at [`Policy::max_delay`], then
    /// jittered down by up to half (into `[d/2, d]`), so clients that failed together
    /// do not retry together.
    ExponentialJitter {
        /// The wait after the first failed attempt, before jitter.
        base: Duration,
    },
}

/// How a wait the server asked for (`Retry-After`) combines with the backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AskedWait {
    /// Wait at least what was asked, longer when the backoff says so.
    #[default]
    Floor,
    /// Wait exactly what was asked; the backoff applies only when nothing was.
    Exact,
}

/// The bound on time spent retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Budget {
    /// No bound beyond the attempt count.
    #[default]
    Unlimited,
    /// No retry starts unless it would start within this long of the first attempt
    /// (the time of the attempts themselves counts).
    Elapsed(Duration),
    /// The waits add up to at most this (a wait that would pass it ends the retries).
    Waited(Duration),
}

/// When and how long to wait before trying a call again.
///
/// ```
/// use std::time::Duration;
/// use http_retry::{AskedWait, Backoff, Budget, Policy};
///
/// // Clerk's 429s: one second unless `Retry-After` says otherwise, ten in all.
/// let policy = Policy::new(3, Backoff::Constant(Duration::from_secs(1)))
///     .asked_wait(AskedWait::Exact)
///     .budget(Budget::Waited(Duration::from_secs(10)));
/// assert_eq!(policy.wait(1, None, Duration::ZERO, Duration::ZERO), Some(Duration::from_secs(1)));
/// assert_eq!(policy.wait(1, Some(Duration::from_secs(60)), Duration::ZERO, Duration::ZERO), None);
/// assert_eq!(policy.wait(3, None, Duration::ZERO, Duration::ZERO), None, "no fourth attempt");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait when the server asked for none.
    pub backoff: Backoff,
    /// How a wait the server asked for is used.
    pub asked_wait: AskedWait,
    /// The longest single wait: the backoff is capped at it, and a server asking for
    /// longer ends the retries (the caller reports what it asked).
    pub max_delay: Duration,
    /// The bound on time spent retrying.
    pub budget: Budget,
}

impl Policy {
    /// `max_attempts` attempts (at least 1) waiting `backoff`; an asked wait is a floor,
    /// no cap on a single wait, no time budget.
    pub fn new(max_attempts: u32, backoff: Backoff) -> Self {
        Policy {
            max_attempts: max_attempts.max(1),
            backoff,
            asked_wait: AskedWait::Floor,
            max_delay: Duration::MAX,
            budget: Budget::Unlimited,
        }
    }

    /// Sets how a wait the server asked for is used.
    #[must_use]
    pub fn asked_wait(mut self, asked_wait: AskedWait) -> Self {
        self.asked_wait = asked_wait;
        self
    }

    /// Sets the longest single wait.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Sets the bound on time spent retrying.
    #[must_use]
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// The backoff after failed attempt `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        match self.backoff {
            Backoff::Constant(wait) => wait,
            Backoff::ExponentialJitter { base } => {
                let factor = 1u32 << attempt.saturating_sub(1).min(20);
                base.saturating_mul(factor).min(self.max_delay)
            }
        }
    }

    /// The wait after failed attempt `attempt` (1-based) that the server answered with
    /// `asked` (its `Retry-After`), `elapsed` after the first attempt began and having
    /// waited `waited` in all so far; `None` when no retry may follow.
    pub fn wait(
        &self,
        attempt: u32,
        asked: Option<Duration>,
        elapsed: Duration,
        waited: Duration,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let backoff = match self.backoff {
            Backoff::Constant(wait) => wait,
            Backoff::ExponentialJitter { .. } => {
                let full = self.backoff(attempt);
                full / 2 + full.mul_f64(random_unit() / 2.0)
            }
        };
        let wait = match asked {
            Some(asked) if asked > self.max_delay => return None,
            Some(asked) => match self.asked_wait {
                AskedWait::Floor => asked.max(backoff),
                AskedWait::Exact => asked,
            },
            None => backoff,
        };
        let within_budget = match self.budget {
            Budget::Unlimited => true,
            Budget::Elapsed(limit) => elapsed.saturating_add(wait) < limit,
            Budget::Waited(limit) => waited.saturating_add(wait) <= limit,
        };
        within_budget.then_some(wait)
    }
}

/// A random number in `[0, 1)`, from the standard library's per-instance random hash
/// keys (no extra dependency; jitter needs no cryptographic quality).
fn random_unit() -> f64 {
    let bits = RandomState::new().build_hasher().finish() >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO: Duration = Duration::ZERO;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn jittered(base: u64, max: u64) -> Policy {
        Policy::new(10, Backoff::ExponentialJitter { base: ms(base) }).max_delay(ms(max))
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = jittered(100, 500);
        let waits: Vec<_> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(p.backoff(u32::MAX), ms(500));
        let constant = Policy::new(3, Backoff::Constant(ms(7)));
        assert_eq!(constant.backoff(1), ms(7));
        assert_eq!(constant.backoff(2), ms(7));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_varies() {
        let p = jittered(1000, 5000);
        let waits: Vec<_> = (0..50)
            .map(|_| p.wait(1, None, ZERO, ZERO).unwrap())
            .collect();
        assert!(waits.iter().all(|w| *w >= ms(500) && *w <= ms(1000)));
        assert!(waits.iter().any(|w| *w != waits[0]), "no jitter");
    }

    #[test]
    fn an_asked_wait_is_a_floor_or_exact_and_too_long_a_wait_ends_retries() {
        let p = jittered(1, 2000);
        assert_eq!(p.wait(1, Some(ms(1000)), ZERO, ZERO), Some(ms(1000)));
        assert_eq!(p.wait(1, Some(ms(3000)), ZERO, ZERO), None);
        let p = Policy::new(3, Backoff::Constant(ms(1000)));
        assert_eq!(p.wait(1, Some(ZERO), ZERO, ZERO), Some(ms(1000)), "floor");
        let p = p.asked_wait(AskedWait::Exact);
        assert_eq!(p.wait(1, Some(ZERO), ZERO, ZERO), Some(ZERO), "exact");
    }

    #[test]
    fn attempts_and_budgets_bound_the_retries() {
        let p = Policy::new(0, Backoff::Constant(ms(10)));
        assert_eq!(p.max_attempts, 1);
        assert_eq!(p.wait(1, None, ZERO, ZERO), None);

        let p = Policy::new(3, Backoff::Constant(ms(10)));
        assert_eq!(p.wait(2, None, ZERO, ZERO), Some(ms(10)));
        assert_eq!(p.wait(3, None, ZERO, ZERO), None);

        let p = p.budget(Budget::Elapsed(ms(100)));
        assert_eq!(p.wait(1, None, ms(89), ZERO), Some(ms(10)));
        assert_eq!(
            p.wait(1, None, ms(90), ZERO),
            None,
            "would start at the limit"
        );

        let p = p.budget(Budget::Waited(ms(100)));
        assert_eq!(
            p.wait(1, None, ms(5000), ms(90)),
            Some(ms(10)),
            "up to the limit"
        );
        assert_eq!(p.wait(1, None, ZERO, ms(91)), None);
    }
}
