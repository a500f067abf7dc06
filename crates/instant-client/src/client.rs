//! The client: configuration, request building per endpoint, sending with retries,
//! and reading answers.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_retry::{SharedClock, Verdict};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Map, Value};
use tracing::Instrument as _;
use tracing::field::Empty;
use uuid::Uuid;

use crate::Result;
use crate::endpoint::{Endpoint, Flavor};
use crate::error::{ConfigError, Error, Outage, from_status};
use crate::query::Query;
use crate::retry::RetryPolicy;
use crate::secret::{AdminToken, CredentialError, IdToken, RefreshToken};
use crate::transact::Transaction;
use crate::user::{Deleted, MaybeUser, SignedIn, User, UserCreated};

/// InstantDB's hosted API (closing 2027-08-31: self-hosted servers take a base URL).
pub const DEFAULT_BASE_URL: &str = "https://api.instantdb.com";
/// The default timeout of one request, connection to last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default connect timeout (only for the HTTP client this crate builds).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sent as `instant-admin-version` and `instant-core-version` (tracing only, on the
/// server): this crate's version, in the official SDKs' `v1.2.3` form.
const SDK_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const ANY: HeaderValue = HeaderValue::from_static("*/*");
const APP_ID: HeaderName = HeaderName::from_static("app-id");
const ADMIN_VERSION: HeaderName = HeaderName::from_static("instant-admin-version");
const CORE_VERSION: HeaderName = HeaderName::from_static("instant-core-version");
const AS_EMAIL: HeaderName = HeaderName::from_static("as-email");
const AS_TOKEN: HeaderName = HeaderName::from_static("as-token");
const AS_GUEST: HeaderName = HeaderName::from_static("as-guest");

/// Builds a [`Client`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    app_id: Uuid,
    admin_token: Option<AdminToken>,
    base_url: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    clock: SharedClock,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// Sets the admin token, needed by every admin call except query and transact
    /// impersonating a refresh token.
    pub fn admin_token(mut self, token: AdminToken) -> Self {
        self.admin_token = Some(token);
        self
    }

    /// Sets the base URL: an absolute `http://` or `https://` URL, possibly with a path
    /// prefix (a self-hosted server, the local emulator). Default [`DEFAULT_BASE_URL`].
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the timeout of each request (each attempt), connection to last body byte.
    /// Default [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connect timeout of the HTTP client this crate builds (ignored with
    /// [`ClientBuilder::http_client`]). Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the retry policy. Default [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Sets the clock retries wait through. Default [`http_retry::TokioClock`]; tests
    /// pass `http_retry::TestClock` (feature `testing`) so that no retry waits for real.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Shares an existing `reqwest` client (its connection pool, proxy and TLS
    /// settings). Configure it not to follow redirects: a redirect to another host
    /// would carry the impersonation headers, which `reqwest` does not strip. The
    /// client built by default follows none.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Checks the configuration and builds the client.
    pub fn build(self) -> Result<Client> {
        let base = parse_base_url(self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))?;
        let app_id_text = self.app_id.hyphenated().to_string();
        let urls = Endpoint::ALL.map(|endpoint| {
            let mut url = base
                .join(endpoint.path().trim_start_matches('/'))
                .unwrap_or_else(|_| base.clone());
            if endpoint.flavor() == Flavor::Admin {
                url.query_pairs_mut().append_pair("app_id", &app_id_text);
            }
            url
        });
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| ConfigError::HttpClient(Arc::new(e)))?,
        };
        let app_id_header =
            HeaderValue::from_str(&app_id_text).expect("a hyphenated uuid is a valid header value");
        let authorization = match &self.admin_token {
            Some(token) => {
                // Checked header-safe when the token was made.
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| CredentialError::NotHeaderSafe("admin token"))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut runtime_headers = HeaderMap::with_capacity(2);
        runtime_headers.insert(CONTENT_TYPE, JSON);
        runtime_headers.insert(ACCEPT, ANY);
        let mut inner = Inner {
            app_id: self.app_id,
            app_id_text,
            app_id_header,
            admin_token: self.admin_token,
            authorization,
            base,
            urls,
            http,
            timeout: self.timeout,
            retry: self.retry,
            clock: self.clock,
            runtime_headers,
            admin_headers: HeaderMap::new(),
        };
        inner.admin_headers = inner.admin_headers_as(None);
        Ok(Client {
            inner: Arc::new(inner),
        })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let mut url = Url::parse(raw.trim())
        .map_err(|_| ConfigError::BaseUrl("must be an absolute http:// or https:// url"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::BaseUrl(
            "must be an absolute http:// or https:// url",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::BaseUrl(
            "must not hold credentials (set the admin token instead)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::BaseUrl("must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

struct Inner {
    app_id: Uuid,
    app_id_text: String,
    app_id_header: HeaderValue,
    admin_token: Option<AdminToken>,
    authorization: Option<HeaderValue>,
    /// `@instantdb/core`'s headers, sent on runtime calls.
    runtime_headers: HeaderMap,
    /// `@instantdb/admin`'s headers without impersonation.
    admin_headers: HeaderMap,
    base: Url,
    /// Each endpoint's URL, `?app_id=` included for admin endpoints; by
    /// [`Endpoint::index`].
    urls: [Url; Endpoint::ALL.len()],
    http: reqwest::Client,
    timeout: Duration,
    retry: RetryPolicy,
    clock: SharedClock,
}

impl Inner {
    /// Admin headers in the order `@instantdb/admin` sends them, with an impersonation
    /// header when given.
    fn admin_headers_as(&self, impersonation: Option<(HeaderName, HeaderValue)>) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(CONTENT_TYPE, JSON);
        headers.insert(APP_ID, self.app_id_header.clone());
        if let Some(auth) = &self.authorization {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        if let Some((name, value)) = impersonation {
            headers.insert(name, value);
        }
        headers.insert(ADMIN_VERSION, HeaderValue::from_static(SDK_VERSION));
        headers.insert(CORE_VERSION, HeaderValue::from_static(SDK_VERSION));
        headers.insert(ACCEPT, ANY);
        headers
    }
}

/// InstantDB's runtime-auth and admin HTTP API. Cheap to clone: clones share the
/// configuration and the connection pool.
///
/// Runtime calls ([`Client::sign_in_with_id_token`], [`Client::sign_out`],
/// [`Client::verify_refresh_token`]) need no admin token and are sent as
/// `@instantdb/core` sends them; admin calls as `@instantdb/admin` does.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("app_id", &self.inner.app_id)
            .field("base_url", &self.inner.base.as_str())
            .field("admin_token", &self.inner.admin_token)
            .field("timeout", &self.inner.timeout)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// Who an admin call is made as: permission rules then apply as that user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Impersonation {
    /// `as-email`: the user with this email (needs the admin token).
    Email(String),
    /// `as-token`: the user owning this refresh token (works without the admin token).
    RefreshToken(RefreshToken),
    /// `as-guest: true`: an anonymous guest (needs the admin token).
    Guest,
}

/// A user an admin call is about: by email, id or refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserRef {
    /// By email address.
    Email(String),
    /// By user id.
    Id(Uuid),
    /// By one of the user's refresh tokens (sent in the query string of
    /// `GET`/`DELETE /admin/users`, as the official SDK does).
    RefreshToken(RefreshToken),
}

impl UserRef {
    fn key(&self) -> &'static str {
        match self {
            UserRef::Email(_) => "email",
            UserRef::Id(_) => "id",
            UserRef::RefreshToken(_) => "refresh_token",
        }
    }

    fn secret(&self) -> Option<&str> {
        match self {
            UserRef::Email(email) => Some(email),
            UserRef::Id(_) => None,
            UserRef::RefreshToken(token) => Some(token.expose()),
        }
    }
}

impl Serialize for UserRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        match self {
            UserRef::Email(email) => map.serialize_entry("email", email)?,
            UserRef::Id(id) => map.serialize_entry("id", id)?,
            UserRef::RefreshToken(token) => map.serialize_entry("refresh_token", token.expose())?,
        }
        map.end()
    }
}

/// Who a new refresh token is for (the user is created when missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum TokenSubject {
    /// The user with this email.
    #[serde(rename = "email")]
    Email(String),
    /// The user with this id.
    #[serde(rename = "id")]
    Id(Uuid),
}

/// A sign-in with an id token (a Clerk session token) through an OAuth client
/// configured in the Instant dashboard.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct IdTokenSignIn {
    id_token: IdToken,
    client_name: String,
    refresh_token: Option<RefreshToken>,
    extra_fields: Option<Map<String, Value>>,
}

impl IdTokenSignIn {
    /// Signs in with `id_token` through the client named `client_name` (e.g. `clerk`).
    pub fn new(id_token: IdToken, client_name: impl Into<String>) -> Self {
        IdTokenSignIn {
            id_token,
            client_name: client_name.into(),
            refresh_token: None,
            extra_fields: None,
        }
    }

    /// Reuses this refresh token when it belongs to the same user. An unknown or
    /// signed-out token fails the whole sign-in (`record-not-found`).
    pub fn refresh_token(mut self, token: RefreshToken) -> Self {
        self.refresh_token = Some(token);
        self
    }

    /// Custom `$users` attributes, set when the user is created.
    pub fn extra_fields(mut self, fields: Map<String, Value>) -> Self {
        self.extra_fields = Some(fields);
        self
    }
}

/// The id of an applied transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
pub struct TxId(pub i64);

#[derive(serde::Deserialize)]
struct Transacted {
    #[serde(rename = "tx-id")]
    tx_id: TxId,
}

#[derive(serde::Deserialize)]
struct SignedOutUser {
    ok: bool,
}

/// One call, ready to send (and resend).
struct Call<'a> {
    endpoint: Endpoint,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    /// Credentials sent with the call, scrubbed from anything kept of the answer.
    secrets: Vec<&'a str>,
}

impl Client {
    /// A builder for the app `app_id`.
    pub fn builder(app_id: Uuid) -> ClientBuilder {
        ClientBuilder {
            app_id,
            admin_token: None,
            base_url: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
            clock: http_retry::default_clock(),
            http: None,
        }
    }

    /// The app id.
    pub fn app_id(&self) -> Uuid {
        self.inner.app_id
    }

    /// The base URL, with a trailing `/`.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Whether an admin token is configured.
    pub fn has_admin_token(&self) -> bool {
        self.inner.admin_token.is_some()
    }

    // ---- Runtime auth -------------------------------------------------------------

    /// Signs a user in with an id token (`POST /runtime/oauth/id_token`), creating the
    /// user if neither their email nor their (sub, provider) is known. Never sends a
    /// `nonce` or an `Origin`. Not retried unless [`RetryPolicy::retry_writes`].
    pub async fn sign_in_with_id_token(&self, sign_in: &IdTokenSignIn) -> Result<SignedIn> {
        #[derive(Serialize)]
        struct Body<'a> {
            app_id: &'a str,
            id_token: &'a str,
            client_name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            refresh_token: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            extra_fields: Option<&'a Map<String, Value>>,
        }
        let endpoint = Endpoint::SignInWithIdToken;
        if sign_in.client_name.trim().is_empty() {
            return Err(invalid(endpoint, "the client name is empty"));
        }
        let refresh_token = sign_in.refresh_token.as_ref().map(RefreshToken::expose);
        let body = Body {
            app_id: &self.inner.app_id_text,
            id_token: sign_in.id_token.expose(),
            client_name: &sign_in.client_name,
            refresh_token,
            extra_fields: sign_in.extra_fields.as_ref(),
        };
        let mut secrets = vec![sign_in.id_token.expose()];
        secrets.extend(refresh_token);
        let call = self.runtime_call(endpoint, &body, secrets)?;
        let answer: UserCreated = self.execute(call).await?;
        signed_in(endpoint, answer)
    }

    /// Signs a refresh token out (`POST /runtime/signout`): it stops working. An
    /// unknown or already signed-out token counts as signed out (a `record-not-found`
    /// answer is success).
    pub async fn sign_out(&self, refresh_token: &RefreshToken) -> Result<()> {
        #[derive(Serialize)]
        struct Body<'a> {
            app_id: &'a str,
            refresh_token: &'a str,
        }
        let body = Body {
            app_id: &self.inner.app_id_text,
            refresh_token: refresh_token.expose(),
        };
        let call = self.runtime_call(Endpoint::SignOut, &body, vec![refresh_token.expose()])?;
        match self.execute::<IgnoredAny>(call).await {
            // Already signed out (or never issued): the outcome the caller wanted.
            Err(err) if err.is_not_found() => Ok(()),
            Err(err) => Err(err),
            Ok(_) => Ok(()),
        }
    }

    /// The user owning a refresh token (`POST /runtime/auth/verify_refresh_token`);
    /// an unknown or signed-out token is rejected with `record-not-found`
    /// ([`Error::is_not_found`]).
    pub async fn verify_refresh_token(&self, refresh_token: &RefreshToken) -> Result<User> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "app-id")]
            app_id: &'a str,
            #[serde(rename = "refresh-token")]
            refresh_token: &'a str,
        }
        let endpoint = Endpoint::VerifyRefreshToken;
        let body = Body {
            app_id: &self.inner.app_id_text,
            refresh_token: refresh_token.expose(),
        };
        let call = self.runtime_call(endpoint, &body, vec![refresh_token.expose()])?;
        let answer: MaybeUser = self.execute(call).await?;
        answer
            .user
            .ok_or_else(|| missing(endpoint, "the answer has no user"))
    }

    // ---- Admin --------------------------------------------------------------------

    /// Runs an InstaQL query (`POST /admin/query`), bypassing permissions; the result
    /// tree (a JSON object) mirrors the query's shape.
    pub async fn query(&self, query: &Query) -> Result<Value> {
        self.query_impl(query, None).await.and_then(result_tree)
    }

    /// Runs a query and deserializes the result tree into `T`.
    pub async fn query_as<T: DeserializeOwned>(&self, query: &Query) -> Result<T> {
        self.query_impl(query, None).await
    }

    /// Applies a transaction (`POST /admin/transact`), bypassing permissions. Not
    /// retried unless [`RetryPolicy::retry_writes`].
    pub async fn transact(&self, tx: &Transaction) -> Result<TxId> {
        self.transact_impl(tx, None).await
    }

    /// A new refresh token for a user, created when missing (`POST
    /// /admin/refresh_tokens`). Every call mints another token.
    pub async fn create_token(&self, subject: &TokenSubject) -> Result<SignedIn> {
        let endpoint = Endpoint::CreateToken;
        let mut secrets = Vec::new();
        if let TokenSubject::Email(email) = subject {
            secrets.push(email.as_str());
        }
        let call = self.admin_call(endpoint, None, Some(subject), secrets)?;
        let answer: UserCreated = self.execute(call).await?;
        signed_in(endpoint, answer)
    }

    /// Looks a user up (`GET /admin/users`); `None` when there is no such user.
    pub async fn get_user(&self, user: &UserRef) -> Result<Option<User>> {
        let call = self.user_call(Endpoint::GetUser, user)?;
        let answer: MaybeUser = self.execute(call).await?;
        Ok(answer.user)
    }

    /// Deletes a user (`DELETE /admin/users`); the deleted user, or `None` when there
    /// was none.
    pub async fn delete_user(&self, user: &UserRef) -> Result<Option<User>> {
        let call = self.user_call(Endpoint::DeleteUser, user)?;
        let answer: Deleted = self.execute(call).await?;
        Ok(answer.deleted)
    }

    /// Signs a user out (`POST /admin/sign_out`): by id or email, all of their refresh
    /// tokens; by refresh token, that one. An unknown email is rejected.
    pub async fn sign_out_user(&self, user: &UserRef) -> Result<()> {
        let endpoint = Endpoint::SignOutUser;
        let call = self.admin_call(
            endpoint,
            None,
            Some(user),
            user.secret().into_iter().collect(),
        )?;
        let answer: SignedOutUser = self.execute(call).await?;
        if answer.ok {
            Ok(())
        } else {
            Err(missing(endpoint, "the answer says `ok: false`"))
        }
    }

    // ---- Impersonation -------------------------------------------------------------

    /// Query and transact as the user with this email (permissions apply). Needs the
    /// admin token.
    pub fn as_email(&self, email: impl Into<String>) -> Impersonated {
        self.impersonate(Impersonation::Email(email.into()))
    }

    /// Query and transact as the user owning this refresh token (permissions apply).
    /// Works without the admin token.
    pub fn as_refresh_token(&self, token: RefreshToken) -> Impersonated {
        self.impersonate(Impersonation::RefreshToken(token))
    }

    /// Query and transact as a guest (permissions apply). Needs the admin token.
    pub fn as_guest(&self) -> Impersonated {
        self.impersonate(Impersonation::Guest)
    }

    /// Query and transact as `who`.
    pub fn impersonate(&self, who: Impersonation) -> Impersonated {
        Impersonated {
            client: self.clone(),
            who,
        }
    }

    // ---- Plumbing -----------------------------------------------------------------

    async fn query_impl<T: DeserializeOwned>(
        &self,
        query: &Query,
        who: Option<&Impersonation>,
    ) -> Result<T> {
        let endpoint = Endpoint::Query;
        if !query.is_object() {
            return Err(invalid(endpoint, "the query must be a json object"));
        }
        let call = self.admin_call(endpoint, who, Some(query), Vec::new())?;
        self.execute(call).await
    }

    async fn transact_impl(&self, tx: &Transaction, who: Option<&Impersonation>) -> Result<TxId> {
        let endpoint = Endpoint::Transact;
        if let Some(problem) = tx.invalid_step() {
            return Err(invalid(endpoint, problem));
        }
        let call = self.admin_call(endpoint, who, Some(tx), Vec::new())?;
        let answer: Transacted = self.execute(call).await?;
        Ok(answer.tx_id)
    }

    fn runtime_call<'a>(
        &'a self,
        endpoint: Endpoint,
        body: &impl Serialize,
        secrets: Vec<&'a str>,
    ) -> Result<Call<'a>> {
        Ok(Call {
            endpoint,
            url: self.inner.urls[endpoint.index()].clone(),
            headers: self.inner.runtime_headers.clone(),
            body: Some(to_body(endpoint, body)?),
            secrets,
        })
    }

    fn user_call<'a>(&'a self, endpoint: Endpoint, user: &'a UserRef) -> Result<Call<'a>> {
        let mut call =
            self.admin_call::<()>(endpoint, None, None, user.secret().into_iter().collect())?;
        let id;
        let value = match user {
            UserRef::Email(email) => email.as_str(),
            UserRef::Id(uuid) => {
                id = uuid.hyphenated().to_string();
                id.as_str()
            }
            UserRef::RefreshToken(token) => token.expose(),
        };
        call.url.query_pairs_mut().append_pair(user.key(), value);
        Ok(call)
    }

    /// Headers in the order `@instantdb/admin` sends them.
    fn admin_call<'a, B: Serialize>(
        &'a self,
        endpoint: Endpoint,
        who: Option<&'a Impersonation>,
        body: Option<&B>,
        mut secrets: Vec<&'a str>,
    ) -> Result<Call<'a>> {
        let as_token = matches!(who, Some(Impersonation::RefreshToken(_)));
        let token_optional = as_token && matches!(endpoint, Endpoint::Query | Endpoint::Transact);
        if self.inner.authorization.is_none() && !token_optional {
            return Err(ConfigError::AdminTokenRequired(endpoint).into());
        }
        let headers = match who {
            // The common case: a copy of the headers prepared when the client was built.
            None => self.inner.admin_headers.clone(),
            Some(Impersonation::Email(email)) => {
                let value = HeaderValue::from_str(email)
                    .map_err(|_| invalid(endpoint, "the email cannot be sent in an http header"))?;
                secrets.push(email);
                self.inner.admin_headers_as(Some((AS_EMAIL, value)))
            }
            Some(Impersonation::RefreshToken(token)) => {
                let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
                    invalid(
                        endpoint,
                        "the refresh token cannot be sent in an http header",
                    )
                })?;
                value.set_sensitive(true);
                secrets.push(token.expose());
                self.inner.admin_headers_as(Some((AS_TOKEN, value)))
            }
            Some(Impersonation::Guest) => self
                .inner
                .admin_headers_as(Some((AS_GUEST, HeaderValue::from_static("true")))),
        };
        if let Some(token) = &self.inner.admin_token {
            secrets.push(token.expose());
        }
        Ok(Call {
            endpoint,
            url: self.inner.urls[endpoint.index()].clone(),
            headers,
            body: body.map(|b| to_body(endpoint, b)).transpose()?,
            secrets,
        })
    }

    /// Sends a call, retrying as the policy allows, inside one `tracing` span.
    async fn execute<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let span = tracing::info_span!(
            "instant_request",
            endpoint = %call.endpoint,
            attempts = Empty,
            status = Empty,
            duration_ms = Empty,
        );
        self.execute_in_span(call, span.clone())
            .instrument(span)
            .await
    }

    async fn execute_in_span<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        span: tracing::Span,
    ) -> Result<T> {
        let policy = &self.inner.retry;
        let retries_allowed = call.endpoint.is_idempotent_read() || policy.retry_writes;
        let start = Instant::now();
        let finished = http_retry::run(
            &*self.inner.clock,
            &policy.schedule(),
            |attempt| {
                let (call, span) = (&call, &span);
                async move {
                    let attempt_start = Instant::now();
                    let (status, outcome) = self.attempt::<T>(call).await;
                    if let Some(status) = status {
                        span.record("status", status);
                    }
                    tracing::debug!(
                        attempt,
                        status,
                        duration_ms = millis(attempt_start.elapsed()),
                        ok = outcome.is_ok(),
                        "instant request attempt"
                    );
                    outcome
                }
            },
            |err: &Error| {
                if retries_allowed && is_retryable(err) {
                    Verdict::Retry {
                        retry_after: err.retry_after(),
                    }
                } else {
                    Verdict::Stop
                }
            },
            |attempt, wait, err| {
                tracing::debug!(attempt, wait_ms = millis(wait), error = %err, "retrying instant request");
            },
        )
        .await;
        span.record("attempts", finished.attempts);
        span.record("duration_ms", millis(start.elapsed()));
        finished
            .result
            .map_err(|err| err.set_attempts(finished.attempts))
    }

    /// One request: the HTTP status when one came back, and the outcome.
    async fn attempt<T: DeserializeOwned>(&self, call: &Call<'_>) -> (Option<u16>, Result<T>) {
        let endpoint = call.endpoint;
        // Built directly: `RequestBuilder::headers` would re-insert every header.
        let mut request = reqwest::Request::new(endpoint.method(), call.url.clone());
        *request.headers_mut() = call.headers.clone();
        *request.timeout_mut() = Some(self.inner.timeout);
        if let Some(body) = &call.body {
            *request.body_mut() = Some(body.clone().into());
        }
        let response = match self.inner.http.execute(request).await {
            Ok(response) => response,
            Err(e) => return (None, Err(Error::transport(endpoint, e))),
        };
        let status = response.status().as_u16();
        let retry_after = http_retry::retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return (Some(status), Err(Error::transport(endpoint, e))),
        };
        let outcome = if status == 200 {
            serde_json::from_slice(&body).map_err(|e| Error::unexpected_json(endpoint, &e))
        } else {
            Err(from_status(
                endpoint,
                status,
                &body,
                retry_after,
                &call.secrets,
            ))
        };
        (Some(status), outcome)
    }
}

/// A view of a [`Client`] whose queries and transactions run as one user, with that
/// user's permissions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Impersonated {
    client: Client,
    who: Impersonation,
}

impl Impersonated {
    /// Who the calls are made as.
    pub fn impersonation(&self) -> &Impersonation {
        &self.who
    }

    /// Runs a query as this user.
    pub async fn query(&self, query: &Query) -> Result<Value> {
        self.client
            .query_impl(query, Some(&self.who))
            .await
            .and_then(result_tree)
    }

    /// Runs a query as this user and deserializes the result into `T`.
    pub async fn query_as<T: DeserializeOwned>(&self, query: &Query) -> Result<T> {
        self.client.query_impl(query, Some(&self.who)).await
    }

    /// Applies a transaction as this user.
    pub async fn transact(&self, tx: &Transaction) -> Result<TxId> {
        self.client.transact_impl(tx, Some(&self.who)).await
    }
}

/// A query result is an object of namespaces.
fn result_tree(tree: Value) -> Result<Value> {
    if tree.is_object() {
        Ok(tree)
    } else {
        Err(missing(Endpoint::Query, "the result is not a json object"))
    }
}

fn is_retryable(err: &Error) -> bool {
    match err {
        Error::RateLimited { .. } => true,
        Error::Unavailable { cause, .. } => match cause {
            Outage::Status { status, .. } => matches!(status, 502..=504),
            Outage::Timeout | Outage::Connect | Outage::ConnectionLost => true,
        },
        _ => false,
    }
}

fn to_body(endpoint: Endpoint, body: &(impl Serialize + ?Sized)) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|_| invalid(endpoint, "the body cannot be serialized to json"))
}

fn signed_in(endpoint: Endpoint, mut answer: UserCreated) -> Result<SignedIn> {
    let refresh_token = answer
        .user
        .refresh_token
        .take()
        .ok_or_else(|| missing(endpoint, "the answer has no user.refresh_token"))?;
    Ok(SignedIn {
        user: answer.user,
        refresh_token,
        created: answer.created,
    })
}

fn invalid(endpoint: Endpoint, detail: impl Into<String>) -> Error {
    Error::InvalidInput {
        endpoint,
        detail: detail.into(),
    }
}

fn missing(endpoint: Endpoint, detail: &str) -> Error {
    Error::UnexpectedResponse {
        endpoint,
        status: 200,
        detail: detail.to_owned(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> Uuid {
        Uuid::parse_str("11111111-2222-4333-8444-555555555555").unwrap()
    }

    #[test]
    fn base_urls_keep_their_path_prefix() {
        let client = Client::builder(app())
            .base_url("http://127.0.0.1:8888/instant")
            .build()
            .unwrap();
        assert_eq!(
            client.inner.urls[Endpoint::Query.index()].as_str(),
            "http://127.0.0.1:8888/instant/admin/query?app_id=11111111-2222-4333-8444-555555555555"
        );
        assert_eq!(
            client.inner.urls[Endpoint::SignOut.index()].as_str(),
            "http://127.0.0.1:8888/instant/runtime/signout"
        );
        let default = Client::builder(app()).build().unwrap();
        assert_eq!(default.base_url().as_str(), "https://api.instantdb.com/");
    }

    #[test]
    fn unusable_base_urls_are_refused_without_echoing_them() {
        for url in [
            "api.instantdb.com",
            "ftp://example.com",
            "https://user:hunter2@example.com",
            "https://example.com/?x=1",
            "https://example.com/#f",
        ] {
            let err = Client::builder(app()).base_url(url).build().unwrap_err();
            assert!(err.is_config(), "{url}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn debug_shows_configuration_but_not_the_admin_token() {
        let client = Client::builder(app())
            .admin_token(AdminToken::new("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee").unwrap())
            .build()
            .unwrap();
        let debug = format!("{client:?}");
        assert!(
            debug.contains("11111111-2222-4333-8444-555555555555"),
            "{debug}"
        );
        assert!(!debug.contains("aaaaaaaa"), "{debug}");
        let who = format!(
            "{:?}",
            client.as_refresh_token(
                RefreshToken::new("ffffffff-0000-4111-8222-333333333333").unwrap()
            )
        );
        assert!(!who.contains("ffffffff"), "{who}");
    }

    #[test]
    fn admin_calls_without_a_token_fail_before_sending() {
        let client = Client::builder(app()).build().unwrap();
        let err = client
            .admin_call::<()>(Endpoint::GetUser, None, None, Vec::new())
            .err()
            .unwrap();
        assert!(matches!(
            err,
            Error::Config(ConfigError::AdminTokenRequired(Endpoint::GetUser))
        ));
        let token = Impersonation::RefreshToken(RefreshToken::new("t0k3n-abc").unwrap());
        assert!(
            client
                .admin_call::<()>(Endpoint::Query, Some(&token), None, Vec::new())
                .is_ok()
        );
        assert!(
            client
                .admin_call::<()>(
                    Endpoint::Query,
                    Some(&Impersonation::Guest),
                    None,
                    Vec::new()
                )
                .is_err()
        );
    }
}
