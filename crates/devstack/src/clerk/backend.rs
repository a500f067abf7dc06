//! A small client of a Clerk Backend API (the local one, or any with the same subset),
//! for the CLI's `dev token` and for tests that go through HTTP.

use std::fmt;

use clerk_jwt::SecretKey;
use http::Method;
use serde_json::{Value, json};

use super::MintOptions;
use crate::{Error, Result};

/// Calls `/v1/…` with `Authorization: Bearer sk_…`. Cheap to clone.
///
/// ```no_run
/// # async fn example() -> devstack::Result<()> {
/// let secret = clerk_jwt::SecretKey::new("sk_test_…").unwrap();
/// let backend = devstack::ClerkBackend::new("http://127.0.0.1:4100", secret);
/// let token = backend.session_token("alice@example.com").await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClerkBackend {
    base: String,
    secret: SecretKey,
    client: reqwest::Client,
}

impl fmt::Debug for ClerkBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClerkBackend")
            .field("base", &self.base)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl ClerkBackend {
    /// A client of the Backend API at `base_url` (without `/v1`).
    pub fn new(base_url: impl Into<String>, secret: SecretKey) -> Self {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        ClerkBackend {
            base: base_url.into().trim_end_matches('/').to_owned(),
            secret,
            client,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/v1{path}", self.base);
        let mut request = self
            .client
            .request(method.clone(), &url)
            .bearer_auth(self.secret.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let transport = |e: reqwest::Error| Error::Transport {
            method: method.clone(),
            url: url.clone(),
            source: e.without_url(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(transport)?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 200 {
            return Ok(json);
        }
        let first = &json["errors"][0];
        Err(Error::Backend {
            method,
            url,
            status,
            code: first["code"].as_str().unwrap_or("unknown").to_owned(),
            message: first["long_message"]
                .as_str()
                .or_else(|| first["message"].as_str())
                .unwrap_or("no error body")
                .to_owned(),
        })
    }

    /// The user whose email address is `email`, if any (`GET /v1/users?email_address=`).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<Value>> {
        let encoded: String = email
            .trim()
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let users = self
            .call(
                Method::GET,
                &format!("/users?email_address={encoded}"),
                None,
            )
            .await?;
        Ok(users.as_array().and_then(|u| u.first()).cloned())
    }

    /// Creates a user with this email address (`POST /v1/users`).
    pub async fn create_user(&self, email: &str) -> Result<Value> {
        self.call(
            Method::POST,
            "/users",
            Some(json!({"email_address": [email]})),
        )
        .await
    }

    /// The user's most recent active session, if any.
    pub async fn active_session(&self, user_id: &str) -> Result<Option<Value>> {
        let sessions = self
            .call(
                Method::GET,
                &format!("/sessions?user_id={user_id}&status=active&limit=1"),
                None,
            )
            .await?;
        Ok(sessions.as_array().and_then(|s| s.first()).cloned())
    }

    /// Creates an active session (`POST /v1/sessions`).
    pub async fn create_session(&self, user_id: &str) -> Result<Value> {
        self.call(Method::POST, "/sessions", Some(json!({"user_id": user_id})))
            .await
    }

    /// Mints a session token (`POST /v1/sessions/{id}/tokens`).
    pub async fn mint(&self, session_id: &str) -> Result<String> {
        self.mint_with(session_id, &MintOptions::new()).await
    }

    /// Mints a session token with options (`POST /v1/sessions/{id}/tokens`): the
    /// lifetime as Clerk's `expires_in_seconds`, the rest in the local Clerk's own keys,
    /// which a real Clerk ignores.
    pub async fn mint_with(&self, session_id: &str, options: &MintOptions) -> Result<String> {
        let token = self
            .call(
                Method::POST,
                &format!("/sessions/{session_id}/tokens"),
                Some(options.to_body()),
            )
            .await?;
        token["jwt"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::invalid("token response", "no jwt in the answer"))
    }

    /// Finds or creates the user, reuses their active session or creates one, and mints
    /// a fresh session token.
    pub async fn session_token(&self, email: &str) -> Result<String> {
        self.session_token_with(email, &MintOptions::new()).await
    }

    /// [`ClerkBackend::session_token`], the token minted with `options`.
    pub async fn session_token_with(&self, email: &str, options: &MintOptions) -> Result<String> {
        let user = match self.user_by_email(email).await? {
            Some(user) => user,
            None => self.create_user(email).await?,
        };
        let user_id = user["id"]
            .as_str()
            .ok_or_else(|| Error::invalid("user response", "no id in the answer"))?;
        let session = match self.active_session(user_id).await? {
            Some(session) => session,
            None => self.create_session(user_id).await?,
        };
        let session_id = session["id"]
            .as_str()
            .ok_or_else(|| Error::invalid("session response", "no id in the answer"))?;
        self.mint_with(session_id, options).await
    }
}
