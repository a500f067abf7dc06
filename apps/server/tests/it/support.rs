//! A local stack and the server on 127.0.0.1, with helpers to call the server.

use std::net::SocketAddr;
use std::time::Duration;

use auth_core::Strategy;

use clerk_instant_server::config::{ConnectionLimits, Options, Settings};
use clerk_instant_server::ratelimit::RateLimitSettings;
use clerk_instant_server::{Running, dev_settings, serve};
use devstack::{DevStack, DevStackConfig};
use reqwest::StatusCode;
use serde_json::Value;

/// The local stack and a server configured against it.
pub(crate) struct Harness {
    pub(crate) stack: DevStack,
    pub(crate) server: Running,
    pub(crate) http: reqwest::Client,
}

pub(crate) fn options() -> Options {
    Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_listen: None,
        json_logs: false,
        log_level: tracing::Level::WARN,
        body_limit: 16 * 1024,
        request_timeout: Duration::from_secs(2),
        revalidate_after: Duration::from_secs(60),
        max_sessions: 1000,
        store: service_config::StoreChoice::Memory,
        sign_in_lock: Duration::from_secs(15),
        webhook_secrets: None,
        user_deleted_policy: auth_core::UserDeletedPolicy::default(),
        // Off, so that no other test depends on them; tests/it/ratelimit.rs turns them on.
        rate_limits: Box::new(RateLimitSettings::off()),
        connections: ConnectionLimits::default(),
        cors_origins: clerk_instant_server::cors::CorsOrigins::Default,
    }
}

impl Harness {
    /// The id-token strategy with the default options.
    pub(crate) async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    /// With the settings changed by `tweak`.
    pub(crate) async fn start_with(tweak: impl FnOnce(&mut Settings)) -> Harness {
        let stack = DevStack::start(DevStackConfig::default()).await.unwrap();
        let mut settings = dev_settings(&stack, options()).unwrap();
        tweak(&mut settings);
        let server = serve(&settings).await.unwrap();
        Harness {
            stack,
            server,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) async fn admin() -> Harness {
        Harness::start_with(|s| s.service.strategy = Strategy::Admin).await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// Signs `email` in at the local Clerk: a new session and its first token.
    pub(crate) fn clerk_sign_in(&self, email: &str) -> (String, String) {
        let signed_in = self.stack.clerk.sign_in(email).unwrap();
        let token = self.stack.clerk.mint(&signed_in.session.id).unwrap();
        (signed_in.session.id, token)
    }

    /// Sends a request and returns its status and JSON body (`Null` when not JSON).
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.call_with_headers(method, path, token, body).await;
        (status, body)
    }

    /// [`Harness::call`], with the response headers.
    pub(crate) async fn call_with_headers(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    pub(crate) async fn sign_in(&self, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, "/v1/session", Some(token), None)
            .await
    }

    pub(crate) async fn sign_out(&self, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, "/v1/session", Some(token), None)
            .await
    }

    /// The server still answers a good request.
    pub(crate) async fn assert_healthy(&self) {
        let (email_session, token) = self.clerk_sign_in("healthy@example.com");
        let (status, body) = self.sign_in(&token).await;
        assert_eq!(status, StatusCode::OK, "{email_session}: {body}");
    }

    pub(crate) async fn shutdown(self) {
        self.server.shutdown().await;
        self.stack.shutdown().await;
    }
}

/// The error code of an error body.
pub(crate) fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("(no code)")
}
