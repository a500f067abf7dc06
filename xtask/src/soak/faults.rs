//! The fault schedule: two lanes, one per upstream, each opening windows in turn
//! during which every matching call to the emulator or the local Clerk fails, and a
//! timeline of those windows.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use devstack::{DevStack, Fault, Faults};
use serde_json::{Value, json};

use super::report::Span;

/// Which server a fault is injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    Instant,
    Clerk,
}

impl Upstream {
    fn name(self) -> &'static str {
        match self {
            Upstream::Instant => "instantdb-emulator",
            Upstream::Clerk => "local-clerk",
        }
    }

    fn faults(self, stack: &DevStack) -> &Faults {
        match self {
            Upstream::Instant => stack.instant.faults(),
            Upstream::Clerk => stack.clerk.faults(),
        }
    }
}

/// Every InstantDB route the server calls (`*` is one path segment).
const INSTANT_ROUTES: &[&str] = &["/runtime/*", "/runtime/*/*", "/admin/*"];
/// The local Clerk's JWKS.
const JWKS_ROUTES: &[&str] = &["GET /.well-known/jwks.json"];
/// The local Clerk's Backend API.
const CLERK_API_ROUTES: &[&str] = &["/v1/*", "/v1/*/*", "/v1/*/*/*"];

/// How long the `instant-slow` fault holds each call: well below the server's upstream
/// timeout (10 s), so it is slowness, not a timeout.
pub(crate) const SLOW: Duration = Duration::from_secs(2);

/// One kind of fault: where and what.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    pub(crate) name: &'static str,
    pub(crate) upstream: Upstream,
    pub(crate) routes: &'static [&'static str],
    /// What the server sees, in words (for the report).
    pub(crate) what: &'static str,
    fault: fn() -> Fault,
}

/// Every fault the soak injects, by lane.
pub(crate) const INSTANT_LANE: &[Kind] = &[
    Kind {
        name: "instant-5xx",
        upstream: Upstream::Instant,
        routes: INSTANT_ROUTES,
        what: "every InstantDB call answers 500",
        fault: || Fault::status(500),
    },
    Kind {
        name: "instant-429",
        upstream: Upstream::Instant,
        routes: INSTANT_ROUTES,
        what: "every InstantDB call answers 429 with Retry-After: 1",
        fault: || Fault::status(429).with_header("retry-after", "1"),
    },
    Kind {
        name: "instant-slow",
        upstream: Upstream::Instant,
        routes: INSTANT_ROUTES,
        what: "every InstantDB call is held 2 s, then answered",
        fault: || Fault::delay(SLOW),
    },
    Kind {
        name: "instant-drop",
        upstream: Upstream::Instant,
        routes: INSTANT_ROUTES,
        what: "every InstantDB connection is closed without an answer",
        fault: Fault::drop_connection,
    },
];

/// The local Clerk's faults.
pub(crate) const CLERK_LANE: &[Kind] = &[
    Kind {
        name: "jwks-down",
        upstream: Upstream::Clerk,
        routes: JWKS_ROUTES,
        what: "the JWKS answers 503",
        fault: || Fault::status(503),
    },
    Kind {
        name: "clerk-api-down",
        upstream: Upstream::Clerk,
        routes: CLERK_API_ROUTES,
        what: "the Clerk Backend API answers 503",
        fault: || Fault::status(503),
    },
    Kind {
        name: "jwks-garbage",
        upstream: Upstream::Clerk,
        routes: JWKS_ROUTES,
        what: "the JWKS answers 200 with an unusable key (empty modulus)",
        fault: || {
            Fault::status(200).with_body(json!({
                "keys": [{"kty": "RSA", "kid": "soak-garbage", "use": "sig", "alg": "RS256", "n": "", "e": "AQAB"}]
            }))
        },
    },
];

/// One window of the timeline.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub(crate) kind: Kind,
    pub(crate) span: Span,
    /// Calls that reached the faulted routes during the window.
    pub(crate) hits: u64,
}

impl Window {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "fault": self.kind.name,
            "upstream": self.kind.upstream.name(),
            "routes": self.kind.routes,
            "what": self.kind.what,
            "start_ms": self.span.start_ms,
            "end_ms": self.span.end_ms,
            "calls_faulted": self.hits,
        })
    }
}

/// Window length and the quiet gap after each, for a soak of `total`: a tenth of it,
/// between 2 and 5 s, so a 20 s run still opens every window of the Instant lane.
pub(crate) fn window_length(total: Duration) -> Duration {
    (total / 10).clamp(Duration::from_secs(2), Duration::from_secs(5))
}

/// The timeline, shared by the lanes.
pub(crate) type Timeline = Arc<Mutex<Vec<Window>>>;

/// Milliseconds since `origin`.
pub(crate) fn since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Makes every call to the kind's routes fail until [`close`]; returns how many calls
/// those routes had seen.
pub(crate) fn open(stack: &DevStack, kind: &Kind) -> u64 {
    let faults = kind.upstream.faults(stack);
    for route in kind.routes {
        // The patterns are constants, checked by a test.
        let _ = faults.inject(route, (kind.fault)(), u32::MAX);
    }
    kind.routes.iter().map(|r| faults.hits(r)).sum()
}

/// Ends every fault of the kind's upstream; returns how many calls its routes have
/// seen.
pub(crate) fn close(stack: &DevStack, kind: &Kind) -> u64 {
    let faults = kind.upstream.faults(stack);
    faults.clear();
    kind.routes.iter().map(|r| faults.hits(r)).sum()
}

/// Runs one lane until `deadline`: after `offset`, each kind in turn for a window, then
/// a quiet gap as long, never opening a window that would outlast the deadline.
pub(crate) async fn lane(
    stack: Arc<DevStack>,
    kinds: &'static [Kind],
    origin: Instant,
    offset: Duration,
    window: Duration,
    deadline: Instant,
    timeline: Timeline,
) {
    tokio::time::sleep(offset).await;
    for kind in kinds.iter().cycle() {
        if Instant::now() + window > deadline {
            break;
        }
        let start_ms = since(origin);
        let before = open(&stack, kind);
        tokio::time::sleep(window).await;
        let after = close(&stack, kind);
        let end_ms = since(origin);
        timeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Window {
                kind: *kind,
                span: Span { start_ms, end_ms },
                hits: after.saturating_sub(before),
            });
        tokio::time::sleep(window).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn status(method: reqwest::Method, url: String) -> u16 {
        reqwest::Client::new()
            .request(method, url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The InstantDB routes the server calls, and the Backend API routes it and the
    /// soak call: each must fall inside its fault's patterns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_fault_reaches_every_route_it_names_and_no_other() {
        let stack = DevStack::start(devstack::DevStackConfig::default())
            .await
            .unwrap();
        let instant = [
            "/runtime/oauth/id_token",
            "/runtime/signout",
            "/runtime/auth/verify_refresh_token",
            "/admin/query",
            "/admin/transact",
            "/admin/refresh_tokens",
            "/admin/sign_out",
            "/admin/users",
        ];
        let clerk_api = [
            (reqwest::Method::GET, "/v1/sessions/sess_x"),
            (reqwest::Method::POST, "/v1/sessions/sess_x/revoke"),
            (reqwest::Method::POST, "/v1/sessions/sess_x/tokens"),
            (reqwest::Method::DELETE, "/v1/users/user_x"),
            (reqwest::Method::GET, "/v1/users"),
        ];
        let jwks = format!("{}/.well-known/jwks.json", stack.clerk.url());

        let five_xx = &INSTANT_LANE[0];
        open(&stack, five_xx);
        for path in instant {
            let url = format!("{}{path}", stack.instant.url());
            assert_eq!(status(reqwest::Method::POST, url).await, 500, "{path}");
        }
        assert_eq!(status(reqwest::Method::GET, jwks.clone()).await, 200);
        close(&stack, five_xx);
        let url = format!("{}/admin/query", stack.instant.url());
        assert_ne!(status(reqwest::Method::POST, url).await, 500, "closed");

        let api_down = CLERK_LANE
            .iter()
            .find(|k| k.name == "clerk-api-down")
            .unwrap();
        let before = open(&stack, api_down);
        for (method, path) in &clerk_api {
            let url = format!("{}{path}", stack.clerk.url());
            assert_eq!(status(method.clone(), url).await, 503, "{method} {path}");
        }
        assert_eq!(status(reqwest::Method::GET, jwks.clone()).await, 200);
        assert_eq!(close(&stack, api_down) - before, 5);

        for name in ["jwks-down", "jwks-garbage"] {
            let kind = CLERK_LANE.iter().find(|k| k.name == name).unwrap();
            open(&stack, kind);
            let answer = reqwest::get(&jwks).await.unwrap();
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            assert!(
                status == 503 || body["keys"][0]["n"] == "",
                "{name}: {status} {body}"
            );
            close(&stack, kind);
        }
        stack.shutdown().await;
    }

    #[test]
    fn windows_are_a_tenth_of_the_run_within_bounds() {
        assert_eq!(
            window_length(Duration::from_secs(20)),
            Duration::from_secs(2)
        );
        assert_eq!(
            window_length(Duration::from_secs(30)),
            Duration::from_secs(3)
        );
        assert_eq!(
            window_length(Duration::from_secs(600)),
            Duration::from_secs(5)
        );
    }
}
