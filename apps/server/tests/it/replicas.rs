//! Several replicas, one truth: two real server processes sharing one real Redis,
//! driven over HTTP against the local stack (in this process).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clerk_webhooks::Secret;
use devstack::{DevStack, DevStackConfig, Fault, RedisServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::code;

const SIGN_IN_ROUTE: &str = "POST /runtime/oauth/id_token";

/// The local stack, one Redis, and the settings every replica shares.
struct Cluster {
    stack: DevStack,
    redis: RedisServer,
    secret: Secret,
    key: String,
    http: reqwest::Client,
}

/// One `clerk-instant-server` process.
struct Replica {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// Kills the process (SIGKILL, like a crash or an OOM kill).
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Cluster {
    async fn start() -> Cluster {
        let stack = DevStack::start(DevStackConfig::default()).await.unwrap();
        let redis = RedisServer::start().await.unwrap();
        Cluster {
            stack,
            redis,
            secret: Secret::generate(),
            // 32 bytes of base64: the tests' encryption key.
            key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Starts a replica on a free port and waits (without blocking the runtime the
    /// local stack runs on) until it listens.
    async fn replica(&self) -> Replica {
        self.replica_with(&self.key).await
    }

    /// The command of a replica sealing with these encryption keys.
    fn command(&self, keys: &str) -> Command {
        let stack = &self.stack;
        let mut command = Command::new(env!("CARGO_BIN_EXE_clerk-instant-server"));
        command
            .env_clear()
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "info")
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
            .env("CLERK_WEBHOOK_SIGNING_SECRET", self.secret.expose_whsec())
            .env("SESSION_STORE_URL", self.redis.url())
            .env("SESSION_STORE_ENCRYPTION_KEY", keys)
            .env("SIGN_IN_LOCK_SECS", "3")
            // The tests drive one Clerk session hard from one address.
            .env("RATE_LIMIT_PER_IP_PER_SEC", "0")
            .env("RATE_LIMIT_PER_SESSION_PER_MIN", "0")
            .env("RATE_LIMIT_BAD_TOKENS_PER_MIN", "0")
            .env("REQUEST_TIMEOUT_SECS", "10")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// [`replica`](Self::replica) with other encryption keys.
    async fn replica_with(&self, keys: &str) -> Replica {
        let mut child = self.command(keys).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(record) = serde_json::from_str::<Value>(&line)
                    && record["message"] == "listening"
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(record["addr"].as_str().unwrap_or_default().to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(addr)) => addr,
            _ => panic!("the replica did not start:\n{}", log.lock().unwrap()),
        };
        Replica {
            child,
            url: format!("http://{addr}"),
            log,
        }
    }

    /// A new Clerk session of `email` and its first token.
    fn clerk_session(&self, email: &str) -> (String, String) {
        let signed_in = self.stack.clerk.sign_in(email).unwrap();
        let token = self.stack.clerk.mint(&signed_in.session.id).unwrap();
        (signed_in.session.id, token)
    }

    async fn call(
        &self,
        replica: &Replica,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> (StatusCode, Option<String>, Value) {
        let response = self
            .http
            .request(method, replica.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.json().await.unwrap_or(Value::Null);
        (status, retry_after, body)
    }

    async fn sign_in(&self, replica: &Replica, token: &str) -> (StatusCode, Value) {
        let (status, _, body) = self
            .call(replica, reqwest::Method::POST, "/v1/session", token)
            .await;
        (status, body)
    }

    /// The live InstantDB refresh tokens of the InstantDB user signed in as `email`.
    fn live_tokens(&self, body: &Value) -> usize {
        let user = body["user"]["id"].as_str().unwrap();
        self.stack
            .instant
            .refresh_token_count(&self.stack.app.id, user)
            .unwrap()
    }

    async fn deliver(&self, replica: &Replica, id: &str, body: &[u8]) -> (StatusCode, Value) {
        let timestamp = u64::try_from(self.stack.clerk.now()).unwrap();
        let signature = self.secret.sign(id, timestamp, body);
        let response = self
            .http
            .post(replica.url("/v1/webhooks/clerk"))
            .header("svix-id", id)
            .header("svix-timestamp", timestamp.to_string())
            .header("svix-signature", signature)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn shutdown(self) {
        self.stack.shutdown().await;
    }
}

fn revoked(session: &str, user: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "session.revoked",
        "object": "event",
        "data": {"id": session, "user_id": user, "object": "session", "status": "revoked"},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_sessions_sign_outs_and_webhooks() {
    let c = Cluster::start().await;
    let (a, b) = (c.replica().await, c.replica().await);

    // Signed in on A, then on B: the same InstantDB session, one token in InstantDB.
    let (_, token) = c.clerk_session("shared@example.com");
    let (status, first) = c.sign_in(&a, &token).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = c.sign_in(&b, &token).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(first["refresh_token"], second["refresh_token"]);
    assert_eq!(second["reused"], true);
    assert_eq!(c.live_tokens(&first), 1);

    // Concurrent sign-ins of a new Clerk session on both replicas: one InstantDB call.
    let (_, token) = c.clerk_session("racing@example.com");
    let before = c.stack.instant.faults().hits(SIGN_IN_ROUTE);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..12 {
        let url = if i % 2 == 0 { &a } else { &b }.url("/v1/session");
        let (http, token) = (c.http.clone(), token.clone());
        calls.spawn(async move {
            let answer = http.post(url).bearer_auth(token).send().await.unwrap();
            let status = answer.status();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        });
    }
    let answers = calls.join_all().await;
    assert_eq!(
        c.stack.instant.faults().hits(SIGN_IN_ROUTE) - before,
        1,
        "one InstantDB sign-in for twelve concurrent requests on two replicas"
    );
    let tokens: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["refresh_token"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(c.live_tokens(&answers[0].1), 1);

    // Signed out on B: A refuses the session at once.
    let (status, _, body) = c
        .call(&b, reqwest::Method::DELETE, "/v1/session", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["instant"]["status"], "done", "{body}");
    let (status, body) = c.sign_in(&a, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "session-signed-out");
    assert_eq!(c.live_tokens(&answers[0].1), 0);

    // A revocation delivered to A takes effect on B; the same delivery sent to both at
    // once is applied once.
    let (session, token) = c.clerk_session("revoked@example.com");
    let (status, signed) = c.sign_in(&b, &token).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let user = signed["clerk"]["user_id"].as_str().unwrap().to_owned();
    let body = revoked(&session, &user);
    let (to_a, to_b) = tokio::join!(
        c.deliver(&a, "msg_replicas", &body),
        c.deliver(&b, "msg_replicas", &body)
    );
    let outcomes = [&to_a, &to_b];
    let applied = outcomes
        .iter()
        .filter(|(s, v)| *s == StatusCode::OK && v["status"] == "applied")
        .count();
    assert_eq!(applied, 1, "{to_a:?} {to_b:?}");
    for (status, body) in outcomes {
        assert!(
            *status == StatusCode::OK && body["status"] == "duplicate"
                || *status == StatusCode::CONFLICT
                || body["status"] == "applied",
            "{status} {body}"
        );
    }
    let (status, body) = c.sign_in(&b, &token).await;
    assert_eq!(code(&body), "session-signed-out", "{status}");
    assert_eq!(c.live_tokens(&signed), 0);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_loses_no_session_and_issues_no_second_token() {
    let c = Cluster::start().await;
    let a = c.replica().await;
    let (_, token) = c.clerk_session("restart@example.com");
    let (status, first) = c.sign_in(&a, &token).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    a.kill();
    let a = c.replica().await;
    let (status, again) = c.sign_in(&a, &token).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(first["refresh_token"], again["refresh_token"]);
    assert_eq!(c.live_tokens(&first), 1);
    // Nothing in Redis reads as a refresh token.
    let dump = redis_dump(&c.redis.url());
    let refresh = first["refresh_token"].as_str().unwrap();
    assert!(
        !dump.contains(refresh),
        "a refresh token is stored in the clear"
    );
    assert!(!dump.is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_then_the_replicas_recover_without_a_restart() {
    let mut c = Cluster::start().await;
    let (a, b) = (c.replica().await, c.replica().await);
    let (session, token) = c.clerk_session("outage@example.com");
    let (status, first) = c.sign_in(&a, &token).await;
    assert_eq!(status, StatusCode::OK, "{first}");

    // Unreachable (the process stopped, its data kept): 503 with Retry-After on every
    // route that needs the store, readiness says so, webhooks are asked to retry.
    c.redis.pause();
    let (status, retry_after, body) = c
        .call(&b, reqwest::Method::POST, "/v1/session", &token)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "store-unavailable");
    assert!(retry_after.is_some());
    let (status, _, body) = c.call(&a, reqwest::Method::GET, "/readyz", &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["store"]["status"], "failed", "{body}");
    assert_eq!(body["checks"]["store"]["reason"], "unreachable", "{body}");
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
    let user = first["clerk"]["user_id"].as_str().unwrap().to_owned();
    let (status, body) = c
        .deliver(
            &a,
            "msg_outage",
            &revoked(&format!("{session}_other"), &user),
        )
        .await;
    assert!(status.is_server_error(), "{status} {body}");

    // Back: served again, the same token, no second one in InstantDB.
    c.redis.resume();
    let (status, again) = c.sign_in(&b, &token).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(first["refresh_token"], again["refresh_token"]);
    assert_eq!(c.live_tokens(&first), 1);

    // Restarted empty: the replicas keep serving. What it costs: the sessions stored
    // before are forgotten, so this sign-in obtains a second InstantDB session (the
    // first stays alive in InstantDB, no longer reused nor signed out by the server).
    c.redis.restart_empty().await.unwrap();
    let (status, after) = c.sign_in(&a, &token).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_ne!(first["refresh_token"], after["refresh_token"]);
    let (status, _, body) = c.call(&b, reqwest::Method::GET, "/readyz", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop((a, b));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_killed_mid_sign_in_blocks_the_session_no_longer_than_the_lock() {
    let c = Cluster::start().await;
    let (a, b) = (c.replica().await, c.replica().await);
    let (_, token) = c.clerk_session("crash@example.com");
    // A's sign-in holds the lock while InstantDB is slow; A dies meanwhile.
    c.stack
        .instant
        .faults()
        .inject(SIGN_IN_ROUTE, Fault::delay(Duration::from_secs(30)), 1)
        .unwrap();
    let stuck = tokio::spawn({
        let http = c.http.clone();
        let url = a.url("/v1/session");
        let token = token.clone();
        async move { http.post(url).bearer_auth(token).send().await }
    });
    while c.stack.instant.faults().hits(SIGN_IN_ROUTE) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill();
    assert!(stuck.await.unwrap().is_err(), "A died mid-request");
    // B waits for the lock to lapse (within 3 s here: the store counts whole
    // seconds), then signs in: one more InstantDB call, and one live token.
    let (status, body) = c.sign_in(&b, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(c.stack.instant.faults().hits(SIGN_IN_ROUTE), 2);
    assert_eq!(c.live_tokens(&body), 1);
    let log = b.log.lock().unwrap().clone();
    assert!(!log.contains(body["refresh_token"].as_str().unwrap()));
    c.shutdown().await;
}

/// Every key and value in Redis, as text (through `redis-cli`-free RESP: the
/// `redis` crate the server uses).
fn redis_dump(url: &str) -> String {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    let mut out = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        let value: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(&key).query(&mut conn).unwrap()],
            "hash" => redis::cmd("HVALS").arg(&key).query(&mut conn).unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut conn).unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap(),
            _ => Vec::new(),
        };
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut conn).unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
        out.push_str(&key);
        for v in value {
            out.push(' ');
            out.push_str(&String::from_utf8_lossy(&v));
        }
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_keys_cannot_open_the_stored_sessions_refuses_to_start() {
    let c = Cluster::start().await;
    let a = c.replica().await;
    let (_, token) = c.clerk_session("keys@example.com");
    let (status, first) = c.sign_in(&a, &token).await;
    assert_eq!(status, StatusCode::OK, "{first}");

    // Another key only: it could not open that session, so it says so and stops.
    let other = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    let mut command = c.command(other);
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || command.output().unwrap()),
    )
    .await
    .expect("the replica exits")
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SESSION_STORE_ENCRYPTION_KEY")
            && stderr.contains("1 of the 1 newest sessions in Redis are sealed with a key this replica does not have"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(other) && !stderr.contains(&c.key),
        "no key in the log"
    );

    // Rotating (the new key first, the old one still listed), it starts and serves
    // the session the first replica stored.
    let b = c.replica_with(&format!("{other},{}", c.key)).await;
    let (status, again) = c.sign_in(&b, &token).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["refresh_token"], first["refresh_token"]);
    a.kill();
    b.kill();
}
