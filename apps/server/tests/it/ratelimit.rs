//! Rate limits over real HTTP: per client address, per Clerk session on sign-in, and
//! rejected tokens per client address; each answers 429 `rate-limited` with
//! `Retry-After` and is counted. The limits refill once an hour here, so no test
//! depends on how fast it runs. Two clients are simulated by a trusted proxy's
//! `X-Forwarded-For` (the test is the proxy, on 127.0.0.1).

use std::time::Duration;

use clerk_instant_server::config::Settings;
use clerk_instant_server::ratelimit::{Quota, RateLimitSettings};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{Harness, code};

const HOUR: Duration = Duration::from_secs(3600);
const CLIENT_A: &str = "203.0.113.1";
const CLIENT_B: &str = "203.0.113.2";

/// `burst` at once, then one an hour.
fn hourly(burst: u32) -> Option<Quota> {
    Quota::new(1, HOUR, burst)
}

/// Only the given limits on; 127.0.0.1 (the test) a trusted proxy when `behind_proxy`.
fn limits(settings: &mut Settings, behind_proxy: bool, tweak: impl FnOnce(&mut RateLimitSettings)) {
    let mut limits = RateLimitSettings::off();
    if behind_proxy {
        limits.trusted_proxies = "127.0.0.1".parse().unwrap();
    }
    tweak(&mut limits);
    *settings.options.rate_limits = limits;
}

impl Harness {
    /// A request with extra headers; status, headers and JSON body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// `POST /v1/session` as `client` (through the trusted proxy).
    async fn sign_in_as(&self, client: &str, token: &str) -> (StatusCode, HeaderMap, Value) {
        self.send(
            Method::POST,
            "/v1/session",
            Some(token),
            &[("x-forwarded-for", client)],
        )
        .await
    }

    /// The value of one metric line (0 when absent).
    async fn metric(&self, series: &str) -> u64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0, |n| n.parse().unwrap())
    }
}

/// A 429 `rate-limited` answer with a whole number of seconds to wait.
fn assert_rate_limited(status: StatusCode, headers: &HeaderMap, body: &Value) {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(code(body), "rate-limited", "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap().is_empty(),
        "{body}"
    );
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=HOUR.as_secs()).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn a_burst_past_the_ip_limit_gets_429_and_other_clients_and_probes_do_not() {
    let h = Harness::start_with(|s| limits(s, true, |l| l.per_ip = hourly(3))).await;
    let as_a = [("x-forwarded-for", CLIENT_A)];
    for _ in 0..3 {
        let (status, _, body) = h.send(Method::GET, "/v1/me", None, &as_a).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "token-missing")
        );
    }
    let (status, headers, body) = h.send(Method::GET, "/v1/me", None, &as_a).await;
    assert_rate_limited(status, &headers, &body);
    // Every /v1/* route, whatever the method or the body.
    let (status, headers, body) = h.send(Method::POST, "/v1/query", None, &as_a).await;
    assert_rate_limited(status, &headers, &body);
    // A hop the client wrote left of the proxy's own changes nothing.
    let spoofed = [("x-forwarded-for", "198.51.100.9, 203.0.113.1")];
    let (status, headers, body) = h.send(Method::GET, "/v1/me", None, &spoofed).await;
    assert_rate_limited(status, &headers, &body);

    // Another client is not affected, nor are the probes and the metrics.
    let (status, _, body) = h
        .send(
            Method::GET,
            "/v1/me",
            None,
            &[("x-forwarded-for", CLIENT_B)],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token-missing")
    );
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let (status, _, _) = h.send(Method::GET, probe, None, &as_a).await;
        assert_eq!(status, StatusCode::OK, "{probe}");
    }
    assert_eq!(
        h.metric("clerk_instant_rate_limited_total{limit=\"ip\"}")
            .await,
        3
    );
    assert_eq!(
        h.metric("clerk_instant_requests_total{method=\"GET\",route=\"/v1/me\",status=\"429\"}")
            .await,
        2
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_forwarded_header_from_an_untrusted_peer_changes_nothing() {
    // 127.0.0.1 is not a trusted proxy: every request is the peer's, whatever it says.
    let h = Harness::start_with(|s| {
        limits(s, false, |l| {
            l.per_ip = hourly(2);
            l.trusted_proxies = "10.0.0.0/8".parse().unwrap();
        });
    })
    .await;
    let disguises: [&[(&str, &str)]; 2] = [
        &[("x-forwarded-for", CLIENT_A)],
        &[("forwarded", "for=203.0.113.2")],
    ];
    for disguise in disguises {
        let (status, _, body) = h.send(Method::GET, "/v1/me", None, disguise).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "token-missing")
        );
    }
    for disguise in [
        ("x-forwarded-for", "198.51.100.1"),
        ("x-forwarded-for", "10.0.0.1, 198.51.100.2"),
        ("forwarded", "for=198.51.100.3"),
        ("x-real-ip", "198.51.100.4"),
    ] {
        let (status, headers, body) = h.send(Method::GET, "/v1/me", None, &[disguise]).await;
        assert_rate_limited(status, &headers, &body);
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_bad_tokens_gets_429_and_then_even_a_good_token_waits() {
    let h = Harness::start_with(|s| limits(s, true, |l| l.bad_tokens = hourly(3))).await;
    let (_, good_a) = h.clerk_sign_in("alice@example.com");
    let (_, good_b) = h.clerk_sign_in("bob@example.com");
    let rejections = "clerk_instant_token_rejections_total{reason=\"token-invalid\"}";

    // Missing tokens cost nothing to refuse, so they do not count.
    for _ in 0..5 {
        let (status, _, body) = h
            .send(
                Method::GET,
                "/v1/me",
                None,
                &[("x-forwarded-for", CLIENT_A)],
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "token-missing")
        );
    }
    for _ in 0..3 {
        let (status, _, body) = h.sign_in_as(CLIENT_A, "abc.def.ghi").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "token-invalid")
        );
    }
    assert_eq!(h.metric(rejections).await, 3);

    // Past the limit: refused before the token is looked at, on every route taking one.
    let (status, headers, body) = h.sign_in_as(CLIENT_A, "abc.def.ghi").await;
    assert_rate_limited(status, &headers, &body);
    let (status, headers, body) = h.sign_in_as(CLIENT_A, &good_a).await;
    assert_rate_limited(status, &headers, &body);
    let (status, headers, body) = h
        .send(
            Method::GET,
            "/v1/me",
            Some(&good_a),
            &[("x-forwarded-for", CLIENT_A)],
        )
        .await;
    assert_rate_limited(status, &headers, &body);
    assert_eq!(h.metric(rejections).await, 3, "no token was verified");

    // Another client signs in.
    let (status, _, body) = h.sign_in_as(CLIENT_B, &good_b).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        h.metric("clerk_instant_rate_limited_total{limit=\"bad-token\"}")
            .await,
        3
    );
    h.shutdown().await;
}

#[tokio::test]
async fn sign_ins_are_limited_per_clerk_session() {
    let h = Harness::start_with(|s| limits(s, false, |l| l.per_session = hourly(2))).await;
    let (sid, token) = h.clerk_sign_in("carol@example.com");
    for _ in 0..2 {
        let fresh = h.stack.clerk.mint(&sid).unwrap();
        let (status, body) = h.sign_in(&fresh).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let fresh = h.stack.clerk.mint(&sid).unwrap();
    let (status, headers, body) = h
        .call_with_headers(Method::POST, "/v1/session", Some(&fresh), None)
        .await;
    assert_rate_limited(status, &headers, &body);

    // Only sign-in is limited per session; another session of the same client signs in.
    let (status, body) = h.call(Method::GET, "/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, other) = h.clerk_sign_in("carol@example.com");
    let (status, body) = h.sign_in(&other).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A bad token is refused as such, not counted against any session.
    let (status, body) = h.sign_in("abc.def.ghi").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token-invalid")
    );
    assert_eq!(
        h.metric("clerk_instant_rate_limited_total{limit=\"session\"}")
            .await,
        1
    );
    h.shutdown().await;
}
