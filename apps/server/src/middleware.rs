//! Around every request: a request id, a span, the per-request timeout, the request
//! metric and one log line.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use crate::error::{ApiError, Code};
use crate::routes::Route;
use crate::state::AppState;

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
    client_request_id(headers).map_or_else(fresh_request_id, str::to_owned)
}

/// The client's `x-request-id` when it is short and plain.
fn client_request_id(headers: &HeaderMap) -> Option<&str> {
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
}

/// 32 hex digits, like a UUID's simple form: a random prefix drawn once per process
/// and a counter. Unique across replicas without asking the OS for randomness on every
/// request (a random UUID each time was a `getrandom` call per request).
fn fresh_request_id() -> String {
    static PREFIX: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:016x}{:016x}",
        *PREFIX,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The middleware, outermost first: request id, span, timeout, metrics and the log
/// line ([`observe`]); CORS, preflights answered ([`crate::cors::cors`]); the rate
/// limits ([`crate::ratelimit::limit`]). One layer, not three: a layer costs each
/// request a boxed clone of the service inside it and a boxed future.
pub(crate) async fn edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    observe(&state, request, |request| {
        crate::cors::cors(&state, request, |request| {
            crate::ratelimit::limit(&state, request, next)
        })
    })
    .await
}

/// Request id, span, timeout, metrics and one log line per request, around `inner`.
async fn observe<F>(
    state: &AppState,
    request: Request,
    inner: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    let id = request_id(request.headers());
    let route = Route::label(request.extensions().get::<MatchedPath>());
    let method = method_label(request.method());
    let span = tracing::info_span!("request", id = %id, method, route);
    let start = Instant::now();
    let limit = state.inner.request_timeout;
    let mut response =
        match tokio::time::timeout(limit, inner(request).instrument(span.clone())).await {
            Ok(response) => response,
            Err(_) => ApiError::timeout(limit).into_response(),
        };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let took = start.elapsed();
    state.inner.metrics.request(method, route, status, took);
    let code = response.extensions().get::<Code>().map(|c| c.as_str());
    let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| match code {
        Some(code) if status >= 500 => tracing::warn!(status, code, took_us, "request failed"),
        Some(code) => tracing::info!(status, code, took_us, "request rejected"),
        None => tracing::info!(status, took_us, "request"),
    });
    response
}
