//! The local Clerk's HTTP surface: the Frontend API's well-known documents and the
//! Backend API subset, with Clerk's error bodies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::HeaderMap;
use serde_json::{Value, json};

use super::model::{NewUser, SessionState};
use super::{Inner, MintOptions};
use crate::Error;
use crate::server::json_response;

type Shared = State<Arc<Inner>>;

pub(super) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks_public))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/v1/jwks", get(jwks_backend))
        .route("/v1/users", post(create_user).get(list_users))
        .route("/v1/users/{id}", get(get_user).delete(delete_user))
        .route("/v1/sessions", post(create_session).get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session))
        .route("/v1/sessions/{id}/revoke", post(revoke_session))
        .route("/v1/sessions/{id}/tokens", post(mint_token))
        .fallback(not_found)
        .with_state(inner)
}

fn ok(body: &Value) -> Response {
    json_response(200, body, &[])
}

/// Clerk's error body: `{"errors": [{code, message, long_message, meta?}], "clerk_trace_id"}`.
fn clerk_error(
    status: u16,
    code: &str,
    message: &str,
    long_message: &str,
    meta: Option<Value>,
) -> Response {
    json_response(status, &error_body(code, message, long_message, meta), &[])
}

fn error_body(code: &str, message: &str, long_message: &str, meta: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message, "long_message": long_message});
    if let (Some(meta), Value::Object(map)) = (meta, &mut error) {
        map.insert("meta".into(), meta);
    }
    json!({
        "errors": [error],
        "clerk_trace_id": crate::util::random_base62(32).to_lowercase(),
    })
}

/// The body a [`crate::Fault::Status`] without body sends.
pub(super) fn default_error_body(status: u16) -> Value {
    match status {
        401 => error_body(
            "authentication_invalid",
            "Invalid authentication",
            "Unable to authenticate the request, you need to supply an active API key",
            None,
        ),
        404 => error_body(
            "resource_not_found",
            "not found",
            "Resource not found",
            None,
        ),
        429 => error_body(
            "too_many_requests",
            "Too Many Requests",
            "Too many requests, please try again later.",
            None,
        ),
        500..=599 => error_body(
            "internal_clerk_error",
            "Oops, an unexpected error occurred",
            "There was an internal error on our servers. We've been notified and are working on fixing it.",
            None,
        ),
        _ => error_body(
            "unexpected_error",
            "Unexpected error",
            "The request failed (injected fault).",
            None,
        ),
    }
}

fn resource_not_found() -> Response {
    json_response(404, &default_error_body(404), &[])
}

async fn not_found() -> Response {
    resource_not_found()
}

fn unprocessable(code: &str, message: &str, long_message: &str, param: &str) -> Response {
    clerk_error(
        422,
        code,
        message,
        long_message,
        Some(json!({"param_name": param})),
    )
}

/// An error answer, small enough to travel in a `Result`.
struct Rejection {
    status: u16,
    body: Value,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body, &[])
    }
}

/// Checks `Authorization: Bearer <secret key>`; answers 401 otherwise.
fn authorize(inner: &Inner, headers: &HeaderMap) -> Result<(), Rejection> {
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let expected = inner.secret_key.expose();
    match given {
        Some(given)
            if given.len() == expected.len()
                && aws_lc_rs::constant_time::verify_slices_are_equal(
                    given.as_bytes(),
                    expected.as_bytes(),
                )
                .is_ok() =>
        {
            Ok(())
        }
        _ => Err(Rejection {
            status: 401,
            body: default_error_body(401),
        }),
    }
}

/// Parses an optional JSON object body; Clerk answers 400 to malformed JSON.
fn json_body(body: &Bytes) -> Result<serde_json::Map<String, Value>, Rejection> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Rejection {
            status: 400,
            body: error_body(
                "malformed_request_body",
                "malformed request body",
                "The request body is not a JSON object.",
                None,
            ),
        }),
    }
}

async fn jwks_public(State(inner): Shared) -> Response {
    let mut response = ok(&inner.key.jwks());
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

async fn jwks_backend(State(inner): Shared, headers: HeaderMap) -> Response {
    if let Err(response) = authorize(&inner, &headers) {
        return response.into_response();
    }
    ok(&inner.key.jwks())
}

async fn discovery(State(inner): Shared) -> Response {
    let url = &inner.url;
    ok(&json!({
        "issuer": url,
        "authorization_endpoint": format!("{url}/oauth/authorize"),
        "token_endpoint": format!("{url}/oauth/token"),
        "userinfo_endpoint": format!("{url}/oauth/userinfo"),
        "jwks_uri": format!("{url}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "email", "email_verified"],
    }))
}

fn opt_text(map: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

async fn create_user(State(inner): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorize(&inner, &headers) {
        return response.into_response();
    }
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response.into_response(),
    };
    let emails: Vec<String> = match body.get("email_address") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(email)) => vec![email.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            return unprocessable(
                "form_param_format_invalid",
                "is invalid",
                "email_address must be a list of email addresses.",
                "email_address",
            );
        }
    };
    let mut new = match emails.first() {
        Some(email) => NewUser::with_email(email.clone()),
        None => NewUser::without_email(),
    };
    if let Some(name) = opt_text(&body, "first_name") {
        new = new.first_name(name);
    }
    if let Some(name) = opt_text(&body, "last_name") {
        new = new.last_name(name);
    }
    if let Some(name) = opt_text(&body, "username") {
        new = new.username(name);
    }
    if let Some(metadata) = body.get("public_metadata").filter(|m| !m.is_null()) {
        new = new.public_metadata(metadata.clone());
    }
    match inner.create_user(new) {
        Ok(user) => ok(&user.to_json()),
        Err(Error::Invalid { detail, .. }) if detail.contains("taken") => unprocessable(
            "form_identifier_exists",
            "That email address is taken. Please try another.",
            "That email address is taken. Please try another.",
            "email_address",
        ),
        Err(Error::Invalid { what, detail }) => unprocessable(
            "form_param_format_invalid",
            "is invalid",
            &format!("{what}: {detail}"),
            if what == "public_metadata" {
                "public_metadata"
            } else {
                "email_address"
            },
        ),
        Err(error) => internal(&error),
    }
}

fn internal(error: &Error) -> Response {
    tracing::error!(%error, "local Clerk failed");
    json_response(500, &default_error_body(500), &[])
}

async fn list_users(
    State(inner): Shared,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(response) = authorize(&inner, &headers) {
        return response.into_response();
    }
    let emails: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "email_address" || k == "email_address[]")
        .map(|(_, v)| v.as_str())
        .collect();
    let params: HashMap<&str, &str> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10);
    let offset = params
        .get("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let users: Vec<Value> = inner
        .users()
        .into_iter()
        .filter(|u| {
            emails.is_empty()
                || u.email
                    .as_deref()
                    .is_some_and(|e| emails.iter().any(|want| want.eq_ignore_ascii_case(e)))
        })
        .skip(offset)
        .take(limit)
        .map(|u| u.to_json())
        .collect();
    ok(&Value::Array(users))
}

async fn get_user(State(inner): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(response) = authorize(&inner, &headers) {
        return response.into_response();
    }
    let user = super::lock(&inner).users.get(&id).cloned();
    match user {
        Some(user) => ok(&user.to_json()),
        None => resource_not_found(),
    }
}

async fn delete_user(State(inner): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(response) = authorize(&inner, &headers) {
        return response.into_response();
    }
    match inner.delete_user(&id) {
        Ok(()) => ok(&json!({"object": "user", "id": id, "deleted": true})),
        Err(Error::NotFound { .. }) => resource_not_found(),
        Err(error) => internal(&error),
    }
}

async fn create_session(State(inner): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = authorize(&inner, &headers) {
        return response.into_response();
    }
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response.into_response(),
    };
    let Some(user_id) = opt_text(&body, "user_id") else {
        return unprocessable(
            "form_param_missing",
            "is missing",
            "user_id must be included.",
            "user_id",
        );
    };
    match inner.create_session(&user_id, SessionState::Active) {
        Ok(session) => ok(&session.to_json()),
        Err(Error::NotFound { .. }) => resource_not_found(),
        Err(error) => internal(&error),
    }
}

async fn list_sessions(
    State(inner): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = authorize(&inner, &headers) {
        return response.into_response();
    }
    let status = match query.get("status") {
        None => None,
        Some(text) => match SessionState::parse(text) {
            Some(status) => Some(status),
            None => {
                return unprocessable(
                    "form_param_value_invalid",
                    "is invalid",
                    "status must be one of active, pending, revoked, ended, removed.",
                    "status",
                );
            }
        },
    };
    let sessions = inner.sessions(query.get("user_id").map(String::as_str), status);
    let total = sessions.len();
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10);
    let offset = query
        .get("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let data: Vec<Value> = sessions
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|s| s.to_json())
        .collect();
    if query.get("paginated").is_some_and(|p| p == "true") {
        ok(&json!({"data": data, "total_count": total}))
    } else {
        ok(&Value::Array(data))
    }
}

async fn get_session(State(inner): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(response) = authorize(&inner, &headers) {
        return response.into_response();
    }
    let session = super::lock(&inner).sessions.get(&id).cloned();
    match session {
        Some(session) => ok(&session.to_json()),
        None => resource_not_found(),
    }
}

async fn revoke_session(
    State(inner): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(response) = authorize(&inner, &headers) {
        return response.into_response();
    }
    let current = super::lock(&inner).sessions.get(&id).cloned();
    match current {
        None => resource_not_found(),
        // Revoking what is no longer signed in changes nothing.
        Some(session) if !session.status.mints_tokens() => ok(&session.to_json()),
        Some(_) => match inner.set_session_state(&id, SessionState::Revoked) {
            Ok(session) => ok(&session.to_json()),
            Err(error) => internal(&error),
        },
    }
}

async fn mint_token(
    State(inner): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(response) = authorize(&inner, &headers) {
        return response.into_response();
    }
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response.into_response(),
    };
    let mut options = MintOptions::new();
    match body.get("expires_in_seconds") {
        None | Some(Value::Null) => {}
        Some(value) => match value.as_u64().filter(|s| (30..=315_360_000).contains(s)) {
            Some(seconds) => options = options.lifetime(Duration::from_secs(seconds)),
            None => {
                return unprocessable(
                    "form_param_value_invalid",
                    "is invalid",
                    "expires_in_seconds must be an integer of at least 30.",
                    "expires_in_seconds",
                );
            }
        },
    }
    // The local Clerk's own keys, for tokens a test needs (see `MintOptions::to_body`).
    let options = match options.with_body(&body) {
        Ok(options) => options,
        Err(param) => {
            return unprocessable(
                "form_param_value_invalid",
                "is invalid",
                &format!("{param} has the wrong type."),
                param,
            );
        }
    };
    match inner.mint(&id, &options) {
        Ok(jwt) => ok(&json!({"object": "token", "jwt": jwt})),
        Err(Error::NotFound { .. }) => resource_not_found(),
        Err(Error::SessionNotActive { status, .. }) => clerk_error(
            400,
            "session_not_active",
            "session is not active",
            &format!("This session is {status}: it can no longer issue session tokens."),
            Some(json!({"session_id": id})),
        ),
        Err(error) => internal(&error),
    }
}
