//! The retry loop.

use std::future::Future;
use std::time::Duration;

use crate::clock::Clock;
use crate::policy::Policy;

/// The caller's verdict on a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Do not retry: the failure will not change (or repeating the call is unsafe).
    Stop,
    /// Retry, if the [`Policy`] allows, waiting at least or exactly `retry_after`
    /// ([`AskedWait`](crate::AskedWait)) when the server asked for a wait.
    Retry {
        /// The wait the server asked for (`Retry-After`), when it asked.
        retry_after: Option<Duration>,
    },
}

/// How the loop ended: the last attempt's result and how many attempts were made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finished<T, E> {
    /// The last attempt's result.
    pub result: Result<T, E>,
    /// Attempts made, the first included.
    pub attempts: u32,
}

/// Runs `attempt` (given the 1-based attempt number) until it succeeds, `verdict` says
/// [`Verdict::Stop`], or `policy` allows no further retry; each wait goes through
/// `clock`, announced first to `on_retry` (attempt number, wait, error) for logging.
pub async fn run<T, E, A, Fut>(
    clock: &dyn Clock,
    policy: &Policy,
    mut attempt: A,
    mut verdict: impl FnMut(&E) -> Verdict,
    mut on_retry: impl FnMut(u32, Duration, &E),
) -> Finished<T, E>
where
    A: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = clock.now();
    let mut waited = Duration::ZERO;
    let mut number = 1;
    loop {
        let error = match attempt(number).await {
            Ok(value) => {
                return Finished {
                    result: Ok(value),
                    attempts: number,
                };
            }
            Err(error) => error,
        };
        let wait = match verdict(&error) {
            Verdict::Stop => None,
            Verdict::Retry { retry_after } => policy.wait(
                number,
                retry_after,
                clock.now().saturating_duration_since(start),
                waited,
            ),
        };
        let Some(wait) = wait else {
            return Finished {
                result: Err(error),
                attempts: number,
            };
        };
        on_retry(number, wait, &error);
        drop(error);
        clock.sleep(wait).await;
        waited = waited.saturating_add(wait);
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::{AskedWait, Backoff, Budget, TestClock};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn retries_until_success_and_counts_attempts() {
        let clock = TestClock::new();
        let policy = Policy::new(5, Backoff::Constant(ms(100)));
        let retried = Cell::new(0);
        let finished = run(
            &clock,
            &policy,
            async |n| if n < 3 { Err(n) } else { Ok("done") },
            |_| Verdict::Retry { retry_after: None },
            |_, _, _| retried.set(retried.get() + 1),
        )
        .await;
        assert_eq!(finished.result, Ok("done"));
        assert_eq!(finished.attempts, 3);
        assert_eq!(retried.get(), 2);
        assert_eq!(clock.sleeps(), [ms(100), ms(100)]);
    }

    #[tokio::test]
    async fn stops_on_a_final_failure_or_when_the_policy_says_so() {
        let clock = TestClock::new();
        let policy = Policy::new(5, Backoff::Constant(ms(100)));
        let finished: Finished<(), _> = run(
            &clock,
            &policy,
            async |n| Err(n),
            |_| Verdict::Stop,
            |_, _, _| {},
        )
        .await;
        assert_eq!((finished.result, finished.attempts), (Err(1), 1));
        assert!(clock.sleeps().is_empty());

        let finished: Finished<(), _> = run(
            &clock,
            &policy,
            async |n| Err(n),
            |_| Verdict::Retry { retry_after: None },
            |_, _, _| {},
        )
        .await;
        assert_eq!((finished.result, finished.attempts), (Err(5), 5));
        assert_eq!(clock.slept(), ms(400));
    }

    #[tokio::test]
    async fn the_asked_wait_and_the_budgets_use_the_clock() {
        let clock = TestClock::new();
        let policy = Policy::new(100, Backoff::Constant(ms(10)))
            .asked_wait(AskedWait::Exact)
            .budget(Budget::Elapsed(ms(55)));
        let finished: Finished<(), _> = run(
            &clock,
            &policy,
            async |_| Err(()),
            |_| Verdict::Retry { retry_after: None },
            |_, _, _| {},
        )
        .await;
        // Retries start at 10, 20, 30, 40, 50 ms of (virtual) time; not at 60.
        assert_eq!(finished.attempts, 6);

        let clock = TestClock::new();
        let policy = policy.budget(Budget::Waited(ms(60)));
        let finished: Finished<(), _> = run(
            &clock,
            &policy,
            async |_| Err(()),
            |_| Verdict::Retry {
                retry_after: Some(ms(30)),
            },
            |_, _, _| {},
        )
        .await;
        assert_eq!(finished.attempts, 3);
        assert_eq!(clock.sleeps(), [ms(30), ms(30)]);
    }
}
