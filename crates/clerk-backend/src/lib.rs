#![doc = include_str!("../README.md")]
//!
//! # Security defaults
//!
//! The secret key (a [`clerk_jwt::SecretKey`]) is redacted in `Debug` and never enters
//! an error or a log line. Ids are checked before they go into a URL path. Every request
//! has a timeout; only 429 answers are retried (the request was not processed), at most
//! [`RetryPolicy::max_attempts`] times and never waiting past
//! [`RetryPolicy::max_total_wait`], every wait through the builder's clock
//! ([`BackendClientBuilder::clock`]).

mod client;
mod error;
mod model;
mod retry;

pub use client::{BackendClient, BackendClientBuilder};
pub use error::{ApiError, Error, Outage};
pub use model::{EmailAddress, Session, SessionStatus, User, Verification};
pub use retry::RetryPolicy;

/// The Backend API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.clerk.com";

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
