#![doc = include_str!("../README.md")]
//!
//! # How it works
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
    DeliveryClaim, EmailChanged, HeldDelivery, SessionEnded, UnknownPolicy, UserDeleted,
    UserDeletedPolicy,
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
