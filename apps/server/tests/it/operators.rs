//! What operators see: the start-up summary, the logs on a pipe, the metrics, the
//! second listener, and a busy port.

use std::io::{BufRead as _, BufReader, Lines};
use std::process::{ChildStderr, Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::Harness;

const BIN: &str = env!("CARGO_BIN_EXE_clerk-instant-server");

/// Kills the child on drop, so a failed assertion leaves no server running.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary in dev mode with only `env`, its standard error piped.
fn dev_server(env: &[(&str, &str)]) -> (Child, Lines<BufReader<ChildStderr>>) {
    let mut child = Child(
        Command::new(BIN)
            .env_clear()
            .env("CLERK_INSTANT_DEV", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = BufReader::new(child.0.stderr.take().unwrap()).lines();
    (child, stderr)
}

/// The lines up to and including the first that `is_last` accepts.
fn lines_until(
    lines: &mut Lines<BufReader<ChildStderr>>,
    is_last: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let last = is_last(&line);
        seen.push(line);
        if last {
            return seen;
        }
    }
    panic!("the server stopped first: {seen:#?}");
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))
}

#[tokio::test]
async fn the_start_up_summary_says_what_is_configured_and_no_secret() {
    const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const STORE_KEY: &str = "b3BlcmF0b3JzLXRlc3Qta2V5LTMyLWJ5dGVzLWxvbmc=";
    const REDIS_PASSWORD: &str = "hunter2redis";
    let (mut child, mut stderr) = dev_server(&[
        // Both in capitals: the names are read in any case.
        ("LOG_FORMAT", "JSON"),
        ("LOG_LEVEL", "INFO"),
        // A host name.
        ("LISTEN_ADDR", "localhost:0"),
        ("CLERK_WEBHOOK_SIGNING_SECRET", WEBHOOK_SECRET),
        // Redis connects on first use: nothing listens on port 1, and nothing asks.
        (
            "SESSION_STORE_URL",
            &format!("redis://app:{REDIS_PASSWORD}@127.0.0.1:1/0"),
        ),
        ("SESSION_STORE_PREFIX", "ops-test:"),
        ("SESSION_STORE_ENCRYPTION_KEY", STORE_KEY),
    ]);
    let lines = lines_until(&mut stderr, |line| json(line)["message"] == "listening");
    let listening = json(lines.last().unwrap());
    let addr = listening["addr"].as_str().unwrap().to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let summaries: Vec<Value> = lines
        .iter()
        .map(|line| json(line))
        .filter(|event| event["message"] == "configuration")
        .collect();
    assert_eq!(summaries.len(), 1, "{lines:#?}");
    let summary = &summaries[0];
    assert_eq!(summary["level"], "INFO", "{summary}");
    assert_eq!(summary["mode"], "dev", "{summary}");
    assert_eq!(summary["listen"], addr.as_str(), "{summary}");
    assert!(
        summary["clerk_instance"]
            .as_str()
            .is_some_and(|host| !host.is_empty() && !host.contains('/')),
        "{summary}"
    );
    assert!(summary["instant_app_id"].is_string(), "{summary}");
    assert!(
        summary["instant_api"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{summary}"
    );
    assert_eq!(summary["strategy"], "id-token", "{summary}");
    for set in [
        "clerk_secret_key_set",
        "instant_admin_token_set",
        "webhook_signing_secret_set",
        "store_encryption_key_set",
    ] {
        assert_eq!(summary[set], true, "{set}: {summary}");
    }
    assert_eq!(summary["store"], "redis", "{summary}");
    assert_eq!(summary["store_prefix"], "ops-test:", "{summary}");
    assert_eq!(
        summary["store_url"], "redis://app:***@127.0.0.1:1/0",
        "{summary}"
    );
    assert!(summary["authorized_parties"].is_string(), "{summary}");
    assert!(summary["max_sessions"].is_u64(), "{summary}");

    // The local stack's own secrets, from the banner on standard output.
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut secrets = vec![
        WEBHOOK_SECRET.to_owned(),
        STORE_KEY.to_owned(),
        REDIS_PASSWORD.to_owned(),
    ];
    for line in stdout.lines() {
        let line = line.unwrap();
        for label in ["local Clerk secret key", "InstantDB admin token"] {
            if let Some(value) = line.trim().strip_prefix(label) {
                secrets.push(value.trim().to_owned());
            }
        }
        if line.contains("InstantDB admin token") {
            break;
        }
    }
    assert_eq!(
        secrets.len(),
        5,
        "the banner names both secrets: {secrets:?}"
    );
    let text = lines.join("\n");
    for secret in &secrets {
        assert!(
            !secret.is_empty() && !text.contains(secret.as_str()),
            "{secret} in {text}"
        );
    }

    // A request's record carries its span once, as `span`.
    let response = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let lines = lines_until(&mut stderr, |line| json(line)["message"] == "request");
    let request = json(lines.last().unwrap());
    assert_eq!(request["span"]["route"], "/healthz", "{request}");
    assert!(request.get("spans").is_none(), "{request}");
}

#[test]
fn text_logs_on_a_pipe_carry_no_colour_codes() {
    let (_child, mut stderr) =
        dev_server(&[("LOG_FORMAT", "Text"), ("LISTEN_ADDR", "127.0.0.1:0")]);
    let lines = lines_until(&mut stderr, |line| line.contains("listening"));
    let text = lines.join("\n");
    assert!(text.contains("configuration"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[test]
fn port_alone_is_honoured_on_loopback_in_dev_mode() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port().to_string();
    drop(free);
    let (_child, mut stderr) = dev_server(&[("PORT", &port), ("LOG_FORMAT", "json")]);
    let lines = lines_until(&mut stderr, |line| json(line)["message"] == "listening");
    let listening = json(lines.last().unwrap());
    assert_eq!(
        listening["addr"],
        format!("127.0.0.1:{port}"),
        "{listening}"
    );
}

#[test]
fn a_busy_port_fails_before_the_local_stack_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .env_clear()
        .args(["--dev", "--listen-addr", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot listen on {addr} (LISTEN_ADDR)")),
        "{stderr}"
    );
    // The local Clerk says when it starts: it did not.
    assert!(!stderr.contains("local Clerk started"), "{stderr}");
    assert!(!stderr.contains("InstantDB emulator started"), "{stderr}");
}

/// The lines of a Prometheus text exposition that start with `name`.
fn series<'t>(text: &'t str, name: &str) -> Vec<&'t str> {
    text.lines().filter(|line| line.starts_with(name)).collect()
}

#[tokio::test]
async fn every_answer_carries_a_request_id_the_clients_when_plain() {
    let h = Harness::start().await;
    let id_of = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let given = h
        .http
        .get(h.url("/healthz"))
        .header("x-request-id", "abc-123_x.y")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&given), "abc-123_x.y");
    // Not plain (a space), too long, or absent: a fresh id each time, 32 hex digits.
    let mut fresh = Vec::new();
    for sent in [Some("a b"), Some(&*"x".repeat(65)), None, None] {
        let mut request = h.http.get(h.url("/nope"));
        if let Some(sent) = sent {
            request = request.header("x-request-id", sent);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let id = id_of(&response);
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
        fresh.push(id);
    }
    fresh.sort();
    fresh.dedup();
    assert_eq!(fresh.len(), 4, "ids repeat: {fresh:?}");
}

#[tokio::test]
async fn metrics_have_request_latency_by_route_the_build_and_the_process() {
    let h = Harness::start().await;
    for _ in 0..3 {
        let response = h.http.get(h.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = h.http.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    // Three /healthz answers, each well under 10 s; the first bucket is below a
    // millisecond.
    let healthz = "clerk_instant_request_seconds_bucket{route=\"/healthz\",";
    let buckets = series(&text, healthz);
    assert!(
        buckets[0].starts_with(&format!("{healthz}le=\"0.00005\"}}")),
        "{buckets:?}"
    );
    assert!(
        buckets.contains(&&*format!("{healthz}le=\"10\"}} 3")),
        "{buckets:?}"
    );
    assert!(
        text.contains("clerk_instant_request_seconds_count{route=\"/healthz\"} 3"),
        "{text}"
    );
    let build = series(&text, "clerk_instant_build_info{");
    assert_eq!(build.len(), 1, "{text}");
    assert!(
        build[0].starts_with(&format!(
            "clerk_instant_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )) && build[0].contains(",rustc=\"1.")
            && build[0].ends_with("\"} 1"),
        "{}",
        build[0]
    );
    if cfg!(target_os = "linux") {
        for name in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            let lines = series(&text, name);
            assert_eq!(lines.len(), 1, "{name} in {text}");
            let value: f64 = lines[0][name.len()..].parse().unwrap();
            assert!(value > 0.0, "{}", lines[0]);
        }
        let start = series(&text, "process_start_time_seconds ")[0]
            ["process_start_time_seconds ".len()..]
            .parse::<f64>()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 24.0 * 3600.0,
            "{start} {now}"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_metrics_listener_serves_metrics_and_probes_and_takes_metrics_off_the_main_one() {
    let h = Harness::start_with(|settings| {
        settings.options.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let metrics = h.server.metrics_addr.expect("a metrics listener");
    assert_ne!(metrics, h.server.addr);
    let on = |addr: std::net::SocketAddr, path: &str| {
        let http = h.http.clone();
        let url = format!("http://{addr}{path}");
        async move { http.get(url).send().await.unwrap() }
    };
    let main = h.server.addr;
    assert_eq!(on(main, "/metrics").await.status(), StatusCode::NOT_FOUND);
    // Load balancers probe the main port.
    assert_eq!(on(main, "/readyz").await.status(), StatusCode::OK);
    assert_eq!(on(main, "/healthz").await.status(), StatusCode::OK);
    assert_eq!(on(metrics, "/readyz").await.status(), StatusCode::OK);
    assert_eq!(on(metrics, "/healthz").await.status(), StatusCode::OK);
    assert_eq!(on(metrics, "/v1/me").await.status(), StatusCode::NOT_FOUND);
    // The main listener's API description leaves out the /metrics it no longer serves.
    let description: Value = on(main, "/openapi.json").await.json().await.unwrap();
    let paths = description["paths"].as_object().unwrap();
    assert!(!paths.contains_key("/metrics"), "{:?}", paths.keys());
    assert!(paths.contains_key("/healthz") && paths.contains_key("/v1/query"));
    let response = on(metrics, "/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    // Both listeners' requests are counted, under the same route labels (/metrics on
    // the main listener and /v1/me on the metrics one matched no route).
    assert!(
        text.contains(
            "clerk_instant_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "clerk_instant_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 2"
        ),
        "{text}"
    );
    // The shutdown stops both.
    let Harness { stack, server, .. } = h;
    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(metrics).await.is_err());
    stack.shutdown().await;
}
