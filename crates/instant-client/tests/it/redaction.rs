//! Redaction: error bodies, transport errors and `tracing` output never carry the
//! tokens, the admin token or emails sent with a request — nor tokens the server
//! echoes back.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use instant_client::{Error, IdToken, IdTokenSignIn, Query, RetryPolicy, UserRef};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use crate::support::{
    ADMIN_TOKEN, EMAIL, REFRESH_TOKEN, Reply, Server, anonymous_client, builder, refresh_token,
    refused_url,
};

/// A realistic Clerk session token.
const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6Imluc18yYWJjIn0.eyJzdWIiOiJ1c2VyXzJhYmMiLCJzaWQiOiJzZXNzXzEyMyJ9.c2lnbmF0dXJlLWJ5dGVzLTEyMzQ1Njc4OTA";
/// Another user's refresh token, which the server echoes though we never sent it.
const FOREIGN_TOKEN: &str = "12345678-aaaa-4bbb-8ccc-1234567890ab";
/// An opaque secret of another shape.
const OPAQUE: &str = "sk_live_9f8e7d6c5b4a3928171605";

const SECRETS: &[&str] = &[
    ADMIN_TOKEN,
    REFRESH_TOKEN,
    JWT,
    FOREIGN_TOKEN,
    OPAQUE,
    EMAIL,
];

/// Error bodies that echo every secret, in each shape and status InstantDB uses.
fn leaky_replies() -> Vec<Reply> {
    let hint = json!({
        "input": {"id_token": JWT, "refresh_token": REFRESH_TOKEN, "email": EMAIL},
        "args": [{"admin-token": ADMIN_TOKEN, "auth?": false}, FOREIGN_TOKEN, OPAQUE],
        "record-type": "app-user-refresh-token",
    });
    let message = format!(
        "Record not found for {REFRESH_TOKEN} ({JWT}) admin {ADMIN_TOKEN} other {FOREIGN_TOKEN} key {OPAQUE} user {EMAIL}"
    );
    vec![
        Reply::Json(
            400,
            json!({"type": "record-not-found", "message": message, "hint": hint, "trace-id": "t-1"}),
        ),
        Reply::Json(
            400,
            json!({"type": "record-not-found", "message": "Record not found: app-admin-token", "hint": {"args": [ADMIN_TOKEN], "record-type": "app-admin-token"}}),
        ),
        Reply::Json(
            400,
            json!({"type": "oauth-error", "error": format!("Invalid JWT {JWT} for {EMAIL}")}),
        ),
        Reply::Json(
            400,
            json!({"type": format!("weird-{FOREIGN_TOKEN}"), "message": OPAQUE}),
        ),
        Reply::Json(
            429,
            json!({"type": "rate-limited", "message": message, "hint": hint}),
        ),
        Reply::Json(
            500,
            json!({"type": "unknown", "message": message, "hint": hint, "trace-id": "t-2"}),
        ),
        Reply::Json(
            200,
            json!({"user": {"id": REFRESH_TOKEN, "refresh_token": 5}, "created": JWT}),
        ),
        Reply::Json(200, json!({"user": {"id": JWT}, "created": true})),
    ]
}

/// `{}`, `{:?}` and every source in the chain.
fn all_text(err: &Error) -> String {
    let mut text = format!("{err}\n{err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        write!(text, "\n{s}\n{s:?}").unwrap();
        source = s.source();
    }
    text
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} leaks {secret}:\n{text}");
    }
    // Nor any recognisable part of the JWT.
    for part in JWT.split('.') {
        assert!(
            !text.contains(part),
            "{what} leaks part of the JWT:\n{text}"
        );
    }
}

#[tokio::test]
async fn errors_built_from_leaky_bodies_hold_no_secret() {
    for reply in leaky_replies() {
        let server = Server::scripted([reply.clone(), reply.clone(), reply.clone()]).await;
        let admin = builder(&server.url())
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        let anonymous = anonymous_client(&server.url());
        let sign_in =
            IdTokenSignIn::new(IdToken::new(JWT).unwrap(), "clerk").refresh_token(refresh_token());
        let mut errors = vec![
            anonymous.sign_in_with_id_token(&sign_in).await.unwrap_err(),
            admin
                .get_user(&UserRef::Email(EMAIL.into()))
                .await
                .unwrap_err(),
        ];
        // A 200 object is a valid query result; only errors are checked.
        let query = Query::new(json!({"goals": {}}));
        errors.extend(
            admin
                .as_refresh_token(refresh_token())
                .query(&query)
                .await
                .err(),
        );
        for err in &errors {
            assert_clean(&format!("{reply:?}"), &all_text(err));
        }
    }
}

#[tokio::test]
async fn the_server_message_keeps_its_meaning_once_scrubbed() {
    let reply = leaky_replies().remove(0);
    let server = Server::scripted([reply]).await;
    let err = anonymous_client(&server.url())
        .verify_refresh_token(&refresh_token())
        .await
        .unwrap_err();
    insta::assert_snapshot!(err.to_string(), @"POST /runtime/auth/verify_refresh_token was rejected with HTTP 400: record-not-found: Record not found for [redacted] ([redacted]) admin [redacted] other [redacted] key [redacted] user [redacted] (trace id t-1)");
    let rejection = err.rejection().unwrap();
    assert_eq!(rejection.hint_keys, ["args", "input", "record-type"]);
    assert_eq!(
        rejection.record_type.as_deref(),
        Some("app-user-refresh-token")
    );
}

#[tokio::test]
async fn transport_errors_do_not_carry_the_url() {
    // GET /admin/users puts the email or refresh token in the query string.
    let client = builder(&refused_url().await)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    for user in [
        UserRef::Email(EMAIL.into()),
        UserRef::RefreshToken(refresh_token()),
    ] {
        let err = client.get_user(&user).await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert_clean("transport error", &all_text(&err));
    }
}

/// Every error text a caller can see, for review.
#[tokio::test]
async fn error_texts() {
    let mut texts = Vec::new();
    for reply in leaky_replies() {
        let server = Server::scripted([reply]).await;
        let admin = builder(&server.url())
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        let err = admin
            .get_user(&UserRef::Email(EMAIL.into()))
            .await
            .unwrap_err();
        texts.push(err.to_string());
    }
    insta::assert_snapshot!(texts.join("\n"));
}

/// A subscriber writing every span, field and event into one string.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<String>>,
    next: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        write!(self.0, " {}={value:?}", field.name()).unwrap();
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut log = self.log.lock().unwrap();
        write!(log, "\nspan {}", span.metadata().name()).unwrap();
        span.record(&mut Fields(&mut log));
        Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut log = self.log.lock().unwrap();
        log.push_str("\nrecord");
        values.record(&mut Fields(&mut log));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut log = self.log.lock().unwrap();
        log.push_str("\nevent");
        event.record(&mut Fields(&mut log));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// The process-wide default: records nothing, but keeps every callsite's cached
/// interest at "ask the current dispatcher".
///
/// Without it, a test that only installs a thread-local `Recorder` loses events under
/// plain `cargo test`, where all tests share one process: while the `Recorder` is
/// the only live dispatcher, a callsite first hit on another test's thread asks *that*
/// thread's default (none), and caches "never" for every thread. With this one
/// registered as well there are always two dispatchers, so a callsite's interest is
/// the `Recorder`'s and this one's combined: "sometimes", decided per call by
/// whichever dispatcher is current.
struct AskEveryTime;

impl Subscriber for AskEveryTime {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Records what this thread emits with `recorder`, whatever other tests in the process
/// have done to tracing's callsite cache (see [`AskEveryTime`]).
fn record_with<T>(recorder: Recorder, f: impl FnOnce() -> T) -> T {
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    // Nothing else in this binary sets a global default, so this cannot fail; if it
    // ever did, that other default would be the second dispatcher all the same.
    GLOBAL.call_once(|| drop(tracing::subscriber::set_global_default(AskEveryTime)));
    // Installing the recorder re-asks every callsite registered so far (tracing
    // rebuilds the interest cache whenever a dispatcher is created).
    tracing::subscriber::with_default(recorder, f)
}

#[test]
fn tracing_output_names_the_call_but_no_secret() {
    let recorder = Recorder::default();
    let log = Arc::clone(&recorder.log);
    record_with(recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut replies = leaky_replies();
            replies.insert(
                0,
                Reply::Json(503, json!({"type": "unknown", "message": JWT})),
            );
            let server = Server::scripted(replies).await;
            let admin = builder(&server.url()).build().unwrap();
            let anonymous = anonymous_client(&server.url());
            let sign_in = IdTokenSignIn::new(IdToken::new(JWT).unwrap(), "clerk")
                .refresh_token(refresh_token());
            // A 503, then a leaky 400: two attempts.
            let _ = admin.get_user(&UserRef::Email(EMAIL.into())).await;
            for _ in 0..3 {
                let _ = anonymous.sign_in_with_id_token(&sign_in).await;
                let _ = admin.get_user(&UserRef::Email(EMAIL.into())).await;
                let _ = admin
                    .as_refresh_token(refresh_token())
                    .query(&Query::new(json!({"goals": {}})))
                    .await;
            }
        });
    });
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains("span instant_request endpoint=POST /runtime/oauth/id_token"),
        "{log}"
    );
    assert!(log.contains("endpoint=GET /admin/users"), "{log}");
    assert!(
        log.contains("status=503") && log.contains("attempts=2"),
        "{log}"
    );
    assert!(log.contains("duration_ms="), "{log}");
    assert!(log.contains("retrying instant request"), "{log}");
    assert_clean("tracing output", &log);
}
