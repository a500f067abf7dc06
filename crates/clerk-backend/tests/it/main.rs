//! The Backend API client against a scripted server on 127.0.0.1.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clerk_backend::{BackendClient, Error, Outage, RetryPolicy, SessionStatus};
use clerk_jwt::SecretKey;
use http_retry::TestClock;
use serde_json::json;

const SECRET: &str = "sk_test_backendsecret123";

/// What the scripted server answers next.
#[derive(Clone)]
enum Answer {
    Json(u16, serde_json::Value),
    Raw(u16, &'static str),
    RateLimited(Option<&'static str>),
    Hang,
}

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    authorization: Option<String>,
    api_version: Option<String>,
}

#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Answer>>,
    seen: Mutex<Vec<Seen>>,
}

async fn answer(
    State(script): State<Arc<Script>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    script.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        authorization: header("authorization"),
        api_version: header("clerk-api-version"),
    });
    let next = script.answers.lock().unwrap().pop_front();
    match next.expect("the script ran out of answers") {
        Answer::Json(status, body) => {
            (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
        }
        Answer::Raw(status, body) => (StatusCode::from_u16(status).unwrap(), body).into_response(),
        Answer::RateLimited(retry_after) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"errors": [{"code": "too_many_requests", "message": "Too many requests"}]})),
            )
                .into_response();
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", value.parse().unwrap());
            }
            response
        }
        Answer::Hang => std::future::pending().await,
    }
}

struct Fake {
    script: Arc<Script>,
    base: String,
    clock: Arc<TestClock>,
}

impl Fake {
    async fn start(answers: Vec<Answer>) -> Fake {
        let script = Arc::new(Script {
            answers: Mutex::new(answers.into()),
            seen: Mutex::default(),
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake {
            script,
            base,
            clock: Arc::new(TestClock::new()),
        }
    }

    fn client(&self) -> BackendClient {
        BackendClient::builder(SecretKey::new(SECRET).unwrap())
            .base_url(&self.base)
            .retry(RetryPolicy::new(
                3,
                Duration::from_millis(1),
                Duration::from_secs(2),
            ))
            .timeout(Duration::from_millis(300))
            .clock(self.clock.clone())
            .build()
            .unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.script.seen.lock().unwrap().clone()
    }
}

fn session_body(status: &str) -> serde_json::Value {
    json!({
        "object": "session", "id": "sess_2abc", "user_id": "user_2xyz", "client_id": "client_1",
        "status": status, "last_active_at": 1_700_000_000_000_i64, "expire_at": 1_700_600_000_000_i64
    })
}

#[tokio::test]
async fn get_and_revoke_a_session() {
    let fake = Fake::start(vec![
        Answer::Json(200, session_body("active")),
        Answer::Json(200, session_body("revoked")),
    ])
    .await;
    let client = fake.client();
    let session = client.get_session("sess_2abc").await.unwrap();
    assert_eq!(session.status, SessionStatus::Active);
    assert_eq!(session.user_id, "user_2xyz");
    assert_eq!(session.extra["client_id"], "client_1");
    let revoked = client.revoke_session("sess_2abc").await.unwrap();
    assert_eq!(revoked.status, SessionStatus::Revoked);
    assert!(!revoked.status.is_live());

    let seen = fake.seen();
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(seen[0].path, "/v1/sessions/sess_2abc");
    assert_eq!(seen[1].method, Method::POST);
    assert_eq!(seen[1].path, "/v1/sessions/sess_2abc/revoke");
    for request in &seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some(&*format!("Bearer {SECRET}"))
        );
        assert_eq!(request.api_version, None);
    }
}

#[tokio::test]
async fn get_a_user_and_their_verified_primary_email() {
    let fake = Fake::start(vec![Answer::Json(
        200,
        json!({
            "object": "user", "id": "user_2xyz", "primary_email_address_id": "idn_2",
            "email_addresses": [
                {"id": "idn_1", "email_address": "old@example.com", "verification": {"status": "verified", "strategy": "email_code"}},
                {"id": "idn_2", "email_address": "alice@example.com", "verification": {"status": "verified", "strategy": "oauth_google"}}
            ],
            "first_name": "Alice", "updated_at": 1_700_000_000_000_i64
        }),
    )])
    .await;
    let client = BackendClient::builder(SecretKey::new(SECRET).unwrap())
        .base_url(format!("{}/", fake.base))
        .api_version("2026-05-12")
        .build()
        .unwrap();
    let user = client.get_user("user_2xyz").await.unwrap();
    assert_eq!(user.verified_primary_email(), Some("alice@example.com"));
    assert_eq!(user.extra["first_name"], "Alice");
    let seen = fake.seen();
    assert_eq!(seen[0].path, "/v1/users/user_2xyz");
    assert_eq!(seen[0].api_version.as_deref(), Some("2026-05-12"));
}

#[tokio::test]
async fn clerk_errors_map_to_what_the_caller_does_next() {
    let fake = Fake::start(vec![
        Answer::Json(
            404,
            json!({"errors": [{"code": "resource_not_found", "message": "not found"}], "clerk_trace_id": "t1"}),
        ),
        Answer::Json(
            401,
            json!({"errors": [{"code": "authentication_invalid", "message": "Invalid authentication"}]}),
        ),
        Answer::Json(
            400,
            json!({"errors": [{"code": "session_not_active", "message": "Session is not active", "long_message": "The session was already revoked"}], "clerk_trace_id": "t2"}),
        ),
        Answer::Raw(503, "upstream connect error"),
        Answer::Raw(200, "<html>maintenance</html>"),
        Answer::Raw(418, "teapot"),
    ])
    .await;
    let client = fake.client();
    let err = client.get_session("sess_gone").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = client.get_session("sess_2abc").await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401 }),
        "{err:?}"
    );
    assert!(err.is_config());
    assert!(!format!("{err} {err:?}").contains(SECRET));
    let err = client.revoke_session("sess_2abc").await.unwrap_err();
    match &err {
        Error::Rejected {
            status,
            errors,
            trace_id,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(errors[0].code, "session_not_active");
            assert_eq!(trace_id.as_deref(), Some("t2"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("Session is not active (session_not_active)")
    );
    let err = client.get_session("sess_2abc").await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = client.get_session("sess_2abc").await.unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
    let err = client.get_session("sess_2abc").await.unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn rate_limits_are_retried_after_retry_after_within_bounds() {
    let fake = Fake::start(vec![
        Answer::RateLimited(Some("0")),
        Answer::RateLimited(None),
        Answer::Json(200, session_body("revoked")),
    ])
    .await;
    let revoked = fake.client().revoke_session("sess_2abc").await.unwrap();
    assert_eq!(revoked.status, SessionStatus::Revoked);
    assert_eq!(fake.seen().len(), 3);
    // `Retry-After: 0`, then no header: the policy's default wait.
    assert_eq!(
        fake.clock.sleeps(),
        [Duration::ZERO, Duration::from_millis(1)]
    );

    // Three 429s: the third attempt gives up.
    let fake = Fake::start(vec![
        Answer::RateLimited(Some("0")),
        Answer::RateLimited(Some("0")),
        Answer::RateLimited(Some("0")),
    ])
    .await;
    let err = fake.client().get_session("sess_2abc").await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert!(err.is_unavailable());
    assert_eq!(fake.seen().len(), 3);

    // A Retry-After beyond the total wait bound fails at once.
    let fake = Fake::start(vec![Answer::RateLimited(Some("60"))]).await;
    let err = fake.client().get_session("sess_2abc").await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(60)),
        "{err:?}"
    );
    assert_eq!(fake.seen().len(), 1);
    assert!(fake.clock.sleeps().is_empty());

    // Waits adding up past the total bound end the retries before the wait.
    let fake = Fake::start(vec![
        Answer::RateLimited(Some("1")),
        Answer::RateLimited(Some("1")),
    ])
    .await;
    let client = BackendClient::builder(SecretKey::new(SECRET).unwrap())
        .base_url(&fake.base)
        .retry(RetryPolicy::new(
            5,
            Duration::ZERO,
            Duration::from_millis(1500),
        ))
        .clock(fake.clock.clone())
        .build()
        .unwrap();
    let err = client.get_session("sess_2abc").await.unwrap_err();
    assert!(err.is_rate_limited(), "{err:?}");
    assert_eq!(fake.seen().len(), 2);
    assert_eq!(fake.clock.sleeps(), [Duration::from_secs(1)]);
}

#[tokio::test]
async fn down_or_hanging_clerk_is_unavailable() {
    let fake = Fake::start(vec![Answer::Hang]).await;
    let err = fake.client().get_session("sess_2abc").await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    // Nothing listens here.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = BackendClient::builder(SecretKey::new(SECRET).unwrap())
        .base_url(format!("http://127.0.0.1:{port}"))
        .build()
        .unwrap();
    let err = client.revoke_session("sess_2abc").await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.outage(), Some(Outage::Connect), "{err:?}");
    assert!(!err.is_timeout());
    assert!(
        std::error::Error::source(&err).is_some(),
        "the transport error is chained"
    );
}

/// Each message of an error's `source()` chain, outermost first.
fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut messages = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages
}

#[tokio::test]
async fn every_cause_is_printed_once_and_no_environment_variable_is_named() {
    let fake = Fake::start(vec![
        Answer::Hang,
        Answer::Raw(503, "down"),
        Answer::Json(401, json!({"errors": []})),
        Answer::Raw(
            200,
            "{\"id\": \"sess_1\", \"user_id\": \"private@example.com\"",
        ),
    ])
    .await;
    let client = fake.client();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let refused = BackendClient::builder(SecretKey::new(SECRET).unwrap())
        .base_url(format!("http://127.0.0.1:{port}"))
        .build()
        .unwrap();
    let bad_base = BackendClient::builder(SecretKey::new(SECRET).unwrap())
        .base_url("ftp://user:hunter2@example.com")
        .build()
        .unwrap_err();
    let errors = [
        client.get_session("sess_2abc").await.unwrap_err(),
        client.get_session("sess_2abc").await.unwrap_err(),
        client.get_session("sess_2abc").await.unwrap_err(),
        client.get_session("sess_2abc").await.unwrap_err(),
        refused.get_session("sess_2abc").await.unwrap_err(),
        bad_base,
    ];
    for err in &errors {
        let chain = chain(err);
        for pair in chain.windows(2) {
            assert!(
                !pair[0].contains(&pair[1]),
                "{:?} prints its cause {:?} again",
                pair[0],
                pair[1]
            );
        }
        let all = chain.join(": ");
        for leak in ["CLERK_", "hunter2", "private@example.com", SECRET] {
            assert!(!all.contains(leak), "{all}");
        }
    }
    assert!(errors[3].to_string().contains("line 1"), "{}", errors[3]);
}

#[tokio::test]
async fn bad_ids_and_bad_configuration_make_no_request() {
    let fake = Fake::start(vec![]).await;
    let client = fake.client();
    for id in ["sess_../../v1/users", "user_2abc", ""] {
        assert!(matches!(
            client.revoke_session(id).await,
            Err(Error::InvalidId(_))
        ));
    }
    assert!(fake.seen().is_empty());
    let err = BackendClient::builder(SecretKey::new(SECRET).unwrap())
        .base_url("api.clerk.com")
        .build()
        .unwrap_err();
    assert!(err.is_config(), "{err:?}");
}

/// A server answering every call with a 307 to `target`.
async fn redirect_to(target: &str) -> String {
    let target = target.to_owned();
    let app = Router::new().fallback(move |uri: Uri| {
        let location = format!("{target}{uri}");
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", location)]).into_response() }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn the_default_client_does_not_follow_a_redirect_with_the_secret_key() {
    let fake = Fake::start(vec![Answer::Json(200, session_body("active"))]).await;
    let redirector = redirect_to(&fake.base).await;
    let client = BackendClient::builder(SecretKey::new(SECRET).unwrap())
        .base_url(&redirector)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = client.get_session("sess_2abc").await.unwrap_err();
    assert!(err.to_string().contains("307"), "{err}");
    assert!(!format!("{err} {err:?}").contains(SECRET));
    assert!(fake.seen().is_empty(), "{:?}", fake.seen());
}
