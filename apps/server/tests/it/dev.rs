//! Dev mode is explicit: `--dev` (or `CLERK_INSTANT_DEV`), on loopback only; without it
//! and without settings the binary stops and names both ways forward.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_clerk-instant-server");
const APP: &str = "11111111-2222-4333-8444-555555555555";

/// Runs the binary with only `env` (and `args`) and returns its exit code and stderr.
/// Unless `env` says otherwise it is given a port already taken, so that a server that
/// wrongly starts fails to listen (exit 1) instead of running on.
fn refused(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(BIN)
        .env_clear()
        .env("LISTEN_ADDR", taken.local_addr().unwrap().to_string())
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn with_no_settings_and_no_dev_the_binary_stops_and_names_both_ways() {
    let (code, stderr) = refused(&[], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_setting_set_to_nothing_is_refused_not_taken_as_absent() {
    // What a compose file's `${CLERK_PUBLISHABLE_KEY}` gives when it is unset.
    let (code, stderr) = refused(
        &[],
        &[
            ("CLERK_PUBLISHABLE_KEY", ""),
            ("INSTANT_APP_ID", ""),
            ("CLERK_AUTHORIZED_PARTIES", ""),
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    for setting in [
        "CLERK_PUBLISHABLE_KEY (--clerk-publishable-key): is set but empty",
        "INSTANT_APP_ID (--instant-app-id): is set but empty",
        "CLERK_AUTHORIZED_PARTIES (--clerk-authorized-parties): is set but empty",
    ] {
        assert!(stderr.contains(setting), "{setting} in {stderr}");
    }
    // An empty CLERK_INSTANT_DEV does not mean dev mode either.
    let (code, stderr) = refused(&[], &[("CLERK_INSTANT_DEV", "")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--dev"), "{stderr}");
}

#[test]
fn browser_names_for_the_settings_are_pointed_out() {
    let (code, stderr) = refused(
        &[],
        &[
            (
                "NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY",
                "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k",
            ),
            ("NEXT_PUBLIC_INSTANT_APP_ID", APP),
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    insta::assert_snapshot!(stderr);
}

#[test]
fn dev_mode_refuses_other_than_loopback_and_real_settings() {
    for (args, env) in [
        (vec!["--dev", "--listen-addr", "0.0.0.0:8787"], vec![]),
        (
            vec![],
            vec![
                ("CLERK_INSTANT_DEV", "1"),
                ("LISTEN_ADDR", "192.168.1.20:8787"),
            ],
        ),
        (vec!["--dev", "--listen", "[::]:8787"], vec![]),
    ] {
        let (code, stderr) = refused(&args, &env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("LISTEN_ADDR (--listen-addr)") && stderr.contains("loopback only"),
            "{args:?} {env:?}: {stderr}"
        );
    }
    let (code, stderr) = refused(
        &["--dev"],
        &[("CLERK_PUBLISHABLE_KEY", "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "CLERK_INSTANT_DEV (--dev): runs the embedded local stack, which takes no Clerk or InstantDB setting, but CLERK_PUBLISHABLE_KEY (--clerk-publishable-key) is given"
        ),
        "{stderr}"
    );
}

/// Kills the child on drop, so a failed assertion leaves no server running.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_start_up_log_says_dev_mode() {
    let mut child = Child(
        Command::new(BIN)
            .env_clear()
            .env("CLERK_INSTANT_DEV", "1")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Ok(event) = serde_json::from_str::<Value>(&line)
            && event["message"] == "listening"
        {
            assert_eq!(event["mode"], "dev", "{line}");
            return;
        }
        seen.push(line);
    }
    panic!("the server stopped without listening: {seen:#?}");
}

/// The server in dev mode, in-process.
async fn dev() -> clerk_instant_server::Running {
    clerk_instant_server::start(clerk_instant_server::config::Mode::Dev(Box::new(
        crate::support::options(),
    )))
    .await
    .unwrap()
}

#[tokio::test]
async fn a_dev_mode_built_by_hand_still_refuses_every_address() {
    let mut options = crate::support::options();
    options.listen = "0.0.0.0:0".parse().unwrap();
    let error =
        clerk_instant_server::start(clerk_instant_server::config::Mode::Dev(Box::new(options)))
            .await
            .unwrap_err();
    assert!(error.to_string().contains("loopback only"), "{error:#}");
}

#[tokio::test]
async fn the_dev_token_endpoint_answers_loopback_host_names_only() {
    let running = dev().await;
    let http = reqwest::Client::new();
    let url = format!("{}/dev/token", running.url());
    let port = running.addr.port();
    let mint = |host: String| {
        http.post(&url)
            .header(reqwest::header::HOST, host)
            .json(&json!({"email": "dana@example.com"}))
            .send()
    };
    // DNS rebinding: another site's name resolved to 127.0.0.1.
    for host in [
        format!("evil.example.com:{port}"),
        "evil.example.com".to_owned(),
        format!("127.0.0.1.nip.io:{port}"),
    ] {
        let response = mint(host.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{host}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "dev-loopback-only", "{host}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let response = mint(host.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }
    let ready: Value = http
        .get(format!("{}/readyz", running.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["mode"], "dev", "{ready}");
    running.shutdown().await;
}

#[tokio::test]
async fn the_dev_token_endpoint_mints_with_azp_claims_no_email_and_expiry() {
    let running = dev().await;
    let http = reqwest::Client::new();
    let url = format!("{}/dev/token", running.url());
    let mint = |body: Value| http.post(&url).json(&body).send();
    let claims = |token: &Value| {
        clerk_jwt::inspect(token["token"].as_str().unwrap())
            .unwrap()
            .payload
    };

    let response = mint(json!({
        "email": "dana@example.com",
        "azp": "http://localhost:3000",
        "claims": {"org_id": "org_1", "roles": ["admin"]},
        "no_email": true,
        "expires_in": 0
    }))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token: Value = response.json().await.unwrap();
    let payload = claims(&token);
    assert_eq!(payload["azp"], "http://localhost:3000");
    assert_eq!(payload["org_id"], "org_1");
    assert_eq!(payload["roles"], json!(["admin"]));
    assert!(!payload.contains_key("email"), "{payload:?}");
    assert!(!payload.contains_key("email_verified"), "{payload:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let exp = payload["exp"].as_i64().unwrap();
    assert!(
        exp <= now,
        "expires_in 0 mints an expired token: exp {exp}, now {now}"
    );

    // The defaults: email kept, the local Clerk's lifetime.
    let token: Value = mint(json!({"email": "dana@example.com", "expires_in": 120}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payload = claims(&token);
    assert_eq!(payload["email"], "dana@example.com");
    assert!(!payload.contains_key("azp"), "{payload:?}");
    let exp = payload["exp"].as_i64().unwrap();
    assert!(exp > now + 100, "exp {exp}, now {now}");

    // The keys are snake_case; another spelling is refused with the expected shape.
    let response = mint(json!({"email": "dana@example.com", "noEmail": true}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid-body", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"no_email\""),
        "{body}"
    );
    running.shutdown().await;
}

/// Starts the binary with `env` and returns the JSON log events up to and including
/// the `listening` one.
fn start_up_log(env: &[(&str, String)]) -> Vec<Value> {
    let mut child = Child(
        Command::new(BIN)
            .env_clear()
            .envs(env.iter().map(|(name, value)| (name, value)))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut events = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let event: Value = serde_json::from_str(&line).unwrap_or(json!({"message": line}));
        let listening = event["message"] == "listening";
        events.push(event);
        if listening {
            return events;
        }
    }
    panic!("the server stopped without listening: {events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_log_warns_when_azp_is_not_checked_and_says_configured() {
    let stack = devstack::DevStack::start(devstack::DevStackConfig::default())
        .await
        .unwrap();
    let settings = vec![
        (
            "CLERK_PUBLISHABLE_KEY",
            stack.clerk.publishable_key().to_string(),
        ),
        ("INSTANT_APP_ID", stack.app.id.clone()),
        ("INSTANT_API_URI", stack.instant.url().to_owned()),
        ("INSTANT_CLERK_CLIENT_NAME", stack.client_name.clone()),
    ];
    let warned = |events: &[Value]| {
        events.iter().any(|e| {
            e["level"] == "WARN"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("CLERK_AUTHORIZED_PARTIES is not set"))
        })
    };
    let unset = settings.clone();
    let events = tokio::task::spawn_blocking(move || start_up_log(&unset))
        .await
        .unwrap();
    assert!(warned(&events), "{events:#?}");
    assert_eq!(events.last().unwrap()["mode"], "configured", "{events:#?}");

    let mut listed = settings;
    listed.push((
        "CLERK_AUTHORIZED_PARTIES",
        "http://localhost:3000/".to_owned(),
    ));
    let events = tokio::task::spawn_blocking(move || start_up_log(&listed))
        .await
        .unwrap();
    assert!(!warned(&events), "{events:#?}");
    stack.shutdown().await;
}
