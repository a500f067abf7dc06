//! The API's handlers: sign-in, sign-out, me, query, transact, health and metrics.
//! Each maps its failures to [`ApiError`]s; the broker does the work.

use auth_core::{Half, HalfError, Verified};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use instant_client::{Query, RefreshToken, Transaction, TxId, User};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::body::{Shape, body_error, parse, require_json};
use crate::error::{ApiError, Code, Outage};
use crate::openapi::{API, ClerkIdentity, InstantUser, SignOutHalf};
use crate::routes::Route;
use crate::state::AppState;

/// Marks a response no cache may keep: it carries a refresh token or an email.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /v1/session`'s answer (the server's keys; `user` is InstantDB's).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SignedIn<'a> {
    /// The verified Clerk identity.
    #[schema(value_type = ClerkIdentity)]
    clerk: &'a auth_core::ClerkIdentity,
    /// Whether the InstantDB user was created by this sign-in.
    created: bool,
    /// The InstantDB refresh token of this Clerk session (for InstantDB's SDKs).
    refresh_token: &'a str,
    /// Whether the Clerk session's existing InstantDB session was reused.
    reused: bool,
    /// The InstantDB user, passed through.
    #[schema(value_type = InstantUser)]
    user: &'a User,
}

/// The sign-in, query and transact handlers can mint an InstantDB refresh token (a
/// query or transact signs in first): that work runs in a detached task, so a client
/// that goes away or a request timeout cannot drop it between the mint and the store.
/// A sign-in the stored session answers as is (the common case) mints nothing and is
/// answered without one.
#[utoipa::path(
    post,
    path = Route::Session.path(),
    tag = API,
    summary = "Sign in: an InstantDB refresh token for the Clerk session",
    description = "Verifies the Clerk session token, finds or creates the InstantDB user and \
        answers the Clerk session's InstantDB refresh token (the same one for every sign-in \
        of the session). No body.",
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    responses((status = 200, description = "Signed in", body = SignedIn<'_>)),
)]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = state.token(&headers)?;
    // Limited per Clerk session, so only once the token is verified.
    let verified = state
        .inner
        .broker
        .authenticate(token)
        .await
        .map_err(|e| state.fail(e))?;
    let identity = verified.identity();
    state
        .inner
        .limits
        .sign_in(&identity.session_id, std::time::Instant::now())?;
    if let Some(actor) = &identity.actor {
        // Impersonation (Clerk dashboard's "Impersonate user") leaves a trace: who
        // acted as whom. `CLERK_REJECT_IMPERSONATION` refuses such tokens instead.
        tracing::info!(
            actor = %actor.sub,
            user = %identity.user_id,
            session = %identity.session_id,
            "impersonated session signing in"
        );
    }
    let stored = state
        .inner
        .broker
        .stored_sign_in(&verified)
        .await
        .map_err(|e| state.fail(e))?;
    let signed = match stored {
        Some(signed) => signed,
        None => {
            // The task outlives the request if the client goes: it owns the token.
            let verified = verified.into_owned();
            state
                .detach(|state| async move {
                    state
                        .inner
                        .broker
                        .sign_in_authenticated(&verified)
                        .await
                        .map_err(|e| state.fail(e))
                })
                .await?
        }
    };
    Ok(signed_in(&signed))
}

/// The sign-in answer: it carries a refresh token, so no cache keeps it.
fn signed_in(signed: &auth_core::SignIn) -> Response {
    // A borrowed struct: serialized straight to bytes, no intermediate JSON tree.
    no_store(
        Json(SignedIn {
            clerk: &signed.clerk,
            created: signed.created,
            refresh_token: signed.refresh_token.expose(),
            reused: signed.reused,
            user: &signed.user,
        })
        .into_response(),
    )
}

/// `DELETE /v1/session`'s optional body (the server's keys).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignOutBody {
    /// The InstantDB refresh token (a UUID) to sign out, when the server does not hold
    /// it (a session signed in elsewhere); by default the Clerk session's own.
    #[schema(format = "uuid")]
    refresh_token: Option<String>,
}

/// `DELETE /v1/session`'s answer, and the extra fields of its `sign-out-incomplete`
/// error (the server's keys).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "only described: sign_out writes it")]
pub(crate) struct SignedOut {
    /// The verified Clerk identity.
    clerk: ClerkIdentity,
    /// The InstantDB half: the refresh token signed out.
    instant: SignOutHalf,
    /// The Clerk half: the Clerk session revoked.
    clerk_session: SignOutHalf,
}

fn half_json(half: &Half) -> Value {
    match half {
        Half::Skipped(why) => json!({"status": "skipped", "reason": why}),
        Half::Failed(error) => json!({"status": "failed", "message": error.to_string()}),
        other => json!({"status": other.as_str()}),
    }
}

fn half_outage(half: &Half) -> Option<Outage> {
    match half {
        Half::Failed(e) => Some(outage(e)),
        _ => None,
    }
}

fn outage(error: &HalfError) -> Outage {
    if error.is_timeout() {
        Outage::Timeout
    } else if error.is_unavailable() {
        Outage::Unavailable
    } else {
        Outage::Failed
    }
}

#[utoipa::path(
    delete,
    path = Route::Session.path(),
    tag = API,
    summary = "Sign out of InstantDB and Clerk",
    description = "Signs the Clerk session's InstantDB refresh token out and revokes the \
        Clerk session; either half failing answers `sign-out-incomplete` with both halves.",
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    request_body(content = Option<SignOutBody>, content_type = "application/json",
        description = "Optional: empty, `null`, or a refresh token to sign out"),
    responses((status = 200, description = "Both halves done or skipped", body = SignedOut)),
)]
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = authenticate(&state, &headers).await?;
    let body = body.map_err(|e| body_error(&e))?;
    let refresh_token = if body.is_empty() {
        None
    } else {
        require_json(&headers)?;
        // `null` is no body, as an empty one is.
        let parsed: Option<SignOutBody> = serde_json::from_slice(&body).map_err(|_| {
            ApiError::new(
                Code::InvalidBody,
                "the body must be empty, null or {\"refresh_token\": \"<InstantDB refresh token>\"}",
            )
        })?;
        match parsed.and_then(|body| body.refresh_token) {
            None => None,
            // InstantDB's refresh tokens are UUIDs: anything else is refused here, before
            // either half of the sign-out runs.
            Some(text) => Some(
                instant_client::Uuid::parse_str(&text)
                    .ok()
                    .and_then(|_| RefreshToken::new(text).ok())
                    .ok_or_else(|| {
                        ApiError::new(
                            Code::InvalidBody,
                            "refresh_token is not an InstantDB refresh token (a UUID)",
                        )
                    })?,
            ),
        }
    };
    let out = state
        .inner
        .broker
        .sign_out_verified(&token, refresh_token)
        .await
        .map_err(|e| state.fail(e))?;
    let mut body = Map::new();
    body.insert("clerk".into(), json!(out.clerk));
    body.insert("instant".into(), half_json(&out.instant));
    body.insert("clerk_session".into(), half_json(&out.clerk_session));
    let failed = half_outage(&out.instant).or(half_outage(&out.clerk_session));
    match failed {
        None => Ok(no_store(Json(Value::Object(body)).into_response())),
        Some(outage) => {
            let which = match (out.instant.is_failed(), out.clerk_session.is_failed()) {
                (true, true) => "neither InstantDB nor Clerk could be signed out",
                (true, false) => "the InstantDB session could not be signed out",
                _ => "the Clerk session could not be revoked",
            };
            let mut error = ApiError::new(
                Code::SignOutIncomplete(outage),
                format!("{which}; see the instant and clerk_session fields, and retry"),
            );
            error.extra = Some(body);
            Err(error)
        }
    }
}

/// `GET /v1/me`'s answer (the server's keys; `instant.user` is InstantDB's).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "only described: me writes it")]
pub(crate) struct Me {
    /// The verified Clerk identity.
    clerk: ClerkIdentity,
    /// The InstantDB session this server holds for the Clerk session, if any.
    instant: Option<MeInstant>,
}

/// The InstantDB session of `GET /v1/me`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "only described: me writes it")]
pub(crate) struct MeInstant {
    /// The InstantDB user, passed through.
    user: InstantUser,
}

#[utoipa::path(
    get,
    path = Route::Me.path(),
    tag = API,
    summary = "The verified Clerk identity and the stored InstantDB user",
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    responses((status = 200, description = "Who the token is", body = Me)),
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = state.token(&headers)?;
    let broker = &state.inner.broker;
    let identity = broker.identify(token).await.map_err(|e| state.fail(e))?;
    // As on every other route: a session signed out here (or ended, or of a deleted
    // user) is refused, though its token stays valid at Clerk for up to a minute.
    let instant = broker
        .current_session(&identity)
        .await
        .map_err(|e| state.fail(e))?
        .map(|s| json!({"user": &*s.user}));
    Ok(no_store(
        Json(json!({"clerk": identity, "instant": instant})).into_response(),
    ))
}

/// `POST /v1/query`'s body: the server's keys around InstantDB's InstaQL query.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryBody {
    /// An InstaQL query (InstantDB's shape, passed through), e.g. `{"goals": {}}`.
    #[schema(value_type = Object)]
    query: Value,
    /// Rule parameters for InstantDB's permission rules (`ruleParams` is accepted too).
    #[serde(default, alias = "ruleParams")]
    #[schema(value_type = Option<Object>)]
    rule_params: Option<Map<String, Value>>,
}

impl Shape for QueryBody {
    const SHAPE: &'static str =
        r#"{"query": {"goals": {}}, "rule_params": {…}} (rule_params optional)"#;
}

/// The request's Clerk token, verified once, before its body is looked at: a bad token
/// gets its token error whatever the body.
async fn authenticate<'a>(
    state: &AppState,
    headers: &'a HeaderMap,
) -> Result<Verified<'a>, ApiError> {
    let token = state.token(headers)?;
    state
        .inner
        .broker
        .authenticate(token)
        .await
        .map_err(|e| state.fail(e))
}

#[utoipa::path(
    post,
    path = Route::Query.path(),
    tag = API,
    summary = "An InstaQL query as the user (InstantDB's permission rules apply)",
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    request_body(content = QueryBody, content_type = "application/json"),
    responses((status = 200, description = "InstantDB's result, passed through unchanged",
        content_type = "application/json", body = Object)),
)]
pub(crate) async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = authenticate(&state, &headers).await?;
    let query = query_of(&headers, body)?;
    // The common case, the stored session as is, mints nothing: answered inline.
    let broker = &state.inner.broker;
    let stored = broker.query_stored(&token, &query).await;
    if let Some(result) = stored.map_err(|e| state.fail(e))? {
        return Ok(Json(result).into_response());
    }
    let token = token.into_owned();
    state
        .detach(|state| async move {
            let result = state
                .inner
                .broker
                .query_verified(&token, &query)
                .await
                .map_err(|e| state.fail(e))?;
            Ok(Json(result).into_response())
        })
        .await
}

/// The query of a `POST /v1/query` body (checked after the token).
fn query_of(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Query, ApiError> {
    require_json(headers)?;
    let body: QueryBody = parse(&body.map_err(|e| body_error(&e))?)?;
    if !body.query.is_object() {
        return Err(ApiError::new(
            Code::InvalidBody,
            "query must be an InstaQL object, e.g. {\"query\": {\"goals\": {}}}",
        ));
    }
    let mut query = Query::new(body.query);
    if let Some(params) = body.rule_params {
        query = query.rule_params(params);
    }
    Ok(query)
}

/// `POST /v1/transact`'s body: InstantDB's transaction steps, bare or as
/// `{"steps": [...]}` (both InstantDB's shape, passed through).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "only described: Transaction::from_json reads it")]
pub(crate) enum TransactBody {
    /// A bare array of steps, as the CLI takes them.
    #[schema(value_type = Vec<Step>)]
    Steps(Vec<Value>),
    /// The steps under `steps`, as InstantDB's admin API takes them.
    Object {
        /// The steps.
        #[schema(value_type = Vec<Step>)]
        steps: Vec<Value>,
    },
}

/// One InstaML step (InstantDB's wire format, passed through).
#[allow(dead_code, reason = "only described")]
pub(crate) struct Step(Vec<Value>);

impl utoipa::PartialSchema for Step {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let schema = json!({
            "description": "One InstaML step (InstantDB's wire format, passed through): \
                `[action, etype, id, args?, opts?]`, e.g. \
                `[\"update\", \"goals\", \"<uuid>\", {\"title\": \"Get fit\"}]`; the id is a \
                UUID or a lookup `[attribute, value]`.",
            "type": "array",
            "prefixItems": [
                {"type": "string", "enum": ["create", "update", "merge", "delete", "link", "unlink", "ruleParams"]},
                {"type": "string", "minLength": 1},
                {"oneOf": [
                    {"type": "string", "format": "uuid"},
                    {"type": "array", "prefixItems": [{"type": "string"}, {}], "minItems": 2, "maxItems": 2}
                ]},
                {"type": "object"},
                {"type": "object"}
            ],
            "minItems": 3,
            "maxItems": 5
        });
        serde_json::from_value(schema).expect("the step schema is a schema")
    }
}

impl utoipa::ToSchema for Step {}

/// `POST /v1/transact`'s answer (the server's key).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Transacted {
    /// InstantDB's transaction id.
    tx_id: i64,
}

#[utoipa::path(
    post,
    path = Route::Transact.path(),
    tag = API,
    summary = "A transaction as the user (InstantDB's permission rules apply)",
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    request_body(content = TransactBody, content_type = "application/json"),
    responses((status = 200, description = "Applied", body = Transacted)),
)]
pub(crate) async fn transact(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = authenticate(&state, &headers).await?;
    let transaction = transaction_of(&headers, body)?;
    // The common case, the stored session as is, mints nothing: answered inline.
    let broker = &state.inner.broker;
    let stored = broker.transact_stored(&token, &transaction).await;
    if let Some(TxId(tx_id)) = stored.map_err(|e| state.fail(e))? {
        return Ok(Json(Transacted { tx_id }).into_response());
    }
    let token = token.into_owned();
    state
        .detach(|state| async move {
            let TxId(tx_id) = state
                .inner
                .broker
                .transact_verified(&token, &transaction)
                .await
                .map_err(|e| state.fail(e))?;
            Ok(Json(Transacted { tx_id }).into_response())
        })
        .await
}

/// The transaction of a `POST /v1/transact` body (checked after the token).
fn transaction_of(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Transaction, ApiError> {
    let body = body.map_err(|e| body_error(&e))?;
    require_json(headers)?;
    Transaction::from_json(&steps_object(&body)).map_err(|e| match e {
        instant_client::Error::InvalidInput { detail, .. } => ApiError::new(
            Code::InvalidTransaction,
            format!("the transaction is not valid: {detail}"),
        ),
        _ => ApiError::new(Code::InvalidTransaction, "the transaction is not valid"),
    })
}

/// A body that is a bare array of steps, as `{"steps": [...]}`; any other body as it
/// is. The bytes are not parsed here, so numbers reach InstantDB exactly as sent.
fn steps_object(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if body.trim_ascii_start().first() == Some(&b'[') {
        let mut wrapped = Vec::with_capacity(body.len() + 10);
        wrapped.extend_from_slice(b"{\"steps\":");
        wrapped.extend_from_slice(body);
        wrapped.push(b'}');
        std::borrow::Cow::Owned(wrapped)
    } else {
        std::borrow::Cow::Borrowed(body)
    }
}

/// `GET /healthz`'s answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "only described: healthz writes it")]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    status: String,
}

#[utoipa::path(
    get,
    path = Route::Healthz.path(),
    tag = "probes",
    summary = "The process answers",
    responses((status = 200, description = "Alive", body = Health)),
)]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = Route::Metrics.path(),
    tag = "probes",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4",
        content_type = "text/plain", body = String)),
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    // A store that is down leaves the gauge out rather than failing the scrape.
    let sessions = state.inner.broker.store().len().await.ok();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.inner.metrics.render(sessions),
    )
        .into_response()
}
