//! Request work that finishes even when its request is given up.
//!
//! A sign-in (and the sign-in a query or a transact starts with) can mint an InstantDB
//! refresh token. If its future were dropped between the mint and the store, because
//! the client went away or the request timeout fired, the token would stay alive in
//! InstantDB with no one holding it. So those handlers run their work in a spawned task
//! counted here and await it: dropping the handler drops only the wait, and the work
//! ends as it would have, its session stored (or signed out by the broker). Shutdown
//! waits for these tasks within its deadline, before the broker's background sign-outs
//! (which they can start).
//!
//! The count is the broker's `background` pattern (tokio-util's `TaskTracker` in a few
//! lines): a `watch` of how many run, not a `JoinSet`, whose drop would abort them.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument as _;

use crate::state::AppState;

/// Counts the detached request tasks that are running.
#[derive(Debug)]
pub(crate) struct Detached {
    running: watch::Sender<usize>,
}

impl Default for Detached {
    fn default() -> Self {
        Detached {
            running: watch::Sender::new(0),
        }
    }
}

impl Detached {
    /// Runs `work` to its end in a task of its own (in the request's span) and returns
    /// its output; if the caller is dropped first, the work still ends, counted until
    /// then.
    pub(crate) async fn run<T, F>(&self, work: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let counted = Counted::start(self.running.clone());
        let task = tokio::spawn(
            async move {
                let _counted = counted;
                work.await
            }
            .in_current_span(),
        );
        match task.await {
            Ok(output) => output,
            // The work panicked: panic here too, as the handler would have.
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Nothing aborts these tasks, and a runtime that drops them no longer
                // polls the request that waits for one.
                Err(_) => unreachable!("a detached request task was cancelled"),
            },
        }
    }

    /// How many run.
    fn running(&self) -> usize {
        *self.running.borrow()
    }

    /// Waits until none runs, or `deadline` has passed; returns how many still ran.
    async fn drain(&self, deadline: Duration) -> usize {
        let mut idle = self.running.subscribe();
        let all_finished = async { idle.wait_for(|running| *running == 0).await.is_ok() };
        let _in_time = tokio::time::timeout(deadline, all_finished).await;
        self.running()
    }
}

/// One running task: counted from creation until dropped.
struct Counted(watch::Sender<usize>);

impl Counted {
    fn start(running: watch::Sender<usize>) -> Self {
        running.send_modify(|n| *n += 1);
        Counted(running)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl AppState {
    /// Runs `work` with this state to its end, even if the request that awaits it is
    /// given up (see the module docs): for work that can mint an InstantDB session.
    pub(crate) async fn detach<W, F, T>(&self, work: W) -> T
    where
        W: FnOnce(AppState) -> F,
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.detached.run(work(self.clone())).await
    }

    /// Waits, at most `deadline` in all, for the request work still running after its
    /// client went away (sign-ins, which can store a session or displace one), then for
    /// the broker's background sign-outs; returns how many tasks of either were still
    /// running then (0: all finished). Nothing is cancelled. The server calls it at
    /// shutdown, once no request is left; tests call it to wait for that work.
    pub async fn drain(&self, deadline: Duration) -> usize {
        let start = Instant::now();
        let detached = self.inner.detached.drain(deadline).await;
        let left = deadline.saturating_sub(start.elapsed());
        detached + self.inner.broker.drain(left).await
    }
}
