//! Helpers shared by the tests: a started stack and a tiny JSON HTTP client.

use std::sync::OnceLock;
use std::time::Duration;

use devstack::{DevStack, DevStackConfig};
use serde_json::Value;

pub(crate) async fn stack() -> DevStack {
    DevStack::start(DevStackConfig::default())
        .await
        .expect("the stack starts")
}

/// One client per test process (building one takes tens of milliseconds). It keeps no
/// idle connections, so tests on different runtimes never share a dead one.
pub(crate) fn client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .expect("HTTP client")
        })
        .clone()
}

/// The status and JSON body of an answer.
pub(crate) async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = match serde_json::from_str(&text) {
        Ok(body) => body,
        Err(_) => Value::String(text),
    };
    (status, body)
}

/// POSTs JSON with only `content-type: application/json`, as the runtime endpoints want.
pub(crate) async fn post(url: &str, body: &Value) -> (u16, Value) {
    answer(
        client()
            .post(url)
            .json(body)
            .send()
            .await
            .expect("the request is answered"),
    )
    .await
}

/// An admin call with the headers the official SDK sends.
pub(crate) fn admin(
    stack: &DevStack,
    method: reqwest::Method,
    path_and_query: &str,
) -> reqwest::RequestBuilder {
    let separator = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    client()
        .request(
            method,
            format!(
                "{}{path_and_query}{separator}app_id={}",
                stack.instant.url(),
                stack.app.id
            ),
        )
        .header("content-type", "application/json")
        .header("app-id", &stack.app.id)
        .header(
            "authorization",
            format!("Bearer {}", stack.app.admin_token.expose()),
        )
}

/// Replaces the random `trace-id` so bodies can be compared exactly.
pub(crate) fn scrub(mut body: Value) -> Value {
    if let Some(trace) = body.get_mut("trace-id") {
        assert!(
            trace.as_str().is_some_and(|t| t.len() == 32),
            "trace-id: {trace}"
        );
        *trace = Value::String("[trace-id]".into());
    }
    body
}

/// Signs in at the emulator with a Clerk session token.
pub(crate) async fn sign_in(
    stack: &DevStack,
    token: &str,
    refresh_token: Option<&str>,
) -> (u16, Value) {
    let mut body = serde_json::json!({
        "app_id": stack.app.id,
        "id_token": token,
        "client_name": stack.client_name,
    });
    if let Some(refresh_token) = refresh_token {
        body["refresh_token"] = Value::String(refresh_token.to_owned());
    }
    post(
        &format!("{}/runtime/oauth/id_token", stack.instant.url()),
        &body,
    )
    .await
}
