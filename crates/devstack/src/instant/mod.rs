//! The InstantDB emulator: the runtime auth endpoints and the admin API of InstantDB
//! (same paths, key casing, status codes and error bodies) over an in-memory store.
//!
//! **Permissions are not evaluated.** Admin calls, impersonated calls (`as-email`,
//! `as-token`, `as-guest`) and sign-ups with `extra_fields` all behave as if every rule
//! allowed them. Test permission rules against a real InstantDB server.

mod auth;
mod db;
mod error;
mod fuzzing;
mod routes;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clerk_jwt::{Clock, PublishableKey, SystemClock};
use serde_json::{Map, Value, json};

#[doc(hidden)]
pub use self::fuzzing::QueryStore;

use self::auth::{ClientRuntime, UserInfo};
use self::db::{Db, USERS};
use crate::server::{Faults, HttpServer};
use crate::util::{iso8601, new_uuid, sha256_hex};
use crate::{AdminToken, Error, RefreshToken, Result};

/// How to run an [`InstantEmulator`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InstantConfig {
    /// The port on 127.0.0.1; 0 (the default) picks a free one.
    pub port: u16,
    /// The clock for token checks and `created_at`.
    pub clock: Arc<dyn Clock>,
    /// Timeout of the emulator's own requests (discovery, JWKS).
    pub fetch_timeout: Duration,
}

impl Default for InstantConfig {
    fn default() -> Self {
        InstantConfig {
            port: 0,
            clock: Arc::new(SystemClock),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

impl InstantConfig {
    /// Sets the port (0: any free port).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// An app of the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct App {
    /// The app id (a UUID).
    pub id: String,
    /// The title.
    pub title: String,
    /// The admin token (a UUID).
    pub admin_token: AdminToken,
}

/// A Clerk client as configured in InstantDB's dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClerkClient {
    /// The client name sent as `client_name` (`clerk`, `clerk2`, …).
    pub name: String,
    /// The Clerk publishable key; the discovery URL is derived from it.
    pub publishable_key: PublishableKey,
    /// Older clients' `meta.allowUnverifiedEmail`: keep the email even when
    /// `email_verified` is not `true`.
    pub allow_unverified_email: bool,
}

impl ClerkClient {
    /// A client that keeps only verified emails.
    pub fn new(name: impl Into<String>, publishable_key: PublishableKey) -> Self {
        ClerkClient {
            name: name.into(),
            publishable_key,
            allow_unverified_email: false,
        }
    }

    /// Sets "allow unverified emails".
    #[must_use]
    pub fn allow_unverified_email(mut self, allow: bool) -> Self {
        self.allow_unverified_email = allow;
        self
    }
}

/// The provider of Clerk clients (users are linked by `(sub, provider)`).
const CLERK_PROVIDER: &str = "clerk";

/// An OAuth link's key: the provider and the subject it names.
type LinkKey = (String, String);

#[derive(Debug)]
pub(crate) struct AppData {
    id: String,
    title: String,
    admin_token: String,
    origins: Vec<String>,
    db: Db,
    /// SHA-256 (hex) of each refresh token → user id. The tokens themselves are not kept.
    /// A B-tree: a hash map that grows moves every entry at once under the app's lock,
    /// which stalled every call for tens of milliseconds past 200,000 tokens.
    refresh_tokens: BTreeMap<String, String>,
    /// `(provider, sub)` → user id: InstantDB's OAuth links, by their unique key.
    links: HashMap<LinkKey, String>,
    /// Email → the user created or last given it. A hint, checked on use (the user must
    /// still exist with that email) and else found by a scan: InstantDB looks users up
    /// by an index, and a scan of every user on each id-token sign-in made the emulator
    /// slower than what it stands for (emails of `$users` are unique).
    users_by_email: HashMap<String, String>,
    next_tx: u64,
}

impl AppData {
    fn new(title: &str) -> Self {
        AppData {
            id: new_uuid(),
            title: title.to_owned(),
            admin_token: new_uuid(),
            origins: Vec::new(),
            db: Db::new(),
            refresh_tokens: BTreeMap::new(),
            links: HashMap::new(),
            users_by_email: HashMap::new(),
            next_tx: 1,
        }
    }

    /// The user object InstantDB returns: `app_id`, `id`, `created_at`, the `$users`
    /// attributes, and the computed `isGuest`.
    fn user_json(&self, id: &str) -> Option<Value> {
        let entity = self.db.entity(USERS, id)?;
        let mut user = Map::new();
        user.insert("app_id".into(), Value::String(self.id.clone()));
        user.insert("id".into(), Value::String(id.to_owned()));
        user.insert(
            "created_at".into(),
            Value::String(iso8601(entity.created_at)),
        );
        user.extend(entity.attrs.clone());
        let guest = entity.attrs.get("type").and_then(Value::as_str) == Some("guest");
        user.insert("isGuest".into(), Value::Bool(guest));
        Some(Value::Object(user))
    }

    fn with_refresh_token(user: Value, token: &str) -> Value {
        let mut user = user;
        if let Value::Object(map) = &mut user {
            map.insert("refresh_token".into(), Value::String(token.to_owned()));
        }
        user
    }

    fn user_by_email(&self, email: &str) -> Option<String> {
        let value = Value::String(email.to_owned());
        if let Some(id) = self.users_by_email.get(email)
            && self
                .db
                .entity(USERS, id)
                .is_some_and(|user| user.attrs.get("email") == Some(&value))
        {
            return Some(id.clone());
        }
        self.db.find_by_attr(USERS, "email", &value)
    }

    fn user_by_token(&self, token: &str) -> Option<String> {
        self.refresh_tokens.get(&sha256_hex(token)).cloned()
    }

    fn create_user(
        &mut self,
        id: Option<String>,
        email: Option<&str>,
        image_url: Option<&str>,
        extra: Map<String, Value>,
        now: i64,
    ) -> String {
        let id = id.unwrap_or_else(new_uuid);
        let mut attrs = extra;
        if let Some(email) = email {
            attrs.insert("email".into(), Value::String(email.to_owned()));
            self.users_by_email.insert(email.to_owned(), id.clone());
        }
        attrs.insert("type".into(), Value::String("user".into()));
        if let Some(url) = image_url {
            attrs.insert("imageURL".into(), Value::String(url.to_owned()));
        }
        self.db.upsert(USERS, &id, attrs, now);
        id
    }

    fn issue_token(&mut self, user_id: &str) -> String {
        let token = new_uuid();
        self.refresh_tokens
            .insert(sha256_hex(&token), user_id.to_owned());
        token
    }

    fn forget_user(&mut self, user_id: &str) {
        self.refresh_tokens.retain(|_, user| user != user_id);
        self.links.retain(|_, user| user != user_id);
    }

    fn delete_user(&mut self, user_id: &str) -> Option<Value> {
        let user = self.user_json(user_id)?;
        self.db.delete(USERS, user_id);
        self.forget_user(user_id);
        Some(user)
    }

    /// InstantDB's `upsert-oauth-link!`: finds the user by email or by the `(sub,
    /// provider)` link, creates one if neither matches, and keeps link and email in step.
    fn upsert_oauth_user(
        &mut self,
        info: &UserInfo,
        extra: Map<String, Value>,
        now: i64,
    ) -> (String, bool) {
        let link = (CLERK_PROVIDER.to_owned(), info.sub.clone());
        let by_link = self.links.get(&link).cloned();
        let by_email = info.email.as_deref().and_then(|e| self.user_by_email(e));
        match (by_email, by_link) {
            (None, None) => {
                let id = self.create_user(
                    None,
                    info.email.as_deref(),
                    info.image_url.as_deref(),
                    extra,
                    now,
                );
                self.links.insert(link, id.clone());
                (id, true)
            }
            (Some(user_id), None) => {
                self.links.insert(link, user_id.clone());
                (user_id, false)
            }
            (Some(user_id), Some(_)) => {
                // Two users matched: the email wins and the link moves to it.
                self.links.insert(link, user_id.clone());
                (user_id, false)
            }
            (None, Some(user_id)) => {
                if let Some(email) = &info.email {
                    let mut attrs = Map::new();
                    attrs.insert("email".into(), Value::String(email.clone()));
                    self.db.upsert(USERS, &user_id, attrs, now);
                    self.users_by_email.insert(email.clone(), user_id.clone());
                }
                (user_id, false)
            }
        }
    }
}

pub(crate) struct State {
    apps: Mutex<HashMap<String, AppData>>,
    clients: Mutex<HashMap<(String, String), Arc<ClientRuntime>>>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    faults: Faults,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstantEmulator").finish_non_exhaustive()
    }
}

impl State {
    fn apps(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppData>> {
        self.apps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_app<T>(&self, app_id: &str, f: impl FnOnce(&mut AppData) -> T) -> Result<T> {
        let mut apps = self.apps();
        let app = apps
            .get_mut(app_id)
            .ok_or_else(|| Error::not_found("app", app_id))?;
        Ok(f(app))
    }

    fn client(&self, app_id: &str, name: &str) -> Option<Arc<ClientRuntime>> {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(app_id.to_owned(), name.to_owned()))
            .cloned()
    }
}

/// An InstantDB emulator serving on `127.0.0.1`.
///
/// Permissions are not evaluated (see the [module documentation](self)).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use devstack::{InstantConfig, InstantEmulator};
///
/// let instant = InstantEmulator::start(InstantConfig::default()).await?;
/// let app = instant.create_app("my app");
/// let (user, _token) = instant.create_refresh_token(&app.id, "alice@example.com")?;
/// assert_eq!(user["email"], "alice@example.com");
/// assert_eq!(instant.refresh_token_count(&app.id, user["id"].as_str().unwrap())?, 1);
/// instant.shutdown().await;
/// # Ok::<(), devstack::Error>(())
/// # }).unwrap();
/// ```
pub struct InstantEmulator {
    state: Arc<State>,
    server: HttpServer,
    url: String,
}

impl fmt::Debug for InstantEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstantEmulator")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl InstantEmulator {
    /// Starts the emulator on `127.0.0.1:<port>`.
    pub async fn start(config: InstantConfig) -> Result<InstantEmulator> {
        let listener = HttpServer::bind(config.port).await?;
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .connect_timeout(config.fetch_timeout)
            .user_agent("devstack-instantdb-emulator")
            .build()
            .unwrap_or_default();
        let state = Arc::new(State {
            apps: Mutex::default(),
            clients: Mutex::default(),
            clock: config.clock,
            http,
            faults: Faults::default(),
        });
        let server = HttpServer::spawn(
            listener,
            routes::router(Arc::clone(&state)),
            state.faults.clone(),
            error::default_error_body,
        )?;
        let url = format!("http://{}", server.addr());
        tracing::info!(%url, "InstantDB emulator started");
        Ok(InstantEmulator { state, server, url })
    }

    /// Stops serving and waits until the port is free.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// `http://127.0.0.1:<port>`: the `apiURI` / `INSTANT_API_URI` to use.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// Fault injection for this server (e.g. `"POST /runtime/oauth/id_token"`).
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Creates an app with a fresh id and admin token.
    pub fn create_app(&self, title: &str) -> App {
        let data = AppData::new(title);
        let app = App {
            id: data.id.clone(),
            title: data.title.clone(),
            admin_token: AdminToken::new(data.admin_token.clone()),
        };
        self.state.apps().insert(data.id.clone(), data);
        app
    }

    /// Registers a Clerk client in an app. Nothing is fetched yet: like InstantDB, the
    /// emulator fetches the discovery document at the first sign-in.
    pub fn add_clerk_client(&self, app_id: &str, client: ClerkClient) -> Result<()> {
        self.state.with_app(app_id, |_| ())?;
        let mut clients = self
            .state
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (app_id.to_owned(), client.name.clone());
        if client.name.trim().is_empty() || clients.contains_key(&key) {
            return Err(Error::invalid(
                "client name",
                format!("{:?} is empty or already used in this app", client.name),
            ));
        }
        clients.insert(
            key,
            Arc::new(ClientRuntime::new(
                client.name,
                client.publishable_key,
                client.allow_unverified_email,
            )),
        );
        Ok(())
    }

    /// The discovery URL InstantDB derives for a registered client.
    pub fn discovery_url(&self, app_id: &str, client_name: &str) -> Result<String> {
        self.state
            .client(app_id, client_name)
            .map(|c| {
                debug_assert_eq!(c.name, client_name);
                debug_assert_eq!(c.discovery_url, c.publishable_key.discovery_url());
                c.discovery_url.clone()
            })
            .ok_or_else(|| Error::not_found("client", client_name))
    }

    /// Adds an authorized origin: a sign-in whose request carries an `Origin` header
    /// must come from one of them.
    pub fn add_authorized_origin(&self, app_id: &str, origin: &str) -> Result<()> {
        self.state
            .with_app(app_id, |app| app.origins.push(origin.to_owned()))
    }

    /// Every user of an app, as InstantDB returns user objects.
    pub fn users(&self, app_id: &str) -> Result<Vec<Value>> {
        self.state.with_app(app_id, |app| {
            app.db
                .entities(USERS)
                .into_iter()
                .filter_map(|(id, _)| app.user_json(id))
                .collect()
        })
    }

    /// The user with this email, if any.
    pub fn user_by_email(&self, app_id: &str, email: &str) -> Result<Option<Value>> {
        self.state.with_app(app_id, |app| {
            app.user_by_email(&email.trim().to_lowercase())
                .and_then(|id| app.user_json(&id))
        })
    }

    /// How many refresh tokens a user holds (they have no expiry and pile up when
    /// callers do not reuse them).
    pub fn refresh_token_count(&self, app_id: &str, user_id: &str) -> Result<usize> {
        self.state.with_app(app_id, |app| {
            app.refresh_tokens
                .values()
                .filter(|user| *user == user_id)
                .count()
        })
    }

    /// The total number of refresh tokens of an app.
    pub fn refresh_tokens_total(&self, app_id: &str) -> Result<usize> {
        self.state.with_app(app_id, |app| app.refresh_tokens.len())
    }

    /// Whether a refresh token is valid (not signed out), and for which user.
    pub fn refresh_token_user(&self, app_id: &str, token: &RefreshToken) -> Result<Option<String>> {
        self.state
            .with_app(app_id, |app| app.user_by_token(token.expose()))
    }

    /// Creates the user if needed and issues a refresh token, as
    /// `POST /admin/refresh_tokens` does.
    pub fn create_refresh_token(&self, app_id: &str, email: &str) -> Result<(Value, RefreshToken)> {
        let now = self.state.clock.now();
        let email = crate::util::coerce_email(email)
            .ok_or_else(|| Error::invalid("email", format!("{email:?} is not an email address")))?;
        self.state.with_app(app_id, |app| {
            let user_id = match app.user_by_email(&email) {
                Some(id) => id,
                None => app.create_user(None, Some(&email), None, Map::new(), now),
            };
            let token = app.issue_token(&user_id);
            let user = app.user_json(&user_id).unwrap_or(Value::Null);
            (user, RefreshToken::new(token))
        })
    }

    /// Runs InstaML steps as an admin (`POST /admin/transact`); returns the tx id.
    pub fn transact(&self, app_id: &str, steps: &Value) -> Result<u64> {
        let now = self.state.clock.now();
        self.state
            .with_app(app_id, |app| routes::transact(app, steps, false, now))?
            .map_err(|e| Error::invalid("transaction", e.text()))
    }

    /// Runs an InstaQL query as an admin (`POST /admin/query`).
    pub fn query(&self, app_id: &str, query: &Value) -> Result<Value> {
        self.state
            .with_app(app_id, |app| app.db.query(query))?
            .map_err(|e| Error::invalid("query", e.text()))
    }

    /// Every entity of a namespace, as a query for it returns them.
    pub fn entities(&self, app_id: &str, namespace: &str) -> Result<Vec<Value>> {
        let result = self.query(app_id, &json!({ namespace: {} }))?;
        Ok(result[namespace].as_array().cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_hint_never_outlives_the_email() {
        let mut app = AppData::new("t");
        let id = app.create_user(None, Some("a@example.com"), None, Map::new(), 1);
        assert_eq!(app.user_by_email("a@example.com"), Some(id.clone()));
        // The email changed behind the hint's back, as an admin transaction would.
        let mut attrs = Map::new();
        attrs.insert("email".into(), Value::String("b@example.com".into()));
        app.db.upsert(USERS, &id, attrs, 2);
        assert_eq!(app.user_by_email("a@example.com"), None);
        assert_eq!(app.user_by_email("b@example.com"), Some(id.clone()));
        // Gone: the hint finds nothing either.
        let other = app.create_user(None, Some("c@example.com"), None, Map::new(), 3);
        app.delete_user(&other);
        assert_eq!(app.user_by_email("c@example.com"), None);
    }
}
