//! The Clerk and InstantDB settings both apps take, in one place: the flags and
//! environment names ([`ServiceArgs`], a `clap::Args` struct each app flattens into its
//! own arguments), the checks with their fixes ([`ServiceArgs::resolve`] reports every
//! problem at once, each naming the setting), and the clients built from the checked
//! settings ([`ServiceConfig::clients`]); and where the session store lives
//! ([`StoreArgs`]: in memory, or in Redis shared by every replica and the CLI); and
//! where a server listens ([`resolve_listen_addr`]: `host:port`, host names included).
//!
//! Boundary: only the apps (`clerk-instant-server`, `clerk-instant`) depend on this
//! crate. It names environment variables and flags so that the libraries below it
//! (`auth-core`, `clerk-jwt`, `instant-client`, `clerk-backend`) never do; it reads the
//! environment only through `clap` when an app parses its arguments, and through the
//! lookup an app passes to [`ServiceArgs::resolve_in`] (to name misnamed settings).
//!
//! ```
//! use clap::Parser as _;
//! use service_config::ServiceArgs;
//!
//! #[derive(clap::Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     service: ServiceArgs,
//! }
//!
//! let cli = Cli::try_parse_from([
//!     "app",
//!     "--clerk-publishable-key", "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k",
//!     "--instant-app-id", "11111111-2222-4333-8444-555555555555",
//! ])
//! .unwrap();
//! let config = cli.service.resolve().expect("both required settings are given");
//! let clients = config.build_clients().expect("no network call is made");
//! assert!(clients.clerk.is_none(), "no secret key: no Backend API client");
//! ```
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
pub use store::{DEFAULT_STORE_PREFIX, StoreArgs, StoreChoice};
