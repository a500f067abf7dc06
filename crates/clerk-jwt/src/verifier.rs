//! The verifier: every rule, in a fixed order, each failure with its reason.

mod builder;
mod cache;
mod inspect;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use builder::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LIFETIME, MAX_LEEWAY, MAX_TOKEN_LIFETIME_RANGE,
    VerifierBuilder,
};
pub use inspect::{Inspection, inspect};

use cache::{HeaderCache, HeaderFacts, VerifiedCache};

use crate::claims::RawClaims;
use crate::claims::{EmailClaim, Parsed, SessionClaims, SessionStatus};
use crate::clock::Clock;
use crate::error::Error;
use crate::json::describe_str;
use crate::keys::{KeySet, KeySource, VerifyingKey};
use crate::remote::{LookupError, RemoteJwks};
use crate::token::{CAT_JWT_TEMPLATE, CAT_MACHINE, Parts};
use crate::{Reason, Result};

struct Inner {
    verified: VerifiedCache,
    headers: HeaderCache,
    keys: KeySource,
    issuers: Vec<String>,
    authorized_parties: Vec<String>,
    audiences: Vec<String>,
    leeway: i64,
    max_lifetime: i64,
    allow_pending: bool,
    reject_impersonation: bool,
    require_session: bool,
    require_email: bool,
    require_verified_email: bool,
    clock: Arc<dyn Clock>,
}

/// Verifies Clerk session tokens. Cheap to clone; clones share the key cache.
///
/// See the [crate documentation](crate) for the rules and their order.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Verifier")
            .field("keys", &inner.keys)
            .field("issuers", &inner.issuers)
            .field("authorized_parties", &inner.authorized_parties)
            .field("audiences", &inner.audiences)
            .field("leeway", &inner.leeway)
            .field("max_lifetime", &inner.max_lifetime)
            .field("allow_pending", &inner.allow_pending)
            .field("reject_impersonation", &inner.reject_impersonation)
            .field("require_session", &inner.require_session)
            .field("require_email", &inner.require_email)
            .field("require_verified_email", &inner.require_verified_email)
            .finish()
    }
}

impl Verifier {
    /// Starts a configuration.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// The accepted issuers.
    pub fn issuers(&self) -> &[String] {
        &self.inner.issuers
    }

    /// The key source.
    pub fn key_source(&self) -> &KeySource {
        &self.inner.keys
    }

    /// The clock-skew allowance applied to `exp`, `nbf` and `iat`.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.inner.leeway.unsigned_abs())
    }

    /// The longest lifetime an accepted token may have (see
    /// [`VerifierBuilder::max_token_lifetime`]). Every accepted token expires at most
    /// this plus [`Verifier::leeway`] after the moment it is verified, so state kept
    /// until a token's `exp` (e.g. a signed-out session) is bounded by it.
    pub fn max_token_lifetime(&self) -> Duration {
        Duration::from_secs(self.inner.max_lifetime.unsigned_abs())
    }

    /// How many verified tokens this verifier remembers (see
    /// [`VerifierBuilder::verified_token_cache`]); 0 when it remembers none.
    pub fn verified_token_cache(&self) -> usize {
        self.inner.verified.capacity()
    }

    /// The current time by this verifier's clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Verifies a session token and returns its claims.
    ///
    /// Only a remote key source ever awaits (to fetch keys); with warm keys, a PEM key or
    /// a static JWKS this completes without yielding.
    pub async fn verify(&self, token: &str) -> Result<SessionClaims> {
        let inner = &*self.inner;
        let now = inner.clock.now();
        if let Some(claims) = inner.verified.get(token, now, inner.leeway, &inner.keys) {
            return Ok(claims);
        }
        // Every rule runs in `verify_now`, without awaiting. Only a remote key source
        // without fresh keys for the kid sends it on to `verify_fetching`, boxed: that
        // future holds an HTTP fetch and is large (about 1.7 KB), and every caller's
        // future, and every move of it, would carry that size on the warm path too.
        let (claims, key) = match self.verify_now(token, now, None)? {
            Checked::Verified(claims, key) => (claims, key),
            Checked::FetchKeys(remote, kid) => {
                Box::pin(self.verify_fetching(token, now, remote, kid)).await?
            }
        };
        inner
            .verified
            .put(token, &claims, &key, now, inner.max_lifetime, &inner.keys);
        Ok(claims)
    }

    /// Every rule, in order, with `fetched` (a key just fetched for this token's kid) or
    /// the keys at hand. Returns the claims and the key that verified them, or, when
    /// the remote keys must be fetched first, that source and the kid.
    fn verify_now(
        &self,
        token: &str,
        now: i64,
        fetched: Option<VerifyingKey>,
    ) -> Result<Checked<'_>> {
        let inner = &*self.inner;
        let reject = |e: crate::token::DecodeError| Error::rejected(e.reason, e.detail);

        // 1. Structure: size, three base64url parts, header and payload JSON objects.
        //    A header seen before (the same bytes) was decoded and passed the rules then:
        //    it is not decoded again.
        let parts = Parts::split(token).map_err(reject)?;
        let cached = inner.headers.get(parts.header);
        let decoded = parts.decode(cached.is_none()).map_err(reject)?;
        let raw_header = match &cached {
            Some(_) => None,
            None => Some(decoded.parse_header().map_err(reject)?),
        };
        let mut raw_claims = RawClaims::default();
        decoded.parse_claims_into(&mut raw_claims).map_err(reject)?;

        // 2. Header rules, before any key is chosen.
        let header = match (cached, raw_header) {
            (Some(facts), _) => facts,
            (None, raw) => {
                let raw = raw.unwrap_or_default();
                let facts = Arc::new(HeaderFacts::from(
                    &raw.check(inner.keys.requires_kid()).map_err(reject)?,
                ));
                inner.headers.put(parts.header, &facts);
                facts
            }
        };

        // 3. The key named by kid.
        let key = match (fetched, &inner.keys) {
            (Some(key), _) => key,
            (None, KeySource::Pem(key)) => key.clone(),
            (None, KeySource::Static(set)) => static_key(set, header.kid.as_deref())?,
            (None, KeySource::Remote(remote)) => {
                match remote.fresh_key(header.kid.as_deref().unwrap_or_default(), now) {
                    Some(key) => key,
                    None => return Ok(Checked::FetchKeys(remote, header.kid.clone())),
                }
            }
        };

        // 4. The signature, before any claim is trusted.
        if !key.verify_rs256(decoded.signing_input, decoded.signature()) {
            return Err(Error::rejected(
                Reason::TokenInvalidSignature,
                "the signature does not verify with the key named by kid",
            ));
        }

        // 5. Claim types.
        let Parsed {
            claims,
            has_sid,
            email_present,
        } = raw_claims
            .take_parsed()
            .map_err(|detail| Error::rejected(Reason::TokenVerificationFailed, detail))?;

        // 6. Time, with leeway.
        let leeway = inner.leeway;
        if claims.exp <= now.saturating_sub(leeway) {
            return Err(Error::rejected(
                Reason::TokenExpired,
                format!(
                    "token expired at {} ({} s ago, leeway {leeway} s)",
                    claims.exp,
                    now.saturating_sub(claims.exp)
                ),
            ));
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(leeway)
        {
            return Err(Error::rejected(
                Reason::TokenNotActiveYet,
                format!(
                    "token is not valid before {nbf}, {} s from now (leeway {leeway} s)",
                    nbf.saturating_sub(now)
                ),
            ));
        }
        if let Some(iat) = claims.iat
            && iat > now.saturating_add(leeway)
        {
            return Err(Error::rejected(
                Reason::TokenIatInTheFuture,
                format!(
                    "token was issued at {iat}, {} s in the future (leeway {leeway} s)",
                    iat.saturating_sub(now)
                ),
            ));
        }

        // The lifetime, from the token's own claims: exp - iat, else exp - nbf (Clerk sets
        // nbf a few seconds before iat, so iat is preferred), else the time left. iat
        // and nbf are at most the leeway ahead of now here, so no accepted token
        // expires later than now + leeway + the maximum.
        let (start, from) = match (claims.iat, claims.nbf) {
            (Some(iat), _) => (iat, "exp - iat"),
            (None, Some(nbf)) => (nbf, "exp - nbf"),
            (None, None) => (now, "exp - now"),
        };
        let lifetime = claims.exp.saturating_sub(start);
        if lifetime > inner.max_lifetime {
            return Err(Error::rejected(
                Reason::TokenLifetimeTooLong,
                format!(
                    "token lives {lifetime} s ({from}), longer than the {} s accepted",
                    inner.max_lifetime
                ),
            ));
        }

        // 7. Issuer.
        if !inner.issuers.contains(&claims.iss) {
            return Err(Error::rejected(
                Reason::TokenInvalidIssuer,
                format!(
                    "iss {} is not an accepted issuer (accepted: {})",
                    describe_str(&claims.iss),
                    inner.issuers.join(", ")
                ),
            ));
        }

        // 8. Authorized parties, when configured.
        if !inner.authorized_parties.is_empty() {
            match &claims.azp {
                Some(azp) if inner.authorized_parties.contains(azp) => {}
                Some(azp) => {
                    return Err(Error::rejected(
                        Reason::TokenInvalidAuthorizedParties,
                        format!("azp {} is not an authorized party", describe_str(azp)),
                    ));
                }
                None => {
                    return Err(Error::rejected(
                        Reason::TokenInvalidAuthorizedParties,
                        "the token has no azp claim and authorized parties are required",
                    ));
                }
            }
        }

        // 9. Audience, only when configured.
        if !inner.audiences.is_empty() && !claims.aud.iter().any(|a| inner.audiences.contains(a)) {
            return Err(Error::rejected(
                Reason::TokenInvalidAudience,
                if claims.aud.is_empty() {
                    "the token has no aud claim and an audience is required".to_owned()
                } else {
                    format!("aud does not contain {}", inner.audiences.join(" or "))
                },
            ));
        }

        // 10. Session tokens only, with the ids Clerk gives sessions and users.
        let not_session: Option<Cow<'static, str>> = if !inner.require_session {
            None
        } else if header.access_token {
            Some("typ at+jwt marks an OAuth access token".into())
        } else if header.cat.as_deref() == Some(CAT_JWT_TEMPLATE) {
            Some("cat marks a JWT template token".into())
        } else if header.cat.as_deref() == Some(CAT_MACHINE) {
            Some("cat marks a machine token".into())
        } else if !has_sid {
            Some(
                "the token has no sid claim (JWT template tokens have none and outlive sign-out)"
                    .into(),
            )
        } else if !is_clerk_id(&claims.sid, "sess_") {
            Some(
                format!(
                    "sid {} is not a Clerk session id (sess_…)",
                    describe_str(&claims.sid)
                )
                .into(),
            )
        } else if !is_clerk_id(&claims.sub, "user_") {
            Some(
                format!(
                    "sub {} is not a Clerk user id (user_…)",
                    describe_str(&claims.sub)
                )
                .into(),
            )
        } else {
            None
        };
        if let Some(detail) = not_session {
            return Err(Error::rejected(Reason::TokenNotSession, detail));
        }

        // 11. The session status. Clerk's session token reference (v2 claims,
        //     https://clerk.com/docs/backend-requests/resources/session-tokens) gives
        //     sts as "active" or "pending", and Clerk's SDK treats pending as signed
        //     out; the other statuses of a Clerk session (revoked, ended, expired,
        //     removed, abandoned, replaced; Backend API `GET /sessions/{id}`) belong to
        //     sessions that mint no token. So any other value is refused. v1 tokens
        //     have no sts, and a missing sts is not a status: it passes.
        if inner.require_session
            && let Some(SessionStatus::Other(status)) = &claims.status
        {
            return Err(Error::rejected(
                Reason::SessionNotActive,
                format!(
                    "the session status (sts) is {}, not active",
                    describe_str(status)
                ),
            ));
        }
        if !inner.allow_pending && claims.status == Some(SessionStatus::Pending) {
            return Err(Error::rejected(
                Reason::SessionPending,
                "the session status (sts) is pending",
            ));
        }

        // 12. Impersonation, when refused.
        if inner.reject_impersonation
            && let Some(actor) = &claims.actor
        {
            return Err(Error::rejected(
                Reason::SessionImpersonated,
                format!(
                    "the token carries act: {} is impersonating the user, and impersonated sessions are refused",
                    describe_str(&actor.sub)
                ),
            ));
        }

        // 13. Email.
        if inner.require_email && email_present != EmailClaim::Valid {
            let detail = match email_present {
                EmailClaim::Missing => "the token has no email claim (or it is null)",
                EmailClaim::Empty => "the email claim is empty",
                EmailClaim::NotString => "the email claim is not a string",
                EmailClaim::NotAddress | EmailClaim::Valid => {
                    "the email claim is not an email address"
                }
            };
            return Err(Error::rejected(Reason::EmailMissing, detail));
        }
        if inner.require_verified_email && claims.email_verified == Some(false) {
            return Err(Error::rejected(
                Reason::EmailUnverified,
                "email_verified is false",
            ));
        }
        Ok(Checked::Verified(claims, key))
    }
}

/// How [`Verifier::verify_now`] ended, when no rule refused the token.
#[expect(
    clippy::large_enum_variant,
    reason = "returned once and taken apart at once; boxing would cost an allocation"
)]
enum Checked<'v> {
    /// Every rule passed: the claims and the key that verified them.
    Verified(SessionClaims, VerifyingKey),
    /// The remote source has no fresh key for the kid: fetch, then verify again.
    FetchKeys(&'v RemoteJwks, Option<Arc<str>>),
}

/// Whether `id` is a Clerk id with this prefix: the prefix, then 1 to 64 ASCII letters
/// and digits (Clerk's ids are base62, e.g. `user_2NNEqL2nrIRdJ194ndJqAHwEfxC`). The
/// bytes are folded without an early exit, which the compiler turns into vector code.
fn is_clerk_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| {
        (1..=64).contains(&rest.len())
            && rest
                .bytes()
                .fold(true, |ok, b| ok & b.is_ascii_alphanumeric())
    })
}

/// The key of a static JWKS named by `kid`.
fn static_key(set: &KeySet, kid: Option<&str>) -> Result<VerifyingKey> {
    let kid = kid.unwrap_or_default();
    set.get(kid).cloned().ok_or_else(|| {
        Error::rejected(
            Reason::JwkKidMismatch,
            format!(
                "no key with kid {} in the configured JWKS (it has {})",
                describe_str(kid),
                set.kids().join(", ")
            ),
        )
    })
}

impl Verifier {
    /// The slow path of [`Verifier::verify`]: fetches the keys for `kid`, then verifies
    /// again with the key (the header is cached by then: it is not decoded again).
    async fn verify_fetching(
        &self,
        token: &str,
        now: i64,
        remote: &RemoteJwks,
        kid: Option<Arc<str>>,
    ) -> Result<(SessionClaims, VerifyingKey)> {
        let mut fetched = self.fetch_key(remote, kid.as_deref(), now).await?;
        loop {
            match self.verify_now(token, now, Some(fetched))? {
                Checked::Verified(claims, key) => return Ok((claims, key)),
                Checked::FetchKeys(remote, kid) => {
                    fetched = self.fetch_key(remote, kid.as_deref(), now).await?;
                }
            }
        }
    }

    /// The key for `kid` from the remote source, fetching the keys when they are stale
    /// or do not hold it.
    async fn fetch_key(
        &self,
        remote: &RemoteJwks,
        kid: Option<&str>,
        now: i64,
    ) -> Result<VerifyingKey> {
        let kid = kid.unwrap_or_default();
        remote.resolve(kid, now).await.map_err(|e| match e {
            LookupError::KidMismatch => Error::rejected(
                Reason::JwkKidMismatch,
                format!(
                    "no key with kid {} at {}, even after a refresh",
                    describe_str(kid),
                    remote.jwks_url()
                ),
            ),
            LookupError::Unavailable(source) => Error::KeysUnavailable {
                reason: if source.is_unauthorized() {
                    Reason::SecretKeyInvalid
                } else {
                    Reason::JwkRemoteFailedToLoad
                },
                source,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_clerk_id;

    #[test]
    fn clerk_ids_are_the_prefix_then_1_to_64_letters_and_digits() {
        let longest = format!("user_{}", "a1".repeat(32));
        for good in ["user_Z", "user_2NNEqL2nrIRdJ194ndJqAHwEfxC", &longest] {
            assert!(is_clerk_id(good, "user_"), "{good}");
        }
        let too_long = format!("{longest}b");
        // A wrong byte anywhere, first or last included, whatever its kind.
        for bad in [
            "user_",
            "sess_2abc",
            "user_-abc",
            "user_ab-c",
            "user_abc_",
            "user_abc\u{e9}",
            "user_ab\u{0}c",
            "user_abc ",
            &too_long,
        ] {
            assert!(!is_clerk_id(bad, "user_"), "{bad:?}");
        }
    }
}
