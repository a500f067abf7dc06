//! Every error of the spec's tables a client can trigger, with the exact body InstantDB
//! sends (only the random `trace-id` is scrubbed).

use devstack::{ClerkClient, DevStack, MintOptions, SigningKey};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{admin, answer, client, post, scrub, sign_in, stack};

fn id_token_url(stack: &DevStack) -> String {
    format!("{}/runtime/oauth/id_token", stack.instant.url())
}

async fn sign_in_body(stack: &DevStack, body: Value) -> (u16, Value) {
    let (status, body) = post(&id_token_url(stack), &body).await;
    (status, scrub(body))
}

fn bad_request(kind: &str, message: &str, hint: Value) -> (u16, Value) {
    let mut body = json!({"type": kind, "message": message, "trace-id": "[trace-id]"});
    body["hint"] = hint;
    (400, body)
}

fn oauth(message: &str) -> (u16, Value) {
    (400, json!({"type": "oauth-error", "error": message}))
}

fn id_token_validation(token: &str, message: &str) -> (u16, Value) {
    bad_request(
        "validation-failed",
        &format!("Validation failed for id_token: {message}"),
        json!({"data-type": "id_token", "input": token, "errors": [{"message": message}]}),
    )
}

async fn check_sign_in(stack: &DevStack, token: &str, want: (u16, Value)) {
    let (status, body) = sign_in(stack, token, None).await;
    assert_eq!((status, scrub(body)), want, "token {token}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_parameter_errors() {
    let stack = stack().await;
    let app_id = stack.app.id.clone();
    let cases = [
        (
            json!({"app_id": app_id, "client_name": "clerk"}),
            bad_request(
                "param-missing",
                r#"Missing parameter: ["body" "id_token"]"#,
                json!({"in": ["body", "id_token"]}),
            ),
        ),
        (
            json!({"id_token": "x.y.z", "client_name": "clerk"}),
            bad_request(
                "param-missing",
                r#"Missing parameter: ["body" "app_id"]"#,
                json!({"in": ["body", "app_id"]}),
            ),
        ),
        (
            json!({"app_id": "not-a-uuid", "id_token": "x.y.z", "client_name": "clerk"}),
            bad_request(
                "param-malformed",
                r#"Malformed parameter: ["body" "app_id"]"#,
                json!({"in": ["body", "app_id"], "original-input": "not-a-uuid"}),
            ),
        ),
        (
            json!({"app_id": app_id, "id_token": "x.y.z"}),
            bad_request(
                "param-missing",
                r#"Missing parameter: ["body" "client_name"]"#,
                json!({"in": ["body", "client_name"]}),
            ),
        ),
        (
            json!({"app_id": app_id, "id_token": "x.y.z", "client_name": "clerk", "refresh_token": "nope"}),
            bad_request(
                "param-malformed",
                r#"Malformed parameter: ["body" "refresh_token"]"#,
                json!({"in": ["body", "refresh_token"], "original-input": "nope"}),
            ),
        ),
        (
            json!({"app_id": app_id, "id_token": "x.y.z", "client_name": "github"}),
            bad_request(
                "record-not-found",
                "Record not found: app-oauth-client",
                json!({
                    "args": [{"app-id": app_id, "client-name": "github"}],
                    "record-type": "app-oauth-client",
                }),
            ),
        ),
        (
            json!({"app_id": app_id, "id_token": "x.y.z", "client_name": "clerk"}),
            oauth("Invalid JWT."),
        ),
    ];
    for (request, want) in cases {
        assert_eq!(
            sign_in_body(&stack, request.clone()).await,
            want,
            "{request}"
        );
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_token_errors() {
    let stack = stack().await;
    let clerk = &stack.clerk;
    let session = clerk.sign_in("alice@example.com").unwrap().session;
    let now = clerk.now();
    let builder = || {
        clerk
            .token_builder(&session.id, &MintOptions::new())
            .unwrap()
    };

    // Another instance's key: unknown kid.
    let stranger = SigningKey::generate("ins_2stranger");
    let foreign = builder().header("kid", stranger.kid()).sign_with(&stranger);
    check_sign_in(
        &stack,
        &foreign,
        oauth("Error validating JWT. Could not find signing key."),
    )
    .await;

    // Our kid, another key's signature.
    let forged = builder().sign_with(&stranger);
    check_sign_in(
        &stack,
        &forged,
        oauth("Error validating JWT. Signature is invalid."),
    )
    .await;

    // Expired.
    let expired = clerk
        .mint_with(&session.id, &MintOptions::new().issued_at(now - 120))
        .unwrap();
    check_sign_in(
        &stack,
        &expired,
        oauth("Error validating JWT. Token is expired."),
    )
    .await;

    // Not an RSA token.
    let hs256 = builder().header("alg", "HS256").sign();
    check_sign_in(&stack, &hs256, oauth("Unsupported signing algorithm HS256")).await;

    // No kid at all.
    let no_kid = builder().without_header("kid").sign();
    check_sign_in(
        &stack,
        &no_kid,
        oauth("Error validating JWT. Could not find signing key."),
    )
    .await;

    // Wrong issuer (a satellite domain, say).
    let wrong_issuer = builder().claim("iss", "https://clerk.satellite.dev").sign();
    check_sign_in(
        &stack,
        &wrong_issuer,
        id_token_validation(
            &wrong_issuer,
            &format!("The id_token wasn't issued by {}.", clerk.url()),
        ),
    )
    .await;

    // No subject.
    let no_sub = builder().without_claim("sub").sign();
    check_sign_in(
        &stack,
        &no_sub,
        id_token_validation(&no_sub, "The id_token had no subject."),
    )
    .await;

    // A nonce in the request, none in a Clerk token.
    let token = clerk.mint(&session.id).unwrap();
    let (status, body) = sign_in_body(
        &stack,
        json!({"app_id": stack.app.id, "id_token": token, "client_name": "clerk", "nonce": "n-123"}),
    )
    .await;
    assert_eq!(
        (status, body),
        id_token_validation(&token, "The id_token is missing a nonce.")
    );

    // nbf/iat ahead of the server clock: InstantDB answers 500.
    let future = clerk
        .mint_with(&session.id, &MintOptions::new().issued_at(now + 60))
        .unwrap();
    let (status, body) = sign_in(&stack, &future, None).await;
    assert_eq!(status, 500);
    assert_eq!(
        scrub(body),
        json!({
            "type": "unknown",
            "message": "Something went wrong. Sorry about this!",
            "hint": {"debug-uri": null},
            "trace-id": "[trace-id]",
        })
    );

    // A refresh token the emulator never issued.
    let stray = "ffffffff-0000-4111-8222-333333333333";
    let (status, body) = sign_in(&stack, &clerk.mint(&session.id).unwrap(), Some(stray)).await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "record-not-found",
            "Record not found: app-user",
            json!({
                "args": [{"app-id": stack.app.id, "refresh-token": stray}],
                "record-type": "app-user",
            }),
        )
    );

    // An Origin the app does not authorize (servers must not send one).
    let (status, body) = answer(
        client()
            .post(id_token_url(&stack))
            .header("origin", "https://evil.example")
            .json(&json!({
                "app_id": stack.app.id,
                "id_token": clerk.mint(&session.id).unwrap(),
                "client_name": "clerk",
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "validation-failed",
            "Validation failed for origin: Unauthorized origin.",
            json!({
                "data-type": "origin",
                "input": "https://evil.example",
                "errors": [{"message": "Unauthorized origin."}],
            }),
        )
    );
    stack
        .instant
        .add_authorized_origin(&stack.app.id, "https://app.example")
        .unwrap();
    let (status, _) = answer(
        client()
            .post(id_token_url(&stack))
            .header("origin", "https://app.example")
            .json(&json!({
                "app_id": stack.app.id,
                "id_token": clerk.mint(&session.id).unwrap(),
                "client_name": "clerk",
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_fails_when_discovery_fails() {
    let stack = stack().await;
    // A client whose publishable key names a host where nothing listens.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let pk = clerk_jwt::PublishableKey::for_host(
        clerk_jwt::InstanceKind::Development,
        &dead.to_string(),
    )
    .unwrap();
    stack
        .instant
        .add_clerk_client(&stack.app.id, ClerkClient::new("gone", pk))
        .unwrap();
    let token = stack.clerk.session_token("alice@example.com").unwrap();
    let (status, body) = sign_in_body(
        &stack,
        json!({"app_id": stack.app.id, "id_token": token, "client_name": "gone"}),
    )
    .await;
    assert_eq!(
        (status, body),
        oauth("Unable to fetch OAuth configuration.")
    );
    assert_eq!(
        stack.instant.discovery_url(&stack.app.id, "gone").unwrap(),
        format!("http://{dead}/.well-known/openid-configuration")
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_refresh_token_errors() {
    let stack = stack().await;
    let url = |path: &str| format!("{}{path}", stack.instant.url());
    let stray = "ffffffff-0000-4111-8222-333333333333";
    let (status, body) = post(
        &url("/runtime/auth/verify_refresh_token"),
        &json!({"app-id": stack.app.id, "refresh-token": stray}),
    )
    .await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "record-not-found",
            "Record not found: app-user",
            json!({"args": [{"app-id": stack.app.id, "refresh-token": stray}], "record-type": "app-user"}),
        )
    );
    // snake_case keys are the wrong casing here.
    let (status, body) = post(
        &url("/runtime/auth/verify_refresh_token"),
        &json!({"app_id": stack.app.id, "refresh_token": stray}),
    )
    .await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "param-missing",
            r#"Missing parameter: ["body" "refresh-token"]"#,
            json!({"in": ["body", "refresh-token"]}),
        )
    );
    // Signing out an unknown token succeeds.
    let (status, body) = post(
        &url("/runtime/signout"),
        &json!({"app_id": stack.app.id, "refresh_token": stray}),
    )
    .await;
    assert_eq!((status, body), (200, json!({})));
    // Without content-type the body is not read at all.
    let (status, body) = answer(
        client()
            .post(url("/runtime/signout"))
            .body(json!({"app_id": stack.app.id, "refresh_token": stray}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "param-missing",
            r#"Missing parameter: ["body" "app_id"]"#,
            json!({"in": ["body", "app_id"]}),
        )
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_auth_errors() {
    let stack = stack().await;
    let app_id = stack.app.id.clone();
    let query = json!({"query": {"goals": {}}, "inference?": false});
    let bad_token = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    let url = format!("{}/admin/query", stack.instant.url());
    let (status, body) = answer(
        client()
            .post(format!("{url}?app_id={app_id}"))
            .header("app-id", &app_id)
            .header("authorization", format!("Bearer {bad_token}"))
            .json(&query)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "record-not-found",
            "Record not found: app-admin-token",
            json!({
                "args": [{"app-id": app_id, "token": bad_token}],
                "message": "This admin token may be expired or invalid. Or you may have provided an incorrect app ID.",
                "record-type": "app-admin-token",
            }),
        )
    );

    let (status, body) = answer(
        client()
            .post(&url)
            .header("app-id", &app_id)
            .json(&query)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "param-missing",
            r#"Missing parameter: ["headers" "authorization"]"#,
            json!({"in": ["headers", "authorization"]}),
        )
    );

    let (status, body) = answer(client().post(&url).json(&query).send().await.unwrap()).await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "param-missing",
            r#"Missing parameter: ["headers" "app-id"]"#,
            json!({"in": ["headers", "app-id"], "possible-ins": [["query-params", "app_id"]]}),
        )
    );

    // Impersonation that names nobody.
    let (status, body) = answer(
        admin(&stack, Method::POST, "/admin/query")
            .header("as-email", "nobody@example.com")
            .json(&query)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "record-not-found",
            "Record not found: app-user",
            json!({"args": [{"app-id": app_id, "email": "nobody@example.com"}], "record-type": "app-user"}),
        )
    );
    let stray = "ffffffff-0000-4111-8222-333333333333";
    let (status, body) = answer(
        client()
            .post(&url)
            .header("app-id", &app_id)
            .header("as-token", stray)
            .json(&query)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "record-not-found",
            "Record not found: app-user",
            json!({"args": [{"app-id": app_id, "refresh-token": stray}], "record-type": "app-user"}),
        )
    );
    let (status, body) = answer(
        client()
            .post(&url)
            .header("app-id", &app_id)
            .header("as-token", "nope")
            .json(&query)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, scrub(body)),
        bad_request(
            "param-malformed",
            r#"Malformed parameter: ["asUser" "token"]"#,
            json!({"in": ["asUser", "token"], "original-input": "nope"}),
        )
    );
    // as-guest needs no admin token; as-email does.
    let (status, body) = answer(
        client()
            .post(&url)
            .header("app-id", &app_id)
            .header("as-guest", "true")
            .json(&query)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, json!({"goals": []})));
    let (status, body) = answer(
        client()
            .post(&url)
            .header("app-id", &app_id)
            .header("as-email", "nobody@example.com")
            .json(&query)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "param-missing");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_call_errors() {
    let stack = stack().await;
    let call = |method: Method, path: &str, body: Option<Value>| {
        let request = admin(&stack, method, path);
        async move {
            let request = match body {
                Some(body) => request.json(&body),
                None => request,
            };
            let (status, body) = answer(request.send().await.unwrap()).await;
            (status, scrub(body))
        }
    };

    assert_eq!(
        call(
            Method::POST,
            "/admin/sign_out",
            Some(json!({"email": "nobody@example.com"}))
        )
        .await,
        bad_request(
            "record-not-found",
            "Record not found: app-user",
            json!({"args": [{"app-id": stack.app.id, "email": "nobody@example.com"}], "record-type": "app-user"}),
        )
    );
    assert_eq!(
        call(Method::POST, "/admin/sign_out", Some(json!({}))).await,
        bad_request(
            "validation-failed",
            "Validation failed for body: Please provide an `id`, `email`, or `refresh_token`",
            json!({"data-type": "body", "input": {}, "errors": [{"message": "Please provide an `id`, `email`, or `refresh_token`"}]}),
        )
    );
    assert_eq!(
        call(Method::POST, "/admin/refresh_tokens", Some(json!({}))).await,
        bad_request(
            "validation-failed",
            "Validation failed for body: Please provide an `email` or `id`",
            json!({"data-type": "body", "input": {}, "errors": [{"message": "Please provide an `email` or `id`"}]}),
        )
    );
    assert_eq!(
        call(
            Method::POST,
            "/admin/refresh_tokens",
            Some(json!({"email": "not an email"}))
        )
        .await,
        bad_request(
            "param-malformed",
            r#"Malformed parameter: ["body" "email"]"#,
            json!({"in": ["body", "email"], "original-input": "not an email"}),
        )
    );
    assert_eq!(
        call(Method::GET, "/admin/users", None).await,
        bad_request(
            "validation-failed",
            "Validation failed for params: Please provide a user id, email, or refresh_token",
            json!({
                "data-type": "params",
                "input": {"app_id": stack.app.id},
                "errors": [{"message": "Please provide a user id, email, or refresh_token"}],
            }),
        )
    );
    assert_eq!(
        call(Method::GET, "/admin/users?email=nobody%40example.com", None).await,
        (200, json!({"user": null}))
    );
    assert_eq!(
        call(
            Method::DELETE,
            "/admin/users?id=99999999-8888-4777-8666-555555555555",
            None
        )
        .await,
        (200, json!({"deleted": null}))
    );
    assert_eq!(
        call(
            Method::POST,
            "/admin/query",
            Some(json!({"inference?": false}))
        )
        .await,
        bad_request(
            "param-missing",
            r#"Missing parameter: ["body" "query"]"#,
            json!({"in": ["body", "query"]}),
        )
    );
    let steps = json!([["update", "profiles", "x", {"handle": "a"}]]);
    assert_eq!(
        call(
            Method::POST,
            "/admin/transact",
            Some(json!({"steps": steps, "throw-on-missing-attrs?": false}))
        )
        .await,
        bad_request(
            "validation-failed",
            "Validation failed for steps: Invalid entity ID 'x'. Entity IDs must be UUIDs or lookup references.",
            json!({
                "data-type": "steps",
                "input": steps,
                "errors": [{
                    "message": "Invalid entity ID 'x'. Entity IDs must be UUIDs or lookup references.",
                    "in": [0, 2],
                }],
            }),
        )
    );
    let steps =
        json!([["update", "goals", "00000000-0000-4000-8000-000000000001", {"title": "x"}]]);
    assert_eq!(
        call(
            Method::POST,
            "/admin/transact",
            Some(json!({"steps": steps, "throw-on-missing-attrs?": true}))
        )
        .await,
        bad_request(
            "validation-failed",
            "Validation failed for steps: Attributes are missing in your schema",
            json!({
                "data-type": "steps",
                "input": steps,
                "errors": [{
                    "message": "Attributes are missing in your schema",
                    "hint": {"attributes": ["goals.id", "goals.title"]},
                }],
            }),
        )
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_get_instantdb_404() {
    let stack = stack().await;
    let route_404 = (
        404,
        json!({"message": "Oops! We couldn't match this route."}),
    );
    for (method, path) in [
        (Method::GET, "/admin/nope"),
        (Method::GET, "/admin/query"),
        (Method::POST, "/runtime/oauth/id_token/extra"),
        (Method::GET, "/"),
    ] {
        let (status, body) = answer(
            client()
                .request(method.clone(), format!("{}{path}", stack.instant.url()))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, body), route_404, "{method} {path}");
    }
    stack.shutdown().await;
}
