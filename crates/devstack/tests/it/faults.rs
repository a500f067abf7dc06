//! Fault injection: the next N calls to a route fail, stall, or lose their connection.

use std::sync::Arc;
use std::time::Duration;

use clerk_jwt::{Clock as _, ManualClock, SystemClock};
use devstack::{DevStack, DevStackConfig, Fault};
use serde_json::json;

use crate::support::{answer, client, post, scrub, sign_in, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerk_jwks_outage_fails_sign_in_until_the_cooldown_passes() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let stack = DevStack::start(DevStackConfig::default().clock(clock.clone()))
        .await
        .unwrap();
    let jwks = "GET /.well-known/jwks.json";
    stack
        .clerk
        .faults()
        .inject(jwks, Fault::status(503), 1)
        .unwrap();

    let token = stack.clerk.session_token("alice@example.com").unwrap();
    let (status, body) = sign_in(&stack, &token, None).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"type": "oauth-error", "error": "Error validating JWT. Could not find signing key."})
        )
    );
    assert_eq!(stack.clerk.faults().hits(jwks), 1);
    assert_eq!(stack.clerk.faults().pending(jwks), 0);

    // The key cache waits before fetching again; then sign-in works.
    clock.advance(11);
    let token = stack.clerk.session_token("alice@example.com").unwrap();
    let (status, body) = sign_in(&stack, &token, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stack.clerk.faults().hits(jwks), 2);
    // Discovery was fetched once and cached.
    assert_eq!(
        stack
            .clerk
            .faults()
            .hits("GET /.well-known/openid-configuration"),
        1
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_errors_are_injectable() {
    let stack = stack().await;
    stack
        .clerk
        .faults()
        .inject(
            "/.well-known/openid-configuration",
            Fault::drop_connection(),
            1,
        )
        .unwrap();
    let token = stack.clerk.session_token("alice@example.com").unwrap();
    let (status, body) = sign_in(&stack, &token, None).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"type": "oauth-error", "error": "Unable to fetch OAuth configuration."})
        )
    );
    // Not cached on failure: the next sign-in fetches again and succeeds.
    let (status, _) = sign_in(&stack, &token, None).await;
    assert_eq!(status, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_faults_send_the_services_own_error_bodies() {
    let stack = stack().await;
    let route = "POST /runtime/oauth/id_token";
    stack
        .instant
        .faults()
        .inject(route, Fault::status(429), 1)
        .unwrap();
    stack
        .instant
        .faults()
        .inject(
            route,
            Fault::status(429)
                .with_body(json!({"type": "rate-limited", "message": "slow down", "hint": {"retry-after": 3}}))
                .with_header("retry-after", "3"),
            1,
        )
        .unwrap();
    let token = stack.clerk.session_token("alice@example.com").unwrap();
    let (status, body) = sign_in(&stack, &token, None).await;
    assert_eq!(
        (status, scrub(body)),
        (
            429,
            json!({
                "type": "rate-limited",
                "message": "You're making too many requests. Please email support@instantdb.com or ask for help in the Discord.",
                "hint": null,
                "trace-id": "[trace-id]",
            })
        )
    );
    let response = client()
        .post(format!("{}/runtime/oauth/id_token", stack.instant.url()))
        .json(&json!({"app_id": stack.app.id, "id_token": token, "client_name": "clerk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "3");
    let (status, body) = answer(response).await;
    assert_eq!(status, 429);
    assert_eq!(body["hint"]["retry-after"], 3);
    let (status, _) = sign_in(&stack, &token, None).await;
    assert_eq!(status, 200);

    // The local Clerk's Backend API answers in Clerk's shape.
    stack
        .clerk
        .faults()
        .inject("/v1/*", Fault::status(500), 1)
        .unwrap();
    let error = stack
        .clerk
        .backend()
        .session_token("bob@example.com")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, devstack::Error::Backend { status: 500, code, .. } if code == "internal_clerk_error"),
        "{error}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_delayed_calls_look_like_network_failures() {
    let stack = stack().await;
    let url = format!("{}/runtime/auth/verify_refresh_token", stack.instant.url());
    let body =
        json!({"app-id": stack.app.id, "refresh-token": "ffffffff-0000-4111-8222-333333333333"});
    let faults = stack.instant.faults();
    faults
        .inject(
            "/runtime/auth/verify_refresh_token",
            Fault::drop_connection(),
            1,
        )
        .unwrap();
    let error = client().post(&url).json(&body).send().await.unwrap_err();
    assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");

    faults
        .inject(
            "/runtime/auth/verify_refresh_token",
            Fault::delay(Duration::from_secs(30)),
            1,
        )
        .unwrap();
    let error = client()
        .post(&url)
        .timeout(Duration::from_millis(200))
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");

    let (status, _) = post(&url, &body).await;
    assert_eq!(status, 400, "answered normally once the faults are spent");
    assert_eq!(faults.hits("/runtime/auth/verify_refresh_token"), 3);
    // Shutting down does not wait for the stalled call.
    tokio::time::timeout(Duration::from_secs(5), stack.shutdown())
        .await
        .expect("prompt shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_ports() {
    let stack = stack().await;
    let clerk_port = stack.clerk.port();
    let instant_port = stack.instant.port();
    stack.shutdown().await;
    for port in [clerk_port, instant_port] {
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("port released");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_backend_call_names_the_call_once_and_keeps_the_cause() {
    let stack = stack().await;
    stack
        .clerk
        .faults()
        .inject("GET /v1/users", Fault::drop_connection(), 1)
        .unwrap();
    let error = stack
        .clerk
        .backend()
        .session_token("carol@example.com")
        .await
        .unwrap_err();
    let devstack::Error::Transport { method, url, .. } = &error else {
        panic!("not a transport error: {error:?}");
    };
    assert_eq!(*method, http::Method::GET);
    assert_eq!(
        error.to_string(),
        format!("GET {url} failed"),
        "the message says what failed and where"
    );
    // Walk the causes as anyhow's `{:#}` does: each is printed once, and only the
    // first names the URL.
    let mut messages = vec![error.to_string()];
    let mut current: &(dyn std::error::Error + 'static) = &error;
    while let Some(cause) = current.source() {
        messages.push(cause.to_string());
        current = cause;
    }
    assert!(messages.len() > 1, "the HTTP client's error is the source");
    for pair in messages.windows(2) {
        assert!(!pair[0].contains(&pair[1]), "{messages:?}");
    }
    assert_eq!(
        messages.join(": ").matches(url.as_str()).count(),
        1,
        "{messages:?}"
    );
    stack.shutdown().await;
}
