//! The clock every retry waits through: real (tokio) in production, recorded in tests.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A wait in progress, from [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A clock shared by a client and its clones.
pub type SharedClock = Arc<dyn Clock>;

/// Time as the retry loop sees it: what time it is, and how to wait.
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current instant (retry budgets are measured with it).
    fn now(&self) -> Instant;

    /// Waits `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The real clock: tokio's time, so a runtime with paused time pauses it too.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The clock clients use unless given another: [`TokioClock`].
pub fn default_clock() -> SharedClock {
    Arc::new(TokioClock)
}

/// A clock for tests: each sleep is recorded and returns at once, and time advances
/// only by what was slept, so waits are asserted exactly and no test waits for real.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use http_retry::{Clock, TestClock};
///
/// # async fn demo() {
/// let clock = Arc::new(TestClock::new());
/// let start = clock.now();
/// clock.sleep(Duration::from_secs(30)).await;
/// assert_eq!(clock.sleeps(), [Duration::from_secs(30)]);
/// assert_eq!(clock.now() - start, Duration::from_secs(30));
/// # }
/// ```
#[cfg(any(test, feature = "testing"))]
#[derive(Debug)]
pub struct TestClock {
    start: Instant,
    sleeps: std::sync::Mutex<Vec<Duration>>,
}

#[cfg(any(test, feature = "testing"))]
impl TestClock {
    /// A clock at the current instant that has slept nothing.
    pub fn new() -> Self {
        TestClock {
            start: Instant::now(),
            sleeps: std::sync::Mutex::default(),
        }
    }

    /// Every sleep asked for so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The sum of the sleeps so far.
    pub fn slept(&self) -> Duration {
        self.sleeps().iter().sum()
    }
}

#[cfg(any(test, feature = "testing"))]
impl Default for TestClock {
    fn default() -> Self {
        TestClock::new()
    }
}

#[cfg(any(test, feature = "testing"))]
impl Clock for TestClock {
    fn now(&self) -> Instant {
        self.start.checked_add(self.slept()).unwrap_or(self.start)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.sleeps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(duration);
        Box::pin(std::future::ready(()))
    }
}
