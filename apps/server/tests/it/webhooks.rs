//! `POST /v1/webhooks/clerk`: signed Clerk deliveries over real HTTP, their effects in
//! the InstantDB emulator, and the deliveries that must change nothing.

use auth_core::UserDeletedPolicy;
use clerk_webhooks::{Secret, Secrets};
use devstack::Fault;
use devstack::RefreshToken;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Harness, code};

const PATH: &str = "/v1/webhooks/clerk";
const SIGN_OUT_ROUTE: &str = "POST /runtime/signout";

/// A harness whose server verifies deliveries with `secrets` and applies `policy`.
async fn harness(secrets: &Secrets, policy: UserDeletedPolicy) -> Harness {
    let secrets = secrets.clone();
    Harness::start_with(move |s| {
        s.options.webhook_secrets = Some(secrets);
        s.options.user_deleted_policy = policy;
    })
    .await
}

fn secret() -> Secret {
    Secret::generate()
}

fn secrets(secret: &Secret) -> Secrets {
    Secrets::parse(&secret.expose_whsec()).unwrap()
}

fn session_event(kind: &str, session: &str, user: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": kind,
        "object": "event",
        "data": {"id": session, "user_id": user, "object": "session", "status": "revoked"},
    }))
    .unwrap()
}

fn user_deleted(user: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "user.deleted",
        "object": "event",
        "data": {"id": user, "object": "user", "deleted": true},
    }))
    .unwrap()
}

/// What the server answered: status, `Retry-After`, JSON body.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl Harness {
    /// The server's current time, in Unix seconds.
    fn now(&self) -> u64 {
        u64::try_from(self.stack.clerk.now()).unwrap()
    }

    /// Posts `body` with these `svix-*` headers (a header left out when `None`).
    async fn post_webhook(
        &self,
        id: Option<&str>,
        timestamp: Option<u64>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Answer {
        let mut request = self
            .http
            .post(self.url(PATH))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(id) = id {
            request = request.header("svix-id", id);
        }
        if let Some(timestamp) = timestamp {
            request = request.header("svix-timestamp", timestamp.to_string());
        }
        if let Some(signature) = signature {
            request = request.header("svix-signature", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        Answer {
            status,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    /// Delivers `body` as message `id`, signed now with `secret`.
    async fn deliver(&self, secret: &Secret, id: &str, body: &[u8]) -> Answer {
        let timestamp = self.now();
        let signature = secret.sign(id, timestamp, body);
        self.post_webhook(Some(id), Some(timestamp), Some(&signature), body)
            .await
    }

    /// Signs `email` in through the server: (Clerk session, Clerk user, refresh token).
    async fn signed_in(&self, email: &str) -> (String, String, RefreshToken) {
        let (session, token) = self.clerk_sign_in(email);
        let (status, body) = self.sign_in(&token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let user = body["clerk"]["user_id"].as_str().unwrap().to_owned();
        let refresh = RefreshToken::new(body["refresh_token"].as_str().unwrap().to_owned());
        (session, user, refresh)
    }

    fn instant_knows(&self, token: &RefreshToken) -> bool {
        self.stack
            .instant
            .refresh_token_user(&self.stack.app.id, token)
            .unwrap()
            .is_some()
    }

    fn instant_user_exists(&self, email: &str) -> bool {
        self.stack
            .instant
            .user_by_email(&self.stack.app.id, email)
            .unwrap()
            .is_some()
    }

    fn counted(&self, event_type: &str, outcome: &str) -> u64 {
        self.server.state.metrics().webhooks(event_type, outcome)
    }
}

#[tokio::test]
async fn a_revoked_session_is_signed_out_of_instantdb_and_refused_from_then_on() {
    let secret = secret();
    let h = harness(&secrets(&secret), UserDeletedPolicy::DeleteUser).await;
    let (session, user, refresh) = h.signed_in("revoked@example.com").await;
    assert!(h.instant_knows(&refresh));

    let answer = h
        .deliver(
            &secret,
            "msg_revoke",
            &session_event("session.revoked", &session, &user),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "applied");
    assert_eq!(answer.body["instant_session_signed_out"], true);
    assert!(
        !h.instant_knows(&refresh),
        "the refresh token is still alive"
    );

    // A fresh token of the same Clerk session is refused, not handed the old session.
    let token = h.stack.clerk.mint(&session).unwrap();
    let (status, body) = h.sign_in(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "session-signed-out");

    // Svix's retry of the same message is a duplicate and does nothing.
    let again = h
        .deliver(
            &secret,
            "msg_revoke",
            &session_event("session.revoked", &session, &user),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["status"], "duplicate");
    assert_eq!(h.counted("session.revoked", "applied"), 1);
    assert_eq!(h.counted("session.revoked", "duplicate"), 1);
    let metrics = h
        .http
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "clerk_instant_webhooks_total{type=\"session.revoked\",outcome=\"applied\"} 1"
        ),
        "{metrics}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn ended_and_removed_sessions_end_too_and_a_revocation_before_sign_in_prevents_one() {
    let secret = secret();
    let h = harness(&secrets(&secret), UserDeletedPolicy::DeleteUser).await;
    for (i, kind) in ["session.ended", "session.removed"].into_iter().enumerate() {
        let (session, user, refresh) = h.signed_in(&format!("ended{i}@example.com")).await;
        let answer = h
            .deliver(
                &secret,
                &format!("msg_{kind}"),
                &session_event(kind, &session, &user),
            )
            .await;
        assert_eq!(answer.body["status"], "applied", "{kind}: {}", answer.body);
        assert!(!h.instant_knows(&refresh), "{kind}");
    }

    // Revoked before the server ever saw the session: the sign-in that follows fails.
    let (session, token) = h.clerk_sign_in("early@example.com");
    let user = h.stack.clerk.session(&session).unwrap().user_id;
    let answer = h
        .deliver(
            &secret,
            "msg_early",
            &session_event("session.revoked", &session, &user),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["instant_session_signed_out"], false);
    let (status, body) = h.sign_in(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "session-signed-out");
    assert!(!h.instant_user_exists("early@example.com"));
    h.shutdown().await;
}

#[tokio::test]
async fn a_deleted_user_is_deleted_from_instantdb_or_only_signed_out_by_policy() {
    for policy in [UserDeletedPolicy::DeleteUser, UserDeletedPolicy::SignOut] {
        let secret = secret();
        let h = harness(&secrets(&secret), policy).await;
        let email = "deleted@example.com";
        let (session, user, refresh) = h.signed_in(email).await;
        let answer = h
            .deliver(&secret, "msg_deleted", &user_deleted(&user))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{policy}: {}", answer.body);
        assert_eq!(answer.body["status"], "applied", "{policy}");
        assert_eq!(answer.body["policy"], policy.as_str());
        assert!(!h.instant_knows(&refresh), "{policy}");
        assert_eq!(
            h.instant_user_exists(email),
            policy == UserDeletedPolicy::SignOut,
            "{policy}"
        );
        // The user's unexpired tokens are refused.
        let token = h.stack.clerk.mint(&session).unwrap();
        let (status, body) = h.sign_in(&token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{policy}: {body}");
        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_deleted_user_never_seen_is_unmapped_and_nothing_is_deleted() {
    let secret = secret();
    let h = harness(&secrets(&secret), UserDeletedPolicy::DeleteUser).await;
    let (_, _, refresh) = h.signed_in("bystander@example.com").await;
    let users = h.stack.instant.users(&h.stack.app.id).unwrap().len();
    let answer = h
        .deliver(&secret, "msg_unmapped", &user_deleted("user_never_seen"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "unmapped");
    assert_eq!(h.stack.instant.users(&h.stack.app.id).unwrap().len(), users);
    assert!(h.instant_knows(&refresh));
    assert_eq!(h.counted("user.deleted", "unmapped"), 1);
    assert_eq!(h.counted("user.deleted", "applied"), 0);

    // Without an id, acknowledged and counted as ignored.
    let body = serde_json::to_vec(&json!({
        "type": "user.deleted", "object": "event", "data": {"object": "user", "deleted": true}
    }))
    .unwrap();
    let answer = h.deliver(&secret, "msg_no_id", &body).await;
    assert_eq!(answer.body["status"], "ignored", "{}", answer.body);
    assert_eq!(h.counted("user.deleted", "ignored"), 1);
    h.shutdown().await;
}

/// A refused delivery: its name, `svix-id`, `svix-timestamp`, `svix-signature`,
/// body, and the code expected.
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    Option<u64>,
    Option<&'a str>,
    &'a [u8],
    &'a str,
);

#[tokio::test]
async fn deliveries_that_fail_verification_are_refused_and_change_nothing() {
    let secret = secret();
    let h = harness(&secrets(&secret), UserDeletedPolicy::DeleteUser).await;
    let (session, user, refresh) = h.signed_in("target@example.com").await;
    let body = session_event("session.revoked", &session, &user);
    let now = h.now();
    let sign = |s: &Secret, ts: u64, b: &[u8]| s.sign("msg_bad", ts, b);
    let forged = sign(&Secret::generate(), now, &body);
    let good = sign(&secret, now, &body);
    let stale = sign(&secret, now - 301, &body);
    let future = sign(&secret, now + 301, &body);
    let tampered = session_event("session.revoked", "sess_other", &user);
    let cases: Vec<Case<'_>> = vec![
        (
            "forged",
            Some("msg_bad"),
            Some(now),
            Some(&forged),
            &body,
            "webhook-signature-mismatch",
        ),
        (
            "tampered",
            Some("msg_bad"),
            Some(now),
            Some(&good),
            &tampered,
            "webhook-signature-mismatch",
        ),
        (
            "stale",
            Some("msg_bad"),
            Some(now - 301),
            Some(&stale),
            &body,
            "webhook-timestamp-too-old",
        ),
        (
            "future",
            Some("msg_bad"),
            Some(now + 301),
            Some(&future),
            &body,
            "webhook-timestamp-in-future",
        ),
        (
            "no id",
            None,
            Some(now),
            Some(&good),
            &body,
            "webhook-missing-header",
        ),
        (
            "no timestamp",
            Some("msg_bad"),
            None,
            Some(&good),
            &body,
            "webhook-missing-header",
        ),
        (
            "no signature",
            Some("msg_bad"),
            Some(now),
            None,
            &body,
            "webhook-missing-header",
        ),
    ];
    for (case, id, ts, signature, body, expected) in &cases {
        let answer = h.post_webhook(*id, *ts, *signature, body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            answer.body
        );
        assert_eq!(code(&answer.body), *expected, "{case}: {}", answer.body);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(!message.contains(&secret.expose_whsec()[6..]), "{case}");
    }
    assert!(
        h.instant_knows(&refresh),
        "a refused delivery changed InstantDB"
    );
    assert_eq!(h.counted("other", "refused"), cases.len() as u64);
    let token = h.stack.clerk.mint(&session).unwrap();
    assert_eq!(h.sign_in(&token).await.0, StatusCode::OK);

    // The same delivery, authentic, is applied afterwards (nothing was claimed).
    let answer = h
        .post_webhook(Some("msg_bad"), Some(now), Some(&good), &body)
        .await;
    assert_eq!(answer.body["status"], "applied", "{}", answer.body);
    h.shutdown().await;
}

#[tokio::test]
async fn both_secrets_verify_across_a_rotation() {
    let old = secret();
    let new = secret();
    let both = Secrets::parse(&format!("{} {}", old.expose_whsec(), new.expose_whsec())).unwrap();
    let h = harness(&both, UserDeletedPolicy::DeleteUser).await;
    for (i, secret) in [&old, &new].into_iter().enumerate() {
        let body = session_event("session.revoked", &format!("sess_rot{i}"), "user_rot");
        let answer = h.deliver(secret, &format!("msg_rot{i}"), &body).await;
        assert_eq!(answer.status, StatusCode::OK, "secret {i}: {}", answer.body);
    }
    h.shutdown().await;
}

#[tokio::test]
async fn the_same_delivery_twice_at_once_is_applied_once() {
    let secret = secret();
    let h = harness(&secrets(&secret), UserDeletedPolicy::DeleteUser).await;
    let (session, user, refresh) = h.signed_in("twice@example.com").await;
    let body = session_event("session.revoked", &session, &user);
    let (a, b) = tokio::join!(
        h.deliver(&secret, "msg_twice", &body),
        h.deliver(&secret, "msg_twice", &body)
    );
    // The second is a duplicate: done already, or asked to retry while the first runs.
    let applied = [&a, &b]
        .iter()
        .filter(|x| x.body["status"] == "applied")
        .count();
    assert_eq!(applied, 1, "{} / {}", a.body, b.body);
    for x in [&a, &b] {
        assert!(
            x.status == StatusCode::OK || x.status == StatusCode::CONFLICT,
            "{}",
            x.body
        );
        if x.status == StatusCode::CONFLICT {
            assert_eq!(code(&x.body), "webhook-in-progress");
            assert!(x.retry_after.is_some());
        }
    }
    assert_eq!(h.counted("session.revoked", "applied"), 1);
    assert_eq!(h.stack.instant.faults().hits(SIGN_OUT_ROUTE), 1);
    assert!(!h.instant_knows(&refresh));
    h.shutdown().await;
}

#[tokio::test]
async fn instantdb_down_is_503_with_retry_after_and_the_retry_applies_once() {
    let secret = secret();
    let h = harness(&secrets(&secret), UserDeletedPolicy::DeleteUser).await;
    let (session, user, refresh) = h.signed_in("outage@example.com").await;
    let body = session_event("session.revoked", &session, &user);
    h.stack
        .instant
        .faults()
        .inject(SIGN_OUT_ROUTE, Fault::status(503), 1)
        .unwrap();
    let answer = h.deliver(&secret, "msg_outage", &body).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert!(answer.retry_after.is_some());
    assert_eq!(code(&answer.body), "instant-unavailable");
    assert!(h.instant_knows(&refresh));
    assert_eq!(h.counted("session.revoked", "failed"), 1);

    // Svix's retry (same id, new timestamp and signature) applies it.
    let answer = h.deliver(&secret, "msg_outage", &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "applied");
    assert!(!h.instant_knows(&refresh));
    let answer = h.deliver(&secret, "msg_outage", &body).await;
    assert_eq!(answer.body["status"], "duplicate");
    assert_eq!(h.counted("session.revoked", "applied"), 1);
    assert_eq!(h.stack.instant.faults().hits(SIGN_OUT_ROUTE), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn unknown_and_informational_events_are_acknowledged_and_ignored() {
    let secret = secret();
    let h = harness(&secrets(&secret), UserDeletedPolicy::DeleteUser).await;
    let (_, _, refresh) = h.signed_in("calm@example.com").await;
    let unknown = serde_json::to_vec(&json!({
        "type": "organization.created", "object": "event", "data": {"id": "org_1"}
    }))
    .unwrap();
    let answer = h.deliver(&secret, "msg_unknown", &unknown).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "ignored");
    assert_eq!(answer.body["type"], "organization.created");
    let created = session_event("session.created", "sess_new", "user_new");
    let answer = h.deliver(&secret, "msg_created", &created).await;
    assert_eq!(answer.body["status"], "ignored", "{}", answer.body);
    assert_eq!(h.counted("other", "ignored"), 1);
    assert_eq!(h.counted("session.created", "ignored"), 1);
    assert!(h.instant_knows(&refresh));
    h.shutdown().await;
}

#[tokio::test]
async fn without_a_signing_secret_deliveries_get_503_so_svix_retries() {
    let h = Harness::start().await;
    let secret = secret();
    let body = session_event("session.revoked", "sess_1", "user_1");
    let answer = h.deliver(&secret, "msg_1", &body).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&answer.body), "webhooks-not-configured");
    // Public: no Clerk token needed, and other methods are 405.
    let response = h.http.get(h.url(PATH)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    h.shutdown().await;
}

#[test]
fn a_bad_signing_secret_stops_start_up_with_exit_code_2() {
    for value in ["whsec_", "whsec_!!!notbase64", "whsec_c2hvcnQ="] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clerk-instant-server"))
            .env_clear()
            .env("CLERK_WEBHOOK_SIGNING_SECRET", value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("CLERK_WEBHOOK_SIGNING_SECRET (--clerk-webhook-signing-secret)"),
            "{value}: {stderr}"
        );
        assert!(stderr.contains("Clerk dashboard"), "{value}: {stderr}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clerk-instant-server"))
        .env_clear()
        .env("USER_DELETED_POLICY", "nuke")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("USER_DELETED_POLICY"));
}

/// Dev mode: the server's own local Clerk delivers to its endpoint.
async fn dev(options: clerk_instant_server::config::Options) -> clerk_instant_server::Running {
    clerk_instant_server::start(clerk_instant_server::config::Mode::Dev(Box::new(options)))
        .await
        .unwrap()
}

#[tokio::test]
async fn in_dev_mode_the_local_clerk_delivers_revocations_and_deletions_to_the_server() {
    let running = dev(crate::support::options()).await;
    let stack = running.dev.as_ref().unwrap();
    let banner = clerk_instant_server::dev_banner(&running);
    // The generated secret is printed, and it is the one the server verifies with.
    let printed = banner
        .lines()
        .find_map(|line| line.trim().strip_prefix("signing secret"))
        .unwrap()
        .trim();
    let secret = Secret::parse(printed).unwrap();
    assert!(
        banner.contains(stack.clerk.secret_key().expose()),
        "{banner}"
    );
    assert!(banner.contains(stack.app.admin_token.expose()), "{banner}");
    assert!(banner.contains("/v1/webhooks/clerk"), "{banner}");

    let http = reqwest::Client::new();
    let body = br#"{"type":"user.created","object":"event","data":{"id":"user_x"}}"#;
    let now = u64::try_from(stack.clerk.now()).unwrap();
    let response = http
        .post(format!("{}/v1/webhooks/clerk", running.url()))
        .header("svix-id", "msg_banner")
        .header("svix-timestamp", now.to_string())
        .header("svix-signature", secret.sign("msg_banner", now, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sign_in = |token: String| {
        let http = http.clone();
        let url = running.url();
        async move {
            let response = http
                .post(format!("{url}/v1/session"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let app = stack.app.id.clone();
    let refresh_of = |body: &Value| RefreshToken::new(body["refresh_token"].as_str().unwrap());

    // Revoke a signed-in session in the local Clerk.
    let signed = stack.clerk.sign_in("dev-revoked@example.com").unwrap();
    let token = stack.clerk.mint(&signed.session.id).unwrap();
    let (status, body) = sign_in(token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh = refresh_of(&body);
    stack.clerk.revoke_session(&signed.session.id).unwrap();
    stack.clerk.webhooks().idle().await;
    assert!(
        stack
            .instant
            .refresh_token_user(&app, &refresh)
            .unwrap()
            .is_none(),
        "{:?}",
        stack.clerk.webhooks().deliveries()
    );
    let (status, body) = sign_in(token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "session-signed-out");

    // Delete a signed-in user in the local Clerk: gone from the emulator (delete-user).
    let signed = stack.clerk.sign_in("dev-deleted@example.com").unwrap();
    let token = stack.clerk.mint(&signed.session.id).unwrap();
    let (status, body) = sign_in(token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh = refresh_of(&body);
    stack.clerk.delete_user(&signed.session.user_id).unwrap();
    stack.clerk.webhooks().idle().await;
    assert!(
        stack
            .instant
            .refresh_token_user(&app, &refresh)
            .unwrap()
            .is_none()
    );
    assert!(
        stack
            .instant
            .user_by_email(&app, "dev-deleted@example.com")
            .unwrap()
            .is_none()
    );
    for delivery in stack.clerk.webhooks().deliveries() {
        assert_eq!(
            delivery.state,
            devstack::clerk::DeliveryState::Succeeded,
            "{delivery:?}"
        );
    }
    running.shutdown().await;
}

#[tokio::test]
async fn in_dev_mode_a_configured_signing_secret_signs_the_local_clerk_and_is_not_printed() {
    let secret = secret();
    let mut options = crate::support::options();
    options.webhook_secrets = Some(secrets(&secret));
    let running = dev(options).await;
    let stack = running.dev.as_ref().unwrap();
    let banner = clerk_instant_server::dev_banner(&running);
    assert!(!banner.contains(&secret.expose_whsec()), "{banner}");
    assert!(
        banner.contains("from CLERK_WEBHOOK_SIGNING_SECRET"),
        "{banner}"
    );
    let signed = stack.clerk.sign_in("dev-configured@example.com").unwrap();
    stack.clerk.revoke_session(&signed.session.id).unwrap();
    stack.clerk.webhooks().idle().await;
    let deliveries = stack.clerk.webhooks().deliveries();
    assert!(
        deliveries.iter().any(|d| d.event_type == "session.revoked"
            && d.state == devstack::clerk::DeliveryState::Succeeded),
        "{deliveries:?}"
    );
    assert!(
        running
            .state
            .metrics()
            .webhooks("session.revoked", "applied")
            >= 1
    );
    running.shutdown().await;
}

fn user_updated(user: &str, primary: Option<&str>) -> Vec<u8> {
    let emails: Vec<Value> = primary
        .map(|email| json!({"id": "idn_1", "email_address": email}))
        .into_iter()
        .collect();
    serde_json::to_vec(&json!({
        "type": "user.updated",
        "object": "event",
        "data": {
            "id": user,
            "object": "user",
            "email_addresses": emails,
            "primary_email_address_id": primary.map(|_| "idn_1"),
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn a_changed_primary_email_signs_out_the_sessions_of_the_old_one() {
    let secret = secret();
    let h = harness(&secrets(&secret), UserDeletedPolicy::DeleteUser).await;
    let (_, user, refresh) = h.signed_in("old@example.com").await;

    // The same email (any case): nothing to do.
    let answer = h
        .deliver(
            &secret,
            "msg_same",
            &user_updated(&user, Some("OLD@example.com")),
        )
        .await;
    assert_eq!(answer.body["sessions_signed_out"], 0, "{}", answer.body);
    assert!(h.instant_knows(&refresh));
    // No primary email: acknowledged, ignored.
    let answer = h
        .deliver(&secret, "msg_none", &user_updated(&user, None))
        .await;
    assert_eq!(answer.body["status"], "ignored", "{}", answer.body);
    assert!(h.instant_knows(&refresh));

    let answer = h
        .deliver(
            &secret,
            "msg_new",
            &user_updated(&user, Some("new@example.com")),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "applied");
    assert_eq!(answer.body["sessions_signed_out"], 1);
    assert!(!h.instant_knows(&refresh));
    h.shutdown().await;
}
