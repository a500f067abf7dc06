#![doc = include_str!("../README.md")]
//!
//! It also says where a server listens ([`resolve_listen_addr`]: `host:port`, host
//! names included).
//!
//! # Boundary
//!
//! Only the apps (`clerk-instant-server`, `clerk-instant`) depend on this
//! crate. It names environment variables and flags so that the libraries below it
//! (`auth-core`, `clerk-jwt`, `instant-client`, `clerk-backend`) never do; it reads the
//! environment only through `clap` when an app parses its arguments, and through the
//! lookup an app passes to [`ServiceArgs::resolve_in`] (to name misnamed settings).
//!
//! # Security defaults
//!
//! `Debug` of every settings struct redacts the Clerk secret key and the InstantDB
//! admin token; `--help` never shows their environment values; problem messages never
//! quote a secret.

mod clients;
mod listen;
mod origin;
mod settings;
mod store;

pub use clients::{BuildError, Clients, HTTP_TIMEOUT, VERIFIED_TOKENS, http_client};
pub use listen::{ListenAddrError, resolve_listen_addr};
pub use origin::{ANY_AUTHORIZED_PARTY, AuthorizedParties, OriginError, normalize_origin};
pub use settings::{
    DEFAULT_INSTANT_API, Problem, ServiceArgs, ServiceConfig, VerifierArgs, VerifierSettings,
};
pub use store::{DEFAULT_STORE_PREFIX, KEY_CHECK_SAMPLE, StoreArgs, StoreChoice};
