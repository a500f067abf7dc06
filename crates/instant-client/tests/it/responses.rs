//! Answers: the spec's success shapes parse into typed results; both error shapes and
//! every malformed answer map to the error a caller acts on.

use instant_client::{
    Endpoint, Error, ErrorType, IdToken, IdTokenSignIn, Outage, Query, RetryPolicy, TokenSubject,
    Transaction, TxId, User, UserRef, UserType,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::{
    EMAIL, Misbehave, RawServer, Reply, Server, anonymous_client, builder, client, refresh_token,
    spec_user, user_id,
};

fn sign_in() -> IdTokenSignIn {
    IdTokenSignIn::new(IdToken::new("eyJhbGciOi.eyJzdWIi.sig").unwrap(), "clerk")
}

fn goals() -> Query {
    Query::new(json!({"goals": {}}))
}

#[tokio::test]
async fn runtime_success_shapes_parse() {
    let mut user = spec_user();
    user["nickname"] = json!("al");
    let server = Server::scripted([
        Reply::Json(200, json!({"user": user, "created": true})),
        Reply::Json(200, json!({})),
        Reply::Json(200, json!({"user": spec_user()})),
    ])
    .await;
    let client = anonymous_client(&server.url());

    let signed_in = client.sign_in_with_id_token(&sign_in()).await.unwrap();
    assert!(signed_in.created);
    assert_eq!(signed_in.refresh_token, refresh_token());
    assert_eq!(signed_in.user.id, user_id());
    assert_eq!(signed_in.user.email.as_deref(), Some(EMAIL));
    assert_eq!(signed_in.user.user_type, Some(UserType::User));
    assert_eq!(signed_in.user.extra["nickname"], "al");
    assert_eq!(signed_in.user.refresh_token, None, "moved to SignedIn");

    client.sign_out(&refresh_token()).await.unwrap();

    let verified = client.verify_refresh_token(&refresh_token()).await.unwrap();
    assert_eq!(verified.id, user_id());
    assert_eq!(verified.refresh_token, Some(refresh_token()));
}

#[tokio::test]
async fn admin_success_shapes_parse() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Goal {
        title: String,
    }
    #[derive(Debug, Deserialize)]
    struct Goals {
        goals: Vec<Goal>,
    }
    let server = Server::scripted([
        Reply::Json(
            200,
            json!({"goals": [{"id": "00000000-0000-4000-8000-000000000001", "title": "x"}]}),
        ),
        Reply::Json(200, json!({"goals": [{"title": "typed"}]})),
        Reply::Json(200, json!({"tx-id": 987_654_321_012_i64})),
        Reply::Json(200, json!({"user": spec_user(), "created": false})),
        Reply::Json(200, json!({"user": null})),
        Reply::Json(
            200,
            json!({"user": {"id": "99999999-8888-4777-8666-555555555555"}}),
        ),
        Reply::Json(200, json!({"deleted": null})),
        Reply::Json(200, json!({"deleted": spec_user()})),
        Reply::Json(200, json!({"ok": true})),
    ])
    .await;
    let client = client(&server.url());

    let tree = client.query(&goals()).await.unwrap();
    assert_eq!(tree["goals"][0]["title"], "x");
    let typed: Goals = client.query_as(&goals()).await.unwrap();
    assert_eq!(
        typed.goals,
        [Goal {
            title: "typed".into()
        }]
    );

    let tx = Transaction::new().delete("goals", user_id());
    assert_eq!(client.transact(&tx).await.unwrap(), TxId(987_654_321_012));

    let token = client
        .create_token(&TokenSubject::Email(EMAIL.into()))
        .await
        .unwrap();
    assert!(!token.created);
    assert_eq!(token.refresh_token, refresh_token());

    let by_email = UserRef::Email(EMAIL.into());
    assert_eq!(client.get_user(&by_email).await.unwrap(), None);
    let minimal = client.get_user(&by_email).await.unwrap().unwrap();
    assert_eq!(minimal, User::new(user_id()));
    assert_eq!(client.delete_user(&by_email).await.unwrap(), None);
    let deleted = client.delete_user(&by_email).await.unwrap().unwrap();
    assert_eq!(deleted.id, user_id());
    client.sign_out_user(&by_email).await.unwrap();
}

#[tokio::test]
async fn a_raw_query_result_is_the_answer_as_sent_and_must_be_an_object() {
    // Keys out of order and odd spacing inside: a tree would sort and respace them.
    const ANSWER: &str = r#"{"zebras":[{"id":"2","a":1}],"apes":{"b" : true}}"#;
    let server = Server::scripted([
        Reply::Raw(200, "application/json", ANSWER),
        Reply::Raw(200, "application/json", " [1,2] "),
        Reply::Raw(200, "application/json", "{\"unclosed\": "),
    ])
    .await;
    let client = builder(&server.url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let raw = client.query_raw(&goals()).await.unwrap();
    assert_eq!(raw.get(), ANSWER);
    let not_an_object = client.query_raw(&goals()).await.unwrap_err();
    assert!(
        matches!(&not_an_object, Error::UnexpectedResponse { detail, .. } if detail == "the result is not a json object"),
        "{not_an_object:?}"
    );
    // Invalid JSON is refused as for a parsed query.
    let invalid = client.query_raw(&goals()).await.unwrap_err();
    assert!(
        matches!(invalid, Error::UnexpectedResponse { .. }),
        "{invalid:?}"
    );
}

/// One call against a server answering `reply` once, without retries.
async fn error_for(reply: Reply) -> Error {
    let server = Server::scripted([reply]).await;
    let client = builder(&server.url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    client.query(&goals()).await.unwrap_err()
}

#[tokio::test]
async fn the_type_message_shape_is_a_rejection() {
    let err = error_for(Reply::Json(
        400,
        json!({
            "type": "param-malformed",
            "message": "Malformed parameter: [\"body\" \"query\"]",
            "hint": {"in": ["body", "query"], "original-input": "??"},
            "trace-id": "abc123"
        }),
    ))
    .await;
    let Error::Rejected {
        endpoint,
        status,
        rejection,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((*endpoint, *status), (Endpoint::Query, 400));
    assert_eq!(rejection.error_type, ErrorType::ParamMalformed);
    assert_eq!(
        rejection.message.as_deref(),
        Some("Malformed parameter: [\"body\" \"query\"]")
    );
    assert_eq!(rejection.hint_keys, ["in", "original-input"]);
    assert_eq!(rejection.trace_id.as_deref(), Some("abc123"));
    assert!(err.is_rejected() && !err.is_unavailable());
}

#[tokio::test]
async fn the_oauth_error_shape_keeps_the_error_text() {
    let server = Server::scripted([Reply::Json(
        400,
        json!({"type": "oauth-error", "error": "Error validating JWT. Token is expired."}),
    )])
    .await;
    let err = anonymous_client(&server.url())
        .sign_in_with_id_token(&sign_in())
        .await
        .unwrap_err();
    let rejection = err.rejection().unwrap();
    assert_eq!(rejection.error_type, ErrorType::OauthError);
    assert_eq!(rejection.message, None);
    assert_eq!(
        err.to_string(),
        "POST /runtime/oauth/id_token was rejected with HTTP 400: oauth-error: Error validating JWT. Token is expired."
    );
}

#[tokio::test]
async fn a_refused_admin_token_is_bad_credentials() {
    let err = error_for(Reply::Json(
        400,
        json!({"type": "record-not-found", "message": "Record not found: app-admin-token", "hint": {"record-type": "app-admin-token"}}),
    ))
    .await;
    assert!(err.is_bad_credentials() && err.is_config(), "{err:?}");
    // The message alone identifies it too (hint shapes vary).
    let err = error_for(Reply::Json(
        400,
        json!({"type": "record-not-found", "message": "Record not found: app-admin-token"}),
    ))
    .await;
    assert!(err.is_bad_credentials(), "{err:?}");
    let err = error_for(Reply::Json(
        401,
        json!({"type": "permission-denied", "message": "Unauthorized"}),
    ))
    .await;
    assert!(err.is_bad_credentials(), "{err:?}");
}

#[tokio::test]
async fn an_unknown_refresh_token_is_not_found() {
    let server = Server::scripted([Reply::Json(
        400,
        json!({"type": "record-not-found", "message": "Record not found: app-user-refresh-token", "hint": {"record-type": "app-user-refresh-token"}}),
    )])
    .await;
    let err = anonymous_client(&server.url())
        .verify_refresh_token(&refresh_token())
        .await
        .unwrap_err();
    assert!(err.is_not_found() && !err.is_bad_credentials(), "{err:?}");
    assert!(
        err.rejection()
            .unwrap()
            .is_record_not_found("app-user-refresh-token")
    );
}

#[tokio::test]
async fn signing_out_an_unknown_refresh_token_succeeds() {
    let server = Server::scripted([
        Reply::Json(400, json!({"type": "record-not-found", "message": "Record not found: app-user-refresh-token"})),
        Reply::Json(400, json!({"type": "param-malformed", "message": "Malformed parameter: [\"body\" \"refresh_token\"]"})),
    ])
    .await;
    let client = anonymous_client(&server.url());
    client.sign_out(&refresh_token()).await.unwrap();
    let err = client.sign_out(&refresh_token()).await.unwrap_err();
    assert_eq!(err.error_type(), Some(&ErrorType::ParamMalformed));
}

#[tokio::test]
async fn unknown_types_are_kept_raw() {
    let err = error_for(Reply::Json(
        400,
        json!({"type": "brand-new-failure", "message": "m"}),
    ))
    .await;
    assert_eq!(
        err.error_type(),
        Some(&ErrorType::Other("brand-new-failure".into()))
    );
}

#[tokio::test]
async fn rate_limits_carry_the_hint_retry_after() {
    let err = error_for(Reply::Json(
        429,
        json!({"type": "rate-limited", "message": "slow down", "hint": {"retry-after": 7}}),
    ))
    .await;
    assert!(err.is_rate_limited() && err.is_unavailable());
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
}

#[tokio::test]
async fn server_failures_are_unavailable_with_the_trace_id() {
    let err = error_for(Reply::Json(
        500,
        json!({"type": "unknown", "message": "Something went wrong.", "hint": {"debug-uri": "https://x"}, "trace-id": "t-1"}),
    ))
    .await;
    let Error::Unavailable {
        cause: Outage::Status {
            status: 500,
            rejection: Some(r),
        },
        attempts: 1,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(r.error_type, ErrorType::Unknown);
    assert_eq!(r.trace_id.as_deref(), Some("t-1"));
}

#[tokio::test]
async fn an_html_502_is_unavailable() {
    let err = error_for(Reply::Raw(
        502,
        "text/html",
        "<html><body>Bad Gateway</body></html>",
    ))
    .await;
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.status(), Some(502));
    assert_eq!(
        err.to_string(),
        "POST /admin/query is unavailable after 1 attempt(s): HTTP 502"
    );
}

#[tokio::test]
async fn non_json_and_typeless_error_bodies_are_not_understood() {
    let err = error_for(Reply::Raw(400, "text/plain", "Bad Request")).await;
    assert!(
        matches!(&err, Error::UnexpectedResponse { status: 400, detail, .. } if detail == "a non-json error body of 11 bytes"),
        "{err:?}"
    );
    let err = error_for(Reply::Json(403, json!({"error": "forbidden by proxy"}))).await;
    assert!(
        matches!(&err, Error::UnexpectedResponse { status: 403, .. }),
        "{err:?}"
    );
    let err = error_for(Reply::Json(
        404,
        json!({"message": "Oops! We couldn't match this route."}),
    ))
    .await;
    assert!(err.to_string().contains("no such route"), "{err}");
}

#[tokio::test]
async fn a_200_that_is_not_the_expected_json_is_not_understood() {
    let cases = [
        (
            Reply::Raw(200, "text/html", "<html>maintenance</html>"),
            "the body is not json",
        ),
        (
            Reply::Raw(200, "application/json", "{\"goals\": [{\"id\""),
            "the json ends early",
        ),
        (Reply::Json(200, json!(["not", "an", "object"])), ""),
    ];
    for (reply, want) in cases {
        let err = error_for(reply).await;
        let Error::UnexpectedResponse {
            status: 200,
            detail,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert!(detail.starts_with(want), "{detail}");
    }
    // Query results are any JSON; typed endpoints check their shape.
    let server = Server::scripted([
        Reply::Json(200, json!({"tx-id": "not-a-number"})),
        Reply::Json(200, json!({"user": {"email": "no id"}, "created": true})),
        Reply::Json(
            200,
            json!({"user": {"id": "99999999-8888-4777-8666-555555555555"}, "created": true}),
        ),
        Reply::Json(200, json!({"ok": false})),
    ])
    .await;
    let client = client(&server.url());
    let err = client.transact(&Transaction::new()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the json is not of the expected shape"),
        "{err}"
    );
    assert!(!err.to_string().contains("not-a-number"), "{err}");
    let err = client
        .create_token(&TokenSubject::Id(user_id()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing field `id`"), "{err}");
    let err = client
        .create_token(&TokenSubject::Id(user_id()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no user.refresh_token"), "{err}");
    let err = client
        .sign_out_user(&UserRef::Id(user_id()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ok: false"), "{err}");
}

#[tokio::test]
async fn a_body_cut_off_mid_answer_is_a_lost_connection() {
    let server = RawServer::start(Misbehave::TruncateBody).await;
    let client = builder(&server.url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = client.query(&goals()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unavailable {
                cause: Outage::ConnectionLost,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let err = error_for(Reply::Redirect).await;
    assert!(
        matches!(&err, Error::UnexpectedResponse { status: 302, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_input_fails_before_anything_is_sent() {
    let server = Server::start().await;
    let admin = client(&server.url());
    let anonymous = anonymous_client(&server.url());
    let cases: Vec<(Error, &str)> = vec![
        (
            admin
                .query(&Query::new(json!(["goals"])))
                .await
                .unwrap_err(),
            "invalid input",
        ),
        (
            admin
                .transact(&Transaction::new().update("goals", user_id(), Value::Null))
                .await
                .unwrap_err(),
            "step 1 (update goals)",
        ),
        (
            admin
                .as_email("a@b.c\nx: y")
                .query(&goals())
                .await
                .unwrap_err(),
            "http header",
        ),
        (
            anonymous
                .get_user(&UserRef::Id(user_id()))
                .await
                .unwrap_err(),
            "needs an admin token",
        ),
        (
            anonymous.as_guest().query(&goals()).await.unwrap_err(),
            "needs an admin token",
        ),
        (
            anonymous
                .sign_in_with_id_token(&IdTokenSignIn::new(IdToken::new("a.b.c").unwrap(), " "))
                .await
                .unwrap_err(),
            "client name is empty",
        ),
    ];
    for (err, want) in cases {
        assert!(err.to_string().contains(want), "{err}");
    }
    assert_eq!(server.hits(), 0);
}
