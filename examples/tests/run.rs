//! Each example program, built by cargo for this test, run against the local stack
//! (`devstack`) with its settings in the environment, and judged by its output and by
//! what it did to the local Clerk and InstantDB.

use std::process::Stdio;
use std::time::Duration;

use devstack::clerk::{SessionState, WebhookEndpoint};
use devstack::{DevStack, DevStackConfig, WebhookSecret};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A bound on waiting for a program's next line, so a broken example fails the test
/// instead of hanging it (not a synchronisation: the line is awaited).
const PATIENCE: Duration = Duration::from_secs(60);

/// The program with only the given environment (nothing inherited from the test's).
fn program(path: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// A server example, started, with its stdout lines and the URL it announced.
struct Served {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    url: String,
}

impl Served {
    async fn start(mut cmd: Command) -> Served {
        let mut child = cmd.spawn().expect("the example starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut served = Served {
            _child: child,
            lines: BufReader::new(stdout).lines(),
            url: String::new(),
        };
        let first = served.next_line().await;
        served.url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the example announces its address, not {first:?}"))
            .to_owned();
        served
    }

    async fn next_line(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .expect("the example prints its next line in time")
            .expect("its stdout reads")
            .expect("the example is still running")
    }
}

async fn stack() -> DevStack {
    DevStack::start(DevStackConfig::default())
        .await
        .expect("the local stack starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn axum_app_serves_verified_sessions_only() {
    let stack = stack().await;
    let pk = stack.clerk.publishable_key().to_string();
    let app = Served::start(program(
        env!("CARGO_BIN_EXE_axum-app"),
        &[
            ("CLERK_PUBLISHABLE_KEY", &pk),
            ("LISTEN_ADDR", "127.0.0.1:0"),
        ],
    ))
    .await;
    let http = reqwest::Client::new();
    let me = format!("{}/me", app.url);

    let token = stack.clerk.session_token("alice@example.com").unwrap();
    let answer = http.get(&me).bearer_auth(&token).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["email"], "alice@example.com", "{body}");
    assert!(
        body["user_id"].as_str().unwrap().starts_with("user_"),
        "{body}"
    );

    let missing = http.get(&me).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    // The same token with its signature's first character changed.
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let swapped = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{signed}.{swapped}{}", &signature[1..]);
    let forged = http.get(&me).bearer_auth(forged).send().await.unwrap();
    assert_eq!(forged.status(), 401);
    let body: serde_json::Value = forged.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token-invalid-signature", "{body}");

    let public = http.get(&app.url).send().await.unwrap();
    assert_eq!(public.status(), 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_signs_in_reuses_the_session_and_signs_out_of_both() {
    let stack = stack().await;
    let signed = stack.clerk.sign_in("bob@example.com").unwrap();
    let token = stack.clerk.mint(&signed.session.id).unwrap();
    let pk = stack.clerk.publishable_key().to_string();
    let output = program(
        env!("CARGO_BIN_EXE_broker"),
        &[
            ("CLERK_PUBLISHABLE_KEY", &pk),
            ("CLERK_SECRET_KEY", stack.clerk.secret_key().expose()),
            ("CLERK_API_URL", stack.clerk.url()),
            ("INSTANT_APP_ID", &stack.app.id),
            ("INSTANT_API_URI", stack.instant.url()),
            ("INSTANT_CLERK_CLIENT_NAME", &stack.client_name),
            ("CLERK_SESSION_TOKEN", &token),
        ],
    )
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}\n{stdout}", output.status);
    for expected in [
        "(bob@example.com), created: true",
        "signed in again: session reused: true",
        "query as the user: {\"goals\":[]}",
        "signed out: InstantDB Done, Clerk Done",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    // One InstantDB session was made, and it is gone; the Clerk session is revoked.
    assert_eq!(
        stack.instant.refresh_tokens_total(&stack.app.id).unwrap(),
        0
    );
    assert_eq!(
        stack.clerk.session(&signed.session.id).unwrap().status,
        SessionState::Revoked
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instant_admin_writes_reads_and_impersonates() {
    let stack = stack().await;
    let output = program(
        env!("CARGO_BIN_EXE_instant-admin"),
        &[
            ("INSTANT_APP_ID", &stack.app.id),
            ("INSTANT_APP_ADMIN_TOKEN", stack.app.admin_token.expose()),
            ("INSTANT_API_URI", stack.instant.url()),
        ],
    )
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}\n{stdout}", output.status);
    let goals = stack.instant.entities(&stack.app.id, "goals").unwrap();
    assert_eq!(goals.len(), 1, "{goals:?}");
    assert_eq!(goals[0]["title"], "Get fit");
    let user = stack
        .instant
        .user_by_email(&stack.app.id, "admin-example@example.com")
        .unwrap()
        .expect("the example made the user");
    let user_id = user["id"].as_str().unwrap();
    for expected in [
        "goals: {\"goals\":[{".to_owned(),
        format!("refresh token minted for InstantDB user {user_id}"),
        format!("user by email: {user_id}"),
        "goals as the user: {\"goals\":[{".to_owned(),
        "signed the user's refresh token out".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} not in:\n{stdout}");
    }
    assert_eq!(
        stack.instant.refresh_tokens_total(&stack.app.id).unwrap(),
        0
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_receiver_verifies_clerk_deliveries_and_refuses_forgeries() {
    let stack = stack().await;
    let secret = WebhookSecret::generate();
    let mut receiver = Served::start(program(
        env!("CARGO_BIN_EXE_webhook-receiver"),
        &[
            ("CLERK_WEBHOOK_SIGNING_SECRET", secret.expose()),
            ("LISTEN_ADDR", "127.0.0.1:0"),
        ],
    ))
    .await;
    let endpoint = format!("{}/webhooks/clerk", receiver.url);

    // A forgery first: signed with another secret.
    let body =
        r#"{"type":"session.revoked","object":"event","data":{"id":"sess_1","user_id":"user_1"}}"#;
    let other = clerk_webhooks::Secrets::parse(WebhookSecret::generate().expose()).unwrap();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = reqwest::Client::new()
        .post(&endpoint)
        .header("svix-id", "msg_forged")
        .header("svix-timestamp", timestamp.to_string())
        .header(
            "svix-signature",
            other.sign("msg_forged", timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert_eq!(
        receiver.next_line().await,
        "refused: webhook-signature-mismatch"
    );

    // Then the local Clerk's own delivery of a revocation.
    stack
        .clerk
        .webhooks()
        .add_endpoint(WebhookEndpoint::new(&endpoint, secret));
    let signed = stack.clerk.sign_in("carol@example.com").unwrap();
    stack.clerk.revoke_session(&signed.session.id).unwrap();
    let wanted = format!(
        "session.revoked: session {} of user {}",
        signed.session.id, signed.user.id
    );
    loop {
        let line = receiver.next_line().await;
        assert!(line.starts_with("verified msg_"), "{line}");
        if line.ends_with(&wanted) {
            break;
        }
    }
    stack.clerk.webhooks().idle().await;
    let deliveries = stack.clerk.webhooks().deliveries();
    assert!(
        deliveries.iter().any(|d| d.event_type == "session.revoked"
            && d.attempts.last().and_then(|a| a.status) == Some(200)),
        "{deliveries:?}"
    );
    stack.shutdown().await;
}
