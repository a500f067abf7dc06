//! The verifier: every rule, in a fixed order, each failure with its reason.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::claims::RawClaims;
use crate::claims::{EmailClaim, Parsed, SessionClaims, SessionStatus};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, Error};
use crate::json::{describe, describe_str};
use crate::keys::{KeySource, VerifyingKey};
use crate::publishable_key::PublishableKey;
use crate::remote::{LookupError, RemoteJwks, RemoteOptions};
use crate::token::{CAT_JWT_TEMPLATE, CAT_MACHINE, CheckedHeader, Parts};
use crate::{Reason, Result};

/// The default clock-skew allowance.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
/// The largest leeway accepted: more would stretch a 60 s token's life far beyond what
/// clock skew explains.
pub const MAX_LEEWAY: Duration = Duration::from_secs(30);

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
    allow_pending: bool,
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

    /// Accepts sessions whose status is `pending` (off by default, as in Clerk's SDK).
    pub fn allow_pending_sessions(mut self, allow: bool) -> Self {
        self.allow_pending = allow;
        self
    }

    /// Requires a session token: `sid` present, not a JWT-template or machine token, not
    /// an OAuth access token (on by default). Switch it off only to model a verifier that
    /// accepts any Clerk token, as InstantDB's does.
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
    /// default. Trade-off: a token verified before its key was retired stays valid
    /// until it expires (at most a minute for Clerk session tokens).
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
                allow_pending: self.allow_pending,
                require_session: !self.any_token_kind,
                require_email: !self.email_optional,
                require_verified_email: !self.unverified_email_allowed,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            }),
        })
    }
}

/// What the header rules found, shareable without copying strings.
#[derive(Clone)]
struct HeaderFacts {
    kid: Option<Arc<str>>,
    cat: Option<Arc<str>>,
    access_token: bool,
}

impl From<&CheckedHeader<'_>> for HeaderFacts {
    fn from(h: &CheckedHeader<'_>) -> Self {
        HeaderFacts {
            kid: h.kid.map(Arc::from),
            cat: h.cat.map(Arc::from),
            access_token: h.access_token,
        }
    }
}

/// The last header that passed the rules, by its exact base64url text. Tokens of one
/// Clerk instance share their header, so most verifications skip decoding it.
#[derive(Default)]
struct HeaderCache(RwLock<Option<(Box<str>, HeaderFacts)>>);

/// Headers longer than this are not cached.
const MAX_CACHED_HEADER: usize = 512;

impl HeaderCache {
    fn get(&self, header: &str) -> Option<HeaderFacts> {
        let slot = self.0.read().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some((text, facts)) if **text == *header => Some(facts.clone()),
            _ => None,
        }
    }

    fn put(&self, header: &str, facts: &HeaderFacts) {
        if header.len() <= MAX_CACHED_HEADER {
            *self.0.write().unwrap_or_else(PoisonError::into_inner) =
                Some((header.into(), facts.clone()));
        }
    }
}

/// Tokens that passed every rule, by their exact text, with their claims. A hit skips
/// the decoding and the signature check (the bytes were verified before) but re-checks
/// time: expired entries are dropped and the token verified again, so it fails with
/// its reason. Every other rule depends only on the bytes and the configuration.
struct VerifiedCache {
    capacity: usize,
    entries: RwLock<HashMap<Box<str>, Arc<SessionClaims>>>,
}

impl VerifiedCache {
    fn new(capacity: usize) -> Self {
        VerifiedCache {
            capacity,
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, token: &str, now: i64, leeway: i64) -> Option<SessionClaims> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let claims = entries.get(token)?;
        let fresh = claims.exp > now.saturating_sub(leeway)
            && claims
                .nbf
                .is_none_or(|nbf| nbf <= now.saturating_add(leeway))
            && claims
                .iat
                .is_none_or(|iat| iat <= now.saturating_add(leeway));
        fresh.then(|| SessionClaims::clone(claims))
    }

    fn put(&self, token: &str, claims: &SessionClaims, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            // Expired tokens go first; if that is not enough, start over (bounded, and
            // the next requests simply verify fully again).
            entries.retain(|_, c| c.exp > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(token.into(), Arc::new(claims.clone()));
    }
}

struct Inner {
    verified: VerifiedCache,
    headers: HeaderCache,
    keys: KeySource,
    issuers: Vec<String>,
    authorized_parties: Vec<String>,
    audiences: Vec<String>,
    leeway: i64,
    allow_pending: bool,
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
            .field("allow_pending", &inner.allow_pending)
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
        if let Some(claims) = inner.verified.get(token, now, inner.leeway) {
            return Ok(claims);
        }
        let claims = self.verify_fully(token, now).await?;
        inner.verified.put(token, &claims, now);
        Ok(claims)
    }

    /// Every rule, in order.
    async fn verify_fully(&self, token: &str, now: i64) -> Result<SessionClaims> {
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
                let facts =
                    HeaderFacts::from(&raw.check(inner.keys.requires_kid()).map_err(reject)?);
                inner.headers.put(parts.header, &facts);
                facts
            }
        };

        // 3. The key named by kid.
        let key = self.key_for(header.kid.as_deref(), now).await?;

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

        // 10. Session tokens only.
        let not_session = if !inner.require_session {
            None
        } else if header.access_token {
            Some("typ at+jwt marks an OAuth access token")
        } else if header.cat.as_deref() == Some(CAT_JWT_TEMPLATE) {
            Some("cat marks a JWT template token")
        } else if header.cat.as_deref() == Some(CAT_MACHINE) {
            Some("cat marks a machine token")
        } else if !has_sid {
            Some("the token has no sid claim (JWT template tokens have none and outlive sign-out)")
        } else {
            None
        };
        if let Some(detail) = not_session {
            return Err(Error::rejected(Reason::TokenNotSession, detail));
        }

        // 11. Pending sessions.
        if !inner.allow_pending && claims.status == Some(SessionStatus::Pending) {
            return Err(Error::rejected(
                Reason::SessionPending,
                "the session status (sts) is pending",
            ));
        }

        // 12. Email.
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
        Ok(claims)
    }

    async fn key_for(&self, kid: Option<&str>, now: i64) -> Result<VerifyingKey> {
        match &self.inner.keys {
            KeySource::Pem(key) => Ok(key.clone()),
            KeySource::Static(set) => {
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
            KeySource::Remote(remote) => {
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
    }
}

/// The claims of an unverified token, for display. Never use them for a decision.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Inspection {
    /// The JOSE header.
    pub header: serde_json::Map<String, serde_json::Value>,
    /// The payload, as sent.
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// Decodes a token without verifying it (for `clerk-instant token inspect`).
pub fn inspect(token: &str) -> Result<Inspection> {
    crate::token::decode_unverified(token.trim())
        .map(|(header, payload)| Inspection { header, payload })
        .map_err(|e| Error::rejected(e.reason, e.detail))
}

impl Inspection {
    /// What a person setting up Clerk with InstantDB should know about this token, as of
    /// `now`: the problems verification would report, and the quieter ones it would not.
    pub fn warnings(&self, now: i64) -> Vec<String> {
        use serde_json::Value;
        let mut out = Vec::new();
        let h = &self.header;
        let p = &self.payload;
        let str_of = |m: &serde_json::Map<String, Value>, k: &str| {
            m.get(k).and_then(Value::as_str).map(str::to_owned)
        };
        if str_of(h, "alg").as_deref() != Some("RS256") {
            out.push(format!(
                "alg is {}, not RS256: not a Clerk session token",
                describe(h.get("alg"))
            ));
        }
        if !h.contains_key("kid") {
            out.push("no kid in the header: only a PEM key can verify it".into());
        }
        let cat = str_of(h, "cat");
        if cat.as_deref() == Some(CAT_JWT_TEMPLATE) {
            out.push("a JWT template token (cat), not a session token: call getToken() without a template".into());
        } else if cat.as_deref() == Some(CAT_MACHINE) {
            out.push("a machine token (cat), not a session token".into());
        }
        if str_of(h, "typ").is_some_and(|t| t.to_ascii_lowercase().contains("at+jwt")) {
            out.push("an OAuth access token (typ at+jwt), not a session token".into());
        }
        if !p.contains_key("sid") {
            out.push("no sid claim: not a session token (JWT templates have none)".into());
        }
        let date = |k: &str| p.get(k).and_then(Value::as_i64);
        match date("exp") {
            None => out.push("no numeric exp claim".into()),
            Some(exp) if exp <= now => out.push(format!("expired {} s ago", now - exp)),
            Some(_) => {}
        }
        if let Some(nbf) = date("nbf").filter(|&nbf| nbf > now) {
            out.push(format!(
                "not valid for another {} s (nbf): is this clock behind?",
                nbf - now
            ));
        }
        if let Some(iat) = date("iat").filter(|&iat| iat > now) {
            out.push(format!(
                "issued {} s in the future (iat): is this clock behind?",
                iat - now
            ));
        }
        if p.get("v").and_then(Value::as_u64) != Some(2) {
            out.push("version 1 claims (no v: 2); Clerk deprecated them on 2025-04-14".into());
        }
        if str_of(p, "sts").as_deref() == Some("pending") {
            out.push(
                "the session is pending (sts): rejected unless pending sessions are allowed".into(),
            );
        }
        match p.get("email") {
            Some(Value::String(e)) if crate::claims::is_email_address(e) => {}
            Some(Value::Null) => out.push(
                "email is null: this user has no primary email address, and InstantDB cannot sign them in by email".into(),
            ),
            Some(_) => out.push("the email claim is not an email address".into()),
            None => out.push(
                "no email claim: add \"email\": \"{{user.primary_email_address}}\" to the session token in the Clerk dashboard (Sessions, Customize session token)".into(),
            ),
        }
        match p.get("email_verified") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => out.push("email_verified is false".into()),
            Some(Value::String(s)) if s == "true" => out.push(
                "email_verified is the string \"true\": InstantDB keeps the email only when it is the JSON boolean true".into(),
            ),
            Some(Value::String(s)) if s == "false" => {
                out.push("email_verified is \"false\"".into());
            }
            None => out.push(
                "no email_verified claim: InstantDB signs the user in without an email unless it is true; add \"email_verified\": \"{{user.email_verified}}\" to the session token".into(),
            ),
            Some(other) => out.push(format!(
                "email_verified is {}, neither a boolean nor \"true\"/\"false\"",
                describe(Some(other))
            )),
        }
        if str_of(p, "sub").is_some_and(|s| s.starts_with("mch_")) {
            out.push("sub is a machine id (mch_…), not a user".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
