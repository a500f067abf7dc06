//! Client connections over raw TCP: slow and idle ones are closed, a cap holds
//! newcomers until a slot frees, shutdown has a deadline; and a sign-in whose client
//! went away still ends with its session stored.

use std::net::SocketAddr;
use std::time::Duration;

use clerk_instant_server::config::{ServerArgs, Settings};
use devstack::{DevStack, DevStackConfig, Fault};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::Harness;

/// Bounds every wait, only so a broken server fails the test instead of hanging it.
const GUARD: Duration = Duration::from_secs(30);

/// A request cut off in the middle of its headers.
const HALF_SENT: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

/// A whole keep-alive request.
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// A server whose connection settings `tweak` sets.
async fn harness(tweak: impl FnOnce(&mut Settings)) -> Harness {
    Harness::start_with(tweak).await
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A connection that sent half a request's headers and nothing since.
async fn half_sent(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(HALF_SENT).await.unwrap();
    stream
}

/// Whether the server closed the connection: the read ends (EOF or reset), after at
/// most an answer such as a 408. Panics when nothing happens within [`GUARD`].
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let mut answered = Vec::new();
    let outcome = tokio::time::timeout(GUARD, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answered.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "the server kept the connection open (it sent {:?})",
        String::from_utf8_lossy(&answered)
    );
    if !answered.is_empty() {
        assert!(
            answered.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&answered)
        );
    }
}

/// Reads one response with a `Content-Length` body; returns its status.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let head_end = loop {
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed before the answer");
        seen.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse().unwrap());
    while seen.len() < head_end + length {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed in the body");
        seen.extend_from_slice(&buf[..n]);
    }
    head[9..12].parse().unwrap()
}

/// Sends `/healthz` on `stream` and reads the answer, within [`GUARD`].
async fn healthz(stream: &mut TcpStream) -> u16 {
    stream.write_all(HEALTHZ).await.unwrap();
    tokio::time::timeout(GUARD, read_response(stream))
        .await
        .expect("/healthz was not answered")
}

#[tokio::test]
async fn half_open_connections_at_the_cap_do_not_lock_healthz_out() {
    let h = harness(|s| {
        s.options.connections.header_read_timeout = secs(1);
        s.options.connections.max_connections = 4;
    })
    .await;
    let addr = h.server.addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(half_sent(addr).await);
    }
    // Every slot is taken by a client that will never finish its headers; a new
    // client is still answered once the header timeout frees them.
    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    assert_eq!(healthz(&mut newcomer).await, 200);
    for stream in &mut held {
        closed_by_server(stream).await;
    }
    h.shutdown().await;
}

#[tokio::test]
async fn at_the_cap_a_newcomer_waits_in_the_backlog_until_a_connection_ends() {
    let h = harness(|s| {
        s.options.connections.header_read_timeout = secs(600);
        s.options.connections.max_connections = 2;
    })
    .await;
    let addr = h.server.addr;
    let mut held = vec![half_sent(addr).await, half_sent(addr).await];
    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    newcomer.write_all(HEALTHZ).await.unwrap();
    {
        // Not served while both slots are held (a server without a cap answers at
        // once, so this window is where it fails).
        let waiting =
            tokio::time::timeout(Duration::from_millis(500), read_response(&mut newcomer));
        assert!(
            waiting.await.is_err(),
            "a connection over the cap was served"
        );
    }
    // A held client leaves; its slot goes to the newcomer, whose request waited.
    held.pop();
    let status = tokio::time::timeout(GUARD, read_response(&mut newcomer))
        .await
        .expect("the newcomer was not served once a slot freed");
    assert_eq!(status, 200);
    drop(held);
    h.shutdown().await;
}

#[tokio::test]
async fn a_half_sent_request_and_a_silent_connection_are_closed_after_the_header_timeout() {
    let h = harness(|s| {
        s.options.connections.header_read_timeout = secs(2);
        s.options.connections.idle_timeout = secs(600);
    })
    .await;
    let addr = h.server.addr;
    let mut half = half_sent(addr).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    closed_by_server(&mut half).await;
    closed_by_server(&mut silent).await;
    // A prompt client on its own connection is unaffected.
    let mut prompt = TcpStream::connect(addr).await.unwrap();
    assert_eq!(healthz(&mut prompt).await, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let h = harness(|s| {
        s.options.connections.header_read_timeout = secs(600);
        s.options.connections.idle_timeout = secs(2);
    })
    .await;
    let mut stream = TcpStream::connect(h.server.addr).await.unwrap();
    // Kept alive between requests...
    assert_eq!(healthz(&mut stream).await, 200);
    assert_eq!(healthz(&mut stream).await, 200);
    // ...and closed once it has waited too long for the next one.
    closed_by_server(&mut stream).await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_next_request_half_sent_on_a_kept_alive_connection_gets_the_header_timeout() {
    // The idle deadline is far; the header deadline of the second request must apply.
    let h = harness(|s| {
        s.options.connections.header_read_timeout = secs(2);
        s.options.connections.idle_timeout = secs(600);
    })
    .await;
    let mut stream = TcpStream::connect(h.server.addr).await.unwrap();
    assert_eq!(healthz(&mut stream).await, 200);
    stream.write_all(HALF_SENT).await.unwrap();
    closed_by_server(&mut stream).await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_connection_sending_whole_requests_outlives_the_header_timeout() {
    // Each request's headers come at once, with pauses shorter than either deadline
    // but longer, all together, than both: no deadline may fire early.
    let h = harness(|s| {
        s.options.connections.header_read_timeout = secs(1);
        s.options.connections.idle_timeout = secs(2);
    })
    .await;
    let mut stream = TcpStream::connect(h.server.addr).await.unwrap();
    for _ in 0..5 {
        assert_eq!(healthz(&mut stream).await, 200);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert_eq!(healthz(&mut stream).await, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_completes_within_its_deadline_with_a_half_sent_request_open() {
    let h = harness(|s| {
        s.options.connections.header_read_timeout = secs(600);
        s.options.connections.idle_timeout = secs(600);
        s.options.connections.shutdown_timeout = secs(1);
    })
    .await;
    let mut half = half_sent(h.server.addr).await;
    let mut idle = TcpStream::connect(h.server.addr).await.unwrap();
    assert_eq!(healthz(&mut idle).await, 200);
    let Harness { stack, server, .. } = h;
    tokio::time::timeout(GUARD, server.shutdown())
        .await
        .expect("shutdown did not complete");
    closed_by_server(&mut half).await;
    closed_by_server(&mut idle).await;
    stack.shutdown().await;
}

#[test]
fn connection_settings_of_zero_are_refused_with_their_fix() {
    let args = ServerArgs {
        listen: Some("127.0.0.1:8787".into()),
        log_format: "text".into(),
        log_level: "info".into(),
        body_limit: 64 * 1024,
        request_timeout: 10,
        session_revalidate: 60,
        max_sessions: 100_000,
        user_deleted_policy: "delete-user".into(),
        header_read_timeout: 0,
        idle_timeout: 0,
        max_connections: 0,
        shutdown_timeout: 0,
        sign_in_lock: 15,
        // Dev mode, so the missing Clerk and InstantDB settings are not problems too.
        dev: true,
        ..ServerArgs::default()
    };
    let error = args.resolve().expect_err("zero is not a usable setting");
    let problems: Vec<String> = error
        .0
        .iter()
        .map(|p| format!("{}: {}", p.setting, p.message))
        .collect();
    insta::assert_snapshot!(problems.join("\n"));
}

const SIGN_IN_ROUTE: &str = "POST /runtime/oauth/id_token";

/// Waits until the emulator has received `n` sign-ins in all (it offers no event to
/// await).
async fn instant_received_sign_ins(h: &Harness, n: u64) {
    tokio::time::timeout(GUARD, async {
        while h.stack.instant.faults().hits(SIGN_IN_ROUTE) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the sign-in did not reach InstantDB");
}

#[tokio::test]
async fn a_sign_in_given_up_while_instantdb_mints_still_stores_its_session() {
    let h = harness(|s| s.options.request_timeout = Duration::from_secs(1)).await;
    for (i, client_leaves) in [true, false].into_iter().enumerate() {
        // InstantDB takes longer than the client, or the request timeout, will wait.
        h.stack
            .instant
            .faults()
            .inject(SIGN_IN_ROUTE, Fault::delay(secs(3)), 1)
            .unwrap();
        let (sid, token) = h.clerk_sign_in(&format!("gone{i}@example.com"));
        if client_leaves {
            let before = h.stack.instant.faults().hits(SIGN_IN_ROUTE);
            let request = h.http.post(h.url("/v1/session")).bearer_auth(&token).send();
            let client = tokio::spawn(request);
            instant_received_sign_ins(&h, before + 1).await;
            // The client goes away (its connection closes) before the answer.
            client.abort();
        } else {
            let (status, _) = h.sign_in(&token).await;
            assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        }
        // The sign-in goes on without its client; once it has ended, its token is the
        // session's: the next sign-in reuses it and InstantDB holds no other.
        assert_eq!(h.server.state.drain(GUARD).await, 0);
        let again = h.stack.clerk.mint(&sid).unwrap();
        let (status, body) = h.sign_in(&again).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["reused"], true, "client left: {client_leaves}: {body}");
        let user_id = body["user"]["id"].as_str().unwrap();
        assert_eq!(
            h.stack
                .instant
                .refresh_token_count(&h.stack.app.id, user_id)
                .unwrap(),
            1
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn sigterm_stops_the_binary_within_the_shutdown_deadline_with_a_half_sent_request_open() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    let stack = DevStack::start(DevStackConfig::default()).await.unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clerk-instant-server"))
        .env_clear()
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env(
            "CLERK_PUBLISHABLE_KEY",
            stack.clerk.publishable_key().to_string(),
        )
        .env("CLERK_SECRET_KEY", stack.clerk.secret_key().expose())
        .env("CLERK_API_URL", stack.clerk.url())
        .env("INSTANT_APP_ID", &stack.app.id)
        .env("INSTANT_APP_ADMIN_TOKEN", stack.app.admin_token.expose())
        .env("INSTANT_API_URI", stack.instant.url())
        .env("INSTANT_CLERK_CLIENT_NAME", &stack.client_name)
        .env("HEADER_READ_TIMEOUT_SECS", "600")
        .env("SHUTDOWN_TIMEOUT_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The address is in the "listening" log line.
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (found, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if entry["message"] == "listening"
                && let Some(addr) = entry["addr"].as_str()
            {
                let _ = found.send(addr.parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = tokio::task::spawn_blocking(move || addr.recv_timeout(GUARD))
        .await
        .unwrap()
        .expect("the server did not say where it listens");
    let mut half = half_sent(addr).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(healthz(&mut idle).await, 200);

    let pid = child.id().to_string();
    let signal = |name: &str| Command::new("kill").args([name, &pid]).status().unwrap();
    assert!(signal("-TERM").success());
    let (exited, status) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait()));
    let status = tokio::task::spawn_blocking(move || status.recv_timeout(GUARD))
        .await
        .unwrap();
    let Ok(status) = status else {
        // Still running: end it, then fail.
        signal("-KILL");
        panic!("the server was still running after SIGTERM");
    };
    assert_eq!(status.unwrap().code(), Some(0));
    closed_by_server(&mut half).await;
    stack.shutdown().await;
}
