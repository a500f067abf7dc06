//! The local Clerk: an issuer of Clerk-shaped session tokens with a Frontend API
//! (`/.well-known/jwks.json`, `/.well-known/openid-configuration`), a Backend API
//! subset under `/v1`, and a Svix-style webhook sender.

mod api;
mod backend;
mod model;
mod webhook;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clerk_jwt::testing::{TestKey, TokenBuilder};
use clerk_jwt::{CAT_SESSION, Clock, InstanceKind, PublishableKey, SecretKey, SystemClock};
use serde_json::{Map, Value, json};

pub use backend::ClerkBackend;
pub use model::{NewUser, Session, SessionState, User, UserUpdate};
pub use webhook::{
    Attempt, Delivery, DeliveryState, SVIX_RETRY_SCHEDULE, WebhookEndpoint, WebhookOptions,
    Webhooks, sign_webhook,
};

use crate::server::{Faults, HttpServer};
use crate::util::{clerk_id, random_base62};
use crate::{Error, Result};

/// Where the local Clerk's RSA signing key comes from. `Debug` never shows a key.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigningKeySource {
    /// A fresh RSA-2048 key for this run.
    #[default]
    Generate,
    /// This private key (PKCS#8 `PRIVATE KEY` or `RSA PRIVATE KEY` PEM).
    Pem(String),
    /// The key in this file, created (mode 0600) with a fresh key if it does not exist,
    /// so tokens, `kid` and secret key survive restarts.
    File(PathBuf),
}

impl fmt::Debug for SigningKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningKeySource::Generate => f.write_str("Generate"),
            SigningKeySource::Pem(_) => f.write_str("Pem(…)"),
            SigningKeySource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// The custom session-token claims of a Clerk instance configured for InstantDB, as in
/// the dashboard's "Customize session token".
pub fn default_session_claims() -> Value {
    json!({
        "email": "{{user.primary_email_address}}",
        "email_verified": "{{user.email_verified}}",
    })
}

/// How to run a [`LocalClerk`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClerkConfig {
    /// The port on 127.0.0.1; 0 (the default) picks a free one.
    pub port: u16,
    /// The signing key.
    pub signing_key: SigningKeySource,
    /// The Backend API secret key; by default derived from the signing key (stable when
    /// the key is persisted).
    pub secret_key: Option<SecretKey>,
    /// The custom claims template ([`default_session_claims`] by default). A string that
    /// is exactly `{{user.…}}` becomes the typed value; supported shortcodes:
    /// `user.id`, `user.primary_email_address`, `user.email_verified`,
    /// `user.first_name`, `user.last_name`, `user.full_name`, `user.username`,
    /// `user.created_at`, `user.public_metadata[.path]`.
    pub session_claims: Value,
    /// Session token lifetime (Clerk: 60 s).
    pub token_lifetime: Duration,
    /// The clock for `iat`/`exp` and timestamps.
    pub clock: Arc<dyn Clock>,
    /// Webhook endpoints known from the start.
    pub webhooks: Vec<WebhookEndpoint>,
    /// Webhook retry timing.
    pub webhook_options: WebhookOptions,
}

impl Default for ClerkConfig {
    fn default() -> Self {
        ClerkConfig {
            port: 0,
            signing_key: SigningKeySource::Generate,
            secret_key: None,
            session_claims: default_session_claims(),
            token_lifetime: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
            webhooks: Vec::new(),
            webhook_options: WebhookOptions::default(),
        }
    }
}

impl ClerkConfig {
    /// Sets the port (0: any free port).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets where the signing key comes from.
    #[must_use]
    pub fn signing_key(mut self, source: SigningKeySource) -> Self {
        self.signing_key = source;
        self
    }

    /// Sets the secret key.
    #[must_use]
    pub fn secret_key(mut self, key: SecretKey) -> Self {
        self.secret_key = Some(key);
        self
    }

    /// Replaces the custom claims template.
    #[must_use]
    pub fn session_claims(mut self, template: Value) -> Self {
        self.session_claims = template;
        self
    }

    /// Sets the token lifetime.
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a webhook endpoint.
    #[must_use]
    pub fn webhook(mut self, endpoint: WebhookEndpoint) -> Self {
        self.webhooks.push(endpoint);
        self
    }

    /// Sets the webhook retry timing.
    #[must_use]
    pub fn webhook_options(mut self, options: WebhookOptions) -> Self {
        self.webhook_options = options;
        self
    }
}

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

/// A user with a fresh session, from [`LocalClerk::sign_in`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SignedIn {
    /// The user.
    pub user: User,
    /// The new session.
    pub session: Session,
}

#[derive(Debug, Default)]
struct Store {
    users: BTreeMap<String, User>,
    sessions: BTreeMap<String, Session>,
}

pub(crate) struct Inner {
    url: String,
    publishable_key: PublishableKey,
    secret_key: SecretKey,
    key: TestKey,
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

fn load_key(source: &SigningKeySource) -> Result<TestKey> {
    let pem = match source {
        SigningKeySource::Generate => TestKey::generate("ins_pending").private_pem(),
        SigningKeySource::Pem(pem) => pem.clone(),
        SigningKeySource::File(path) => match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let pem = TestKey::generate("ins_pending").private_pem();
                write_private_file(path, &pem).map_err(|e| Error::KeyFile {
                    path: path.clone(),
                    detail: format!("cannot create it: {e}"),
                })?;
                tracing::info!(path = %path.display(), "created a new signing key file");
                pem
            }
            Err(error) => {
                return Err(Error::KeyFile {
                    path: path.clone(),
                    detail: error.to_string(),
                });
            }
        },
    };
    let bad_key = |e: clerk_jwt::KeyError| match source {
        SigningKeySource::File(path) => Error::KeyFile {
            path: path.clone(),
            detail: e.to_string(),
        },
        _ => Error::invalid("signing key", e.to_string()),
    };
    let probe = TestKey::from_pem("ins_pending", &pem).map_err(bad_key)?;
    let kid = instance_id_for(&probe.public_pem());
    TestKey::from_pem(kid, &pem).map_err(bad_key)
}

fn write_private_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// `ins_2…`: 26 base62 characters derived from the public key, so a persisted key keeps
/// its `kid`.
fn instance_id_for(public_pem: &str) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_pem.as_bytes());
    let chars: String = digest
        .as_ref()
        .iter()
        .take(26)
        .map(|b| char::from(BASE62[usize::from(*b) % BASE62.len()]))
        .collect();
    format!("ins_2{chars}")
}

fn secret_key_for(key: &TestKey) -> SecretKey {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("devstack secret key\n{}", key.private_pem()).as_bytes(),
    );
    let body: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    SecretKey::new(format!("sk_test_{body}")).expect("well-formed secret key")
}

fn lock(inner: &Inner) -> std::sync::MutexGuard<'_, Store> {
    inner.store.lock().unwrap_or_else(PoisonError::into_inner)
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
    pub fn signing_key(&self) -> &TestKey {
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

    /// The token [`LocalClerk::mint_with`] would sign, as a builder whose claims and
    /// header can still be changed (`.claim()`, `.without_claim()`, `.header()`).
    pub fn token_builder(
        &self,
        session_id: &str,
        options: &MintOptions,
    ) -> Result<TokenBuilder<'_>> {
        let claims = self.inner.session_claims(session_id, options)?;
        Ok(TokenBuilder::empty(&self.inner.key)
            .header("cat", CAT_SESSION)
            .claims(Value::Object(claims)))
    }
}

impl Inner {
    fn now_ms(&self) -> i64 {
        self.clock.now().saturating_mul(1000)
    }

    fn user_by_email(&self, email: &str) -> Option<User> {
        let email = email.trim();
        lock(self)
            .users
            .values()
            .find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .cloned()
    }

    fn check_email(&self, store: &Store, email: &str, except: Option<&str>) -> Result<String> {
        let email = email.trim().to_owned();
        if crate::util::coerce_email(&email).is_none() {
            return Err(Error::invalid(
                "email address",
                format!("{email:?} is not an email address"),
            ));
        }
        let taken = store.users.values().any(|u| {
            Some(u.id.as_str()) != except
                && u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&email))
        });
        if taken {
            return Err(Error::invalid(
                "email address",
                format!("{email} is taken by another user"),
            ));
        }
        Ok(email)
    }

    pub(crate) fn create_user(&self, new: NewUser) -> Result<User> {
        let now = self.now_ms();
        let user = {
            let mut store = lock(self);
            let email = match &new.email {
                Some(email) => Some(self.check_email(&store, email, None)?),
                None => None,
            };
            let metadata = new.public_metadata.unwrap_or_else(|| json!({}));
            if !metadata.is_object() {
                return Err(Error::invalid("public_metadata", "must be a JSON object"));
            }
            let user = User {
                id: clerk_id("user"),
                email_id: email.as_ref().map(|_| clerk_id("idn")),
                email,
                email_verified: new.email_verified,
                first_name: new.first_name,
                last_name: new.last_name,
                username: new.username,
                public_metadata: metadata,
                created_at: now,
                updated_at: now,
            };
            store.users.insert(user.id.clone(), user.clone());
            user
        };
        self.webhooks.send("user.created", &user.to_json());
        Ok(user)
    }

    pub(crate) fn update_user(&self, id: &str, update: UserUpdate) -> Result<User> {
        let now = self.now_ms();
        let user = {
            let mut store = lock(self);
            let email = match &update.email {
                Some(Some(email)) => Some(Some(self.check_email(&store, email, Some(id))?)),
                Some(None) => Some(None),
                None => None,
            };
            if update
                .public_metadata
                .as_ref()
                .is_some_and(|m| !m.is_object())
            {
                return Err(Error::invalid("public_metadata", "must be a JSON object"));
            }
            let user = store
                .users
                .get_mut(id)
                .ok_or_else(|| Error::not_found("user", id))?;
            if let Some(email) = email {
                user.email_id = email.as_ref().map(|_| clerk_id("idn"));
                user.email = email;
                user.email_verified = true;
            }
            if let Some(verified) = update.email_verified {
                user.email_verified = verified;
            }
            if let Some(name) = update.first_name {
                user.first_name = Some(name);
            }
            if let Some(name) = update.last_name {
                user.last_name = Some(name);
            }
            if let Some(metadata) = update.public_metadata {
                user.public_metadata = metadata;
            }
            user.updated_at = now;
            user.clone()
        };
        self.webhooks.send("user.updated", &user.to_json());
        Ok(user)
    }

    pub(crate) fn delete_user(&self, id: &str) -> Result<()> {
        let now = self.now_ms();
        {
            let mut store = lock(self);
            if store.users.remove(id).is_none() {
                return Err(Error::not_found("user", id));
            }
            for session in store.sessions.values_mut().filter(|s| s.user_id == id) {
                if session.status.mints_tokens() {
                    session.status = SessionState::Removed;
                    session.updated_at = now;
                }
            }
        }
        self.webhooks.send(
            "user.deleted",
            &json!({"object": "user", "id": id, "deleted": true}),
        );
        Ok(())
    }

    pub(crate) fn create_session(&self, user_id: &str, status: SessionState) -> Result<Session> {
        let now = self.now_ms();
        let (session, user) = {
            let mut store = lock(self);
            let user = store
                .users
                .get(user_id)
                .cloned()
                .ok_or_else(|| Error::not_found("user", user_id))?;
            let session = Session {
                id: clerk_id("sess"),
                user_id: user_id.to_owned(),
                client_id: clerk_id("client"),
                status,
                created_at: now,
                updated_at: now,
            };
            store.sessions.insert(session.id.clone(), session.clone());
            (session, user)
        };
        self.send_session_event("session.created", &session, &user);
        Ok(session)
    }

    fn send_session_event(&self, event: &str, session: &Session, user: &User) {
        let mut data = session.to_json();
        if let Value::Object(map) = &mut data {
            map.insert("user".into(), user.to_json());
        }
        self.webhooks.send(event, &data);
    }

    pub(crate) fn set_session_state(&self, id: &str, status: SessionState) -> Result<Session> {
        let now = self.now_ms();
        let (session, user) = {
            let mut store = lock(self);
            let session = store
                .sessions
                .get_mut(id)
                .ok_or_else(|| Error::not_found("session", id))?;
            session.status = status;
            session.updated_at = now;
            let session = session.clone();
            let user = store.users.get(&session.user_id).cloned();
            (session, user)
        };
        let event = match status {
            SessionState::Revoked => Some("session.revoked"),
            SessionState::Ended => Some("session.ended"),
            SessionState::Removed => Some("session.removed"),
            SessionState::Active | SessionState::Pending => None,
        };
        if let (Some(event), Some(user)) = (event, user) {
            self.send_session_event(event, &session, &user);
        }
        Ok(session)
    }

    pub(crate) fn sessions(
        &self,
        user_id: Option<&str>,
        status: Option<SessionState>,
    ) -> Vec<Session> {
        let mut sessions: Vec<Session> = lock(self)
            .sessions
            .values()
            .filter(|s| user_id.is_none_or(|u| s.user_id == u))
            .filter(|s| status.is_none_or(|st| s.status == st))
            .cloned()
            .collect();
        sessions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        sessions
    }

    pub(crate) fn users(&self) -> Vec<User> {
        let mut users: Vec<User> = lock(self).users.values().cloned().collect();
        users.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        users
    }

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
        let claims = self.session_claims(session_id, options)?;
        Ok(TokenBuilder::empty(&self.key)
            .header("cat", CAT_SESSION)
            .claims(Value::Object(claims))
            .sign())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_private_key() {
        let pem = TestKey::generate("k").private_pem();
        let config = ClerkConfig::default().signing_key(SigningKeySource::Pem(pem.clone()));
        let debug = format!("{config:?}");
        assert!(
            debug.contains("Pem(…)") && !debug.contains("PRIVATE"),
            "{debug}"
        );
    }

    #[test]
    fn kid_and_secret_key_follow_the_key() {
        let key = load_key(&SigningKeySource::Generate).unwrap();
        assert!(
            key.kid().starts_with("ins_2") && key.kid().len() == 31,
            "{}",
            key.kid()
        );
        let again = load_key(&SigningKeySource::Pem(key.private_pem())).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(secret_key_for(&again), secret_key_for(&key));
        assert!(secret_key_for(&key).expose().starts_with("sk_test_"));
        let err = load_key(&SigningKeySource::Pem("nope".into())).unwrap_err();
        assert!(err.to_string().starts_with("invalid signing key"), "{err}");
    }
}
