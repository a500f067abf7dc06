//! `/readyz`: one upstream check shared by concurrent probes, a public body with short
//! stable reasons only, and probes kept out of the upstream error metrics.

use std::time::Duration;

use devstack::{DevStack, DevStackConfig, Fault};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{Harness, options};

const PROBED: &str = "POST /runtime/auth/verify_refresh_token";

#[tokio::test]
async fn concurrent_probes_share_one_upstream_call() {
    let h = Harness::start().await;
    let faults = h.stack.instant.faults();
    let before = faults.hits(PROBED);
    // A slow InstantDB: every probe arrives while the first check is still waiting.
    faults
        .inject(PROBED, Fault::delay(Duration::from_secs(1)), 100)
        .unwrap();
    let mut probes = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let request = h.http.get(h.url("/readyz")).send();
        probes.spawn(async move {
            let response = request.await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        });
    }
    let answers = probes.join_all().await;
    assert_eq!(
        faults.hits(PROBED) - before,
        1,
        "one InstantDB call for 50 probes"
    );
    for (status, body) in answers {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["mode"], "configured", "{body}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_failing_readiness_answer_names_no_url_and_no_error_text() {
    // The signing keys cannot be fetched at start-up, and InstantDB drops the probe.
    let stack = DevStack::start(DevStackConfig::default()).await.unwrap();
    stack
        .clerk
        .faults()
        .inject("GET /.well-known/jwks.json", Fault::status(503), 100)
        .unwrap();
    stack
        .instant
        .faults()
        .inject(PROBED, Fault::drop_connection(), 100)
        .unwrap();
    let settings = clerk_instant_server::dev_settings(&stack, options()).unwrap();
    let server = clerk_instant_server::serve(&settings).await.unwrap();
    let response = reqwest::get(format!("{}/readyz", server.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    for internal in [
        "http://",
        stack.instant.url().trim_start_matches("http://"),
        stack.clerk.url().trim_start_matches("http://"),
        "127.0.0.1",
        "message",
    ] {
        assert!(!text.contains(internal), "{internal:?} in {text}");
    }
    assert_eq!(body["ready"], false, "{text}");
    assert_eq!(
        body["checks"]["instantdb"]["reason"], "unreachable",
        "{text}"
    );
    assert_eq!(
        body["checks"]["clerk_keys"]["reason"], "error-status",
        "{text}"
    );
    server.shutdown().await;
    stack.shutdown().await;
}

#[tokio::test]
async fn probes_are_not_counted_as_upstream_errors() {
    let h = Harness::start().await;
    let (status, body) = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
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
        metrics.contains("call=\"readiness-probe\",outcome=\"ok\""),
        "{metrics}"
    );
    let errors: Vec<_> = metrics
        .lines()
        .filter(|line| line.contains("outcome=\"error\""))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    h.shutdown().await;
}
