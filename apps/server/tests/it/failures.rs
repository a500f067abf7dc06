//! Every failure path answers with a fitting status and code, and the server answers
//! the next good request.

use std::time::Duration;

use clerk_jwt::testing::{TestKey, TokenBuilder};
use clerk_jwt::{CAT_JWT_TEMPLATE, Clock as _, SystemClock};
use devstack::Fault;
use devstack::clerk::MintOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Harness, code};

const SIGN_IN_ROUTE: &str = "POST /runtime/oauth/id_token";

#[tokio::test]
async fn each_token_problem_reaches_the_client_as_its_code_and_never_reaches_instantdb() {
    let h = Harness::start().await;
    let signed_in = h.stack.clerk.sign_in("tokens@example.com").unwrap();
    let sid = signed_in.session.id;
    let clerk = &h.stack.clerk;
    let now = SystemClock.now();
    let builder = || clerk.token_builder(&sid, &MintOptions::new()).unwrap();
    let stranger = TestKey::generate("ins_2strangerinstance");
    let impostor = devstack::SigningKey::generate(clerk.kid());
    let none = {
        let full = builder().header("alg", "none").sign();
        let (input, _) = full.rsplit_once('.').unwrap();
        format!("{input}.")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            clerk
                .mint_with(&sid, &MintOptions::new().issued_at(now - 3600))
                .unwrap(),
            "token-expired",
        ),
        ("garbage", "abc.def".to_owned(), "token-invalid"),
        ("alg none", none, "token-invalid-algorithm"),
        (
            "another instance's key",
            TokenBuilder::session(&stranger, clerk.url(), now).sign(),
            "jwk-kid-mismatch",
        ),
        (
            "forged with this instance's kid",
            builder().sign_with(&impostor),
            "token-invalid-signature",
        ),
        (
            "wrong issuer",
            builder().claim("iss", "https://clerk.other.dev").sign(),
            "token-invalid-issuer",
        ),
        (
            "JWT template",
            builder().header("cat", CAT_JWT_TEMPLATE).sign(),
            "token-not-session",
        ),
        (
            "pending session",
            builder().claim("sts", "pending").sign(),
            "session-pending",
        ),
        (
            "no email claim",
            builder().without_claim("email").sign(),
            "email-missing",
        ),
        (
            "unverified email",
            builder().claim("email_verified", false).sign(),
            "email-unverified",
        ),
    ];
    for (case, token, expected) in cases {
        let response = h
            .http
            .post(h.url("/v1/session"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(&token), "{case}: the token came back");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(code(&body), expected, "{case}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // No token at all, or a scheme that is not Bearer.
    let (status, body) = h.sign_in_without_token(None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token-missing")
    );
    let (status, body) = h.sign_in_without_token(Some("Basic dXNlcjpwYXNz")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token-missing")
    );
    assert_eq!(h.stack.instant.faults().hits(SIGN_IN_ROUTE), 0);
    h.assert_healthy().await;
    h.shutdown().await;
}

impl Harness {
    async fn sign_in_without_token(&self, authorization: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.post(self.url("/v1/session"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

#[tokio::test]
async fn instantdb_failures_become_gateway_errors_and_the_server_stays_up() {
    let h = Harness::start_with(|s| s.options.request_timeout = Duration::from_millis(800)).await;
    let cases: Vec<(Fault, StatusCode, &str)> = vec![
        (
            Fault::status(500),
            StatusCode::BAD_GATEWAY,
            "instant-failed",
        ),
        (
            Fault::status(503),
            StatusCode::SERVICE_UNAVAILABLE,
            "instant-unavailable",
        ),
        (
            Fault::status(429).with_header("retry-after", "7"),
            StatusCode::SERVICE_UNAVAILABLE,
            "instant-rate-limited",
        ),
        (
            Fault::drop_connection(),
            StatusCode::SERVICE_UNAVAILABLE,
            "instant-unavailable",
        ),
        (
            Fault::delay(Duration::from_secs(3)),
            StatusCode::GATEWAY_TIMEOUT,
            "request-timeout",
        ),
    ];
    for (i, (fault, status, expected)) in cases.into_iter().enumerate() {
        let shown = format!("{fault:?}");
        h.stack
            .instant
            .faults()
            .inject(SIGN_IN_ROUTE, fault, 1)
            .unwrap();
        let (_, token) = h.clerk_sign_in(&format!("fault{i}@example.com"));
        let response = h
            .http
            .post(h.url("/v1/session"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{shown}");
        if expected == "instant-rate-limited" {
            assert_eq!(response.headers()["retry-after"], "7");
        }
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), expected, "{shown}: {body}");
        h.stack.instant.faults().clear();
        h.assert_healthy().await;
    }
    h.shutdown().await;
}

#[tokio::test]
async fn query_failures_are_the_callers_or_the_gateways() {
    let h = Harness::start().await;
    let (_, token) = h.clerk_sign_in("dave@example.com");
    let query = |body: Value| {
        let h = &h;
        let token = token.clone();
        async move {
            h.call(Method::POST, "/v1/query", Some(&token), Some(body))
                .await
        }
    };
    h.stack
        .instant
        .faults()
        .inject("POST /admin/query", Fault::status(500), 1)
        .unwrap();
    let (status, body) = query(json!({"query": {"goals": {}}})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_GATEWAY, "instant-failed")
    );
    let (status, body) = query(json!({"query": {"goals": {}}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = query(json!({"query": ["goals"]})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid-body")
    );
    let (status, body) = query(json!({"query": {}, "extra": 1})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid-body")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn clerk_down_during_sign_out_is_reported_and_instantdb_is_still_signed_out() {
    let h = Harness::start().await;
    let (sid, token) = h.clerk_sign_in("erin@example.com");
    let (status, signed) = h.sign_in(&token).await;
    assert_eq!(status, StatusCode::OK);
    h.stack
        .clerk
        .faults()
        .inject("POST /v1/sessions/*/revoke", Fault::status(503), 1)
        .unwrap();
    let (status, out) = h.sign_out(&token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{out}");
    assert_eq!(code(&out), "sign-out-incomplete");
    assert_eq!(out["instant"]["status"], "done");
    assert_eq!(out["clerk_session"]["status"], "failed");
    let refresh = signed["refresh_token"].as_str().unwrap();
    assert!(!out.to_string().contains(refresh));
    // Retrying finishes the Clerk half; InstantDB has nothing left to end.
    let (status, out) = h.sign_out(&token).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["instant"]["status"], "skipped");
    assert_eq!(out["clerk_session"]["status"], "done");
    assert_eq!(
        h.stack.clerk.session(&sid).unwrap().status,
        devstack::clerk::SessionState::Revoked
    );
    h.shutdown().await;
}

/// The token is checked before the body is looked at: a bad token with a bad body gets
/// the token's error, on every route taking a body.
#[tokio::test]
async fn a_bad_token_is_refused_before_the_body_is_read() {
    let h = Harness::start().await;
    let routes = [
        (Method::POST, "/v1/query"),
        (Method::POST, "/v1/transact"),
        (Method::DELETE, "/v1/session"),
    ];
    let bodies: [(&str, Option<&str>, &[u8]); 3] = [
        ("malformed JSON", Some("application/json"), b"{\"query\":"),
        ("wrong shape", Some("application/json"), b"[1, 2]"),
        ("not JSON", Some("text/plain"), b"x"),
    ];
    for (method, path) in routes {
        for (case, content_type, bytes) in bodies {
            for (token, expected) in [(Some("abc.def"), "token-invalid"), (None, "token-missing")] {
                let mut request = h.http.request(method.clone(), h.url(path));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if let Some(ct) = content_type {
                    request = request.header("content-type", ct);
                }
                let response = request.body(bytes.to_vec()).send().await.unwrap();
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {case}: {body}");
                assert_eq!(code(&body), expected, "{path} {case}");
            }
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let h = Harness::start().await;
    let (_, token) = h.clerk_sign_in("frank@example.com");
    let send = |method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut request = h.http.request(method, h.url(path)).bearer_auth(&token);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        async move {
            let response = request.body(body).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let json_type = Some("application/json");
    let big = format!(
        "{{\"query\": {{\"goals\": {{}}}}, \"pad\": \"{}\"}}",
        "x".repeat(32 * 1024)
    );
    let cases: Vec<(&str, (StatusCode, Value), StatusCode, &str)> = vec![
        (
            "malformed JSON",
            send(
                Method::POST,
                "/v1/query",
                json_type,
                b"{\"query\":".to_vec(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "malformed-json",
        ),
        (
            "oversize query",
            send(
                Method::POST,
                "/v1/query",
                json_type,
                big.clone().into_bytes(),
            )
            .await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
        (
            "oversize transaction",
            send(Method::POST, "/v1/transact", json_type, big.into_bytes()).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
        (
            "wrong content type",
            send(
                Method::POST,
                "/v1/query",
                Some("text/plain"),
                b"{\"query\":{}}".to_vec(),
            )
            .await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "transaction with a bad step",
            send(
                Method::POST,
                "/v1/transact",
                json_type,
                br#"{"steps": [["explode", "goals", "x"]]}"#.to_vec(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid-transaction",
        ),
        (
            "sign-out body not JSON",
            send(
                Method::DELETE,
                "/v1/session",
                Some("text/plain"),
                b"x".to_vec(),
            )
            .await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "sign-out with a malformed refresh token",
            send(
                Method::DELETE,
                "/v1/session",
                json_type,
                br#"{"refresh_token": 5}"#.to_vec(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid-body",
        ),
        (
            "unknown route",
            send(Method::GET, "/v2/everything", None, Vec::new()).await,
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            "wrong method",
            send(Method::GET, "/v1/session", None, Vec::new()).await,
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
    ];
    for (case, (status, body), expected_status, expected_code) in cases {
        assert_eq!(status, expected_status, "{case}: {body}");
        assert_eq!(code(&body), expected_code, "{case}: {body}");
    }
    // None of that signed anyone in or out.
    assert_eq!(h.stack.instant.faults().hits(SIGN_IN_ROUTE), 0);
    h.assert_healthy().await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_refresh_token_of_someone_else_is_not_signed_out() {
    let h = Harness::start().await;
    let (_, victim_token) = h.clerk_sign_in("victim@example.com");
    let (_, victim) = h.sign_in(&victim_token).await;
    let victim_refresh = victim["refresh_token"].as_str().unwrap().to_owned();
    let (_, attacker_token) = h.clerk_sign_in("attacker@example.com");
    let response = h
        .http
        .delete(h.url("/v1/session"))
        .bearer_auth(&attacker_token)
        .json(&json!({"refresh_token": victim_refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "session-not-owned");
    // The victim is still signed in.
    let (status, again) = h.sign_in(&victim_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["refresh_token"], victim["refresh_token"]);
    h.shutdown().await;
}

#[tokio::test]
async fn a_wrong_admin_token_is_a_server_problem_and_is_never_echoed() {
    let wrong = "11111111-2222-4333-8444-555555555555";
    let h = Harness::start_with(|s| {
        s.service.strategy = auth_core::Strategy::Admin;
        s.service.instant_admin_token = Some(instant_client::AdminToken::new(wrong).unwrap());
    })
    .await;
    let (_, token) = h.clerk_sign_in("gina@example.com");
    let response = h
        .http
        .post(h.url("/v1/session"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = response.text().await.unwrap();
    assert!(!text.contains(wrong), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(code(&body), "instant-misconfigured");
    h.shutdown().await;
}
