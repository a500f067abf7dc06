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
    pub(crate) claims: Map<String, Value>,
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

    /// Sets (or, with `Value::Null`, overrides to null) a claim after the template.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
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
        let iat = options.issued_at.unwrap_or_else(|| self.clock.now());
        let lifetime = options.lifetime.unwrap_or(self.token_lifetime);
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
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
