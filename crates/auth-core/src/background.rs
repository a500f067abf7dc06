//! The broker's background work, tracked so it can be waited for.
//!
//! Sessions the broker displaces or sweeps are signed out after the call that displaced
//! them has returned. Each such sign-out runs as a spawned task counted here until it
//! ends, so tests can wait for it and graceful shutdown can drain it within a deadline
//! instead of dropping a sign-out it had started.
//!
//! This is tokio-util's `TaskTracker` in a few lines, without the dependency. A
//! `JoinSet` would not do: dropping it aborts its tasks, and finished tasks stay in it
//! until someone joins them.

use std::time::Duration;

use tokio::sync::watch;

/// Counts the background tasks that are running.
#[derive(Debug)]
pub(crate) struct Background {
    running: watch::Sender<usize>,
}

impl Default for Background {
    fn default() -> Self {
        Background {
            running: watch::Sender::new(0),
        }
    }
}

impl Background {
    /// Spawns `task` on the current runtime and counts it until it ends (or the runtime
    /// drops it). Returns false, running nothing, outside a runtime.
    pub(crate) fn spawn<F>(&self, task: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let running = Running::start(self.running.clone());
        handle.spawn(async move {
            let _running = running;
            task.await;
        });
        true
    }

    /// How many tasks are running.
    pub(crate) fn running(&self) -> usize {
        *self.running.borrow()
    }

    /// Waits until no task runs, or until `deadline` has passed; returns how many were
    /// still running then (0: all finished). Tasks are not cancelled.
    pub(crate) async fn drain(&self, deadline: Duration) -> usize {
        let mut idle = self.running.subscribe();
        // `wait_for` fails only when the sender is gone, which cannot happen while
        // `self` lives; either way the count is read below.
        let all_finished = async { idle.wait_for(|running| *running == 0).await.is_ok() };
        let _in_time = tokio::time::timeout(deadline, all_finished).await;
        self.running()
    }
}

/// One running task: counted from creation until dropped.
struct Running(watch::Sender<usize>);

impl Running {
    fn start(running: watch::Sender<usize>) -> Self {
        running.send_modify(|n| *n += 1);
        Running(running)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;
    use tokio::time::Instant;

    use super::Background;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_running_tasks_and_gives_up_at_the_deadline() {
        let background = Background::default();
        let (release, released) = oneshot::channel::<()>();
        assert!(background.spawn(async move {
            let _ = released.await;
        }));
        assert_eq!(background.running(), 1);

        let start = Instant::now();
        assert_eq!(background.drain(Duration::from_secs(5)).await, 1);
        assert_eq!(start.elapsed(), Duration::from_secs(5));

        // Still tracked after the deadline (nothing is cancelled): releasing it in two
        // seconds lets a longer drain return early.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            release.send(()).unwrap();
        });
        let start = Instant::now();
        assert_eq!(background.drain(Duration::from_secs(60)).await, 0);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(background.running(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_drain_returns_at_once() {
        let background = Background::default();
        let start = Instant::now();
        assert_eq!(background.drain(Duration::from_secs(5)).await, 0);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn nothing_is_spawned_outside_a_runtime() {
        let background = Background::default();
        assert!(!background.spawn(async {}));
        assert_eq!(background.running(), 0);
    }
}
