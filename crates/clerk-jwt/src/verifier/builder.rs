//! [`VerifierBuilder`]: the configuration of a [`Verifier`], checked once in `build`.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use super::cache::{HeaderCache, VerifiedCache};
use super::{Inner, Verifier};
use crate::Result;
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::keys::KeySource;
use crate::publishable_key::PublishableKey;
use crate::remote::{RemoteJwks, RemoteOptions};

/// The default clock-skew allowance.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
/// The largest leeway accepted: more would stretch a 60 s token's life far beyond what
/// clock skew explains.
pub const MAX_LEEWAY: Duration = Duration::from_secs(30);
/// The default longest accepted token lifetime: 1 h. Clerk's session tokens live 60 s;
/// tokens minted through the Backend API (`POST /v1/sessions/{id}/tokens` with
/// `expires_in_seconds`) by scripts, tests and load tools commonly live up to an hour.
/// Anything longer is refused, so a signed-out session needs remembering for at most
/// this long (plus the leeway).
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The values [`VerifierBuilder::max_token_lifetime`] accepts: at least Clerk's own 60 s
/// (less would refuse every session token), at most a day (beyond that the bound no
/// longer bounds anything a session outlives).
pub const MAX_TOKEN_LIFETIME_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(24 * 3600);

/// Configures a [`Verifier`]. Every rule is on unless switched off here.
#[derive(Debug, Default)]
#[must_use]
pub struct VerifierBuilder {
    publishable_key: Option<PublishableKey>,
    keys: Option<KeySource>,
    remote_options: Option<RemoteOptions>,
    http_client: Option<reqwest::Client>,
    issuers: Vec<String>,
    authorized_parties: Vec<String>,
    audiences: Vec<String>,
    leeway: Option<Duration>,
    max_token_lifetime: Option<Duration>,
    allow_pending: bool,
    reject_impersonation: bool,
    any_token_kind: bool,
    verified_cache: usize,
    email_optional: bool,
    unverified_email_allowed: bool,
    clock: Option<Arc<dyn Clock>>,
}

impl VerifierBuilder {
    /// The publishable key: its Frontend API is an accepted issuer, and, unless another
    /// key source is set, its public JWKS is where keys come from.
    pub fn publishable_key(mut self, key: PublishableKey) -> Self {
        self.publishable_key = Some(key);
        self
    }

    /// Where keys come from (overrides the publishable key's JWKS).
    pub fn keys(mut self, keys: impl Into<KeySource>) -> Self {
        self.keys = Some(keys.into());
        self
    }

    /// Cache options for the JWKS derived from the publishable key.
    pub fn remote_options(mut self, options: RemoteOptions) -> Self {
        self.remote_options = Some(options);
        self
    }

    /// The HTTP client for the JWKS derived from the publishable key.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Accepts tokens from this issuer too (a satellite domain or a proxy URL), in
    /// addition to the publishable key's.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Requires `azp` to be one of these origins (may be called several times). With no
    /// authorized party, `azp` is not checked.
    pub fn authorized_party(mut self, origin: impl Into<String>) -> Self {
        self.authorized_parties.push(origin.into());
        self
    }

    /// Requires `aud` to contain this value (may be called several times: any matches).
    /// With no audience, `aud` is not checked and tokens carrying one pass.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 5 s, at most 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// The longest lifetime a token may have (default [`DEFAULT_MAX_TOKEN_LIFETIME`],
    /// 1 h; within [`MAX_TOKEN_LIFETIME_RANGE`]): its `exp - iat`, or `exp - nbf` when
    /// it has no `iat`, or the time it has left when it has neither. A longer-lived
    /// token is refused with `token-lifetime-too-long`, and no verified token is cached
    /// for longer. [`Verifier::max_token_lifetime`] reports it, so whoever remembers
    /// tokens until they expire knows for how long at most.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = Some(lifetime);
        self
    }

    /// Refuses impersonated sessions (tokens carrying `act`, set when someone signs in
    /// as the user from the Clerk dashboard) with `session-impersonated`. Off by
    /// default: the actor is kept in [`SessionClaims::actor`](crate::SessionClaims::actor) for
    /// the caller to show and log.
    pub fn reject_impersonation(mut self, reject: bool) -> Self {
        self.reject_impersonation = reject;
        self
    }

    /// Accepts sessions whose status is `pending` (off by default, as in Clerk's SDK).
    pub fn allow_pending_sessions(mut self, allow: bool) -> Self {
        self.allow_pending = allow;
        self
    }

    /// Requires a session token as Clerk issues it (on by default): `sid` a session id
    /// (`sess_…`) and `sub` a user id (`user_…`), not a JWT-template or machine token,
    /// not an OAuth access token, and a status (`sts`), when present, of `active` or
    /// `pending`. Switch it off only to model a verifier that accepts any Clerk token,
    /// as InstantDB's does.
    pub fn require_session_token(mut self, require: bool) -> Self {
        self.any_token_kind = !require;
        self
    }

    /// Requires an `email` claim holding an address (on by default).
    pub fn require_email(mut self, require: bool) -> Self {
        self.email_optional = !require;
        self
    }

    /// Rejects tokens whose `email_verified` is false (on by default).
    pub fn require_verified_email(mut self, require: bool) -> Self {
        self.unverified_email_allowed = !require;
        self
    }

    /// Remembers up to `capacity` tokens that passed every rule, so the same token
    /// presented again (clients reuse a token for up to a minute) skips decoding and the
    /// signature check; its time claims are still checked on every use. Off (0) by
    /// default. An entry lives at most the maximum token lifetime, and the tokens a key
    /// verified are forgotten as soon as a JWKS refresh retires that key, so they are
    /// verified again (and refused) on their next use.
    pub fn verified_token_cache(mut self, capacity: usize) -> Self {
        self.verified_cache = capacity;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks the configuration and builds the verifier.
    pub fn build(self) -> Result<Verifier> {
        let leeway = self.leeway.unwrap_or(DEFAULT_LEEWAY);
        if leeway > MAX_LEEWAY {
            return Err(ConfigError::Leeway(leeway.as_secs()).into());
        }
        let max_lifetime = self
            .max_token_lifetime
            .unwrap_or(DEFAULT_MAX_TOKEN_LIFETIME);
        if !MAX_TOKEN_LIFETIME_RANGE.contains(&max_lifetime) {
            return Err(ConfigError::MaxTokenLifetime(max_lifetime.as_secs()).into());
        }
        let mut issuers = Vec::new();
        if let Some(pk) = &self.publishable_key {
            issuers.push(pk.issuer());
        }
        for issuer in self.issuers {
            let issuer = issuer.trim().trim_end_matches('/').to_owned();
            let valid = issuer
                .strip_prefix("https://")
                .or_else(|| issuer.strip_prefix("http://"))
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
            if !valid {
                return Err(ConfigError::Issuer(issuer).into());
            }
            if !issuers.contains(&issuer) {
                issuers.push(issuer);
            }
        }
        if issuers.is_empty() {
            return Err(ConfigError::NoIssuer.into());
        }
        let keys = match (self.keys, &self.publishable_key) {
            (Some(keys), _) => keys,
            (None, Some(pk)) => {
                let remote = RemoteJwks::frontend_api(pk, self.remote_options.unwrap_or_default());
                KeySource::Remote(match self.http_client {
                    Some(client) => remote.with_client(client),
                    None => remote,
                })
            }
            (None, None) => return Err(ConfigError::NoKeySource.into()),
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                verified: VerifiedCache::new(self.verified_cache),
                headers: HeaderCache::default(),
                keys,
                issuers,
                authorized_parties: self.authorized_parties,
                audiences: self.audiences,
                leeway: i64::try_from(leeway.as_secs()).unwrap_or(0),
                max_lifetime: i64::try_from(max_lifetime.as_secs()).unwrap_or(0),
                allow_pending: self.allow_pending,
                reject_impersonation: self.reject_impersonation,
                require_session: !self.any_token_kind,
                require_email: !self.email_optional,
                require_verified_email: !self.unverified_email_allowed,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Reason};

    #[test]
    fn build_requires_issuer_and_key_source_and_bounds_leeway() {
        let err = Verifier::builder().build().unwrap_err();
        assert!(matches!(err, Error::Config(ConfigError::NoIssuer)), "{err}");
        let err = Verifier::builder()
            .issuer("https://clerk.example.com")
            .build()
            .unwrap_err();
        assert_eq!(err.reason(), Some(Reason::JwkLocalMissing));
        let err = Verifier::builder()
            .issuer("clerk.example.com")
            .build()
            .unwrap_err();
        assert!(
            matches!(err, Error::Config(ConfigError::Issuer(_))),
            "{err}"
        );
        let pk: PublishableKey = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k".parse().unwrap();
        let err = Verifier::builder()
            .publishable_key(pk.clone())
            .leeway(Duration::from_secs(31))
            .build()
            .unwrap_err();
        assert!(
            matches!(err, Error::Config(ConfigError::Leeway(31))),
            "{err}"
        );
        let verifier = Verifier::builder()
            .publishable_key(pk)
            .issuer("https://clerk.satellite.dev/")
            .leeway(MAX_LEEWAY)
            .build()
            .unwrap();
        assert_eq!(
            verifier.issuers(),
            ["https://clerk.example.com", "https://clerk.satellite.dev"]
        );
        assert!(matches!(verifier.key_source(), KeySource::Remote(r)
            if r.jwks_url() == "https://clerk.example.com/.well-known/jwks.json"));
    }
}
