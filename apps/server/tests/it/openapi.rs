//! The OpenAPI description at `/openapi.json`: a committed snapshot, and the route
//! table and the document agreeing both ways.

use std::collections::BTreeSet;

use clerk_instant_server::Running;
use clerk_instant_server::config::Mode;
use clerk_instant_server::routes::Route;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Harness, options};

async fn description(url: &str) -> Value {
    let response = reqwest::get(format!("{url}/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{:?}",
        response.headers()
    );
    response.json().await.unwrap()
}

fn paths(document: &Value) -> BTreeSet<String> {
    document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn route_paths(routes: impl Iterator<Item = Route>) -> BTreeSet<String> {
    routes.map(|route| route.path().to_owned()).collect()
}

async fn dev() -> Running {
    clerk_instant_server::start(Mode::Dev(Box::new(options())))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_description_is_openapi_3_1_and_matches_its_snapshot() {
    let server = dev().await;
    let document = description(&server.url()).await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        document["openapi"]
    );
    insta::assert_json_snapshot!("openapi", document);
    server.shutdown().await;
}

/// Every route the server serves has a path in the document and every path in the
/// document is served: in dev mode all of them, otherwise all but the dev routes.
#[tokio::test]
async fn the_document_describes_exactly_the_routes_served() {
    let server = dev().await;
    let document = description(&server.url()).await;
    assert_eq!(paths(&document), route_paths(Route::ALL.iter().copied()));
    server.shutdown().await;

    let h = Harness::start().await;
    let document = description(&h.server.url()).await;
    let served = route_paths(
        Route::ALL
            .iter()
            .copied()
            .filter(|route| !route.path().starts_with("/dev/")),
    );
    assert_eq!(paths(&document), served);
    h.shutdown().await;
}

/// Each path's documented methods are the ones its route takes: the others are 405.
#[tokio::test]
async fn every_documented_method_is_routed_and_no_other() {
    let server = dev().await;
    let document = description(&server.url()).await;
    let http = reqwest::Client::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in [Method::GET, Method::POST, Method::DELETE, Method::PUT] {
            let documented = item.get(method.as_str().to_ascii_lowercase()).is_some();
            // A path parameter gets a value that exists (the dev console's script).
            let concrete = path.replace("{asset}", "console.js");
            let status = http
                .request(method.clone(), format!("{}{concrete}", server.url()))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(
                status != StatusCode::METHOD_NOT_ALLOWED,
                documented,
                "{method} {path}: {status}"
            );
            assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    server.shutdown().await;
}

/// Every error code with a fixed status is in the `ErrorCode` schema's description,
/// and every authenticated operation names both security schemes.
#[tokio::test]
async fn error_codes_and_security_schemes_are_described() {
    let server = dev().await;
    let document = description(&server.url()).await;
    let catalogue = document["components"]["schemas"]["ErrorCode"]["description"]
        .as_str()
        .unwrap()
        .to_owned();
    for code in clerk_instant_server::error::Code::FIXED {
        assert!(
            catalogue.contains(&format!("`{}`", code.as_str())),
            "{code:?} missing from {catalogue}"
        );
    }
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["clerk_bearer"]["scheme"], "bearer");
    assert_eq!(schemes["clerk_session_cookie"]["in"], "cookie");
    assert_eq!(schemes["clerk_session_cookie"]["name"], "__session");
    let security = json!([{"clerk_bearer": []}, {"clerk_session_cookie": []}]);
    for route in Route::ALL.iter().filter(|route| route.takes_clerk_token()) {
        for (method, operation) in document["paths"][route.path()].as_object().unwrap() {
            assert_eq!(operation["security"], security, "{method} {}", route.path());
            assert!(
                operation["responses"].get("401").is_some(),
                "{method} {}",
                route.path()
            );
        }
    }
    server.shutdown().await;
}

/// The description lets a sign-out's body be `null`, as it lets it be empty: the
/// server takes both as no body.
#[tokio::test]
async fn a_sign_out_with_a_null_body_signs_out() {
    let h = Harness::start().await;
    let (_, token) = h.clerk_sign_in("null-body@example.com");
    let (status, body) = h.sign_in(&token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .call(
            Method::DELETE,
            "/v1/session",
            Some(&token),
            Some(Value::Null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["instant"]["status"], "done", "{body}");
    h.shutdown().await;
}

/// schemathesis found a sign-out naming a refresh token that is not a UUID answered
/// 502 after revoking the Clerk session: InstantDB refused the malformed token. Bad
/// input is now a 400 that changes nothing: the session still works.
#[tokio::test]
async fn a_sign_out_naming_a_malformed_refresh_token_is_refused_and_changes_nothing() {
    let h = Harness::start().await;
    let (_, token) = h.clerk_sign_in("malformed-rt@example.com");
    let (status, body) = h.sign_in(&token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .call(
            Method::DELETE,
            "/v1/session",
            Some(&token),
            Some(serde_json::json!({"refresh_token": "not-a-refresh-token"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(crate::support::code(&body), "invalid-body", "{body}");
    // Nothing was signed out: the same session still signs in, reused.
    let (status, body) = h.sign_in(&token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reused"], true, "{body}");
    h.shutdown().await;
}
