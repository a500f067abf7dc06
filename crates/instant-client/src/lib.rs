#![doc = include_str!("../README.md")]
//!
//! # What it holds
//!
//! - [`Client`] (built with [`Client::builder`]): app id, optional [`AdminToken`], base
//!   URL (any `http(s)` URL: the hosted API, a self-hosted server, the local emulator),
//!   timeouts, [`RetryPolicy`], optionally a shared `reqwest::Client` and the clock
//!   retries wait through ([`ClientBuilder::clock`]; `http_retry::TestClock` in tests).
//! - Runtime auth, no admin token needed: [`Client::sign_in_with_id_token`] (a Clerk
//!   session token → [`SignedIn`]: the [`User`], their [`RefreshToken`], whether they
//!   were created), [`Client::sign_out`], [`Client::verify_refresh_token`].
//! - Admin: [`Client::query`] ([`Query`], rule params included),
//!   [`Client::transact`] ([`Transaction`] steps on [`EntityId`]s),
//!   [`Client::create_token`], [`Client::get_user`], [`Client::delete_user`],
//!   [`Client::sign_out_user`] (users named by a [`UserRef`]), and impersonation:
//!   [`Client::as_email`], [`Client::as_refresh_token`] (no admin token needed),
//!   [`Client::as_guest`] give an [`Impersonated`] view whose queries and transactions
//!   obey permission rules.
//! - Forwarding: [`Transaction::from_json`] (and `Deserialize`) reads a transaction a
//!   browser sent in InstantDB's wire format, strictly and at most
//!   [`Transaction::MAX_STEPS`] steps; its errors name the step and the problem, never
//!   a value, so they can be answered as a 400.
//! - [`Error`] says what to do next: [`Error::Rejected`] (fix the input),
//!   [`Error::BadCredentials`] (fix the admin token), [`Error::RateLimited`] and
//!   [`Error::Unavailable`] (retry later), [`Error::UnexpectedResponse`] (check the
//!   base URL and server version), [`Error::InvalidInput`] and [`Error::Config`].
//!
//! # The wire
//!
//! Paths, query strings, header names and values and JSON bodies match what the
//! official SDKs were recorded sending (`tests/fixtures/instant-requests.jsonl`, checked
//! by the conformance test): snake_case bodies for `/runtime/oauth/id_token` and
//! `/runtime/signout`, kebab-case for `/runtime/auth/*`, `?app_id=` and the `app-id`,
//! `authorization`, `instant-admin-version` and `instant-core-version` headers on admin
//! calls (the version headers carry this crate's version), `content-type:
//! application/json` on every request, GET and DELETE included.
//!
//! # Security defaults
//!
//! - The admin token, refresh tokens and id tokens are redacting types: never in
//!   `Debug`, `Display`, logs or errors. [`RefreshToken`] is not even `Serialize`.
//! - InstantDB's error bodies echo tokens (in `hint`): errors keep only `type`,
//!   `message`, the OAuth `error` text, `hint.record-type`, the hint's keys and the
//!   trace id, scrubbed of every credential sent and anything token-shaped. Transport
//!   errors have their URL (which can hold an email or refresh token) removed.
//! - A sign-in never sends `nonce` or `Origin`.
//! - The HTTP client this crate builds follows no redirects, so impersonation headers
//!   never reach another host.
//! - Every request has a timeout; only reads are retried unless writes are opted in.
//! - `tracing`: one `instant_request` span per call (endpoint, attempts, status,
//!   duration) and debug events per attempt; never a token, email or body.

mod client;
mod endpoint;
mod error;
mod query;
mod redact;
mod retry;
mod secret;
mod transact;
mod user;

pub use client::{
    Client, ClientBuilder, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT,
    IdTokenSignIn, Impersonated, Impersonation, TokenSubject, TxId, UserRef,
};
pub use endpoint::Endpoint;
pub use error::{ConfigError, Error, ErrorType, Outage, Rejection};
pub use query::Query;
pub use retry::RetryPolicy;
pub use secret::{AdminToken, CredentialError, IdToken, RefreshToken};
pub use transact::{EntityId, LinkTarget, Transaction, UpdateOptions};
pub use user::{SignedIn, Timestamp, User, UserType};
/// The UUID type of app ids, user ids and entity ids.
pub use uuid::Uuid;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
