//! The dev console (feature `local-stack`, dev mode, loopback only): one page at
//! `/dev/console` that walks the whole flow against the local stack. It mints a token
//! for an email (`/dev/token`), signs in, shows the Clerk identity and the InstantDB
//! user (`/v1/me`), runs a query and a transaction, signs out, and revokes the session
//! in the local Clerk (`/dev/session/revoke`) to watch the InstantDB session end when
//! the webhook arrives.
//!
//! Plain HTML, JavaScript and CSS from `apps/server/console/`, compiled into the
//! binary: the page loads nothing from anywhere else, and its Content-Security-Policy
//! says so to the browser.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse as _, Response};

use crate::dev::loopback_only;
use crate::error::ApiError;
use crate::state::AppState;

/// Only this server's own files, no inline script, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page.
const PAGE: &str = include_str!("../console/console.html");

/// The files the page loads, by name under `/dev/console/`, with their media type.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../console/console.css"),
    ),
];

fn respond(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /dev/console`.
pub(crate) async fn page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    loopback_only(&state, peer, &headers)?;
    Ok(respond("text/html; charset=utf-8", PAGE))
}

/// `GET /dev/console/{asset}`: one of [`ASSETS`], else 404.
pub(crate) async fn asset(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    loopback_only(&state, peer, &headers)?;
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(ApiError::not_found)?;
    Ok(respond(content_type, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets() {
        for (name, _, _) in ASSETS {
            assert!(
                PAGE.contains(&format!("\"/dev/console/{name}\"")),
                "{name} is not loaded by the page"
            );
        }
        for text in std::iter::once(PAGE).chain(ASSETS.iter().map(|(_, _, body)| *body)) {
            assert!(
                !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn")
            );
        }
    }
}
