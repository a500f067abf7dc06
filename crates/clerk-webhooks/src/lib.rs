#![doc = include_str!("../README.md")]
//!
//! # What it holds
//!
//! - [`Secrets`]: one or several `whsec_<base64>` secrets (the prefix is optional),
//!   separated by whitespace or commas so a deploy can carry the old and the new across
//!   a rotation. [`Secret::sign`] and [`Secrets::sign`] sign as a sender does.
//! - [`Verifier`]: [`Verifier::verify`] at a time you pass (tests and offline checks
//!   choose it), [`Verifier::verify_now`] at the system clock's, and
//!   [`Verifier::verify_parts`] for header values read as text.
//! - [`Envelope::from_json`] reads an envelope without verifying it.
//! - [`Error`] says what to do next: [`Error::is_refused`] (answer 4xx, change
//!   nothing) or [`Error::is_config`] (fix the secret); [`Error::code`] is stable.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! use clerk_webhooks::{Error, Event, Secrets, Verifier};
//! use http::HeaderMap;
//!
//! // The known-good vector Svix and Standard Webhooks publish.
//! let secrets = Secrets::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")?;
//! let verifier = Verifier::new(secrets);
//! let body = br#"{"email":"test@example.com","username":"test_user"}"#;
//! let mut headers = HeaderMap::new();
//! headers.insert("svix-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk".parse().unwrap());
//! headers.insert("svix-timestamp", "1649367553".parse().unwrap());
//! headers.insert(
//!     "svix-signature",
//!     "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=".parse().unwrap(),
//! );
//! let now = UNIX_EPOCH + Duration::from_secs(1649367553 + 10);
//!
//! // The signature matches; this body is not a Clerk envelope, so it is refused after.
//! let err = verifier.verify(&headers, body, now).unwrap_err();
//! assert!(matches!(err, Error::InvalidPayload { .. }) && err.is_refused());
//!
//! // A tampered body does not match.
//! let err = verifier.verify(&headers, b"{}", now).unwrap_err();
//! assert!(err.is_bad_signature());
//!
//! // A Clerk event signed with the same secret verifies and is typed.
//! let body = br#"{"type":"session.revoked","object":"event","data":{"id":"sess_1","user_id":"user_1"}}"#;
//! let signature = verifier.secrets().sign("msg_2", 1649367553, body);
//! let delivery = verifier.verify_parts("msg_2", "1649367553", &signature, body, now)?;
//! assert_eq!(delivery.id, "msg_2");
//! assert!(matches!(&delivery.event, Event::SessionRevoked(s) if s.id == "sess_1"));
//! assert_eq!(delivery.event.user_id(), Some("user_1"));
//! # Ok::<(), Error>(())
//! ```
//!
//! # The rules
//!
//! - Signed content is `<id>.<timestamp>.<raw body>`, never re-serialised JSON; the
//!   signature is base64(HMAC-SHA256(key, content)) where the key is the decoded part
//!   after `whsec_`.
//! - The signature header holds space-separated entries; only `v1,` entries count;
//!   a delivery passes when any one of them equals the tag under any one secret,
//!   compared in constant time. An entry that is not base64 never matches but does not
//!   spoil the others. With no `v1` entry at all the error says so.
//! - The signature is checked before the timestamp, so a stale or future-dated error
//!   means an authentic delivery (useful when checking a capture).
//! - A timestamp more than the tolerance (default 300 s, in whole seconds) from now,
//!   in either direction, is refused; exactly the tolerance passes.
//! - `svix-*` headers are used when any of them is present, else `webhook-*`; a
//!   header that appears twice is refused.
//!
//! # Security defaults
//!
//! - A secret that is empty, `whsec_` with nothing after it, not base64, or shorter
//!   than [`Secret::MIN_BYTES`] (24, the length of Svix's) decoded is an error: there
//!   is no path to an empty or short HMAC key.
//! - [`Secret`] and [`Secrets`] show `whsec_…` in `Debug` and `Display`; only
//!   [`Secret::expose_whsec`] gives the secret out.
//! - No error message holds a secret, a signature, a header value or body content:
//!   headers are named, JSON problems give their kind, line and column.
//!
//! # Why aws-lc-rs
//!
//! HMAC-SHA256 comes from `aws-lc-rs` (`hmac::Context`, and `constant_time` for the
//! comparison, the same as `hmac::verify` does) rather than `hmac`, `sha2` and
//! `subtle`: the workspace already verifies JWT signatures with it, and one crypto
//! library in the tree is one to audit and update. The `svix` crate pulls Svix's whole
//! API client; `standardwebhooks` turns a `whsec_` with nothing after it into an empty
//! key and reads only `webhook-*` headers.

mod error;
mod event;
mod secret;
mod verify;

pub use error::{Error, HeaderProblem, JsonProblem, SecretProblem};
pub use event::{
    DeletedUser, EmailAddress, Envelope, Event, Session, SessionStatus, User, Verification,
    VerificationStatus,
};
pub use secret::{Secret, Secrets};
pub use verify::{Delivery, HeaderSet, Verifier};

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
