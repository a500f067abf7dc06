//! Cross-origin calls from browser apps (`CORS_ALLOWED_ORIGINS`): which origins may call
//! the API with credentials (the `__session` cookie or a bearer token), and the
//! middleware that answers their preflights with tower-http's [`CorsLayer`].
//!
//! An allowed origin's preflight gets 204 with `access-control-allow-*` (the API's
//! methods, `authorization` and `content-type`, credentials); its other requests get
//! `access-control-allow-origin` and `-credentials`. A preflight from any other origin
//! gets 204 with no `access-control-*` header (so the browser stops there), and its other
//! requests none either. Every response says `Vary: Origin`. Preflights are answered
//! before the rate limits and never reach a route's method table (no 405).

use std::time::Duration;

use std::convert::Infallible;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use service_config::{AuthorizedParties, normalize_origin};
use tower::{Layer as _, ServiceExt as _};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::state::AppState;

/// How the setting is named in problems.
pub const CORS_SETTING: &str = "CORS_ALLOWED_ORIGINS (--cors-allowed-origins)";

/// The origins allowed by default in dev mode: a frontend's dev server on port 3000
/// (Next.js, Vite with `--port 3000`, …). The dev console needs none: the server serves
/// it, so its calls are same-origin.
pub const DEV_FRONTEND_ORIGINS: &[&str] = &["http://localhost:3000", "http://127.0.0.1:3000"];

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// What `CORS_ALLOWED_ORIGINS` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// Not set: the origins of `CLERK_AUTHORIZED_PARTIES` (none when it is unset or
    /// `*`), and in dev mode [`DEV_FRONTEND_ORIGINS`].
    #[default]
    Default,
    /// Exactly these origins, normalised by [`normalize_origin`].
    Only(Vec<String>),
}

impl CorsOrigins {
    /// Reads the values given (each a comma-separated part of the setting). No value is
    /// [`CorsOrigins::Default`]. `*` is refused: the server allows credentials, and
    /// browsers refuse a wildcard origin on a request with credentials. Every refused
    /// value is reported, each as a message naming it and the fix.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<CorsOrigins, Vec<String>> {
        if values.is_empty() {
            return Ok(CorsOrigins::Default);
        }
        let values: Vec<&str> = values
            .iter()
            .map(|v| v.as_ref().trim())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err(vec![
                "is set but empty; list the origins of your browser apps, e.g. https://app.example.com, or unset it to allow the CLERK_AUTHORIZED_PARTIES origins".to_owned(),
            ]);
        }
        let mut origins = Vec::new();
        let mut problems = Vec::new();
        for value in values {
            if value == "*" {
                problems.push(
                    "* (any origin) is not allowed: the server allows credentials (the __session cookie), and browsers refuse a wildcard origin with credentials; list the origins of your browser apps, e.g. https://app.example.com".to_owned(),
                );
                continue;
            }
            match normalize_origin(value) {
                Ok(origin) => {
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
                Err(error) => problems.push(format!(
                    "{value:?} {error}; list origins like https://app.example.com (scheme, host and port only)"
                )),
            }
        }
        if problems.is_empty() {
            Ok(CorsOrigins::Only(origins))
        } else {
            Err(problems)
        }
    }

    /// The origins allowed, given the authorized parties and whether the server runs
    /// in dev mode.
    pub fn allowed(&self, parties: &AuthorizedParties, dev: bool) -> Vec<String> {
        match self {
            CorsOrigins::Only(origins) => origins.clone(),
            CorsOrigins::Default => {
                let mut origins = parties.origins().to_vec();
                if dev {
                    for origin in DEV_FRONTEND_ORIGINS {
                        if !origins.iter().any(|o| o == origin) {
                            origins.push((*origin).to_owned());
                        }
                    }
                }
                origins
            }
        }
    }
}

/// The allowed origins and the tower-http layer that writes their headers.
#[derive(Debug, Clone)]
pub(crate) struct Cors {
    origins: Vec<HeaderValue>,
    layer: CorsLayer,
}

impl Cors {
    /// For these (normalised) origins.
    pub(crate) fn new(origins: &[String]) -> Cors {
        let origins: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        let layer = CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.clone()))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .allow_credentials(true)
            .expose_headers([
                header::RETRY_AFTER,
                header::HeaderName::from_static("x-request-id"),
            ])
            .max_age(PREFLIGHT_MAX_AGE);
        Cors { origins, layer }
    }

    /// The allowed origins.
    pub(crate) fn origins(&self) -> impl Iterator<Item = &str> {
        self.origins.iter().filter_map(|o| o.to_str().ok())
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.origins
            .iter()
            .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
    }
}

/// Whether a request is a CORS preflight.
fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ORIGIN)
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// CORS headers for allowed origins, preflights answered here; `inner` answers the
/// rest (called at most once).
pub(crate) async fn cors<F>(
    state: &AppState,
    request: Request,
    inner: impl FnOnce(Request) -> F + Send,
) -> Response
where
    F: Future<Output = Response> + Send,
{
    let cors = &state.inner.cors;
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| cors.allows(origin));
    let preflight = is_preflight(&request);
    let mut response = if allowed {
        // tower-http's layer wants a service; it calls it once, or not for a preflight.
        let mut inner = Some(inner);
        let service = tower::service_fn(move |request| {
            let inner = inner.take();
            async move {
                Ok::<_, Infallible>(match inner {
                    Some(inner) => inner(request).await,
                    None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                })
            }
        });
        match cors.layer.clone().layer(service).oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        }
    } else if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        inner(request).await
    };
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    let varies_by_origin = response.headers().get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|name| name.trim().eq_ignore_ascii_case("origin"))
        })
    });
    if !varies_by_origin {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_value_is_the_default_and_origins_are_normalised() {
        assert_eq!(
            CorsOrigins::parse::<&str>(&[]).unwrap(),
            CorsOrigins::Default
        );
        assert_eq!(
            CorsOrigins::parse(&[
                "https://App.example.com/",
                " http://localhost:3000",
                "https://app.example.com"
            ])
            .unwrap(),
            CorsOrigins::Only(vec![
                "https://app.example.com".to_owned(),
                "http://localhost:3000".to_owned()
            ])
        );
    }

    #[test]
    fn a_wildcard_an_empty_value_and_a_path_are_refused_with_the_fix() {
        let problems = CorsOrigins::parse(&["*"]).unwrap_err();
        assert!(
            problems[0].contains("browsers refuse a wildcard origin with credentials"),
            "{problems:?}"
        );
        let problems = CorsOrigins::parse(&[""]).unwrap_err();
        assert!(problems[0].contains("is set but empty"), "{problems:?}");
        let problems = CorsOrigins::parse(&["https://app.example.com/login", "*"]).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("\"https://app.example.com/login\" has a path"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_default_is_the_authorized_parties_plus_port_3000_in_dev_mode() {
        let parties = AuthorizedParties::Only(vec!["https://app.example.com".to_owned()]);
        assert_eq!(
            CorsOrigins::Default.allowed(&parties, false),
            ["https://app.example.com"]
        );
        assert_eq!(
            CorsOrigins::Default.allowed(&parties, true),
            [
                "https://app.example.com",
                "http://localhost:3000",
                "http://127.0.0.1:3000"
            ]
        );
        assert!(
            CorsOrigins::Default
                .allowed(&AuthorizedParties::Any, false)
                .is_empty()
        );
        assert!(
            CorsOrigins::Default
                .allowed(&AuthorizedParties::Unset, false)
                .is_empty()
        );
        let only = CorsOrigins::Only(vec!["https://other.example.com".to_owned()]);
        assert_eq!(only.allowed(&parties, true), ["https://other.example.com"]);
    }
}
