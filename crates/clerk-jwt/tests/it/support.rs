//! Shared fixtures: one key per test binary, a fixed clock, a JWKS server that counts
//! its requests and can be told to fail.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clerk_jwt::testing::{TestKey, TokenBuilder};
use serde_json::Value;
use tokio::sync::{Notify, watch};

/// The issuer of test tokens.
pub(crate) const ISSUER: &str = "https://clerk.example.com";
/// "Now" for every rule test.
pub(crate) const NOW: i64 = 1_800_000_000;

/// The instance's signing key, generated once per test binary.
pub(crate) fn key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::generate("ins_2testinstance"))
}

/// Another instance's key (another kid).
pub(crate) fn other_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::generate("ins_2otherinstance"))
}

/// A key that claims the first instance's kid but is not its key.
pub(crate) fn impostor_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::generate("ins_2testinstance"))
}

/// A valid session token, issued at `NOW`.
pub(crate) fn session() -> TokenBuilder<'static> {
    TokenBuilder::session(key(), ISSUER, NOW)
}

/// What the JWKS server answers.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// 200 with this document.
    Serve(Value),
    /// This status and an error body.
    Status(u16),
    /// 200 with a body that is not a JWKS.
    Garbage,
    /// Hold the request until the gate opens, then serve.
    Gated(Value),
    /// Never answer.
    Hang,
}

struct ServerState {
    hits: AtomicUsize,
    mode: Mutex<Mode>,
    arrived: Notify,
    gate: watch::Receiver<bool>,
    required_auth: Option<String>,
}

/// A JWKS server on 127.0.0.1.
pub(crate) struct JwksServer {
    pub(crate) addr: SocketAddr,
    state: Arc<ServerState>,
    gate: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub(crate) async fn start(mode: Mode) -> Self {
        JwksServer::start_with_auth(mode, None).await
    }

    /// A server that answers 401 unless `Authorization: Bearer <secret>` is sent.
    pub(crate) async fn start_with_auth(mode: Mode, secret: Option<&str>) -> Self {
        let (gate, gate_rx) = watch::channel(false);
        let state = Arc::new(ServerState {
            hits: AtomicUsize::new(0),
            mode: Mutex::new(mode),
            arrived: Notify::new(),
            gate: gate_rx,
            required_auth: secret.map(|s| format!("Bearer {s}")),
        });
        let app = Router::new()
            .route("/.well-known/jwks.json", get(serve))
            .route("/v1/jwks", get(serve))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer {
            addr,
            state,
            gate,
            task,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests reached the server.
    pub(crate) fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Resolves when a request has arrived (used with `Mode::Gated`).
    pub(crate) async fn request_arrived(&self) {
        self.state.arrived.notified().await;
    }

    pub(crate) fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// Stops the server: further fetches are refused connections.
    pub(crate) async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn serve(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if let Some(required) = &state.required_auth {
        let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
        if sent != Some(required.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                r#"{"errors":[{"code":"authentication_invalid","message":"Invalid authentication"}]}"#,
            )
                .into_response();
        }
    }
    let mode = state.mode.lock().unwrap().clone();
    match mode {
        Mode::Serve(doc) => axum::Json(doc).into_response(),
        Mode::Status(status) => (
            StatusCode::from_u16(status).unwrap(),
            r#"{"errors":[{"code":"internal","message":"boom"}]}"#,
        )
            .into_response(),
        Mode::Garbage => (StatusCode::OK, "<html>maintenance</html>").into_response(),
        Mode::Gated(doc) => {
            state.arrived.notify_one();
            let mut gate = state.gate.clone();
            let _ = gate.wait_for(|open| *open).await;
            axum::Json(doc).into_response()
        }
        Mode::Hang => std::future::pending().await,
    }
}
