#![doc = include_str!("../README.md")]
//!
//! # What it holds
//!
//! - [`LocalClerk`]: a Clerk instance on `127.0.0.1` with its own RSA key (`kid`
//!   `ins_…`), a publishable key that encodes its host (so [`clerk_jwt`] derives its
//!   issuer and JWKS URL as for a real instance), the Frontend API's
//!   `/.well-known/jwks.json` and `/.well-known/openid-configuration`, a Backend API
//!   subset under `/v1` with Clerk's error bodies, v2 session tokens, and Svix-signed
//!   webhooks retried on Svix's schedule ([`clerk`]).
//! - [`InstantEmulator`]: InstantDB's runtime auth endpoints (`/runtime/oauth/id_token`,
//!   `/runtime/signout`, `/runtime/auth/verify_refresh_token`) and admin API (`query`,
//!   `transact`, refresh tokens, users, sign out, impersonation headers) with the same
//!   paths, key casing, status codes and error bodies, over an in-memory store. The
//!   official `@instantdb/admin` SDK works against it through its `apiURI` option.
//! - [`DevStack`]: both, with an app whose Clerk client `clerk` points at the local Clerk.
//! - [`RedisServer`]: a throwaway `redis-server` (from `PATH`) on a free port with
//!   persistence off, to kill and restart empty, for the Redis session store's tests.
//! - [`Faults`]: make the next N calls to a route fail with a status, stall, or lose
//!   their connection, on either server.
//!
//! # What the emulator does not do
//!
//! **Permission rules are not evaluated.** Admin calls, impersonated calls (`as-email`,
//! `as-token`, `as-guest`) and sign-ups with `extra_fields` all act as if every rule
//! allowed them; impersonation headers are only checked for naming a real user. Test
//! permissions against a real InstantDB server. There is also no schema: attributes
//! and links are created on the fly (or refused with `throw-on-missing-attrs?`), every
//! attribute can serve as a lookup, and queries support `where` (equality, `id`,
//! dotted link paths, `and`/`or`, `$in`, `$ne`, `$isNull`, `$gt`…`$lte`), nested
//! links, `limit`, `offset`, `order` and `fields`. Only RS256 tokens are verified
//! (Clerk signs nothing else), and guest users and magic codes are not emulated.
//!
//! # Security defaults
//!
//! Both servers listen on `127.0.0.1` only and speak plain HTTP: they are for
//! development and tests, never for production data. Secrets are redacting newtypes
//! ([`AdminToken`], [`RefreshToken`], [`WebhookSecret`], [`clerk_jwt::SecretKey`]) that
//! never show in `Debug` or in logs. Refresh tokens are stored as SHA-256 hashes only.
//! Like InstantDB, the emulator's error bodies echo request input (tokens included) in
//! their `hint`: clients must not log them verbatim.

pub mod clerk;
mod error;
pub mod instant;
mod redis;
mod secret;
mod server;
mod stack;
mod util;

pub use clerk::{
    ClerkBackend, ClerkConfig, LocalClerk, MintOptions, NewUser, SignedIn, SigningKey, TokenDraft,
    UserUpdate,
};
pub use error::Error;
pub use instant::{App, ClerkClient, InstantConfig, InstantEmulator};
pub use redis::{REDIS_INSTALL, RedisServer};
pub use secret::{AdminToken, RefreshToken, WebhookSecret};
pub use server::{Fault, Faults};
pub use stack::{DevStack, DevStackConfig};

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
