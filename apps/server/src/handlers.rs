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
use crate::state::AppState;

/// Marks a response no cache may keep: it carries a refresh token or an email.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The sign-in, query and transact handlers can mint an InstantDB refresh token (a
/// query or transact signs in first): that work runs in a detached task, so a client
/// that goes away or a request timeout cannot drop it between the mint and the store.
/// A sign-in the stored session answers as is (the common case) mints nothing and is
/// answered without one.
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
            state
                .detach(|state| async move {
                    // Verified again inside the task, which must own what it uses (the
                    // verified-token cache answers).
                    let token = state.token(&headers)?;
                    let broker = &state.inner.broker;
                    let verified = broker.authenticate(token).await;
                    let verified = verified.map_err(|e| state.fail(e))?;
                    broker
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
    #[derive(serde::Serialize)]
    struct Body<'a> {
        clerk: &'a auth_core::ClerkIdentity,
        created: bool,
        refresh_token: &'a str,
        reused: bool,
        user: &'a User,
    }
    no_store(
        Json(Body {
            clerk: &signed.clerk,
            created: signed.created,
            refresh_token: signed.refresh_token.expose(),
            reused: signed.reused,
            user: &signed.user,
        })
        .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignOutBody {
    refresh_token: Option<String>,
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
        let parsed: SignOutBody = serde_json::from_slice(&body).map_err(|_| {
            ApiError::new(
                Code::InvalidBody,
                "the body must be empty or {\"refresh_token\": \"<InstantDB refresh token>\"}",
            )
        })?;
        match parsed.refresh_token {
            None => None,
            Some(text) => Some(RefreshToken::new(text).map_err(|_| {
                ApiError::new(
                    Code::InvalidBody,
                    "refresh_token is not an InstantDB refresh token",
                )
            })?),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryBody {
    query: Value,
    #[serde(default, alias = "ruleParams")]
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

pub(crate) async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state
        .detach(|state| async move { query_to_the_end(&state, &headers, body).await })
        .await
}

async fn query_to_the_end(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = authenticate(state, headers).await?;
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
    let result = state
        .inner
        .broker
        .query_verified(&token, &query)
        .await
        .map_err(|e| state.fail(e))?;
    Ok(Json(result).into_response())
}

pub(crate) async fn transact(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state
        .detach(|state| async move { transact_to_the_end(&state, &headers, body).await })
        .await
}

async fn transact_to_the_end(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = authenticate(state, headers).await?;
    let body = body.map_err(|e| body_error(&e))?;
    require_json(headers)?;
    let transaction = Transaction::from_json(&body).map_err(|e| match e {
        instant_client::Error::InvalidInput { detail, .. } => ApiError::new(
            Code::InvalidTransaction,
            format!("the transaction is not valid: {detail}"),
        ),
        _ => ApiError::new(Code::InvalidTransaction, "the transaction is not valid"),
    })?;
    let TxId(tx_id) = state
        .inner
        .broker
        .transact_verified(&token, &transaction)
        .await
        .map_err(|e| state.fail(e))?;
    Ok(Json(json!({"tx-id": tx_id})).into_response())
}

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

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
