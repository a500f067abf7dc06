//! Wire conformance: every request the official SDKs were recorded sending
//! (`tests/fixtures/instant-requests.jsonl`) that this client covers is made again
//! against the capture server and compared: method, path with query string, header
//! names and values, and the JSON body byte for byte (key order included).

use std::collections::BTreeMap;

use instant_client::{
    Client, EntityId, IdToken, IdTokenSignIn, Query, TokenSubject, Transaction, UpdateOptions,
    UserRef, Uuid,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::support::{EMAIL, Reply, Server, anonymous_client, client, refresh_token, user_id};

const FIXTURE: &str = include_str!("../fixtures/instant-requests.jsonl");

/// Lines deliberately not sent by this client, and why.
const NOT_COVERED: &[(&str, &str)] = &[
    (
        "admin.transact.lookup",
        "its entity id \"x\" is neither a UUID nor an [attr, value] lookup; the typed builder cannot express it and Transaction::from_json refuses it (lookups are covered by admin.transact.lookupHelper)",
    ),
    (
        "admin.auth.verifyToken",
        "the same endpoint and body as core.authAPI.verifyRefreshToken; it needs no admin credentials, so this client sends it the @instantdb/core way (no ?app_id, no version headers)",
    ),
    (
        "admin.auth.generateMagicCode",
        "magic codes are not part of the Clerk integration",
    ),
    (
        "core.authAPI.sendMagicCode",
        "magic codes are not part of the Clerk integration",
    ),
    (
        "core.authAPI.checkMagicCode",
        "magic codes are not part of the Clerk integration",
    ),
];

/// Lines covered with one deliberate difference, and why.
const DEVIATIONS: &[(&str, &str, &str)] = &[(
    "core.authAPI.signInWithIdToken(with refresh, nonce)",
    r#""nonce":"n-123","#,
    "never send a nonce: Clerk session tokens carry none and a non-blank nonce fails the sign-in (spec §3)",
)];

/// Headers HTTP clients add themselves, ignored unless the fixture lists them.
const TRANSPORT_HEADERS: &[&str] = &["host", "content-length"];

/// Headers whose value is the SDK version: this crate sends its own.
const VERSION_HEADERS: &[&str] = &["instant-admin-version", "instant-core-version"];

#[derive(Deserialize)]
struct Line {
    label: String,
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Box<RawValue>,
}

fn fixture() -> Vec<Line> {
    FIXTURE
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad fixture line {l}: {e}")))
        .collect()
}

fn id(n: u8) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-00000000000{n}")).unwrap()
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// Makes the call a fixture line records. `None`: the label is unknown to this test.
async fn replay(label: &str, server: &Server, admin: &Client, anonymous: &Client) -> Option<()> {
    let goals = || Query::new(json!({"goals": {}}));
    match label {
        "admin.query" => {
            let q = Query::new(json!({"goals": {"$": {"where": {"title": "x"}}, "todos": {}}}));
            admin.query(&q).await.unwrap();
        }
        "admin.transact" => {
            let tx = Transaction::new()
                .update("goals", id(1), json!({"title": "Get fit"}))
                .merge("goals", id(1), json!({"meta": {"a": 1}}))
                .link("goals", id(1), "todos", id(2))
                .unlink("goals", id(1), "todos", id(2))
                .create("todos", id(2), json!({"title": "run"}))
                .delete("todos", id(2))
                .rule_params("goals", id(1), object(&json!({"k": "v"})));
            admin.transact(&tx).await.unwrap();
        }
        "admin.transact.lookupHelper" => {
            let tx = Transaction::new().update(
                "profiles",
                EntityId::lookup("email", EMAIL),
                json!({"name": "Alice"}),
            );
            admin.transact(&tx).await.unwrap();
        }
        "admin.transact.upsertOpt" => {
            let tx = Transaction::new().update_with(
                "goals",
                id(3),
                json!({"title": "z"}),
                UpdateOptions::default().upsert(false),
            );
            admin.transact(&tx).await.unwrap();
        }
        "admin.auth.createToken(email)" => {
            admin
                .create_token(&TokenSubject::Email(EMAIL.into()))
                .await
                .unwrap();
        }
        "admin.auth.createToken(id)" => {
            admin
                .create_token(&TokenSubject::Id(user_id()))
                .await
                .unwrap();
        }
        "admin.auth.getUser(email)" => {
            admin.get_user(&UserRef::Email(EMAIL.into())).await.unwrap();
        }
        "admin.auth.getUser(id)" => {
            admin.get_user(&UserRef::Id(user_id())).await.unwrap();
        }
        "admin.auth.getUser(refresh_token)" => {
            admin
                .get_user(&UserRef::RefreshToken(refresh_token()))
                .await
                .unwrap();
        }
        "admin.auth.deleteUser(email)" => {
            admin
                .delete_user(&UserRef::Email(EMAIL.into()))
                .await
                .unwrap();
        }
        "admin.auth.signOut(email)" => {
            admin
                .sign_out_user(&UserRef::Email(EMAIL.into()))
                .await
                .unwrap();
        }
        "admin.auth.signOut(id)" => {
            admin.sign_out_user(&UserRef::Id(user_id())).await.unwrap();
        }
        "admin.auth.signOut(refresh_token)" => {
            admin
                .sign_out_user(&UserRef::RefreshToken(refresh_token()))
                .await
                .unwrap();
        }
        "admin.asUser(email).query" => {
            admin.as_email(EMAIL).query(&goals()).await.unwrap();
        }
        "admin.asUser(token).query" => {
            admin
                .as_refresh_token(refresh_token())
                .query(&goals())
                .await
                .unwrap();
        }
        "admin.asUser(guest).query" => {
            admin.as_guest().query(&goals()).await.unwrap();
        }
        "admin(noAdminToken).asUser(token).transact" => {
            let tx = Transaction::new().update("goals", id(1), json!({"title": "n"}));
            anonymous
                .as_refresh_token(refresh_token())
                .transact(&tx)
                .await
                .unwrap();
        }
        "admin.query.error400" => {
            server.push(Reply::Json(
                400,
                json!({"type": "validation-failed", "message": "Validation failed for query", "hint": {"input": {"goals": {}}}}),
            ));
            let err = admin.query(&goals()).await.unwrap_err();
            assert!(err.is_rejected(), "{err}");
        }
        "core.signInWithIdToken.error400-oauth" => {
            server.push(Reply::Json(
                400,
                json!({"type": "oauth-error", "error": "Invalid JWT."}),
            ));
            let token = IdToken::new("x.y.z").unwrap();
            let err = anonymous
                .sign_in_with_id_token(&IdTokenSignIn::new(token, "clerk"))
                .await
                .unwrap_err();
            let rejection = err.rejection().unwrap();
            assert_eq!(rejection.oauth_error.as_deref(), Some("Invalid JWT."));
        }
        "core.authAPI.signInWithIdToken(no refresh)" => {
            let token = IdToken::new("eyJhbGciOi.eyJzdWIi.sig").unwrap();
            anonymous
                .sign_in_with_id_token(&IdTokenSignIn::new(token, "clerk"))
                .await
                .unwrap();
        }
        "core.authAPI.signInWithIdToken(with refresh, nonce)" => {
            let token = IdToken::new("eyJhbGciOi.eyJzdWIi.sig").unwrap();
            let sign_in = IdTokenSignIn::new(token, "clerk")
                .refresh_token(refresh_token())
                .extra_fields(object(&json!({"nickname": "al"})));
            anonymous.sign_in_with_id_token(&sign_in).await.unwrap();
        }
        "core.authAPI.signOut" => {
            anonymous.sign_out(&refresh_token()).await.unwrap();
        }
        "core.authAPI.verifyRefreshToken" => {
            anonymous
                .verify_refresh_token(&refresh_token())
                .await
                .unwrap();
        }
        _ => return None,
    }
    Some(())
}

#[tokio::test]
async fn every_covered_fixture_request_is_sent_identically() {
    let lines = fixture();
    assert!(lines.len() >= 20, "the fixture lost lines: {}", lines.len());
    let server = Server::start().await;
    let admin = client(&server.url());
    let anonymous = anonymous_client(&server.url());
    let mut unknown = Vec::new();
    let mut covered = 0;
    for line in &lines {
        if NOT_COVERED.iter().any(|(label, _)| *label == line.label) {
            continue;
        }
        if replay(&line.label, &server, &admin, &anonymous)
            .await
            .is_none()
        {
            unknown.push(line.label.clone());
            continue;
        }
        covered += 1;
        let sent = server.take_one();
        let label = &line.label;
        assert_eq!(sent.method, line.method, "{label}: method");
        assert_eq!(sent.path, line.path, "{label}: path and query");

        let mut headers = BTreeMap::new();
        for (name, value) in &sent.headers {
            if TRANSPORT_HEADERS.contains(&name.as_str()) && !line.headers.contains_key(name) {
                continue;
            }
            let previous = headers.insert(name.clone(), value.clone());
            assert!(previous.is_none(), "{label}: header {name} sent twice");
        }
        for name in VERSION_HEADERS {
            if let (Some(sent), Some(recorded)) = (headers.get_mut(*name), line.headers.get(*name))
            {
                assert_eq!(
                    sent,
                    &format!("v{}", env!("CARGO_PKG_VERSION")),
                    "{label}: {name}"
                );
                assert!(recorded.starts_with('v'), "{label}: {name} in the fixture");
                sent.clone_from(recorded);
            }
        }
        assert_eq!(headers, line.headers, "{label}: headers");

        let mut expected = line.body.get().to_owned();
        if let Some((_, cut, _)) = DEVIATIONS.iter().find(|(l, _, _)| l == label) {
            assert!(
                expected.contains(cut),
                "{label}: deviation no longer applies"
            );
            expected = expected.replace(cut, "");
            assert!(
                !String::from_utf8_lossy(&sent.body).contains("nonce"),
                "{label}"
            );
        }
        if expected == "null" {
            assert!(sent.body.is_empty(), "{label}: a body was sent");
        } else {
            let want: Value = serde_json::from_str(&expected).unwrap();
            assert_eq!(sent.json(), want, "{label}: body");
            assert_eq!(
                String::from_utf8(sent.body.clone()).unwrap(),
                expected,
                "{label}: body bytes (key order)"
            );
        }
    }
    assert!(
        unknown.is_empty(),
        "fixture labels neither replayed nor listed in NOT_COVERED: {unknown:?}"
    );
    let listed = NOT_COVERED.len();
    assert_eq!(
        covered + listed,
        lines.len(),
        "a NOT_COVERED label left the fixture"
    );
    for (label, _) in NOT_COVERED {
        assert!(
            lines.iter().any(|l| &l.label == label),
            "{label} is not in the fixture"
        );
    }
}

#[tokio::test]
async fn runtime_calls_never_send_origin_nonce_or_admin_headers() {
    let server = Server::start().await;
    // A client *with* an admin token: runtime calls must still not carry it.
    let admin = client(&server.url());
    let sign_in = IdTokenSignIn::new(IdToken::new("eyJhbGciOi.eyJzdWIi.sig").unwrap(), "clerk");
    admin.sign_in_with_id_token(&sign_in).await.unwrap();
    admin.sign_out(&refresh_token()).await.unwrap();
    admin.verify_refresh_token(&refresh_token()).await.unwrap();
    for sent in server.take() {
        let names: Vec<&str> = sent.headers.iter().map(|(n, _)| n.as_str()).collect();
        for forbidden in ["origin", "authorization", "app-id", "instant-admin-version"] {
            assert!(
                !names.contains(&forbidden),
                "{} sent {forbidden}",
                sent.path
            );
        }
        assert!(!String::from_utf8_lossy(&sent.body).contains("nonce"));
        assert_eq!(sent.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn a_shared_reqwest_client_is_used_with_the_sdk_headers_still_exact() {
    let server = Server::start().await;
    let mut defaults = reqwest::header::HeaderMap::new();
    defaults.insert("accept", "text/html".parse().unwrap());
    let shared = reqwest::Client::builder()
        .default_headers(defaults)
        .build()
        .unwrap();
    let admin = crate::support::builder(&server.url())
        .http_client(shared)
        .build()
        .unwrap();
    admin.get_user(&UserRef::Id(user_id())).await.unwrap();
    let sent = server.take_one();
    assert_eq!(sent.header("accept"), Some("*/*"));
    assert_eq!(
        sent.headers.iter().filter(|(n, _)| n == "accept").count(),
        1
    );
}

#[tokio::test]
async fn users_by_id_and_refresh_token_are_deleted_by_query_string() {
    // Not in the fixture: the same endpoint with the other two keys (spec §4).
    let server = Server::start().await;
    let admin = client(&server.url());
    admin.delete_user(&UserRef::Id(user_id())).await.unwrap();
    admin
        .delete_user(&UserRef::RefreshToken(refresh_token()))
        .await
        .unwrap();
    let paths: Vec<String> = server.take().into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths,
        [
            "/admin/users?app_id=11111111-2222-4333-8444-555555555555&id=99999999-8888-4777-8666-555555555555",
            "/admin/users?app_id=11111111-2222-4333-8444-555555555555&refresh_token=ffffffff-0000-4111-8222-333333333333",
        ]
    );
}

#[tokio::test]
async fn a_base_url_path_prefix_is_kept() {
    let server = Server::start().await;
    let admin = client(&format!("{}/instant/", server.url()));
    // The capture server answers 404 for unknown paths, as InstantDB does.
    let err = admin
        .query(&Query::new(json!({"goals": {}})))
        .await
        .unwrap_err();
    assert_eq!(
        server.take_one().path,
        "/instant/admin/query?app_id=11111111-2222-4333-8444-555555555555"
    );
    assert!(err.to_string().contains("no such route"), "{err}");
}
