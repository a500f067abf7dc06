#![doc = include_str!("../README.md")]
//!
//! # What it holds
//!
//! - [`Policy`]: at most [`Policy::max_attempts`] attempts, waits from a [`Backoff`]
//!   (constant, or doubling with jitter), an asked wait (`Retry-After`) used as a
//!   floor or as is ([`AskedWait`]), no single wait past [`Policy::max_delay`] and no
//!   retry past the [`Budget`].
//! - [`run`]: the loop. It calls the attempt, asks the caller's verdict on a failure
//!   ([`Verdict`]), sleeps through the [`Clock`] and reports how many attempts were
//!   made ([`Finished`]).
//! - [`Clock`]: `now()` and `sleep()`. [`TokioClock`] is the default; with the
//!   `testing` feature, `TestClock` records each sleep and returns at once, so no
//!   test waits for real.
//! - [`parse_retry_after`] and [`retry_after`]: delta-seconds or an HTTP date.
//!
//! # Defaults
//!
//! A [`Policy`] made with [`Policy::new`] has no cap on a single wait and no time
//! budget: callers set both. Jitter draws from the standard library's random hash
//! keys (no cryptographic quality is needed, and no dependency added).

mod clock;
mod policy;
mod retry_after;
mod run;

#[cfg(any(test, feature = "testing"))]
pub use clock::TestClock;
pub use clock::{Clock, SharedClock, Sleep, TokioClock, default_clock};
pub use policy::{AskedWait, Backoff, Budget, Policy};
pub use retry_after::{RetryAfterText, parse_retry_after, retry_after};
pub use run::{Finished, Verdict, run};
