//! Minting: the claims of a session token as Clerk builds them, and the options of
//! one token.

use std::time::Duration;

use clerk_jwt::CAT_SESSION;
use clerk_jwt::testing::TokenBuilder;
use serde_json::{Map, Value, json};

use super::store::lock;
use super::{Inner, SigningKey, model};
use crate::util::random_base62;
use crate::{Error, Result};

/// Options of one minted token.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct MintOptions {
    pub(crate) azp: Option<String>,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) issued_at: Option<i64>,
    pub(crate) expires_in: Option<i64>,
    pub(crate) claims: Map<String, Value>,
    pub(crate) removed: Vec<String>,
}

impl MintOptions {
    /// Defaults: no `azp`, the configured lifetime, issued now.
    pub fn new() -> Self {
        MintOptions::default()
    }

    /// Adds `azp`, as tokens minted in a browser carry (the page's origin).
    pub fn azp(mut self, origin: impl Into<String>) -> Self {
        self.azp = Some(origin.into());
        self
    }

    /// Sets the lifetime (`exp - iat`).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// Sets `iat` (Unix seconds); `nbf` is 10 s earlier.
    pub fn issued_at(mut self, iat: i64) -> Self {
        self.issued_at = Some(iat);
        self
    }

    /// Sets `exp` to `seconds` from now (or from [`MintOptions::issued_at`]). Zero or
    /// a negative value mints a token that has already expired: its `iat` is then one
    /// lifetime before its `exp`, as a token minted earlier would carry.
    pub fn expires_in(mut self, seconds: i64) -> Self {
        self.expires_in = Some(seconds);
        self
    }

    /// Sets (or, with `Value::Null`, overrides to null) a claim after the template.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        self.removed.retain(|removed| *removed != name);
        self.claims.insert(name, value.into());
        self
    }

    /// Leaves a claim out of the token (one the template or Clerk would add, such as
    /// `email`).
    pub fn without_claim(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.claims.remove(&name);
        if !self.removed.contains(&name) {
            self.removed.push(name);
        }
        self
    }

    /// Leaves out `email` and `email_verified`, as Clerk's default session token does
    /// (the claims a project adds by customizing it).
    pub fn without_email(self) -> Self {
        self.without_claim("email").without_claim("email_verified")
    }

    /// The body of `POST /v1/sessions/{id}/tokens` at the local Clerk: Clerk's
    /// `expires_in_seconds` for the lifetime, and the local Clerk's own keys (`azp`,
    /// `claims`, `without_claims`, `expires_in`, `issued_at`) for the rest.
    pub(crate) fn to_body(&self) -> Value {
        let mut body = Map::new();
        if let Some(lifetime) = self.lifetime {
            body.insert("expires_in_seconds".into(), json!(lifetime.as_secs()));
        }
        if let Some(azp) = &self.azp {
            body.insert("azp".into(), json!(azp));
        }
        if !self.claims.is_empty() {
            body.insert("claims".into(), Value::Object(self.claims.clone()));
        }
        if !self.removed.is_empty() {
            body.insert("without_claims".into(), json!(self.removed));
        }
        if let Some(seconds) = self.expires_in {
            body.insert("expires_in".into(), json!(seconds));
        }
        if let Some(iat) = self.issued_at {
            body.insert("issued_at".into(), json!(iat));
        }
        Value::Object(body)
    }

    /// The local Clerk's own keys of a mint request's body, added to `self`; the name
    /// of the first key that has the wrong type is the error.
    pub(crate) fn with_body(
        mut self,
        body: &Map<String, Value>,
    ) -> std::result::Result<Self, &'static str> {
        let given = |key: &str| body.get(key).filter(|v| !v.is_null());
        if let Some(azp) = given("azp") {
            self = self.azp(azp.as_str().ok_or("azp")?);
        }
        if let Some(claims) = given("claims") {
            for (name, value) in claims.as_object().ok_or("claims")? {
                self = self.claim(name.clone(), value.clone());
            }
        }
        if let Some(names) = given("without_claims") {
            for name in names.as_array().ok_or("without_claims")? {
                self = self.without_claim(name.as_str().ok_or("without_claims")?);
            }
        }
        if let Some(seconds) = given("expires_in") {
            self = self.expires_in(seconds.as_i64().ok_or("expires_in")?);
        }
        if let Some(iat) = given("issued_at") {
            self = self.issued_at(iat.as_i64().ok_or("issued_at")?);
        }
        Ok(self)
    }
}

impl Inner {
    /// The claims of a token for this session, as Clerk mints them.
    pub(crate) fn session_claims(
        &self,
        session_id: &str,
        options: &MintOptions,
    ) -> Result<Map<String, Value>> {
        let (session, user) = {
            let store = lock(self);
            let session = store
                .sessions
                .get(session_id)
                .cloned()
                .ok_or_else(|| Error::not_found("session", session_id))?;
            let user = store.users.get(&session.user_id).cloned();
            (session, user)
        };
        let user = match user {
            Some(user) if session.status.mints_tokens() => user,
            _ => {
                return Err(Error::SessionNotActive {
                    id: session.id,
                    status: session.status.as_str().to_owned(),
                });
            }
        };
        let now = options.issued_at.unwrap_or_else(|| self.clock.now());
        let lifetime = options.lifetime.unwrap_or(self.token_lifetime);
        let mut lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        let mut iat = now;
        match options.expires_in {
            Some(seconds) if seconds > 0 => lifetime = seconds,
            // Already expired: issued one lifetime before it expired.
            Some(seconds) => iat = now.saturating_add(seconds).saturating_sub(lifetime),
            None => {}
        }
        let mut claims = match model::resolve_template(&self.claims_template, &user) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let standard = json!({
            "iss": self.url,
            "sub": user.id,
            "sid": session.id,
            "exp": iat.saturating_add(lifetime),
            "iat": iat,
            "nbf": iat - 10,
            "jti": random_base62(20),
            "v": 2,
            "fva": [0, -1],
            "sts": session.status.as_str(),
        });
        if let Value::Object(standard) = standard {
            claims.extend(standard);
        }
        if let Some(azp) = &options.azp {
            claims.insert("azp".into(), Value::String(azp.clone()));
        }
        claims.extend(options.claims.clone());
        for name in &options.removed {
            claims.remove(name);
        }
        Ok(claims)
    }

    pub(crate) fn mint(&self, session_id: &str, options: &MintOptions) -> Result<String> {
        Ok(self.draft(session_id, options)?.sign())
    }

    /// The token [`Inner::mint`] would sign, still open to changes.
    pub(super) fn draft(&self, session_id: &str, options: &MintOptions) -> Result<TokenDraft<'_>> {
        let claims = self.session_claims(session_id, options)?;
        Ok(TokenDraft(
            TokenBuilder::empty(self.key.test_key())
                .header("cat", CAT_SESSION)
                .claims(Value::Object(claims)),
        ))
    }
}

/// A session token of the local Clerk before it is signed, from
/// [`LocalClerk::token_builder`](super::LocalClerk::token_builder): change its claims
/// and header to make tokens the real Clerk would never issue, then sign it with the
/// instance's key or another [`SigningKey`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenDraft<'c>(TokenBuilder<'c>);

impl TokenDraft<'_> {
    /// Sets a claim.
    pub fn claim(self, name: &str, value: impl Into<Value>) -> Self {
        TokenDraft(self.0.claim(name, value))
    }

    /// Removes a claim.
    pub fn without_claim(self, name: &str) -> Self {
        TokenDraft(self.0.without_claim(name))
    }

    /// Sets a header parameter (`kid`, `alg`, `cat`, `typ`…).
    pub fn header(self, name: &str, value: impl Into<Value>) -> Self {
        TokenDraft(self.0.header(name, value))
    }

    /// Removes a header parameter.
    pub fn without_header(self, name: &str) -> Self {
        TokenDraft(self.0.without_header(name))
    }

    /// Signs with the local Clerk's key.
    pub fn sign(&self) -> String {
        self.0.sign()
    }

    /// Signs with another key; the header keeps the local Clerk's `kid` unless it was
    /// changed with [`TokenDraft::header`].
    pub fn sign_with(&self, key: &SigningKey) -> String {
        self.0.sign_with(key.test_key())
    }
}
