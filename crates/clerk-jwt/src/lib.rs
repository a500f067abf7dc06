#![doc = include_str!("../README.md")]
//!
//! `clerk-jwt` knows Clerk and JWTs, and nothing of InstantDB, HTTP frameworks or the
//! environment: it takes typed configuration and returns data.
//!
//! - [`PublishableKey`] parses `pk_test_…`/`pk_live_…` (naming the rule a bad key
//!   breaks) and derives the Frontend API, issuer, JWKS and discovery URLs.
//! - [`KeySource`]: a remote JWKS ([`RemoteJwks`], cached per URL with a TTL,
//!   rate-limited refreshes on unknown `kid`s, single-flight fetches and a bounded stale
//!   window), a static JWKS ([`KeySet`]) or a networkless PEM key ([`VerifyingKey`]).
//! - [`Verifier`] applies every rule in a fixed order and reports a [`Reason`] with a
//!   hint a person can act on.
//! - [`TokenExtractor`] finds the token in request headers as Clerk sends it.
//! - Feature `testing`: keys and token minting for tests (module `testing`).
//! - Feature `axum`: an extractor for verified sessions (module `axum`).
//!
//! ```
//! use clerk_jwt::{PublishableKey, Verifier};
//!
//! let pk: PublishableKey = "pk_test_cHVtcGVkLW1hZ2dvdC0yOS5jbGVyay5hY2NvdW50cy5kZXYk".parse()?;
//! let verifier = Verifier::builder()
//!     .publishable_key(pk) // issuer and JWKS URL from the key
//!     .authorized_party("https://app.example.com")
//!     .build()?;
//! # let _ = verifier;
//! // In a handler: `let claims = verifier.verify(token).await?;`
//! # Ok::<(), clerk_jwt::Error>(())
//! ```
//!
//! # The rules, in order
//!
//! 1. At most 8 KiB; three base64url parts; header and payload JSON objects without
//!    duplicate keys at any depth → `token-invalid`.
//! 2. `alg` exactly `RS256` → `token-invalid-algorithm`; `typ`, when present, `JWT`;
//!    no `crit`; a `kid` when keys come from a JWKS → `token-invalid`. `jku`, `x5u`,
//!    `jwk` and `x5c` are never used.
//! 3. A key with that `kid`, after at most the allowed refresh → `jwk-kid-mismatch`.
//! 4. The signature, before any claim is read → `token-invalid-signature`.
//! 5. `sub` a string, `exp` a number, `nbf`/`iat` numbers when present, and every other
//!    known claim of the right type → `token-verification-failed`.
//! 6. `exp`, `nbf`, `iat` against the clock with the leeway (default 5 s, at most 30 s)
//!    → `token-expired`, `token-not-active-yet`, `token-iat-in-the-future`; the
//!    lifetime (`exp - iat`, else `exp - nbf`, else the time left) at most the maximum
//!    token lifetime (default 1 h) → `token-lifetime-too-long`.
//! 7. `iss` among the accepted issuers → `token-invalid-issuer`.
//! 8. `azp` among the authorized parties, when any are set →
//!    `token-invalid-authorized-parties`.
//! 9. `aud` contains the audience, only when one is set → `token-invalid-audience`.
//! 10. A session token: `sid` present, not a JWT-template or machine `cat`, not
//!     `typ: at+jwt`, `sid` a session id `sess_…` and `sub` a user id `user_…` →
//!     `token-not-session`.
//! 11. `sts`, when present, `active` or `pending` → `session-not-active` (with rule 10);
//!     not `pending` (switchable) → `session-pending`.
//! 12. No `act`, only when impersonation is refused (off by default) →
//!     `session-impersonated`.
//! 13. An `email` claim holding an address → `email-missing`; `email_verified` not false
//!     → `email-unverified` (both switchable).
//!
//! # Security defaults
//!
//! Every rule above is on by default, including the issuer check Clerk's own SDK skips.
//! Key caches are scoped to one JWKS URL, so one instance's tokens never verify against
//! another's keys. Attacker-chosen `kid`s cause at most one refresh per cooldown (never
//! less than 10 s), none within 10 s of another fetch. No accepted token lives longer
//! than the maximum token lifetime. Secret keys are redacted in `Debug`, and no error
//! carries the token.

#[cfg(feature = "axum")]
pub mod axum;
mod claims;
mod clock;
mod error;
mod extract;
mod json;
mod keys;
mod publishable_key;
mod reason;
mod remote;
mod secret;
#[cfg(feature = "testing")]
pub mod testing;
mod token;
mod verifier;

pub use claims::{Actor, CommaList, FactorAge, Organization, SessionClaims, SessionStatus};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ConfigError, Error};
pub use extract::{ExtractedToken, SESSION_COOKIE, TokenExtractor, TokenLocation};
pub use keys::{KeyError, KeySet, KeySource, MAX_RSA_BITS, MIN_RSA_BITS, VerifyingKey};
pub use publishable_key::{InstanceKind, PublishableKey, PublishableKeyError};
pub use reason::{Reason, Refusal};
pub use remote::{
    CacheStatus, DEFAULT_BACKEND_API_URL, FetchError, MIN_REFRESH_INTERVAL, RemoteJwks,
    RemoteOptions,
};
pub use secret::{SecretKey, SecretKeyError};
pub use token::{CAT_JWT_TEMPLATE, CAT_MACHINE, CAT_SESSION, MAX_TOKEN_BYTES};
pub use verifier::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LIFETIME, Inspection, MAX_LEEWAY, MAX_TOKEN_LIFETIME_RANGE,
    Verifier, VerifierBuilder, inspect,
};

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[doc(hidden)]
pub mod __fuzz {
    //! The token parser, exposed for the fuzz targets and the verify bench only.

    /// Decodes a token and runs the header rules, as the verifier does first.
    /// Returns whether the token got past the structure and header rules, and checks
    /// that the typed parser and the display parser agree on what is malformed.
    pub fn parse_and_check_header(token: &str) -> bool {
        let Ok(decoded) = crate::token::Decoded::split(token) else {
            return false;
        };
        let typed = decoded.parse();
        let display = decoded.parse_objects();
        assert_eq!(
            typed.is_ok(),
            display.is_ok(),
            "the two JSON parsers disagree"
        );
        match typed {
            Ok((header, mut claims)) => {
                // Typing the claims must never panic, whatever they hold.
                let _ = claims.take_parsed();
                header.check(true).is_ok()
            }
            Err(_) => false,
        }
    }

    /// Holds the payload scanner to `serde_json` on one decoded payload: the same
    /// slots and typed claims when it accepts, the same verdict otherwise.
    ///
    /// # Panics
    ///
    /// When the two disagree.
    pub fn claims_agree(payload: &str) {
        crate::claims::assert_agrees(payload);
    }

    /// Reads a payload into claim slots with the scanner alone (the verify bench
    /// compares it with [`serde_claims`]); whether it accepted.
    pub fn scan_claims(payload: &str) -> bool {
        let mut claims = crate::claims::RawClaims::default();
        crate::claims::scan(payload, &mut claims).is_some()
    }

    /// Reads a payload into claim slots with serde_json alone; whether it accepted.
    pub fn serde_claims(payload: &str) -> bool {
        let mut claims = crate::claims::RawClaims::default();
        crate::token::parse_claims_serde(payload, &mut claims).is_ok()
    }
}
