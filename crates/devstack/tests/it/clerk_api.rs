//! The local Clerk: its tokens verify through the real `clerk-jwt` path (publishable key
//! → loopback issuer and JWKS), and its Backend API answers like Clerk's.

use std::time::Duration;

use clerk_jwt::{PublishableKey, Verifier};
use devstack::clerk::SigningKeySource;
use devstack::{ClerkConfig, Error, LocalClerk, MintOptions, NewUser};
use serde_json::{Value, json};

use crate::support::{answer, client};

async fn local_clerk() -> LocalClerk {
    LocalClerk::start(ClerkConfig::default()).await.unwrap()
}

fn without_trace(mut body: Value) -> Value {
    let trace = body
        .as_object_mut()
        .and_then(|m| m.remove("clerk_trace_id"));
    assert!(trace.is_some_and(|t| t.is_string()), "clerk_trace_id");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verify_from_the_publishable_key_alone() {
    let clerk = local_clerk().await;
    let pk = PublishableKey::parse(clerk.publishable_key().as_str()).unwrap();
    assert_eq!(pk.issuer(), clerk.url());
    assert!(clerk.url().starts_with("http://127.0.0.1:"));

    let (status, discovery) = answer(client().get(pk.discovery_url()).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(discovery["issuer"], clerk.url());
    assert_eq!(discovery["jwks_uri"], pk.jwks_url());
    let (_, jwks) = answer(client().get(pk.jwks_url()).send().await.unwrap()).await;
    assert_eq!(jwks, clerk.jwks());
    assert_eq!(jwks["keys"][0]["kid"], clerk.kid());
    assert!(clerk.kid().starts_with("ins_"));

    // Every rule on, as the project's own server verifies.
    let verifier = Verifier::builder().publishable_key(pk).build().unwrap();
    let signed_in = clerk.sign_in("alice@example.com").unwrap();
    let token = clerk
        .mint_with(
            &signed_in.session.id,
            &MintOptions::new().azp("https://app.example"),
        )
        .unwrap();
    let claims = verifier.verify(&token).await.unwrap();
    assert_eq!(claims.sub, signed_in.user.id);
    assert_eq!(claims.sid, signed_in.session.id);
    assert_eq!(claims.azp.as_deref(), Some("https://app.example"));
    assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
    assert_eq!(claims.email_verified, Some(true));
    assert_eq!(claims.version, 2);

    let inspection = clerk_jwt::inspect(&clerk.mint(&signed_in.session.id).unwrap()).unwrap();
    let p = &inspection.payload;
    let iat = p["iat"].as_i64().unwrap();
    assert_eq!(p["exp"].as_i64().unwrap() - iat, 60);
    assert_eq!(p["nbf"].as_i64().unwrap(), iat - 10);
    assert_eq!(p["v"], 2);
    assert_eq!(p["sts"], "active");
    assert_eq!(p["fva"], json!([0, -1]));
    assert_eq!(p["email_verified"], true);
    assert!(p.get("azp").is_none(), "no azp unless asked");
    assert_eq!(inspection.header["kid"], clerk.kid());
    assert_eq!(inspection.header["alg"], "RS256");
    assert_eq!(inspection.header["cat"], clerk_jwt::CAT_SESSION);

    // Revoked sessions mint nothing.
    clerk.revoke_session(&signed_in.session.id).unwrap();
    assert!(matches!(
        clerk.mint(&signed_in.session.id),
        Err(Error::SessionNotActive { .. })
    ));
    clerk.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_api_answers_like_clerk() {
    let clerk = local_clerk().await;
    let url = |path: &str| format!("{}/v1{path}", clerk.url());
    let secret = clerk.secret_key().expose().to_owned();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = client().request(method, url(path)).bearer_auth(&secret);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { answer(request.send().await.unwrap()).await }
    };

    // Secret key problems.
    let unauthorized = json!({"errors": [{
        "code": "authentication_invalid",
        "message": "Invalid authentication",
        "long_message": "Unable to authenticate the request, you need to supply an active API key",
    }]});
    for auth in [Some("sk_test_wrong"), None] {
        let mut request = client().get(url("/jwks"));
        if let Some(auth) = auth {
            request = request.bearer_auth(auth);
        }
        let (status, body) = answer(request.send().await.unwrap()).await;
        assert_eq!((status, without_trace(body)), (401, unauthorized.clone()));
    }
    let (status, jwks) = call(reqwest::Method::GET, "/jwks", None).await;
    assert_eq!((status, jwks), (200, clerk.jwks()));

    // Unknown ids.
    let not_found = json!({"errors": [{"code": "resource_not_found", "message": "not found", "long_message": "Resource not found"}]});
    for path in ["/users/user_nope", "/sessions/sess_nope"] {
        let (status, body) = call(reqwest::Method::GET, path, None).await;
        assert_eq!(
            (status, without_trace(body)),
            (404, not_found.clone()),
            "{path}"
        );
    }
    let (status, body) = call(
        reqwest::Method::POST,
        "/sessions/sess_nope/tokens",
        Some(json!({})),
    )
    .await;
    assert_eq!((status, without_trace(body)), (404, not_found.clone()));

    // Users and sessions.
    let (status, user) = call(
        reqwest::Method::POST,
        "/users",
        Some(json!({"email_address": ["bob@example.com"], "first_name": "Bob"})),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["object"], "user");
    assert_eq!(
        user["email_addresses"][0]["email_address"],
        "bob@example.com"
    );
    assert_eq!(
        user["email_addresses"][0]["verification"]["status"],
        "verified"
    );
    assert_eq!(
        user["primary_email_address_id"],
        user["email_addresses"][0]["id"]
    );
    let user_id = user["id"].as_str().unwrap();
    assert!(user_id.starts_with("user_"));
    let (status, body) = call(
        reqwest::Method::POST,
        "/users",
        Some(json!({"email_address": ["BOB@example.com"]})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["code"], "form_identifier_exists");
    let (_, found) = call(
        reqwest::Method::GET,
        "/users?email_address=bob%40example.com",
        None,
    )
    .await;
    assert_eq!(found[0]["id"], user_id);

    let (status, session) = call(
        reqwest::Method::POST,
        "/sessions",
        Some(json!({"user_id": user_id})),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["object"], "session");
    assert_eq!(session["status"], "active");
    let session_id = session["id"].as_str().unwrap();
    let (_, listed) = call(
        reqwest::Method::GET,
        &format!("/sessions?user_id={user_id}&status=active&paginated=true"),
        None,
    )
    .await;
    assert_eq!(listed["total_count"], 1);
    assert_eq!(listed["data"][0]["id"], session_id);

    let (status, token) = call(
        reqwest::Method::POST,
        &format!("/sessions/{session_id}/tokens"),
        Some(json!({"expires_in_seconds": 120})),
    )
    .await;
    assert_eq!(status, 200);
    let payload = clerk_jwt::inspect(token["jwt"].as_str().unwrap())
        .unwrap()
        .payload;
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        120
    );
    assert!(payload.get("azp").is_none());

    let (status, revoked) = call(
        reqwest::Method::POST,
        &format!("/sessions/{session_id}/revoke"),
        None,
    )
    .await;
    assert_eq!((status, &revoked["status"]), (200, &json!("revoked")));
    let (status, body) = call(
        reqwest::Method::POST,
        &format!("/sessions/{session_id}/tokens"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "session_not_active");

    let (status, body) = call(reqwest::Method::DELETE, &format!("/users/{user_id}"), None).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"object": "user", "id": user_id, "deleted": true})
        )
    );
    let (status, _) = call(reqwest::Method::GET, &format!("/users/{user_id}"), None).await;
    assert_eq!(status, 404);
    let (status, body) = call(reqwest::Method::GET, "/nope", None).await;
    assert_eq!((status, without_trace(body)), (404, not_found));
    clerk.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_client_gets_a_session_token_by_email() {
    let clerk = local_clerk().await;
    let backend = clerk.backend();
    let first = backend.session_token("erin@example.com").await.unwrap();
    let second = backend.session_token("erin@example.com").await.unwrap();
    let sid = |t: &str| clerk_jwt::inspect(t).unwrap().payload["sid"].clone();
    assert_eq!(sid(&first), sid(&second), "the active session is reused");
    let user = clerk.user_by_email("erin@example.com").unwrap();
    assert_eq!(
        clerk_jwt::inspect(&first).unwrap().payload["sub"],
        user.id.as_str()
    );

    let wrong =
        devstack::ClerkBackend::new(clerk.url(), clerk_jwt::SecretKey::new("sk_test_x").unwrap());
    let error = wrong.session_token("erin@example.com").await.unwrap_err();
    assert!(
        matches!(&error, Error::Backend { status: 401, code, .. } if code == "authentication_invalid"),
        "{error}"
    );
    assert!(!error.to_string().contains("sk_test_x"), "{error}");
    clerk.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_client_mints_with_options_over_http() {
    let clerk = local_clerk().await;
    let backend = clerk.backend();
    let payload = |t: &str| clerk_jwt::inspect(t).unwrap().payload;
    let now = clerk.now();

    let options = MintOptions::new()
        .azp("http://localhost:3000")
        .claim("org_id", "org_1")
        .claim("meta", json!({"plan": "pro"}))
        .without_email()
        .expires_in(300);
    let token = backend
        .session_token_with("frank@example.com", &options)
        .await
        .unwrap();
    let claims = payload(&token);
    assert_eq!(claims["azp"], "http://localhost:3000");
    assert_eq!(claims["org_id"], "org_1");
    assert_eq!(claims["meta"], json!({"plan": "pro"}));
    assert!(!claims.contains_key("email"), "{claims:?}");
    assert!(!claims.contains_key("email_verified"), "{claims:?}");
    let exp = claims["exp"].as_i64().unwrap();
    assert!(
        (now + 300..=now + 310).contains(&exp),
        "exp {exp}, now {now}"
    );

    // Zero or negative: a token that has already expired, one lifetime long.
    let token = backend
        .session_token_with("frank@example.com", &MintOptions::new().expires_in(-120))
        .await
        .unwrap();
    let claims = payload(&token);
    let (exp, iat) = (
        claims["exp"].as_i64().unwrap(),
        claims["iat"].as_i64().unwrap(),
    );
    assert!(
        (now - 120..=now - 110).contains(&exp),
        "exp {exp}, now {now}"
    );
    assert_eq!(exp - iat, 60);
    assert_eq!(
        claims["email"], "frank@example.com",
        "email stays by default"
    );
    let verifier = Verifier::builder()
        .publishable_key(PublishableKey::parse(clerk.publishable_key().as_str()).unwrap())
        .build()
        .unwrap();
    let error = verifier.verify(&token).await.unwrap_err();
    assert_eq!(
        error.reason(),
        Some(clerk_jwt::Reason::TokenExpired),
        "{error}"
    );

    // A wrong type is refused, naming the key.
    let session = clerk_jwt::inspect(&token).unwrap().payload["sid"].clone();
    let response = client()
        .post(format!(
            "{}/v1/sessions/{}/tokens",
            clerk.url(),
            session.as_str().unwrap()
        ))
        .bearer_auth(clerk.secret_key().expose())
        .json(&json!({"expires_in": "soon"}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["meta"]["param_name"], "expires_in");
    clerk.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_keeps_kid_and_secret_key_across_restarts() {
    let dir = std::env::temp_dir().join(format!("devstack-key-{}", std::process::id()));
    let path = dir.join("clerk-key.pem");
    let _ = std::fs::remove_dir_all(&dir);
    let config = ClerkConfig::default().signing_key(SigningKeySource::File(path.clone()));
    let first = LocalClerk::start(config.clone()).await.unwrap();
    let (kid, secret) = (first.kid().to_owned(), first.secret_key().clone());
    let token = first.session_token("alice@example.com").unwrap();
    first.shutdown().await;
    assert!(path.exists());

    let second = LocalClerk::start(config).await.unwrap();
    assert_eq!(second.kid(), kid);
    assert_eq!(second.secret_key(), &secret);
    // The old token still verifies against the restarted instance's keys.
    let verifier = Verifier::builder()
        .issuer(
            clerk_jwt::inspect(&token).unwrap().payload["iss"]
                .as_str()
                .unwrap(),
        )
        .keys(clerk_jwt::KeySet::from_jwks_json(second.jwks().to_string().as_bytes()).unwrap())
        .build()
        .unwrap();
    verifier.verify(&token).await.unwrap();
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_claims_and_lifetime_are_configurable() {
    let clerk = LocalClerk::start(
        ClerkConfig::default()
            .session_claims(json!({
                "email": "{{user.primary_email_address}}",
                "name": "{{user.first_name}}",
                "role": "{{user.public_metadata.role}}",
            }))
            .token_lifetime(Duration::from_secs(300)),
    )
    .await
    .unwrap();
    let phone_only = clerk
        .create_user(
            NewUser::without_email()
                .first_name("Pat")
                .public_metadata(json!({"role": "admin"})),
        )
        .unwrap();
    let session = clerk.create_session(&phone_only.id).unwrap();
    let payload = clerk_jwt::inspect(&clerk.mint(&session.id).unwrap())
        .unwrap()
        .payload;
    assert_eq!(payload["email"], Value::Null);
    assert_eq!(payload["name"], "Pat");
    assert_eq!(payload["role"], "admin");
    assert!(payload.get("email_verified").is_none());
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        300
    );
    clerk.shutdown().await;
}
