//! A capture server on 127.0.0.1 that records every request and answers with a spec
//! success shape per endpoint, or with scripted replies; raw TCP servers that misbehave
//! below HTTP; and clients pointed at them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_retry::TestClock;
use instant_client::{AdminToken, Client, ClientBuilder, RefreshToken, RetryPolicy, Uuid};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub(crate) const APP_ID: &str = "11111111-2222-4333-8444-555555555555";
pub(crate) const ADMIN_TOKEN: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
pub(crate) const REFRESH_TOKEN: &str = "ffffffff-0000-4111-8222-333333333333";
pub(crate) const USER_ID: &str = "99999999-8888-4777-8666-555555555555";
pub(crate) const EMAIL: &str = "alice@example.com";

pub(crate) fn app_id() -> Uuid {
    Uuid::parse_str(APP_ID).unwrap()
}

pub(crate) fn user_id() -> Uuid {
    Uuid::parse_str(USER_ID).unwrap()
}

pub(crate) fn refresh_token() -> RefreshToken {
    RefreshToken::new(REFRESH_TOKEN).unwrap()
}

/// The user object of the spec, with a refresh token.
pub(crate) fn spec_user() -> Value {
    json!({
        "app_id": APP_ID,
        "id": USER_ID,
        "created_at": 1_780_000_000_000_i64,
        "email": EMAIL,
        "type": "user",
        "isGuest": false,
        "refresh_token": REFRESH_TOKEN,
    })
}

/// What InstantDB answers on success, per method and path (spec §3 and §4).
pub(crate) fn success_for(method: &Method, path: &str) -> Value {
    let user = spec_user();
    match (method.as_str(), path) {
        ("POST", "/runtime/oauth/id_token") => json!({"user": user, "created": false}),
        ("POST", "/runtime/signout") => json!({}),
        ("POST", "/runtime/auth/verify_refresh_token") => json!({"user": user}),
        ("POST", "/admin/query") => {
            json!({"goals": [{"id": "00000000-0000-4000-8000-000000000001", "title": "x"}]})
        }
        ("POST", "/admin/transact") => json!({"tx-id": 1234}),
        ("POST", "/admin/refresh_tokens") => json!({"user": user, "created": true}),
        ("GET", "/admin/users") => json!({"user": user}),
        ("DELETE", "/admin/users") => json!({"deleted": user}),
        ("POST", "/admin/sign_out") => json!({"ok": true}),
        _ => json!({"message": "Oops! We couldn't match this route."}),
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// This status with this JSON body.
    Json(u16, Value),
    /// This status, content type and raw body.
    Raw(u16, &'static str, &'static str),
    /// 429 with a `Retry-After` header and a rate-limited body.
    TooManyRequests(&'static str),
    /// A redirect to another host.
    Redirect,
    /// Never answer.
    Hang,
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) method: String,
    /// Path with query string, as sent.
    pub(crate) path: String,
    /// Header names (lowercase) and values, in the order received.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Captured {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct ServerState {
    hits: AtomicUsize,
    script: Mutex<VecDeque<Reply>>,
    /// Answered once the script is used up; `None`: the spec success shape.
    fallback: Mutex<Option<Reply>>,
    captured: Mutex<Vec<Captured>>,
}

/// The capture server.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    state: Arc<ServerState>,
}

impl Server {
    pub(crate) async fn start() -> Self {
        let state = Arc::new(ServerState::default());
        let app = Router::new()
            .fallback(capture)
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { addr, state }
    }

    /// A server answering `replies` in turn, then the spec success shapes.
    pub(crate) async fn scripted(replies: impl IntoIterator<Item = Reply>) -> Self {
        let server = Server::start().await;
        server.state.script.lock().unwrap().extend(replies);
        server
    }

    /// A server answering `reply` to every request.
    pub(crate) async fn always(reply: Reply) -> Self {
        let server = Server::start().await;
        *server.state.fallback.lock().unwrap() = Some(reply);
        server
    }

    pub(crate) fn push(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The requests received so far, emptied.
    pub(crate) fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.state.captured.lock().unwrap())
    }

    /// The one request received since the last call.
    pub(crate) fn take_one(&self) -> Captured {
        let mut all = self.take();
        assert_eq!(all.len(), 1, "expected exactly one request: {all:#?}");
        all.remove(0)
    }
}

async fn capture(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    state.captured.lock().unwrap().push(Captured {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect(),
        body: body.to_vec(),
    });
    let scripted = state.script.lock().unwrap().pop_front();
    let reply = scripted.or_else(|| state.fallback.lock().unwrap().clone());
    match reply {
        None => {
            let body = success_for(&method, uri.path());
            let status = if body.get("message").is_some() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            (status, axum::Json(body)).into_response()
        }
        Some(Reply::Json(status, body)) => {
            (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
        }
        Some(Reply::Raw(status, content_type, body)) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        Some(Reply::TooManyRequests(retry_after)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after)],
            axum::Json(
                json!({"type": "rate-limited", "message": "You're making too many requests."}),
            ),
        )
            .into_response(),
        Some(Reply::Redirect) => (
            StatusCode::FOUND,
            [("location", "http://elsewhere.invalid/admin/query")],
        )
            .into_response(),
        Some(Reply::Hang) => std::future::pending().await,
    }
}

/// What a raw TCP server does with each connection, after reading one request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Misbehave {
    /// Close the connection without answering.
    Drop,
    /// Answer 200 with a `content-length` larger than the body, then close.
    TruncateBody,
}

/// A TCP server below HTTP, counting the requests it read.
pub(crate) struct RawServer {
    pub(crate) addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl RawServer {
    pub(crate) async fn start(mode: Misbehave) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    if read_request(&mut stream).await {
                        counter.fetch_add(1, Ordering::SeqCst);
                        if let Misbehave::TruncateBody = mode {
                            let _ = stream
                                .write_all(
                                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{\"goals\": [",
                                )
                                .await;
                            let _ = stream.flush().await;
                        }
                    }
                    drop(stream);
                });
            }
        });
        RawServer { addr, hits }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP/1.1 request (headers and `content-length` body). False on EOF.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return true;
        }
    }
}

/// An address nothing listens on.
pub(crate) async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Retries in milliseconds, so tests run fast.
pub(crate) fn fast_retries() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(3)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(20))
}

/// A client with the fixture's app id and admin token, whose retries wait on a
/// [`TestClock`] (never for real).
pub(crate) fn builder(url: &str) -> ClientBuilder {
    Client::builder(app_id())
        .admin_token(AdminToken::new(ADMIN_TOKEN).unwrap())
        .base_url(url)
        .timeout(Duration::from_secs(5))
        .retry(fast_retries())
        .clock(Arc::new(TestClock::new()))
}

pub(crate) fn client(url: &str) -> Client {
    builder(url).build().unwrap()
}

/// A client without an admin token.
pub(crate) fn anonymous_client(url: &str) -> Client {
    Client::builder(app_id())
        .base_url(url)
        .retry(fast_retries())
        .clock(Arc::new(TestClock::new()))
        .build()
        .unwrap()
}
