//! The whole journey over real HTTP: local Clerk, the server, the InstantDB emulator.

use std::time::Duration;

use clerk_instant_server::routes::{Route, UNMATCHED};
use devstack::clerk::SessionState;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Harness, code};

const GOAL: &str = "9f5d3a0e-7f6b-4c61-9d46-2f1b0c3e8a11";

/// An InstantDB client pointed at the emulator, to check tokens from the outside.
fn instant(h: &Harness) -> instant_client::Client {
    instant_client::Client::builder(instant_client::Uuid::parse_str(&h.stack.app.id).unwrap())
        .base_url(h.stack.instant.url())
        .build()
        .unwrap()
}

async fn journey(h: &Harness, expect_created: bool) {
    let (sid, token) = h.clerk_sign_in("alice@example.com");

    // Sign in: the user is created (or found) and gets one refresh token.
    let (status, first) = h.sign_in(&token).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["created"], expect_created);
    assert_eq!(first["reused"], false);
    assert_eq!(first["clerk"]["session_id"], sid.as_str());
    assert_eq!(first["user"]["email"], "alice@example.com");
    assert!(first["user"].get("refresh_token").is_none());
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    let user_id = first["user"]["id"].as_str().unwrap().to_owned();
    let app = &h.stack.app.id;
    assert_eq!(
        h.stack.instant.refresh_token_count(app, &user_id).unwrap(),
        1
    );

    // Again, in the same Clerk session with a fresh token: the same InstantDB session,
    // and no new token in the emulator.
    for _ in 0..3 {
        let again = h.stack.clerk.mint(&sid).unwrap();
        let (status, body) = h.sign_in(&again).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["refresh_token"], refresh.as_str());
        assert_eq!(body["reused"], true);
    }
    assert_eq!(
        h.stack.instant.refresh_token_count(app, &user_id).unwrap(),
        1
    );

    // Transact and query as the user.
    let (status, tx) = h
        .call(
            Method::POST,
            "/v1/transact",
            Some(&token),
            Some(json!({"steps": [["update", "goals", GOAL, {"title": "Get fit"}]]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tx}");
    assert!(tx["tx_id"].is_number(), "{tx}");
    let (status, result) = h
        .call(
            Method::POST,
            "/v1/query",
            Some(&token),
            Some(json!({"query": {"goals": {"$": {"where": {"id": GOAL}}}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["goals"][0]["title"], "Get fit");
    let (status, me) = h.call(Method::GET, "/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["instant"]["user"]["id"], user_id.as_str());

    // Sign out of both.
    let (status, out) = h.sign_out(&token).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["instant"]["status"], "done");
    assert_eq!(out["clerk_session"]["status"], "done");

    // The InstantDB token is dead...
    let dead = instant(h)
        .verify_refresh_token(&instant_client::RefreshToken::new(refresh).unwrap())
        .await
        .unwrap_err();
    assert!(dead.is_not_found(), "{dead:?}");
    // ...the Clerk session is revoked and mints no more tokens...
    assert_eq!(
        h.stack.clerk.session(&sid).unwrap().status,
        SessionState::Revoked
    );
    assert!(h.stack.clerk.mint(&sid).is_err());
    // ...and a token minted before the sign-out, still valid at Clerk for its minute,
    // no longer signs in here.
    let (status, body) = h.sign_in(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "session-signed-out");
    // So does /v1/me, like every other route.
    let (status, me) = h.call(Method::GET, "/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{me}");
    assert_eq!(code(&me), "session-signed-out");
    for (method, path, body) in [
        (Method::POST, "/v1/query", json!({"query": {"goals": {}}})),
        (Method::POST, "/v1/transact", json!({"steps": []})),
    ] {
        let (status, body) = h.call(method, path, Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(code(&body), "session-signed-out", "{path}");
    }
}

/// Responses carrying a refresh token or an email are kept by no cache.
#[tokio::test]
async fn responses_with_a_refresh_token_or_an_email_are_not_stored() {
    let h = Harness::start().await;
    let (_, token) = h.clerk_sign_in("nostore@example.com");
    for (method, path) in [
        (Method::POST, "/v1/session"),
        (Method::GET, "/v1/me"),
        (Method::DELETE, "/v1/session"),
    ] {
        let (status, headers, body) = h.call_with_headers(method, path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(
            body.to_string().contains("nostore@example.com"),
            "{path} carries the email: {body}"
        );
        assert_eq!(
            headers.get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{path}"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn id_token_strategy_signs_in_reuses_runs_as_the_user_and_signs_out_of_both() {
    let h = Harness::start().await;
    journey(&h, true).await;
    h.shutdown().await;
}

/// `/v1/transact` takes a bare array of steps as the CLI does, as well as
/// `{"steps": [...]}`, and answers with the server's snake_case `tx_id`.
#[tokio::test]
async fn a_bare_array_of_steps_is_a_transaction() {
    let h = Harness::start().await;
    let (_, token) = h.clerk_sign_in("bare@example.com");
    let (status, tx) = h
        .call(
            Method::POST,
            "/v1/transact",
            Some(&token),
            Some(json!([["update", "goals", GOAL, {"title": "Bare steps"}]])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tx}");
    assert!(tx["tx_id"].is_i64(), "{tx}");
    assert!(tx.get("tx-id").is_none(), "{tx}");
    let (status, result) = h
        .call(
            Method::POST,
            "/v1/query",
            Some(&token),
            Some(json!({"query": {"goals": {"$": {"where": {"id": GOAL}}}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["goals"][0]["title"], "Bare steps");
    // A bare array that is not steps is refused like an object that is not.
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/transact",
            Some(&token),
            Some(json!([["explode", "goals"]])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "invalid-transaction");
    h.shutdown().await;
}

#[tokio::test]
async fn revalidating_passes_the_stored_token_back_and_keeps_one_token() {
    // With no reuse window, every sign-in goes to InstantDB with the stored token.
    let h = Harness::start_with(|s| s.options.revalidate_after = Duration::ZERO).await;
    journey(&h, true).await;
    assert!(
        h.stack
            .instant
            .faults()
            .hits("POST /runtime/oauth/id_token")
            >= 4,
        "every sign-in reached InstantDB"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn admin_strategy_does_the_same_with_the_admin_token() {
    let h = Harness::admin().await;
    journey(&h, true).await;
    assert_eq!(
        h.stack
            .instant
            .faults()
            .hits("POST /runtime/oauth/id_token"),
        0,
        "the admin strategy never forwards the Clerk token"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn dev_mode_runs_the_local_stack_and_mints_tokens_on_loopback() {
    let running = clerk_instant_server::start(clerk_instant_server::config::Mode::Dev(Box::new(
        crate::support::options(),
    )))
    .await
    .unwrap();
    let banner = clerk_instant_server::dev_banner(&running);
    assert!(banner.contains("/dev/token"), "{banner}");
    assert!(banner.contains("permissions are NOT evaluated"), "{banner}");
    let http = reqwest::Client::new();
    let url = running.url();
    let minted: Value = http
        .post(format!("{url}/dev/token"))
        .json(&json!({"email": "bob@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["token"].as_str().unwrap();
    let signed_in = http
        .post(format!("{url}/v1/session"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let body: Value = signed_in.json().await.unwrap();
    assert_eq!(body["user"]["email"], "bob@example.com");
    // A second token for the same user reuses their Clerk session.
    let again: Value = http
        .post(format!("{url}/dev/token"))
        .json(&json!({"email": "bob@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body: Value = http
        .post(format!("{url}/v1/session"))
        .bearer_auth(again["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["reused"], true);
    let bad = http
        .post(format!("{url}/dev/token"))
        .json(&json!({"email": "not an email"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    running.shutdown().await;
}

#[tokio::test]
async fn every_route_is_counted_under_its_own_label() {
    let h = Harness::start().await;
    let served = Route::ALL.iter().filter(|r| !r.is_dev_only());
    for route in served.clone() {
        let (status, body) = h.call(Method::PUT, route.path(), None, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{route:?}: {body}");
    }
    h.call(Method::PUT, "/v2/everything", None, None).await;
    let metrics = h
        .http
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for route in served {
        let line = format!(
            "clerk_instant_requests_total{{method=\"PUT\",route=\"{}\",status=\"405\"}} 1",
            route.path()
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    let unmatched = format!(
        "clerk_instant_requests_total{{method=\"PUT\",route=\"{UNMATCHED}\",status=\"404\"}} 1"
    );
    assert!(metrics.contains(&unmatched), "{metrics}");
    h.shutdown().await;
}

#[tokio::test]
async fn the_dev_endpoint_does_not_exist_outside_dev_mode() {
    let h = Harness::start().await;
    let (status, body) = h
        .call(
            Method::POST,
            "/dev/token",
            None,
            Some(json!({"email": "a@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not-found");
    h.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let h = Harness::start().await;
    let (status, body) = h.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], true);

    let (_, token) = h.clerk_sign_in("carol@example.com");
    h.sign_in(&token).await;
    h.sign_in("garbage").await;
    let metrics = h
        .http
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(
        "clerk_instant_requests_total{method=\"POST\",route=\"/v1/session\",status=\"200\"} 1"
    ));
    assert!(metrics.contains("clerk_instant_token_rejections_total{reason=\"token-invalid\"} 1"));
    assert!(metrics.contains("upstream=\"instantdb\",call=\"sign-in-with-id-token\""));
    assert!(metrics.contains("clerk_instant_sessions 1"));
    assert!(!metrics.contains(&token));

    h.shutdown().await;
}

#[tokio::test]
async fn readiness_fails_while_instantdb_does_not_answer() {
    let h = Harness::start().await;
    h.stack
        .instant
        .faults()
        .inject(
            "POST /runtime/auth/verify_refresh_token",
            devstack::Fault::drop_connection(),
            10,
        )
        .unwrap();
    let (status, body) = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["checks"]["instantdb"]["status"], "failed");
    assert_eq!(body["checks"]["clerk_keys"]["status"], "ok");
    h.shutdown().await;
}

#[tokio::test]
async fn an_impersonated_session_shows_its_actor_and_can_be_refused() {
    let h = Harness::start().await;
    let signed_in = h.stack.clerk.sign_in("victim@example.com").unwrap();
    let impersonated = h
        .stack
        .clerk
        .token_builder(&signed_in.session.id, &devstack::MintOptions::default())
        .unwrap()
        .claim(
            "act",
            json!({"sub": "user_2SupportAgent", "type": "impersonation"}),
        )
        .sign();
    let (status, body) = h.sign_in(&impersonated).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, me) = h
        .call(Method::GET, "/v1/me", Some(&impersonated), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["clerk"]["actor"]["sub"], "user_2SupportAgent", "{me}");
    // A token of the user's own session carries no actor.
    let own = h.stack.clerk.mint(&signed_in.session.id).unwrap();
    let (_, me) = h.call(Method::GET, "/v1/me", Some(&own), None).await;
    assert!(me["clerk"].get("actor").is_none(), "{me}");
    h.shutdown().await;

    // CLERK_REJECT_IMPERSONATION refuses it before InstantDB is asked.
    let h = Harness::start_with(|s| {
        let verifier = &mut s.service.verifier;
        verifier.reject_impersonation = true;
    })
    .await;
    let signed_in = h.stack.clerk.sign_in("victim@example.com").unwrap();
    let impersonated = h
        .stack
        .clerk
        .token_builder(&signed_in.session.id, &devstack::MintOptions::default())
        .unwrap()
        .claim("act", json!({"sub": "user_2SupportAgent"}))
        .sign();
    let (status, body) = h.sign_in(&impersonated).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "session-impersonated");
    h.shutdown().await;
}
