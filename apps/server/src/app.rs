//! The HTTP surface: state, routes, handlers and the middleware around them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use auth_core::{
    BrokerConfig, ClerkSessions, Half, HalfError, InstantAuth, MemorySessionStore, SessionBroker,
    StoreLimits,
};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clerk_jwt::{RemoteJwks, TokenExtractor, Verifier};
use instant_client::{Query, RefreshToken, SignedIn, Transaction, TxId, User};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::Instrument as _;

use crate::config::Settings;
use crate::error::{ApiError, ApiJson, ErrorCode};
use crate::metrics::Metrics;

/// What the dev endpoint needs: the local Clerk's Backend API.
#[derive(Clone, Debug)]
pub struct DevTokens {
    /// Mints tokens at the local Clerk.
    pub clerk: devstack::clerk::ClerkBackend,
}

/// The server's shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    broker: SessionBroker,
    extractor: TokenExtractor,
    metrics: Arc<Metrics>,
    keys: Option<RemoteJwks>,
    verifier: Verifier,
    instant: Arc<dyn InstantAuth>,
    ready: Mutex<Option<(Instant, bool, Value)>>,
    dev: Option<DevTokens>,
    request_timeout: Duration,
    body_limit: usize,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("broker", &self.inner.broker)
            .field("dev", &self.inner.dev.is_some())
            .finish_non_exhaustive()
    }
}

/// Records the latency of every InstantDB call.
struct TimedInstant {
    inner: instant_client::Client,
    metrics: Arc<Metrics>,
}

impl TimedInstant {
    async fn time<T>(
        &self,
        call: &'static str,
        f: impl Future<Output = Result<T, instant_client::Error>>,
    ) -> Result<T, instant_client::Error> {
        let start = Instant::now();
        let result = f.await;
        self.metrics
            .upstream("instantdb", call, result.is_ok(), start.elapsed());
        result
    }
}

#[async_trait]
impl InstantAuth for TimedInstant {
    async fn sign_in_with_id_token(
        &self,
        id_token: &instant_client::IdToken,
        client_name: &str,
        refresh_token: Option<RefreshToken>,
    ) -> Result<SignedIn, instant_client::Error> {
        self.time(
            "sign-in-with-id-token",
            InstantAuth::sign_in_with_id_token(&self.inner, id_token, client_name, refresh_token),
        )
        .await
    }

    async fn create_token_for_email(&self, email: &str) -> Result<SignedIn, instant_client::Error> {
        self.time(
            "create-token",
            InstantAuth::create_token_for_email(&self.inner, email),
        )
        .await
    }

    async fn sign_out(&self, refresh_token: &RefreshToken) -> Result<(), instant_client::Error> {
        self.time(
            "sign-out",
            InstantAuth::sign_out(&self.inner, refresh_token),
        )
        .await
    }

    async fn verify_refresh_token(
        &self,
        refresh_token: &RefreshToken,
    ) -> Result<User, instant_client::Error> {
        self.time(
            "verify-refresh-token",
            InstantAuth::verify_refresh_token(&self.inner, refresh_token),
        )
        .await
    }

    async fn query_as(
        &self,
        refresh_token: &RefreshToken,
        query: &Query,
    ) -> Result<Value, instant_client::Error> {
        self.time(
            "query",
            InstantAuth::query_as(&self.inner, refresh_token, query),
        )
        .await
    }

    async fn transact_as(
        &self,
        refresh_token: &RefreshToken,
        transaction: &Transaction,
    ) -> Result<TxId, instant_client::Error> {
        self.time(
            "transact",
            InstantAuth::transact_as(&self.inner, refresh_token, transaction),
        )
        .await
    }
}

/// Records the latency of every Clerk Backend API call.
struct TimedClerk {
    inner: clerk_backend::BackendClient,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl ClerkSessions for TimedClerk {
    async fn revoke_session(&self, session_id: &str) -> Result<(), clerk_backend::Error> {
        let start = Instant::now();
        let result = ClerkSessions::revoke_session(&self.inner, session_id).await;
        self.metrics
            .upstream("clerk", "revoke-session", result.is_ok(), start.elapsed());
        result
    }
}

impl AppState {
    /// Builds the clients and the broker from checked settings.
    pub fn build(settings: &Settings, dev: Option<DevTokens>) -> anyhow::Result<AppState> {
        let metrics = Arc::new(Metrics::default());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;

        let clients = settings.service.clients(&http)?;
        let instant: Arc<dyn InstantAuth> = Arc::new(TimedInstant {
            inner: clients.instant,
            metrics: Arc::clone(&metrics),
        });
        let clerk: Option<Arc<dyn ClerkSessions>> = clients.clerk.map(|inner| {
            Arc::new(TimedClerk {
                inner,
                metrics: Arc::clone(&metrics),
            }) as Arc<dyn ClerkSessions>
        });
        let verifier = clients.verifier;
        let keys = clients.keys;

        let options = &settings.options;
        let broker = SessionBroker::new(
            BrokerConfig::new(settings.service.strategy.clone())
                .revalidate_after(options.revalidate_after),
            Arc::new(verifier.clone()),
            Arc::clone(&instant),
            clerk,
            Arc::new(MemorySessionStore::new(
                StoreLimits::default().max_entries(options.max_sessions),
            )),
        );
        Ok(AppState {
            inner: Arc::new(Inner {
                broker,
                extractor: TokenExtractor::new(Some(&settings.service.publishable_key)),
                metrics,
                keys,
                verifier,
                instant,
                ready: Mutex::new(None),
                dev,
                request_timeout: options.request_timeout,
                body_limit: options.body_limit,
            }),
        })
    }

    /// The broker.
    pub fn broker(&self) -> &SessionBroker {
        &self.inner.broker
    }

    /// Fetches the signing keys now, so the first request does not wait for them.
    pub async fn warm_up(&self) {
        if let Some(keys) = &self.inner.keys
            && let Err(error) = keys.refresh(self.inner.verifier.now()).await
        {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "could not load the Clerk signing keys yet; /readyz will say so"
            );
        }
    }

    /// The router with every route and the middleware.
    pub fn router(&self) -> Router {
        let mut router = Router::new()
            .route(
                "/v1/session",
                post(sign_in).delete(sign_out).fallback(method_not_allowed),
            )
            .route("/v1/me", get(me).fallback(method_not_allowed))
            .route("/v1/query", post(query).fallback(method_not_allowed))
            .route("/v1/transact", post(transact).fallback(method_not_allowed))
            .route("/healthz", get(healthz).fallback(method_not_allowed))
            .route("/readyz", get(readyz).fallback(method_not_allowed))
            .route("/metrics", get(metrics).fallback(method_not_allowed));
        if self.inner.dev.is_some() {
            router = router.route("/dev/token", post(dev_token).fallback(method_not_allowed));
        }
        router
            .fallback(|| async { ApiError::not_found() })
            .layer(DefaultBodyLimit::max(self.inner.body_limit))
            .layer(middleware::from_fn_with_state(self.clone(), observe))
            .with_state(self.clone())
    }

    fn token<'a>(&self, headers: &'a HeaderMap) -> Result<&'a str, ApiError> {
        self.inner
            .extractor
            .extract(headers)
            .map(|found| found.token)
            .ok_or_else(ApiError::token_missing)
    }

    /// Maps a broker error, counting token rejections by reason.
    fn fail(&self, error: auth_core::Error) -> ApiError {
        if let auth_core::Error::Token(e) = &error
            && e.is_token_rejection()
            && let Some(reason) = e.reason()
        {
            self.inner.metrics.verification_failure(reason.as_str());
        }
        ApiError::from(error)
    }

    /// Signs out sessions that expired in the store, every minute, until dropped.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let broker = self.inner.broker.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let swept = broker.sweep().await;
                if swept > 0 {
                    tracing::info!(swept, "signed out expired InstantDB sessions");
                }
            }
        })
    }
}

fn route_label(path: Option<&MatchedPath>) -> &'static str {
    match path.map(MatchedPath::as_str) {
        Some("/v1/session") => "/v1/session",
        Some("/v1/me") => "/v1/me",
        Some("/v1/query") => "/v1/query",
        Some("/v1/transact") => "/v1/transact",
        Some("/healthz") => "/healthz",
        Some("/readyz") => "/readyz",
        Some("/metrics") => "/metrics",
        Some("/dev/token") => "/dev/token",
        _ => "unmatched",
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// A request id from the client when it is short and plain, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

/// Request id, span, timeout, metrics and one log line per request.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    let route = route_label(request.extensions().get::<MatchedPath>());
    let method = method_label(request.method());
    let span = tracing::info_span!("request", id = %id, method, route);
    let start = Instant::now();
    let limit = state.inner.request_timeout;
    let mut response =
        match tokio::time::timeout(limit, next.run(request).instrument(span.clone())).await {
            Ok(response) => response,
            Err(_) => ApiError::timeout(limit).into_response(),
        };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    state.inner.metrics.request(method, route, status);
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    let took_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| match code {
        Some(code) if status >= 500 => tracing::warn!(status, code, took_us, "request failed"),
        Some(code) => tracing::info!(status, code, took_us, "request rejected"),
        None => tracing::info!(status, took_us, "request"),
    });
    response
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not take that method",
    )
}

async fn sign_in(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = state.token(&headers)?;
    let signed = state
        .inner
        .broker
        .sign_in(token)
        .await
        .map_err(|e| state.fail(e))?;
    // A borrowed struct: serialized straight to bytes, no intermediate JSON tree.
    #[derive(serde::Serialize)]
    struct Body<'a> {
        clerk: &'a auth_core::ClerkIdentity,
        created: bool,
        refresh_token: &'a str,
        reused: bool,
        user: &'a User,
    }
    Ok(Json(Body {
        clerk: &signed.clerk,
        created: signed.created,
        refresh_token: signed.refresh_token.expose(),
        reused: signed.reused,
        user: &signed.user,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignOutBody {
    refresh_token: Option<String>,
}

fn body_error(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "the request body is larger than the server accepts",
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "the request body could not be read",
        )
    }
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("application/json")
                || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as JSON with Content-Type: application/json",
        ))
    }
}

fn half_json(half: &Half) -> Value {
    match half {
        Half::Skipped(why) => json!({"status": "skipped", "reason": why}),
        Half::Failed(error) => json!({"status": "failed", "message": error.to_string()}),
        other => json!({"status": other.as_str()}),
    }
}

fn half_status(half: &Half) -> Option<StatusCode> {
    match half {
        Half::Failed(e) => Some(failed_status(e)),
        _ => None,
    }
}

fn failed_status(error: &HalfError) -> StatusCode {
    if error.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else if error.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_GATEWAY
    }
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = state.token(&headers)?;
    let body = body.map_err(|e| body_error(&e))?;
    let refresh_token = if body.is_empty() {
        None
    } else {
        require_json(&headers)?;
        let parsed: SignOutBody = serde_json::from_slice(&body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                "the body must be empty or {\"refresh_token\": \"<InstantDB refresh token>\"}",
            )
        })?;
        match parsed.refresh_token {
            None => None,
            Some(text) => Some(RefreshToken::new(text).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-body",
                    "refresh_token is not an InstantDB refresh token",
                )
            })?),
        }
    };
    let out = state
        .inner
        .broker
        .sign_out(token, refresh_token)
        .await
        .map_err(|e| state.fail(e))?;
    let mut body = Map::new();
    body.insert("clerk".into(), json!(out.clerk));
    body.insert("instant".into(), half_json(&out.instant));
    body.insert("clerk_session".into(), half_json(&out.clerk_session));
    let failed = half_status(&out.instant).or(half_status(&out.clerk_session));
    match failed {
        None => Ok(Json(Value::Object(body)).into_response()),
        Some(status) => {
            let which = match (out.instant.is_failed(), out.clerk_session.is_failed()) {
                (true, true) => "neither InstantDB nor Clerk could be signed out",
                (true, false) => "the InstantDB session could not be signed out",
                _ => "the Clerk session could not be revoked",
            };
            let mut error = ApiError::new(
                status,
                "sign-out-incomplete",
                format!("{which}; see the instant and clerk_session fields, and retry"),
            );
            error.extra = Some(body);
            Err(error)
        }
    }
}

async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = state.token(&headers)?;
    let broker = &state.inner.broker;
    let identity = broker.identify(token).await.map_err(|e| state.fail(e))?;
    let instant = broker
        .stored_session(&identity)
        .await
        .map(|s| json!({"user": &*s.user}));
    Ok(Json(json!({"clerk": identity, "instant": instant})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    query: Value,
    #[serde(default, alias = "ruleParams")]
    rule_params: Option<Map<String, Value>>,
}

async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<QueryBody>,
) -> Result<Response, ApiError> {
    let token = state.token(&headers)?;
    if !body.query.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "query must be an InstaQL object, e.g. {\"query\": {\"goals\": {}}}",
        ));
    }
    let mut query = Query::new(body.query);
    if let Some(params) = body.rule_params {
        query = query.rule_params(params);
    }
    let result = state
        .inner
        .broker
        .query(token, &query)
        .await
        .map_err(|e| state.fail(e))?;
    Ok(Json(result).into_response())
}

async fn transact(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = state.token(&headers)?;
    let body = body.map_err(|e| body_error(&e))?;
    require_json(&headers)?;
    let transaction = Transaction::from_json(&body).map_err(|e| match e {
        instant_client::Error::InvalidInput { detail, .. } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-transaction",
            format!("the transaction is not valid: {detail}"),
        ),
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-transaction",
            "the transaction is not valid",
        ),
    })?;
    let TxId(tx_id) = state
        .inner
        .broker
        .transact(token, &transaction)
        .await
        .map_err(|e| state.fail(e))?;
    Ok(Json(json!({"tx-id": tx_id})).into_response())
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Keys loaded and InstantDB reachable; the answer is cached for two seconds.
async fn readyz(State(state): State<AppState>) -> Response {
    {
        let cached = state
            .inner
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, ok, body)) = &*cached
            && at.elapsed() < Duration::from_secs(2)
        {
            return ready_response(*ok, body.clone());
        }
    }
    let keys = match &state.inner.keys {
        None => json!({"status": "ok", "source": "pem"}),
        Some(remote) => {
            let cached = remote.status().kids.len();
            let loaded = if cached > 0 {
                Ok(cached)
            } else {
                remote.refresh(state.inner.verifier.now()).await
            };
            match loaded {
                Ok(n) => json!({"status": "ok", "source": "jwks", "kids": n}),
                Err(e) => {
                    json!({"status": "failed", "message": format!("{:#}", anyhow::Error::new(e))})
                }
            }
        }
    };
    // Any answer from InstantDB to a made-up refresh token proves it is reachable.
    let probe = RefreshToken::new(uuid::Uuid::new_v4().to_string()).expect("a uuid is a token");
    let instant = match state.inner.instant.verify_refresh_token(&probe).await {
        Ok(_) => json!({"status": "ok"}),
        Err(e) if e.is_rejected() => json!({"status": "ok"}),
        Err(e) => json!({"status": "failed", "message": e.to_string()}),
    };
    let ok = keys["status"] == "ok" && instant["status"] == "ok";
    let body = json!({"ready": ok, "checks": {"clerk_keys": keys, "instantdb": instant}});
    *state
        .inner
        .ready
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), ok, body.clone()));
    ready_response(ok, body)
}

fn ready_response(ok: bool, body: Value) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let sessions = state.inner.broker.store().len().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.inner.metrics.render(sessions),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevTokenBody {
    email: String,
}

/// Development only, loopback only: a Clerk session token from the local Clerk.
async fn dev_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<DevTokenBody>,
) -> Result<Response, ApiError> {
    let Some(dev) = &state.inner.dev else {
        return Err(ApiError::not_found());
    };
    if !peer.ip().is_loopback() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "dev-loopback-only",
            "the dev token endpoint answers loopback clients only",
        ));
    }
    let email = body.email.trim();
    let plausible = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.contains(char::is_whitespace);
    if !plausible {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-email",
            "email must be an address like alice@example.com",
        ));
    }
    let token = dev.clerk.session_token(email).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "dev-clerk-failed",
            format!(
                "the local Clerk could not mint a token: {:#}",
                anyhow::Error::new(e)
            ),
        )
    })?;
    Ok(Json(json!({"token": token})).into_response())
}
