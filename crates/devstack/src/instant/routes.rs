//! The emulator's HTTP surface: InstantDB's runtime auth endpoints and admin API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::{AppData, State as Emulator};
use crate::server::json_response;
use crate::util::{coerce_email, parse_uuid};

type Shared = State<Arc<Emulator>>;
type Params = Query<HashMap<String, String>>;

pub(super) fn router(state: Arc<Emulator>) -> Router {
    Router::new()
        .route("/runtime/oauth/id_token", post(id_token))
        .route("/runtime/signout", post(signout))
        .route(
            "/runtime/auth/verify_refresh_token",
            post(verify_refresh_token),
        )
        .route("/admin/query", post(query))
        .route("/admin/transact", post(transact_post))
        .route("/admin/refresh_tokens", post(refresh_tokens))
        .route("/admin/sign_out", post(sign_out))
        .route("/admin/users", get(users_get).delete(users_delete))
        .fallback(route_not_found)
        .method_not_allowed_fallback(route_not_found)
        .with_state(state)
}

async fn route_not_found() -> Response {
    ApiError::route_not_found().into_response()
}

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => json_response(200, &body, &[]),
        Err(error) => error.into_response(),
    }
}

/// The JSON body, parsed only when the request says it is JSON (as InstantDB does).
fn body_map(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let is_json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return Ok(Map::new());
    }
    json_map(body)
}

/// A JSON request body as the emulator reads it: blank or not an object, an empty
/// map; not JSON, `param-malformed`.
pub(super) fn json_map(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Ok(Map::new()),
        Err(_) => Err(ApiError::bad_request(
            "param-malformed",
            "Malformed JSON in request body.",
            Value::Null,
        )),
    }
}

/// A present parameter: absent, `null` and `false` count as missing.
fn present<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &[&str],
) -> Result<&'a Value, ApiError> {
    match map.get(key) {
        None | Some(Value::Null | Value::Bool(false)) => Err(ApiError::param_missing(path)),
        Some(value) => Ok(value),
    }
}

fn optional<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key)
        .filter(|v| !matches!(v, Value::Null | Value::Bool(false)))
}

fn as_uuid(value: &Value, path: &[&str]) -> Result<String, ApiError> {
    value
        .as_str()
        .and_then(parse_uuid)
        .ok_or_else(|| ApiError::param_malformed(path, value))
}

fn uuid_param(map: &Map<String, Value>, key: &str, path: &[&str]) -> Result<String, ApiError> {
    as_uuid(present(map, key, path)?, path)
}

fn non_blank(map: &Map<String, Value>, key: &str, path: &[&str]) -> Result<String, ApiError> {
    let value = present(map, key, path)?;
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(ApiError::param_malformed(path, other)),
    }
}

fn email_param(value: &Value, path: &[&str]) -> Result<String, ApiError> {
    value
        .as_str()
        .and_then(coerce_email)
        .ok_or_else(|| ApiError::param_malformed(path, value))
}

fn apps_not_found(record: &str, args: Value) -> ApiError {
    let mut hint = Map::new();
    hint.insert("args".into(), Value::Array(vec![args]));
    ApiError::record_not_found(record, Value::Object(hint))
}

const SYSTEM_USER_FIELDS: [&str; 4] = ["id", "email", "type", "imageURL"];

fn extra_fields(map: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, ApiError> {
    let extra = match optional(map, key) {
        None => return Ok(Map::new()),
        Some(Value::Object(extra)) => extra.clone(),
        Some(other) => {
            return Err(ApiError::validation_message(
                "extra-fields",
                other.clone(),
                "extra_fields must be an object",
            ));
        }
    };
    if let Some(field) = extra
        .keys()
        .find(|k| SYSTEM_USER_FIELDS.contains(&k.as_str()))
    {
        return Err(ApiError::validation_message(
            "extra-fields",
            Value::Object(extra.clone()),
            &format!("Cannot set system field: {field}"),
        ));
    }
    Ok(extra)
}

// ---- Runtime ----

async fn id_token(State(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    respond(id_token_inner(&state, &headers, &body).await)
}

async fn id_token_inner(
    state: &Emulator,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, ApiError> {
    let body = body_map(headers, body)?;
    let token = non_blank(&body, "id_token", &["body", "id_token"])?;
    let app_id = uuid_param(&body, "app_id", &["body", "app_id"])?;
    let current = match optional(&body, "refresh_token") {
        Some(value) => Some(as_uuid(value, &["body", "refresh_token"])?),
        None => None,
    };
    let client_name = non_blank(&body, "client_name", &["body", "client_name"])?;
    let extra = extra_fields(&body, "extra_fields")?;
    let nonce = body.get("nonce").and_then(Value::as_str);
    let client = state.client(&app_id, &client_name).ok_or_else(|| {
        apps_not_found(
            "app-oauth-client",
            json!({"app-id": app_id, "client-name": client_name}),
        )
    })?;
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default().to_owned();
        let allowed = state.apps().get(&app_id).is_some_and(|app| {
            app.origins
                .iter()
                .any(|o| o.trim_end_matches('/') == origin)
        });
        if !allowed {
            return Err(ApiError::validation_message(
                "origin",
                Value::String(origin),
                "Unauthorized origin.",
            ));
        }
    }
    let info = client
        .check(&token, nonce, &state.http, &state.clock)
        .await?;
    let now = state.clock.now();
    let mut apps = state.apps();
    let app = apps
        .get_mut(&app_id)
        .ok_or_else(|| apps_not_found("app", json!({"id": app_id})))?;
    let current_owner = match &current {
        Some(token) => Some(app.user_by_token(token).ok_or_else(|| {
            apps_not_found(
                "app-user",
                json!({"app-id": app_id, "refresh-token": token}),
            )
        })?),
        None => None,
    };
    let (user_id, created) = app.upsert_oauth_user(&info, extra, now);
    let token = match (current, current_owner) {
        (Some(token), Some(owner)) if owner == user_id => token,
        _ => app.issue_token(&user_id),
    };
    let user = app.user_json(&user_id).unwrap_or(Value::Null);
    Ok(json!({"user": AppData::with_refresh_token(user, &token), "created": created}))
}

async fn signout(State(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    respond((|| {
        let body = body_map(&headers, &body)?;
        let app_id = uuid_param(&body, "app_id", &["body", "app_id"])?;
        let token = uuid_param(&body, "refresh_token", &["body", "refresh_token"])?;
        if let Some(app) = state.apps().get_mut(&app_id) {
            app.refresh_tokens.remove(&crate::util::sha256_hex(&token));
        }
        Ok(json!({}))
    })())
}

async fn verify_refresh_token(State(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    respond((|| {
        let body = body_map(&headers, &body)?;
        let token = uuid_param(&body, "refresh-token", &["body", "refresh-token"])?;
        let app_id = uuid_param(&body, "app-id", &["body", "app-id"])?;
        let apps = state.apps();
        let user = apps
            .get(&app_id)
            .and_then(|app| app.user_by_token(&token).and_then(|id| app.user_json(&id)))
            .ok_or_else(|| {
                apps_not_found(
                    "app-user",
                    json!({"app-id": app_id, "refresh-token": token}),
                )
            })?;
        Ok(json!({"user": AppData::with_refresh_token(user, &token)}))
    })())
}

// ---- Admin ----

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// The app id from the `app-id` header or the `app_id` query parameter.
fn app_id_untrusted(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let (value, path) = match (header(headers, "app-id"), params.get("app_id")) {
        (Some(value), _) => (value.to_owned(), ["headers", "app-id"]),
        (None, Some(value)) => (value.clone(), ["query-params", "app_id"]),
        (None, None) => {
            return Err(ApiError::bad_request(
                "param-missing",
                r#"Missing parameter: ["headers" "app-id"]"#,
                json!({"in": ["headers", "app-id"], "possible-ins": [["query-params", "app_id"]]}),
            ));
        }
    };
    parse_uuid(&value).ok_or_else(|| {
        ApiError::bad_request(
            "param-malformed",
            format!("Malformed parameter: [{:?} {:?}]", path[0], path[1]),
            json!({
                "in": path,
                "possible-ins": [["headers", "app-id"], ["query-params", "app_id"]],
                "original-input": value,
            }),
        )
    })
}

/// The app id, once the admin token is checked.
fn app_id_authed(
    state: &Emulator,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let app_id = app_id_untrusted(headers, params)?;
    let Some(authorization) = header(headers, "authorization") else {
        return Err(ApiError::param_missing(&["headers", "authorization"]));
    };
    let token = authorization
        .rsplit("Bearer ")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let valid = state
        .apps()
        .get(&app_id)
        .is_some_and(|app| !token.is_empty() && app.admin_token == token);
    if valid {
        Ok(app_id)
    } else {
        Err(ApiError::record_not_found(
            "app-admin-token",
            json!({
                "args": [{"app-id": app_id, "token": token}],
                "message": "This admin token may be expired or invalid. Or you may have provided an incorrect app ID.",
            }),
        ))
    }
}

/// InstantDB's `get-perms!`: impersonation headers first, then the admin token. The
/// resulting identity is checked but, in the emulator, grants everything.
fn perms(
    state: &Emulator,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let app_id = app_id_untrusted(headers, params)?;
    if let Some(as_token) = header(headers, "as-token") {
        let Some(token) = parse_uuid(as_token) else {
            return Err(ApiError::param_malformed(
                &["asUser", "token"],
                &Value::String(as_token.to_owned()),
            ));
        };
        let known = state
            .apps()
            .get(&app_id)
            .is_some_and(|app| app.user_by_token(&token).is_some());
        if !known {
            return Err(apps_not_found(
                "app-user",
                json!({"app-id": app_id, "refresh-token": token}),
            ));
        }
        return Ok(app_id);
    }
    if let Some(email) = header(headers, "as-email") {
        let app_id = app_id_authed(state, headers, params)?;
        let known = state
            .apps()
            .get(&app_id)
            .is_some_and(|app| app.user_by_email(&email.trim().to_lowercase()).is_some());
        if !known {
            return Err(apps_not_found(
                "app-user",
                json!({"app-id": app_id, "email": email}),
            ));
        }
        return Ok(app_id);
    }
    if header(headers, "as-guest").is_some() {
        return Ok(app_id);
    }
    app_id_authed(state, headers, params)
}

async fn query(
    State(state): Shared,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let body = body_map(&headers, &body)?;
        let query = query_param(&body)?;
        let app_id = perms(&state, &headers, &params)?;
        let apps = state.apps();
        let app = apps
            .get(&app_id)
            .ok_or_else(|| apps_not_found("app", json!({"id": app_id})))?;
        app.db.query(query)
    })())
}

/// The `query` of a `/admin/query` body: present and an object.
pub(super) fn query_param(body: &Map<String, Value>) -> Result<&Value, ApiError> {
    let query = present(body, "query", &["body", "query"])?;
    if !query.is_object() {
        return Err(ApiError::param_malformed(&["body", "query"], query));
    }
    Ok(query)
}

/// Runs steps on an app and returns the tx id.
pub(super) fn transact(
    app: &mut AppData,
    steps: &Value,
    throw_on_missing_attrs: bool,
    now: i64,
) -> Result<u64, ApiError> {
    let outcome = app.db.transact(steps, throw_on_missing_attrs, now)?;
    for user in &outcome.deleted_users {
        app.forget_user(user);
    }
    let tx = app.next_tx;
    app.next_tx += 1;
    Ok(tx)
}

async fn transact_post(
    State(state): Shared,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let body = body_map(&headers, &body)?;
        let steps = present(&body, "steps", &["body", "steps"])?;
        if !steps.is_array() {
            return Err(ApiError::param_malformed(&["body", "steps"], steps));
        }
        let throw = optional(&body, "throw-on-missing-attrs?").is_some();
        let app_id = perms(&state, &headers, &params)?;
        let now = state.clock.now();
        let mut apps = state.apps();
        let app = apps
            .get_mut(&app_id)
            .ok_or_else(|| apps_not_found("app", json!({"id": app_id})))?;
        let tx = transact(app, steps, throw, now)?;
        Ok(json!({"tx-id": tx}))
    })())
}

async fn refresh_tokens(
    State(state): Shared,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let app_id = app_id_authed(&state, &headers, &params)?;
        let body = body_map(&headers, &body)?;
        let email = match optional(&body, "email") {
            Some(value) => Some(email_param(value, &["body", "email"])?),
            None => None,
        };
        let id = match optional(&body, "id") {
            Some(value) => Some(as_uuid(value, &["body", "id"])?),
            None => None,
        };
        let extra = extra_fields(&body, "extra-fields")?;
        let now = state.clock.now();
        let mut apps = state.apps();
        let app = apps
            .get_mut(&app_id)
            .ok_or_else(|| apps_not_found("app", json!({"id": app_id})))?;
        let existing = match (&email, &id) {
            (Some(email), _) => app.user_by_email(email),
            (None, Some(id)) => app.db.entity(super::USERS, id).map(|_| id.clone()),
            (None, None) => {
                return Err(ApiError::validation_message(
                    "body",
                    Value::Object(body.clone()),
                    "Please provide an `email` or `id`",
                ));
            }
        };
        let created = existing.is_none();
        let user_id = match existing {
            Some(user_id) => user_id,
            None => app.create_user(id, email.as_deref(), None, extra, now),
        };
        let token = app.issue_token(&user_id);
        let user = app.user_json(&user_id).unwrap_or(Value::Null);
        Ok(json!({"user": AppData::with_refresh_token(user, &token), "created": created}))
    })())
}

async fn sign_out(
    State(state): Shared,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let app_id = app_id_authed(&state, &headers, &params)?;
        let body = body_map(&headers, &body)?;
        let mut apps = state.apps();
        let app = apps
            .get_mut(&app_id)
            .ok_or_else(|| apps_not_found("app", json!({"id": app_id})))?;
        if let Some(id) = optional(&body, "id") {
            let id = as_uuid(id, &["body", "id"])?;
            app.refresh_tokens.retain(|_, user| *user != id);
        } else if let Some(email) = optional(&body, "email") {
            let email = email_param(email, &["body", "email"])?;
            let user = app.user_by_email(&email).ok_or_else(|| {
                apps_not_found("app-user", json!({"app-id": app_id, "email": email}))
            })?;
            app.refresh_tokens.retain(|_, owner| *owner != user);
        } else if let Some(token) = optional(&body, "refresh_token") {
            let token = as_uuid(token, &["body", "refresh_token"])?;
            app.refresh_tokens.remove(&crate::util::sha256_hex(&token));
        } else {
            return Err(ApiError::validation_message(
                "body",
                Value::Object(body.clone()),
                "Please provide an `id`, `email`, or `refresh_token`",
            ));
        }
        Ok(json!({"ok": true}))
    })())
}

/// The user named by the `email`, `refresh_token` or `id` query parameter.
fn app_user(app: &AppData, params: &HashMap<String, String>) -> Result<Option<String>, ApiError> {
    if let Some(email) = params.get("email").filter(|e| !e.is_empty()) {
        let email = email_param(&Value::String(email.clone()), &["params", "email"])?;
        Ok(app.user_by_email(&email))
    } else if let Some(token) = params.get("refresh_token").filter(|t| !t.is_empty()) {
        let token = as_uuid(&Value::String(token.clone()), &["params", "refresh_token"])?;
        Ok(app.user_by_token(&token))
    } else if let Some(id) = params.get("id").filter(|i| !i.is_empty()) {
        let id = as_uuid(&Value::String(id.clone()), &["params", "id"])?;
        Ok(app.db.entity(super::USERS, &id).map(|_| id))
    } else {
        Err(ApiError::validation_message(
            "params",
            json!(params),
            "Please provide a user id, email, or refresh_token",
        ))
    }
}

async fn users_get(State(state): Shared, Query(params): Params, headers: HeaderMap) -> Response {
    respond((|| {
        let app_id = app_id_authed(&state, &headers, &params)?;
        let apps = state.apps();
        let app = apps
            .get(&app_id)
            .ok_or_else(|| apps_not_found("app", json!({"id": app_id})))?;
        let user = app_user(app, &params)?.and_then(|id| app.user_json(&id));
        Ok(json!({"user": user}))
    })())
}

async fn users_delete(State(state): Shared, Query(params): Params, headers: HeaderMap) -> Response {
    respond((|| {
        let app_id = app_id_authed(&state, &headers, &params)?;
        let mut apps = state.apps();
        let app = apps
            .get_mut(&app_id)
            .ok_or_else(|| apps_not_found("app", json!({"id": app_id})))?;
        let deleted = app_user(app, &params)?.and_then(|id| app.delete_user(&id));
        Ok(json!({"deleted": deleted}))
    })())
}
