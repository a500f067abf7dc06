//! The OpenAPI 3.1 description of the API, served at `GET /openapi.json`: generated
//! from the handlers' `#[utoipa::path]` annotations (whose paths are read from the
//! route table) and the schemas below, with every error answer added from one table
//! ([`error_statuses`]) and the codes from [`Code`].
//!
//! Which keys are whose: the keys the server defines are snake_case (`refresh_token`,
//! `tx_id`, `clerk_session`, `instant_session_signed_out`); shapes InstantDB defines and
//! the server passes through unchanged keep InstantDB's spelling (the user object with
//! `isGuest` and `imageURL`, a query's result, a transaction's steps). Each schema's
//! description says which it is.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::Code;
use crate::routes::{Listener, Route};
use crate::state::AppState;

/// The name of the bearer security scheme (`Authorization: Bearer <Clerk token>`).
pub const BEARER: &str = "clerk_bearer";
/// The name of the cookie security scheme (Clerk's `__session` cookie).
pub const COOKIE: &str = "clerk_session_cookie";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "clerk-instant-server",
        description = "Clerk session in, InstantDB session out. Keys the server defines are \
            snake_case; InstantDB's own shapes (its user object, query results, transaction \
            steps) pass through with InstantDB's spelling. Every error is \
            `{\"error\": {\"code\", \"message\"}}` with a stable kebab-case code (see the \
            `ErrorCode` schema for every code and its status)."
    ),
    paths(
        crate::handlers::sign_in,
        crate::handlers::sign_out,
        crate::handlers::me,
        crate::handlers::query,
        crate::handlers::transact,
        crate::webhooks::clerk,
        crate::handlers::healthz,
        crate::ready::readyz,
        crate::handlers::metrics,
        openapi_json,
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode)),
    modifiers(&Security, &Errors),
)]
struct ApiDoc;

/// The dev endpoint's part, merged in when it is compiled in.
#[cfg(feature = "local-stack")]
#[derive(OpenApi)]
#[openapi(
    paths(dev_token, dev_revoke_session, dev_console, dev_console_asset),
    modifiers(&Errors)
)]
struct DevDoc;

/// The description of `routes` (the routes a server serves): every other path is left
/// out.
pub fn document(routes: &[Route]) -> utoipa::openapi::OpenApi {
    #[allow(unused_mut, reason = "merged into with the local stack")]
    let mut doc = ApiDoc::openapi();
    #[cfg(feature = "local-stack")]
    doc.merge(DevDoc::openapi());
    doc.paths
        .paths
        .retain(|path, _| routes.iter().any(|route| route.path() == path));
    doc
}

// `GET /openapi.json`: the description of the routes this server serves (a server
// with the dev endpoint and one without describe different paths). Built per request
// (a plain comment, not a doc comment, so it stays out of the document): it is not on
// a hot path, and nothing cached can disagree with the router. Each listener's router
// names itself: with a metrics listener, the main one's description leaves out the
// `/metrics` it no longer serves.
#[utoipa::path(
    get,
    path = Route::OpenApi.path(),
    tag = "meta",
    summary = "This description: OpenAPI 3.1, the routes this server serves",
    responses(
        (status = 200, description = "This document: OpenAPI 3.1, the routes this server serves",
            content_type = "application/json", body = Object),
    ),
)]
pub(crate) async fn openapi_json(state: AppState, listener: Listener) -> Response {
    let served: Vec<Route> = Route::ALL
        .iter()
        .copied()
        .filter(|route| route.is_served(&state) && listener.serves(*route))
        .collect();
    Json(document(&served)).into_response()
}

// The doc-only operation of `POST /dev/token` (the handler is `crate::dev::dev_token`).
#[cfg(feature = "local-stack")]
#[utoipa::path(
    post,
    path = Route::DevToken.path(),
    tag = "dev",
    summary = "A Clerk session token from the local Clerk (dev mode, loopback only)",
    request_body(content = DevTokenRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A Clerk session token from the local Clerk", body = DevTokenAnswer),
    ),
)]
#[allow(
    dead_code,
    reason = "only described: the handler is crate::dev::dev_token"
)]
async fn dev_token() {}

/// `POST /dev/token`'s body (dev mode, loopback only).
#[cfg(feature = "local-stack")]
#[derive(ToSchema)]
#[allow(dead_code, reason = "only described")]
struct DevTokenRequest {
    /// The user's email at the local Clerk (created when new).
    #[schema(example = "alice@example.com")]
    email: String,
    /// The `azp` claim (a browser's origin), to test `CLERK_AUTHORIZED_PARTIES`.
    #[schema(example = "http://localhost:3000")]
    azp: Option<String>,
    /// Claims set after the session token template.
    #[schema(value_type = Option<Object>)]
    claims: Option<serde_json::Map<String, Value>>,
    /// Leave out `email` and `email_verified`, as Clerk's default session token does.
    no_email: Option<bool>,
    /// `exp` this many seconds from now (default: Clerk's 60); zero or negative: an
    /// expired token.
    expires_in: Option<i64>,
}

// The doc-only operation of `POST /dev/session/revoke` (the handler is
// `crate::dev::dev_revoke_session`).
#[cfg(feature = "local-stack")]
#[utoipa::path(
    post,
    path = Route::DevRevokeSession.path(),
    tag = "dev",
    summary = "Revoke a session in the local Clerk (dev mode, loopback only)",
    description = "As Clerk's dashboard does: the local Clerk then delivers `session.revoked` \
        to this server's webhook endpoint, which signs the InstantDB session out.",
    request_body(content = DevRevokeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The session, revoked", body = DevRevokeAnswer),
    ),
)]
#[allow(
    dead_code,
    reason = "only described: the handler is crate::dev::dev_revoke_session"
)]
async fn dev_revoke_session() {}

/// `POST /dev/session/revoke`'s body.
#[cfg(feature = "local-stack")]
#[derive(ToSchema)]
#[allow(dead_code, reason = "only described")]
struct DevRevokeRequest {
    /// The Clerk session id (`sid`).
    #[schema(example = "sess_2aKyFVefqRDDr2eKz8dmEwcgOBf")]
    session_id: String,
}

/// `POST /dev/session/revoke`'s answer.
#[cfg(feature = "local-stack")]
#[derive(ToSchema)]
#[allow(dead_code, reason = "only described")]
struct DevRevokeAnswer {
    /// The Clerk session id.
    session_id: String,
    /// Its status at the local Clerk (`revoked`).
    status: String,
}

// The doc-only operations of the dev console (the handlers are in `crate::console`).
#[cfg(feature = "local-stack")]
#[utoipa::path(
    get,
    path = Route::DevConsole.path(),
    tag = "dev",
    summary = "The dev console page (dev mode, loopback only)",
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
    ),
)]
#[allow(
    dead_code,
    reason = "only described: the handler is crate::console::page"
)]
async fn dev_console() {}

#[cfg(feature = "local-stack")]
#[utoipa::path(
    get,
    path = Route::DevConsoleAsset.path(),
    tag = "dev",
    summary = "A file of the dev console: its script or style sheet (dev mode, loopback only)",
    params(("asset" = String, Path, description = "The file name")),
    responses(
        (status = 200, description = "The file", content_type = "text/plain", body = String),
    ),
)]
#[allow(
    dead_code,
    reason = "only described: the handler is crate::console::asset"
)]
async fn dev_console_asset() {}

/// `POST /dev/token`'s answer.
#[cfg(feature = "local-stack")]
#[derive(ToSchema)]
#[allow(dead_code, reason = "only described")]
struct DevTokenAnswer {
    /// A Clerk session token, for `Authorization: Bearer`.
    token: String,
}

/// Every error answer: `{"error": {"code", "message"}}`. A sign-out that failed in part
/// also carries `clerk`, `instant` and `clerk_session` (as its 200 answer does).
#[derive(ToSchema)]
#[allow(dead_code, reason = "only described: ApiError writes it")]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// The code and the message of an error.
#[derive(ToSchema)]
#[allow(dead_code, reason = "only described: ApiError writes it")]
pub(crate) struct ErrorDetail {
    code: ErrorCode,
    /// What happened and what to do; for people, not for matching.
    message: String,
}

/// A stable kebab-case error code (the description lists them with their statuses).
#[allow(dead_code, reason = "only described: Code::as_str writes it")]
pub(crate) struct ErrorCode(String);

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[a-z0-9]+(-[a-z0-9]+)*$"))
            .description(Some(code_catalogue()))
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// The codes the server itself answers with, by status, then the broker's.
fn code_catalogue() -> String {
    let mut by_status: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    for code in Code::FIXED {
        let entry = by_status.entry(code.status().as_u16()).or_default();
        if !entry.contains(&code.as_str()) {
            entry.push(code.as_str());
        }
    }
    let mut text = String::from(
        "A stable kebab-case code; match on it, never on the message. The server's own codes, by status:\n",
    );
    for (status, codes) in &by_status {
        text.push_str(&format!("- {status}: `{}`\n", codes.join("`, `")));
    }
    text.push_str(
        "\nA webhook delivery that fails verification: 400 with the verifier's code \
         (`webhook-signature-mismatch`, `webhook-timestamp-too-old`, …); one whose effect \
         must be retried: 503 with the broker's code below.\n\nThe broker's codes, with the \
         status of what the caller does next (401 a token to replace, 403 refused, 400 bad \
         input, 502 upstream failure, 503 unavailable, 504 timeout): a rejected Clerk token \
         (401, or 503 when the signing keys cannot be fetched) answers with its reason: ",
    );
    let reasons: Vec<&str> = clerk_jwt::Reason::ALL.iter().map(|r| r.as_str()).collect();
    text.push_str(&format!("`{}`", reasons.join("`, `")));
    text.push_str("; the others: ");
    let broker: Vec<&str> = BROKER_CODES.iter().map(|c| c.as_str()).collect();
    text.push_str(&format!("`{}`.", broker.join("`, `")));
    text
}

/// Every code of `auth-core` other than a token's reason.
const BROKER_CODES: [auth_core::Code; 14] = [
    auth_core::Code::VerifierMisconfigured,
    auth_core::Code::EmailUnverified,
    auth_core::Code::SessionSignedOut,
    auth_core::Code::SessionNotOwned,
    auth_core::Code::InstantRejected,
    auth_core::Code::InstantPermissionDenied,
    auth_core::Code::InstantMisconfigured,
    auth_core::Code::InstantRateLimited,
    auth_core::Code::InstantUnavailable,
    auth_core::Code::InstantTimeout,
    auth_core::Code::InstantFailed,
    auth_core::Code::InstantBadResponse,
    auth_core::Code::StoreUnavailable,
    auth_core::Code::StoreFull,
];

/// The error statuses a route's operation can answer with (besides its success).
pub fn error_statuses(route: Route, method: &HttpMethod) -> Vec<u16> {
    // Every request: the per-request timeout.
    let mut statuses = vec![504];
    if route.is_rate_limited() {
        statuses.push(429);
    }
    if route.takes_clerk_token() {
        // A missing or rejected token, a refused session, the broker's failures.
        statuses.extend([400, 401, 403, 502, 503]);
    }
    let has_body = matches!(
        (route, method),
        (
            Route::Query | Route::Transact | Route::ClerkWebhooks,
            HttpMethod::Post
        ) | (Route::Session, HttpMethod::Delete)
    );
    if has_body {
        statuses.extend([400, 413, 415]);
    }
    match route {
        // Sign-out: a half that failed (502, 503 or 504).
        Route::Session if *method == HttpMethod::Delete => statuses.extend([502, 503]),
        Route::ClerkWebhooks => statuses.extend([400, 401, 403, 409, 502, 503]),
        Route::Readyz => statuses.push(503),
        #[cfg(feature = "local-stack")]
        Route::DevToken | Route::DevRevokeSession => {
            statuses.extend([400, 403, 404, 413, 415, 502]);
        }
        #[cfg(feature = "local-stack")]
        Route::DevConsole => statuses.extend([403, 404]),
        #[cfg(feature = "local-stack")]
        Route::DevConsoleAsset => statuses.extend([403, 404]),
        _ => {}
    }
    if matches!(route, Route::Transact | Route::Query) {
        // A body of the wrong shape is answered before it reaches the broker.
        statuses.push(400);
    }
    statuses.sort_unstable();
    statuses.dedup();
    // /readyz answers 503 with its own body, not an error.
    if route == Route::Readyz {
        statuses.retain(|s| *s != 503);
    }
    statuses
}

/// The bearer token and the `__session` cookie, both a Clerk session token.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description =
            Some("A Clerk session token (from the frontend's `getToken()`).".into());
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
        components.add_security_scheme(
            COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__session",
                "Clerk's `__session` cookie (same-site requests from the app).",
            ))),
        );
    }
}

/// Adds every operation's error answers, from [`error_statuses`].
struct Errors;

impl Modify for Errors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let Some(route) = Route::ALL.iter().copied().find(|r| r.path() == path) else {
                continue;
            };
            for (method, operation) in operations(item) {
                add_errors(route, &method, operation);
            }
        }
    }
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|op| (method, op)))
}

fn add_errors(route: Route, method: &HttpMethod, operation: &mut Operation) {
    for status in error_statuses(route, method) {
        let codes: Vec<&str> = Code::FIXED
            .iter()
            .filter(|code| code.status().as_u16() == status)
            .map(|code| code.as_str())
            .collect();
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error");
        let description = if codes.is_empty() {
            format!("{reason}: a broker code (see `ErrorCode`)")
        } else {
            format!(
                "{reason}: `{}`, or a broker code (see `ErrorCode`)",
                codes.join("`, `")
            )
        };
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert(response.into());
    }
}

/// The Clerk identity of a verified session token (the server's own keys).
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "only described: auth_core::ClerkIdentity is serialized"
)]
pub(crate) struct ClerkIdentity {
    /// The Clerk user id (`sub`).
    user_id: String,
    /// The Clerk session id (`sid`).
    session_id: String,
    /// The `email` claim, when the token has one.
    email: Option<String>,
    /// The `email_verified` claim, when the token has one.
    email_verified: Option<bool>,
    /// Who is impersonating the user (Clerk's `act` claim, passed through), when someone is.
    #[schema(value_type = Option<Object>)]
    actor: Option<Value>,
}

/// InstantDB's user object, passed through unchanged (InstantDB's spelling: `isGuest`,
/// `imageURL`, `app_id`, `created_at`); fields InstantDB adds pass through too.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "only described: instant_client::User is serialized"
)]
pub(crate) struct InstantUser {
    /// The InstantDB user id.
    #[schema(format = "uuid")]
    id: String,
    /// The user's email.
    email: Option<String>,
    /// Whether InstantDB holds the user as a guest.
    #[schema(rename = "isGuest")]
    is_guest: Option<bool>,
}

/// One half of a sign-out: `done`, `skipped` (with `reason`) or `failed` (with
/// `message`).
#[derive(ToSchema)]
#[allow(dead_code, reason = "only described: handlers::half_json writes it")]
pub(crate) struct SignOutHalf {
    /// What happened.
    #[schema(value_type = String, pattern = "^(done|skipped|failed)$")]
    status: String,
    /// Why it was skipped.
    reason: Option<String>,
    /// Why it failed.
    message: Option<String>,
}

/// The tag of the API routes.
pub(crate) const API: &str = "api";

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(doc: &utoipa::openapi::OpenApi) -> Vec<&str> {
        doc.paths.paths.keys().map(String::as_str).collect()
    }

    #[test]
    fn every_route_has_a_path_and_every_path_a_route() {
        let mut all: Vec<&str> = Route::ALL.iter().map(|route| route.path()).collect();
        all.sort_unstable();
        assert_eq!(paths(&document(Route::ALL)), all);
        let some = [Route::Healthz, Route::Me];
        assert_eq!(paths(&document(&some)), ["/healthz", "/v1/me"]);
    }

    #[test]
    fn every_operation_lists_its_error_statuses_with_the_error_body() {
        let doc = document(Route::ALL);
        for route in Route::ALL {
            let mut item = doc.paths.paths[route.path()].clone();
            for (method, operation) in operations(&mut item) {
                for status in error_statuses(*route, &method) {
                    assert!(
                        operation
                            .responses
                            .responses
                            .contains_key(&status.to_string()),
                        "{route:?} {status}"
                    );
                }
                assert!(
                    operation.responses.responses.contains_key("200"),
                    "{route:?}"
                );
            }
        }
    }
}
