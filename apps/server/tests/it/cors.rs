//! Browser apps on other origins (CORS_ALLOWED_ORIGINS), over raw HTTP: preflights
//! answered 204 for allowed origins (never 405, never rate-limited), credentials
//! allowed, `Vary: Origin`, and nothing for other origins. The same from a real
//! browser: tests/it/browser.rs.

use std::time::Duration;

use clerk_instant_server::config::{Mode, ServerArgs};
use clerk_instant_server::cors::{CORS_SETTING, CorsOrigins};
use clerk_instant_server::ratelimit::{Quota, RateLimitSettings};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use service_config::AuthorizedParties;

use crate::support::Harness;

const APP: &str = "https://app.example.com";
const OTHER: &str = "https://evil.example.com";

/// Sends a preflight for `method` on `path` from `origin`.
async fn preflight(h: &Harness, path: &str, origin: &str, method: &str) -> (StatusCode, HeaderMap) {
    let response = h
        .http
        .request(Method::OPTIONS, h.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    (response.status(), response.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or("(not text)"))
}

/// The names of the `access-control-*` headers.
fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

fn varies_by_origin(headers: &HeaderMap) -> bool {
    headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("origin")
    })
}

#[tokio::test]
async fn an_allowed_origin_is_answered_and_any_other_gets_no_cors_header() {
    let h = Harness::start_with(|s| {
        s.options.cors_origins = CorsOrigins::Only(vec![APP.to_owned()]);
        // One /v1/* request an hour: a preflight counted as one would soon be 429.
        let mut limits = RateLimitSettings::off();
        limits.per_ip = Quota::new(1, Duration::from_secs(3600), 1);
        *s.options.rate_limits = limits;
    })
    .await;

    for (path, method) in [
        ("/v1/session", "POST"),
        ("/v1/session", "DELETE"),
        ("/v1/me", "GET"),
        ("/v1/query", "POST"),
        ("/v1/transact", "POST"),
    ] {
        let (status, headers) = preflight(&h, path, APP, method).await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "{method} {path}: {headers:?}"
        );
        assert_eq!(header(&headers, "access-control-allow-origin"), APP);
        assert_eq!(header(&headers, "access-control-allow-credentials"), "true");
        let methods = header(&headers, "access-control-allow-methods");
        assert!(methods.contains(method), "{methods}");
        let allowed = header(&headers, "access-control-allow-headers").to_ascii_lowercase();
        assert!(
            allowed.contains("authorization") && allowed.contains("content-type"),
            "{allowed}"
        );
        assert!(varies_by_origin(&headers), "{headers:?}");
    }

    // Another origin's preflight: no access-control header, so the browser stops.
    let (status, headers) = preflight(&h, "/v1/session", OTHER, "POST").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(cors_headers(&headers).is_empty(), "{headers:?}");
    assert!(varies_by_origin(&headers), "{headers:?}");

    // The actual request: credentials allowed for the app, nothing for the other.
    let (_, token) = h.clerk_sign_in("cors@example.com");
    for (origin, expected) in [(APP, APP), (OTHER, "")] {
        let response = h
            .http
            .post(h.url("/v1/session"))
            .header("origin", origin)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let headers = response.headers().clone();
        assert_eq!(header(&headers, "access-control-allow-origin"), expected);
        if expected.is_empty() {
            assert!(cors_headers(&headers).is_empty(), "{headers:?}");
        } else {
            assert_eq!(header(&headers, "access-control-allow-credentials"), "true");
            let exposed = header(&headers, "access-control-expose-headers").to_ascii_lowercase();
            assert!(exposed.contains("retry-after"), "{exposed}");
        }
        assert!(varies_by_origin(&headers), "{headers:?}");
        // The first call used the hour's one request; the preflights used none.
        let status = response.status();
        if origin == APP {
            assert_eq!(status, StatusCode::OK);
        } else {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn by_default_the_authorized_parties_may_call_and_without_them_no_origin() {
    let h = Harness::start_with(|s| {
        s.service.authorized_parties = AuthorizedParties::Only(vec![APP.to_owned()]);
    })
    .await;
    let (status, headers) = preflight(&h, "/v1/me", APP, "GET").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(header(&headers, "access-control-allow-origin"), APP);
    assert_eq!(
        h.server.state.cors_origins().collect::<Vec<_>>(),
        [APP],
        "the origins the server reports"
    );
    h.shutdown().await;

    let h = Harness::start().await;
    for origin in [APP, "http://localhost:3000"] {
        let (status, headers) = preflight(&h, "/v1/me", origin, "GET").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(cors_headers(&headers).is_empty(), "{origin}: {headers:?}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn in_dev_mode_a_frontend_on_port_3000_may_call_by_default() {
    let running = clerk_instant_server::start(Mode::Dev(Box::new(crate::support::options())))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    for (origin, allowed) in [
        ("http://localhost:3000", true),
        ("http://127.0.0.1:3000", true),
        ("http://localhost:5173", false),
    ] {
        let response = http
            .request(Method::OPTIONS, format!("{}/v1/session", running.url()))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let expected = if allowed { origin } else { "" };
        assert_eq!(
            header(response.headers(), "access-control-allow-origin"),
            expected
        );
    }
    running.shutdown().await;
}

#[test]
fn a_wildcard_origin_is_refused_at_start_up_with_the_fix() {
    let args = ServerArgs {
        dev: true,
        listen: Some("127.0.0.1:8787".into()),
        log_format: "text".into(),
        log_level: "info".into(),
        body_limit: 64 * 1024,
        request_timeout: 10,
        max_sessions: 100_000,
        header_read_timeout: 10,
        idle_timeout: 60,
        max_connections: 1024,
        shutdown_timeout: 15,
        sign_in_lock: 15,
        user_deleted_policy: "delete-user".into(),
        cors_allowed_origins: vec!["*".into()],
        ..ServerArgs::default()
    };
    let error = args.resolve().unwrap_err();
    assert_eq!(
        error.0.iter().map(|p| p.setting).collect::<Vec<_>>(),
        [CORS_SETTING]
    );
    let text = error.to_string();
    assert!(
        text.contains("browsers refuse a wildcard origin with credentials"),
        "{text}"
    );
    let ok = ServerArgs {
        cors_allowed_origins: vec!["http://localhost:5173".into()],
        ..args
    };
    let Ok(Mode::Dev(options)) = ok.resolve() else {
        panic!("an origin is accepted");
    };
    assert_eq!(
        options.cors_origins,
        CorsOrigins::Only(vec!["http://localhost:5173".into()])
    );
}
