//! Clerk session in, InstantDB session out.
//!
//! [`SessionBroker`] verifies a Clerk session token locally first (a bad token never
//! reaches InstantDB, and the caller learns the exact reason), then obtains the user's
//! InstantDB session by one of two [`Strategy`]s, keeps it per Clerk session so repeated
//! sign-ins reuse it instead of piling up refresh tokens that never expire, runs queries
//! and transactions as the user, and signs out of both services. Sessions it displaces
//! or sweeps are signed out in the background, tracked: [`SessionBroker::drain`] waits
//! for them (at shutdown, within a deadline).
//!
//! Clerk's decisions, as its webhooks report them, reach InstantDB through the broker
//! too: [`SessionBroker::end_session`], [`SessionBroker::delete_user`] (by a
//! [`UserDeletedPolicy`]) and [`SessionBroker::primary_email_changed`], each idempotent
//! and answering a typed outcome, with [`SessionBroker::claim_delivery`] to apply a
//! message once. The broker speaks of Clerk ids and emails, not of webhook payloads.
//!
//! It reaches the outside world only through the small traits of [`ports`]
//! ([`TokenVerifier`], [`InstantAuth`], [`ClerkSessions`]) and a [`SessionStore`], so
//! its logic is tested with `mockall` doubles; the concrete clients of the workspace
//! implement them. It knows no HTTP framework and reads no environment.
//!
//! ```no_run
//! use std::sync::Arc;
//! use auth_core::{BrokerConfig, MemorySessionStore, SessionBroker, StoreLimits, Strategy};
//!
//! # async fn demo(verifier: clerk_jwt::Verifier, instant: instant_client::Client) -> Result<(), auth_core::Error> {
//! let broker = SessionBroker::new(
//!     BrokerConfig::new(Strategy::IdToken { client_name: "clerk".into() }),
//!     Arc::new(verifier),
//!     Arc::new(instant),
//!     None, // no Clerk secret key: sign-out reports the Clerk half as skipped
//!     Arc::new(MemorySessionStore::new(StoreLimits::default())),
//! );
//! let session = broker.sign_in("<Clerk session token>").await?;
//! let (clerk_user, instant_user) = (&session.clerk.user_id, session.user.id);
//! # let _ = (clerk_user, instant_user);
//! # Ok(()) }
//! ```
//!
//! # Security defaults
//!
//! Every Clerk token is verified with all of `clerk-jwt`'s rules before anything else.
//! The admin strategy signs in only verified emails. A refresh token named by a client
//! for sign-out is ended only when InstantDB says it belongs to the same email. Errors
//! carry no token or secret ([`Error::public_message`] is safe to send to clients, and
//! [`Error::code`] is a typed [`Code`] whose [`Code::as_str`] is the stable wire code), and
//! [`SignIn`]'s `Debug` redacts the refresh token.

mod background;
mod broker;
mod effects;
mod error;
pub mod ports;
mod session;
mod store;

pub use broker::SessionBroker;
pub use effects::{
    DeliveryClaim, EmailChanged, SessionEnded, UnknownPolicy, UserDeleted, UserDeletedPolicy,
};
pub use error::{Code, Error, ErrorKind, InstantOp};
pub use ports::{ClerkSessions, InstantAuth, TokenVerifier};
pub use session::{
    BrokerConfig, ClerkIdentity, Half, HalfError, SignIn, SignOut, Strategy, Verified,
};
pub use store::{
    Inserted, Lookup, MemorySessionStore, MessageClaim, Refused, SessionStore, StoreError,
    StoreLimits, StoreResult, StoredSession, UserLink,
};

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
