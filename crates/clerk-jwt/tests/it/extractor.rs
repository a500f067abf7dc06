//! The axum extractor, served on 127.0.0.1 and called over HTTP.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use clerk_jwt::axum::{ClerkAuth, ClerkSession};
use clerk_jwt::testing::TokenBuilder;
use clerk_jwt::{
    InstanceKind, KeySet, ManualClock, PublishableKey, RemoteJwks, RemoteOptions, Verifier,
};
use serde_json::Value;

use crate::support::{ISSUER, NOW, key, session};

async fn serve(auth: ClerkAuth) -> String {
    async fn me(session: ClerkSession) -> String {
        format!("{} via {:?}", session.claims.sub, session.location)
    }
    let app = Router::new().route("/me", get(me)).with_state(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/me", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn static_auth(pk: Option<&PublishableKey>) -> ClerkAuth {
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .keys(KeySet::from_jwks_json(key().jwks().to_string().as_bytes()).unwrap())
        .clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap();
    ClerkAuth::new(verifier, pk)
}

#[tokio::test]
async fn valid_tokens_reach_the_handler_from_header_or_cookie() {
    let pk = PublishableKey::parse("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k").unwrap();
    let url = serve(static_auth(Some(&pk))).await;
    let http = reqwest::Client::new();
    let token = session().sign();
    let by_header = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(by_header.status(), 200);
    assert!(
        by_header
            .text()
            .await
            .unwrap()
            .ends_with("via AuthorizationHeader")
    );
    let by_cookie = http
        .get(&url)
        .header(
            "cookie",
            format!("__session_{}={token}", pk.cookie_suffix()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);
    assert!(by_cookie.text().await.unwrap().contains("Cookie"));
}

#[tokio::test]
async fn failures_are_json_with_the_reason_code() {
    let url = serve(static_auth(None)).await;
    let http = reqwest::Client::new();
    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token-missing");

    let expired = session().claim("exp", NOW - 60).sign();
    let response = http.get(&url).bearer_auth(&expired).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let text = response.text().await.unwrap();
    assert!(!text.contains(&expired));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "token-expired");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn unreachable_keys_are_503_not_401() {
    // A publishable key naming a loopback port where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pk =
        PublishableKey::for_host(InstanceKind::Development, &format!("127.0.0.1:{port}")).unwrap();
    let verifier = Verifier::builder()
        .publishable_key(pk.clone())
        .keys(RemoteJwks::frontend_api(&pk, RemoteOptions::default()))
        .clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap();
    let url = serve(ClerkAuth::new(verifier, Some(&pk))).await;
    let token = TokenBuilder::session(key(), &pk.issuer(), NOW).sign();
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "jwk-remote-failed-to-load");
}
