//! The whole flow over HTTP: a session token minted at the local Clerk signs the user in
//! at the emulator, the user queries as themselves, signs out, and the refresh token dies.

use reqwest::Method;
use serde_json::json;

use crate::support::{admin, answer, client, post, scrub, sign_in, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerk_token_signs_in_queries_and_signs_out() {
    let stack = stack().await;
    let clerk = &stack.clerk;

    // Mint at the local Clerk through its Backend API, as a server would.
    let signed_in = clerk.sign_in("alice@example.com").unwrap();
    let (status, minted) = answer(
        client()
            .post(format!(
                "{}/v1/sessions/{}/tokens",
                clerk.url(),
                signed_in.session.id
            ))
            .bearer_auth(clerk.secret_key().expose())
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["object"], "token");
    let token = minted["jwt"].as_str().unwrap();

    // Sign in at the emulator.
    let (status, first) = sign_in(&stack, token, None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["created"], true);
    let user = &first["user"];
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["app_id"], stack.app.id);
    assert_eq!(user["isGuest"], false);
    let user_id = user["id"].as_str().unwrap();
    let refresh = user["refresh_token"].as_str().unwrap().to_owned();
    assert!(first.get("refresh_token").is_none(), "only inside user");

    // A second sign-in that offers the token keeps it: no pile-up.
    let again = clerk.mint(&signed_in.session.id).unwrap();
    let (status, second) = sign_in(&stack, &again, Some(&refresh)).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["created"], false);
    assert_eq!(second["user"]["id"], user_id);
    assert_eq!(second["user"]["refresh_token"], refresh.as_str());
    assert_eq!(
        stack
            .instant
            .refresh_token_count(&stack.app.id, user_id)
            .unwrap(),
        1
    );

    // Without it, a new one is issued every time.
    let (_, third) = sign_in(&stack, &clerk.mint(&signed_in.session.id).unwrap(), None).await;
    assert_ne!(third["user"]["refresh_token"], refresh.as_str());
    assert_eq!(
        stack
            .instant
            .refresh_token_count(&stack.app.id, user_id)
            .unwrap(),
        2
    );

    // Write and query as that user (as-token needs no admin token).
    let as_user = |method: Method, path: &str| {
        client()
            .request(
                method,
                format!("{}{path}?app_id={}", stack.instant.url(), stack.app.id),
            )
            .header("content-type", "application/json")
            .header("app-id", &stack.app.id)
            .header("as-token", &refresh)
    };
    let goal = "00000000-0000-4000-8000-000000000001";
    let (status, tx) = answer(
        as_user(Method::POST, "/admin/transact")
            .json(&json!({
                "steps": [
                    ["update", "goals", goal, {"title": "Get fit"}],
                    ["link", "goals", goal, {"$users": user_id}],
                ],
                "throw-on-missing-attrs?": false,
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{tx}");
    assert!(tx["tx-id"].is_u64());
    let (status, result) = answer(
        as_user(Method::POST, "/admin/query")
            .json(&json!({
                "query": {"goals": {"$": {"where": {"$users.id": user_id}}, "$users": {}}},
                "inference?": false,
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["goals"][0]["title"], "Get fit");
    assert_eq!(
        result["goals"][0]["$users"][0]["email"],
        "alice@example.com"
    );

    // Sign out, then the token is dead everywhere.
    let (status, body) = post(
        &format!("{}/runtime/signout", stack.instant.url()),
        &json!({"app_id": stack.app.id, "refresh_token": refresh}),
    )
    .await;
    assert_eq!((status, body), (200, json!({})));
    let (status, body) = post(
        &format!("{}/runtime/auth/verify_refresh_token", stack.instant.url()),
        &json!({"app-id": stack.app.id, "refresh-token": refresh}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        scrub(body),
        json!({
            "type": "record-not-found",
            "message": "Record not found: app-user",
            "hint": {
                "args": [{"app-id": stack.app.id, "refresh-token": refresh}],
                "record-type": "app-user",
            },
            "trace-id": "[trace-id]",
        })
    );
    let (status, body) = answer(
        as_user(Method::POST, "/admin/query")
            .json(&json!({"query": {"goals": {}}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "record-not-found");
    // Offering the dead token at sign-in fails the whole sign-in.
    let (status, body) = sign_in(
        &stack,
        &clerk.mint(&signed_in.session.id).unwrap(),
        Some(&refresh),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Record not found: app-user");
    assert_eq!(
        stack
            .instant
            .refresh_token_count(&stack.app.id, user_id)
            .unwrap(),
        1
    );

    // The admin sees the same user.
    let (status, body) = answer(
        admin(
            &stack,
            Method::GET,
            "/admin/users?email=alice%40example.com",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["id"], user_id);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_found_by_link_and_email_and_unverified_emails_are_dropped() {
    let stack = stack().await;
    let clerk = &stack.clerk;

    // An unverified email signs in without an email.
    let bob = clerk
        .create_user(devstack::NewUser::with_email("bob@example.com").unverified())
        .unwrap();
    let session = clerk.create_session(&bob.id).unwrap();
    let (status, body) = sign_in(&stack, &clerk.mint(&session.id).unwrap(), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["user"].get("email").is_none(), "{body}");
    let bob_instant = body["user"]["id"].clone();

    // The string "true" is not the boolean true for InstantDB.
    let token = clerk
        .mint_with(
            &session.id,
            &devstack::MintOptions::new().claim("email_verified", "true"),
        )
        .unwrap();
    let (_, body) = sign_in(&stack, &token, None).await;
    assert!(body["user"].get("email").is_none(), "{body}");
    assert_eq!(
        body["user"]["id"], bob_instant,
        "found again by (sub, provider)"
    );

    // Once verified, the email is stored on the same user (found by the link).
    clerk
        .update_user(&bob.id, devstack::UserUpdate::new().email_verified(true))
        .unwrap();
    let (_, body) = sign_in(&stack, &clerk.mint(&session.id).unwrap(), None).await;
    assert_eq!(body["user"]["id"], bob_instant);
    assert_eq!(body["user"]["email"], "bob@example.com");
    assert_eq!(body["created"], false);

    // A user created by email through the admin API is found by email at sign-in.
    let (user, _) = stack
        .instant
        .create_refresh_token(&stack.app.id, "carol@example.com")
        .unwrap();
    let (_, body) = sign_in(
        &stack,
        &clerk.session_token("carol@example.com").unwrap(),
        None,
    )
    .await;
    assert_eq!(body["user"]["id"], user["id"]);
    assert_eq!(body["created"], false);

    // A client that allows unverified emails keeps them.
    stack
        .instant
        .add_clerk_client(
            &stack.app.id,
            devstack::ClerkClient::new("clerk2", clerk.publishable_key().clone())
                .allow_unverified_email(true),
        )
        .unwrap();
    let dave = clerk
        .create_user(devstack::NewUser::with_email("dave@example.com").unverified())
        .unwrap();
    let token = clerk
        .mint(&clerk.create_session(&dave.id).unwrap().id)
        .unwrap();
    let (status, body) = post(
        &format!("{}/runtime/oauth/id_token", stack.instant.url()),
        &json!({"app_id": stack.app.id, "id_token": token, "client_name": "clerk2"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], "dave@example.com");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instantdb_accepts_what_only_our_own_verifier_must_refuse() {
    let stack = stack().await;
    let clerk = &stack.clerk;
    let session = clerk.sign_in("alice@example.com").unwrap().session;
    let builder = || {
        clerk
            .token_builder(&session.id, &devstack::MintOptions::new())
            .unwrap()
    };
    // InstantDB checks neither aud nor azp, accepts JWT-template tokens (no sid),
    // pending sessions, and tokens without exp: the project's server must refuse them.
    for token in [
        builder()
            .claim("azp", "https://evil.example")
            .claim("aud", "someone-else")
            .sign(),
        builder()
            .without_claim("sid")
            .header("cat", clerk_jwt::CAT_JWT_TEMPLATE)
            .sign(),
        builder().claim("sts", "pending").sign(),
        builder().without_claim("exp").sign(),
    ] {
        let (status, body) = sign_in(&stack, &token, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["email"], "alice@example.com");
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_through_the_admin_api() {
    let stack = stack().await;
    let app = stack.app.id.clone();
    let call = |method: Method, path: &str, body: Option<serde_json::Value>| {
        let request = admin(&stack, method, path);
        async move {
            let request = match body {
                Some(body) => request.json(&body),
                None => request,
            };
            answer(request.send().await.unwrap()).await
        }
    };
    let (status, first) = call(
        Method::POST,
        "/admin/refresh_tokens",
        Some(json!({"email": "Erin@Example.com"})),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["created"], true);
    assert_eq!(first["user"]["email"], "erin@example.com");
    let user_id = first["user"]["id"].as_str().unwrap().to_owned();
    let first_token = first["user"]["refresh_token"].as_str().unwrap().to_owned();
    let (_, second) = call(
        Method::POST,
        "/admin/refresh_tokens",
        Some(json!({"email": "erin@example.com"})),
    )
    .await;
    assert_eq!(second["created"], false);
    assert_ne!(second["user"]["refresh_token"], first_token.as_str());
    assert_eq!(
        stack.instant.refresh_token_count(&app, &user_id).unwrap(),
        2
    );

    // A user by id, without email.
    let id = "99999999-8888-4777-8666-555555555555";
    let (_, by_id) = call(
        Method::POST,
        "/admin/refresh_tokens",
        Some(json!({"id": id})),
    )
    .await;
    assert_eq!(by_id["created"], true);
    assert_eq!(by_id["user"]["id"], id);
    assert!(by_id["user"].get("email").is_none());

    // Sign out one token, then all of a user's tokens.
    let (status, body) = call(
        Method::POST,
        "/admin/sign_out",
        Some(json!({"refresh_token": first_token})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"ok": true})));
    assert_eq!(
        stack.instant.refresh_token_count(&app, &user_id).unwrap(),
        1
    );
    let (_, gone) = call(
        Method::GET,
        &format!("/admin/users?refresh_token={first_token}"),
        None,
    )
    .await;
    assert_eq!(gone, json!({"user": null}));
    call(
        Method::POST,
        "/admin/sign_out",
        Some(json!({"id": user_id})),
    )
    .await;
    assert_eq!(
        stack.instant.refresh_token_count(&app, &user_id).unwrap(),
        0
    );

    // Impersonating by email needs the admin token and a real user.
    let (status, body) = answer(
        admin(&stack, Method::POST, "/admin/query")
            .header("as-email", "erin@example.com")
            .json(&json!({"query": {"$users": {"$": {"where": {"email": "erin@example.com"}}}}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["$users"][0]["id"], user_id.as_str());

    // Deleting returns the user and removes their tokens.
    let (_, token) = call(
        Method::POST,
        "/admin/refresh_tokens",
        Some(json!({"id": id})),
    )
    .await;
    let (status, deleted) = call(Method::DELETE, &format!("/admin/users?id={id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["deleted"]["id"], id);
    assert_eq!(deleted["deleted"]["app_id"], app.as_str());
    let refresh = devstack::RefreshToken::new(token["user"]["refresh_token"].as_str().unwrap());
    assert_eq!(
        stack.instant.refresh_token_user(&app, &refresh).unwrap(),
        None
    );
    assert_eq!(
        scrub(
            post(
                &format!("{}/runtime/auth/verify_refresh_token", stack.instant.url()),
                &json!({"app-id": app, "refresh-token": refresh.expose()}),
            )
            .await
            .1
        )["type"],
        "record-not-found"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_fields_apply_to_new_users_only() {
    let stack = stack().await;
    let url = format!("{}/runtime/oauth/id_token", stack.instant.url());
    let token = stack.clerk.session_token("frank@example.com").unwrap();
    let request = |extra: serde_json::Value| json!({"app_id": stack.app.id, "id_token": token, "client_name": "clerk", "extra_fields": extra});
    let (status, body) = post(&url, &request(json!({"email": "x@example.com"}))).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Validation failed for extra-fields: Cannot set system field: email"
    );
    let (status, body) = post(&url, &request(json!({"nickname": "frankie"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["nickname"], "frankie");
    let (_, body) = post(&url, &request(json!({"nickname": "ignored"}))).await;
    assert_eq!(body["created"], false);
    assert_eq!(body["user"]["nickname"], "frankie");
    stack.shutdown().await;
}
