//! The local Clerk: an issuer of Clerk-shaped session tokens with a Frontend API
//! (`/.well-known/jwks.json`, `/.well-known/openid-configuration`), a Backend API
//! subset under `/v1`, and a Svix-style webhook sender.

mod api;
mod backend;
mod config;
mod keys;
mod mint;
mod model;
mod store;
mod webhook;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clerk_jwt::{Clock, InstanceKind, PublishableKey, SecretKey};
use serde_json::Value;

pub use backend::ClerkBackend;
pub use config::{ClerkConfig, SigningKeySource, default_session_claims};
pub use keys::SigningKey;
pub use mint::{MintOptions, TokenDraft};
pub use model::{NewUser, Session, SessionState, User, UserUpdate};
pub use webhook::{
    Attempt, Delivery, DeliveryState, SVIX_RETRY_SCHEDULE, WebhookEndpoint, WebhookOptions,
    Webhooks, sign_webhook,
};

use crate::server::{Faults, HttpServer};
use crate::{Error, Result};
use keys::{load_key, secret_key_for};
use store::{Store, lock};

/// A user with a fresh session, from [`LocalClerk::sign_in`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SignedIn {
    /// The user.
    pub user: User,
    /// The new session.
    pub session: Session,
}

pub(crate) struct Inner {
    url: String,
    publishable_key: PublishableKey,
    secret_key: SecretKey,
    key: SigningKey,
    claims_template: Value,
    token_lifetime: Duration,
    clock: Arc<dyn Clock>,
    store: Mutex<Store>,
    webhooks: Webhooks,
    faults: Faults,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalClerk")
            .field("url", &self.url)
            .field("publishable_key", &self.publishable_key.as_str())
            .field("secret_key", &self.secret_key)
            .field("kid", &self.key.kid())
            .finish_non_exhaustive()
    }
}

/// A local Clerk instance serving on `127.0.0.1`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use devstack::{ClerkConfig, LocalClerk, NewUser};
///
/// let clerk = LocalClerk::start(ClerkConfig::default()).await?;
/// assert_eq!(clerk.publishable_key().issuer(), clerk.url());
/// let user = clerk.create_user(NewUser::with_email("alice@example.com"))?;
/// let session = clerk.create_session(&user.id)?;
/// let token = clerk.mint(&session.id)?;
/// assert_eq!(token.split('.').count(), 3);
/// clerk.shutdown().await;
/// # Ok::<(), devstack::Error>(())
/// # }).unwrap();
/// ```
pub struct LocalClerk {
    inner: Arc<Inner>,
    server: HttpServer,
}

impl fmt::Debug for LocalClerk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl LocalClerk {
    /// Starts the local Clerk on `127.0.0.1:<port>`.
    pub async fn start(config: ClerkConfig) -> Result<LocalClerk> {
        let key = load_key(&config.signing_key)?;
        let listener = HttpServer::bind(config.port).await?;
        let port = listener
            .local_addr()
            .map_err(|source| Error::Bind {
                port: config.port,
                source,
            })?
            .port();
        let host = format!("127.0.0.1:{port}");
        let publishable_key = PublishableKey::for_host(InstanceKind::Development, &host)
            .map_err(|e| Error::invalid("publishable key", e.to_string()))?;
        let secret_key = config
            .secret_key
            .clone()
            .unwrap_or_else(|| secret_key_for(&key));
        let instance_id = key.kid().to_owned();
        if !config.session_claims.is_object() {
            return Err(Error::invalid(
                "session claims",
                "the template must be a JSON object",
            ));
        }
        let inner = Arc::new(Inner {
            url: publishable_key.issuer(),
            publishable_key,
            secret_key,
            webhooks: Webhooks::new(
                config.webhooks,
                config.webhook_options,
                Arc::clone(&config.clock),
                instance_id,
            ),
            key,
            claims_template: config.session_claims,
            token_lifetime: config.token_lifetime,
            clock: config.clock,
            store: Mutex::default(),
            faults: Faults::default(),
        });
        let server = HttpServer::spawn(
            listener,
            api::router(Arc::clone(&inner)),
            inner.faults.clone(),
            api::default_error_body,
        )?;
        tracing::info!(url = %inner.url, kid = %inner.key.kid(), "local Clerk started");
        Ok(LocalClerk { inner, server })
    }

    /// Stops serving and waits until the port is free; webhook deliveries still pending
    /// are abandoned.
    pub async fn shutdown(self) {
        self.inner.webhooks.abort_all();
        self.server.shutdown().await;
    }

    /// `http://127.0.0.1:<port>`: the Frontend API URL, which is also the issuer.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// The publishable key naming `127.0.0.1:<port>`.
    pub fn publishable_key(&self) -> &PublishableKey {
        &self.inner.publishable_key
    }

    /// The Backend API secret key.
    pub fn secret_key(&self) -> &SecretKey {
        &self.inner.secret_key
    }

    /// The signing key's `kid`, which is also the instance id (`ins_…`).
    pub fn kid(&self) -> &str {
        self.inner.key.kid()
    }

    /// The JWKS document served at `/.well-known/jwks.json` and `/v1/jwks`.
    pub fn jwks(&self) -> Value {
        self.inner.key.jwks()
    }

    /// The public key as PEM (what the dashboard shows as "JWT public key").
    pub fn public_pem(&self) -> String {
        self.inner.key.public_pem()
    }

    /// The signing key, to forge tokens the real Clerk would never issue.
    pub fn signing_key(&self) -> &SigningKey {
        &self.inner.key
    }

    /// The current time by the configured clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Fault injection for this server (e.g. `"GET /.well-known/jwks.json"`).
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The webhook sender.
    pub fn webhooks(&self) -> &Webhooks {
        &self.inner.webhooks
    }

    /// A client of this instance's Backend API over HTTP.
    pub fn backend(&self) -> ClerkBackend {
        ClerkBackend::new(self.url(), self.secret_key().clone())
    }

    /// Creates a user (sends `user.created`).
    pub fn create_user(&self, user: NewUser) -> Result<User> {
        self.inner.create_user(user)
    }

    /// A user by id.
    pub fn user(&self, id: &str) -> Result<User> {
        lock(&self.inner)
            .users
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("user", id))
    }

    /// The user whose primary email address is `email` (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<User> {
        self.inner.user_by_email(email)
    }

    /// Changes a user (sends `user.updated`).
    pub fn update_user(&self, id: &str, update: UserUpdate) -> Result<User> {
        self.inner.update_user(id, update)
    }

    /// Deletes a user (sends `user.deleted`); their sessions become `removed`.
    pub fn delete_user(&self, id: &str) -> Result<()> {
        self.inner.delete_user(id)
    }

    /// Creates an active session for a user (sends `session.created`).
    pub fn create_session(&self, user_id: &str) -> Result<Session> {
        self.inner.create_session(user_id, SessionState::Active)
    }

    /// Creates a pending session (tokens carry `sts: pending`).
    pub fn create_pending_session(&self, user_id: &str) -> Result<Session> {
        self.inner.create_session(user_id, SessionState::Pending)
    }

    /// A session by id.
    pub fn session(&self, id: &str) -> Result<Session> {
        lock(&self.inner)
            .sessions
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("session", id))
    }

    /// Revokes a session (sends `session.revoked`); it mints no more tokens.
    pub fn revoke_session(&self, id: &str) -> Result<Session> {
        self.inner.set_session_state(id, SessionState::Revoked)
    }

    /// Ends a session, as signing out does (sends `session.ended`).
    pub fn end_session(&self, id: &str) -> Result<Session> {
        self.inner.set_session_state(id, SessionState::Ended)
    }

    /// Removes a session (sends `session.removed`).
    pub fn remove_session(&self, id: &str) -> Result<Session> {
        self.inner.set_session_state(id, SessionState::Removed)
    }

    /// Finds the user with this email (creating one with a verified address if none)
    /// and opens a new session.
    pub fn sign_in(&self, email: &str) -> Result<SignedIn> {
        let user = match self.inner.user_by_email(email) {
            Some(user) => user,
            None => self.create_user(NewUser::with_email(email))?,
        };
        let session = self.create_session(&user.id)?;
        Ok(SignedIn { user, session })
    }

    /// Signs in as [`LocalClerk::sign_in`] does and mints a session token.
    pub fn session_token(&self, email: &str) -> Result<String> {
        let signed_in = self.sign_in(email)?;
        self.mint(&signed_in.session.id)
    }

    /// Mints a session token for an active or pending session.
    pub fn mint(&self, session_id: &str) -> Result<String> {
        self.mint_with(session_id, &MintOptions::default())
    }

    /// Mints a session token with options.
    pub fn mint_with(&self, session_id: &str, options: &MintOptions) -> Result<String> {
        Ok(self.token_builder(session_id, options)?.sign())
    }

    /// The token [`LocalClerk::mint_with`] would sign, as a draft whose claims and
    /// header can still be changed (`.claim()`, `.without_claim()`, `.header()`).
    pub fn token_builder(&self, session_id: &str, options: &MintOptions) -> Result<TokenDraft<'_>> {
        self.inner.draft(session_id, options)
    }
}
