//! The fault schedule: one window at a time, each kind in turn, during which every
//! matching call to the emulator or the local Clerk fails (or, in a Redis soak, the
//! shared Redis hangs), with quiet time between windows; and the timeline of those
//! windows.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use devstack::{DevStack, Fault, Faults, RedisServer};
use serde_json::{Value, json};

use super::report::{Blame, GRACE_MS, JWKS_GRACE_MS, Span};

/// Which server a fault is injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    Instant,
    Clerk,
    /// The replicas' shared Redis (a Redis soak).
    Redis,
}

impl Upstream {
    fn name(self) -> &'static str {
        match self {
            Upstream::Instant => "instantdb-emulator",
            Upstream::Clerk => "local-clerk",
            Upstream::Redis => "redis",
        }
    }

    fn faults(self, stack: &DevStack) -> Option<&Faults> {
        match self {
            Upstream::Instant => Some(stack.instant.faults()),
            Upstream::Clerk => Some(stack.clerk.faults()),
            Upstream::Redis => None,
        }
    }
}

/// What faults are injected into.
pub(crate) struct Targets {
    pub(crate) stack: Arc<DevStack>,
    /// The Redis the replicas share, in a Redis soak.
    pub(crate) redis: Option<Mutex<RedisServer>>,
}

impl Targets {
    fn redis(&self) -> Option<std::sync::MutexGuard<'_, RedisServer>> {
        self.redis
            .as_ref()
            .map(|redis| redis.lock().unwrap_or_else(PoisonError::into_inner))
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
    /// How long after the window a 5xx is still blamed on it.
    pub(crate) grace_ms: u64,
    /// What each call to the routes gets (`None` for Redis, which is paused instead).
    fault: Option<fn() -> Fault>,
}

/// Every fault the soak injects, in the order the windows open (then again). The
/// first, the JWKS down, opens before any traffic: the JWKS is cached for an hour, so
/// JWKS windows bite when a key fetch is due (the emulator's first fetch, a server
/// starting) or an unknown `kid` arrives, not on every call.
pub(crate) const SCHEDULE: &[Kind] = &[
    Kind {
        name: "jwks-down",
        upstream: Upstream::Clerk,
        routes: JWKS_ROUTES,
        what: "the JWKS answers 503",
        grace_ms: JWKS_GRACE_MS,
        fault: Some(|| Fault::status(503)),
    },
    Kind {
        name: "instant-5xx",
        upstream: Upstream::Instant,
        routes: INSTANT_ROUTES,
        what: "every InstantDB call answers 500",
        grace_ms: GRACE_MS,
        fault: Some(|| Fault::status(500)),
    },
    Kind {
        name: "clerk-api-down",
        upstream: Upstream::Clerk,
        routes: CLERK_API_ROUTES,
        what: "the Clerk Backend API answers 503",
        grace_ms: GRACE_MS,
        fault: Some(|| Fault::status(503)),
    },
    Kind {
        name: "instant-429",
        upstream: Upstream::Instant,
        routes: INSTANT_ROUTES,
        what: "every InstantDB call answers 429 with Retry-After: 1",
        grace_ms: GRACE_MS,
        fault: Some(|| Fault::status(429).with_header("retry-after", "1")),
    },
    Kind {
        name: "instant-slow",
        upstream: Upstream::Instant,
        routes: INSTANT_ROUTES,
        what: "every InstantDB call is held 2 s, then answered",
        grace_ms: GRACE_MS,
        fault: Some(|| Fault::delay(SLOW)),
    },
    Kind {
        name: "jwks-garbage",
        upstream: Upstream::Clerk,
        routes: JWKS_ROUTES,
        what: "the JWKS answers 200 with an unusable key (empty modulus)",
        grace_ms: JWKS_GRACE_MS,
        fault: Some(|| {
            Fault::status(200).with_body(json!({
                "keys": [{"kty": "RSA", "kid": "soak-garbage", "use": "sig", "alg": "RS256", "n": "", "e": "AQAB"}]
            }))
        }),
    },
    Kind {
        name: "instant-drop",
        upstream: Upstream::Instant,
        routes: INSTANT_ROUTES,
        what: "every InstantDB connection is closed without an answer",
        grace_ms: GRACE_MS,
        fault: Some(Fault::drop_connection),
    },
];

/// The Redis soak's own fault: the shared Redis stops answering (SIGSTOP, its data
/// kept), as a Redis that hangs or a network that drops packets, until the window
/// closes (SIGCONT). The store's calls time out within its bound (3 s, the grace).
pub(crate) const REDIS_PAUSED: Kind = Kind {
    name: "redis-paused",
    upstream: Upstream::Redis,
    routes: &[],
    what: "the shared Redis answers nothing (SIGSTOP), then everything it was sent",
    grace_ms: GRACE_MS,
    fault: None,
};

/// The windows of a soak, in order: [`SCHEDULE`], and in a Redis soak
/// [`REDIS_PAUSED`] second, so that even a short run opens it.
pub(crate) fn schedule(redis: bool) -> Vec<Kind> {
    let mut kinds = SCHEDULE.to_vec();
    if redis {
        kinds.insert(1, REDIS_PAUSED);
    }
    kinds
}

/// One window of the timeline.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub(crate) kind: Kind,
    pub(crate) span: Span,
    /// Calls that reached the faulted routes during the window.
    pub(crate) hits: u64,
}

impl Window {
    pub(crate) fn blame(&self) -> Blame {
        Blame {
            window: self.span,
            grace_ms: self.kind.grace_ms,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "fault": self.kind.name,
            "upstream": self.kind.upstream.name(),
            "routes": self.kind.routes,
            "what": self.kind.what,
            "start_ms": self.span.start_ms,
            "end_ms": self.span.end_ms,
            "grace_ms": self.kind.grace_ms,
            // Redis does not count the commands it held.
            "calls_faulted": (self.kind.upstream != Upstream::Redis).then_some(self.hits),
        })
    }
}

/// How long a window stays open for a soak of `total`: a twelfth of it, between 2 and
/// 4 s; the quiet gap after each is twice as long, so most of the run is outside
/// every window and its grace, where a 5xx counts.
pub(crate) fn window_length(total: Duration) -> Duration {
    (total / 12).clamp(Duration::from_secs(2), Duration::from_secs(4))
}

/// The timeline of closed windows.
pub(crate) type Timeline = Arc<Mutex<Vec<Window>>>;

/// Milliseconds since `origin`.
pub(crate) fn since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Makes every call to the kind's routes fail (or pauses Redis) until [`close`];
/// returns how many calls those routes had seen.
pub(crate) fn open(targets: &Targets, kind: &Kind) -> u64 {
    let (Some(faults), Some(fault)) = (kind.upstream.faults(&targets.stack), kind.fault) else {
        if let Some(mut redis) = targets.redis() {
            redis.pause();
        }
        return 0;
    };
    for route in kind.routes {
        // The patterns are constants, checked by a test.
        let _ = faults.inject(route, fault(), u32::MAX);
    }
    kind.routes.iter().map(|r| faults.hits(r)).sum()
}

/// Ends every fault of the kind's upstream (resumes Redis); returns how many calls its
/// routes have seen.
pub(crate) fn close(targets: &Targets, kind: &Kind) -> u64 {
    let Some(faults) = kind.upstream.faults(&targets.stack) else {
        if let Some(mut redis) = targets.redis() {
            redis.resume();
        }
        return 0;
    };
    faults.clear();
    kind.routes.iter().map(|r| faults.hits(r)).sum()
}

/// A window opened and not yet closed.
#[derive(Debug)]
pub(crate) struct Opened {
    kind: Kind,
    start_ms: u64,
    hits_before: u64,
}

/// Opens the schedule's first window now, before any traffic starts.
pub(crate) fn open_first(targets: &Targets, schedule: &[Kind], origin: Instant) -> Opened {
    let kind = schedule[0];
    Opened {
        kind,
        start_ms: since(origin),
        hits_before: open(targets, &kind),
    }
}

/// Runs the schedule until `deadline`, `first` already open: each window stays open
/// for `window`, then two windows' length of quiet; no window opens that would outlast
/// the deadline.
pub(crate) async fn run(
    targets: Arc<Targets>,
    schedule: Vec<Kind>,
    first: Opened,
    window: Duration,
    origin: Instant,
    deadline: Instant,
    timeline: Timeline,
) {
    let mut opened = first;
    let mut next = schedule.iter().cycle().skip(1);
    loop {
        tokio::time::sleep(window).await;
        let after = close(&targets, &opened.kind);
        timeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Window {
                kind: opened.kind,
                span: Span {
                    start_ms: opened.start_ms,
                    end_ms: since(origin),
                },
                hits: after.saturating_sub(opened.hits_before),
            });
        let Some(kind) = next.next() else { break };
        if Instant::now() + window * 3 > deadline {
            break;
        }
        tokio::time::sleep(window * 2).await;
        opened = Opened {
            kind: *kind,
            start_ms: since(origin),
            hits_before: open(&targets, kind),
        };
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
        let targets = Targets {
            stack: Arc::new(stack),
            redis: None,
        };
        let stack = &targets.stack;
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

        let kind = |name: &str| SCHEDULE.iter().find(|k| k.name == name).unwrap();
        let five_xx = kind("instant-5xx");
        open(&targets, five_xx);
        for path in instant {
            let url = format!("{}{path}", stack.instant.url());
            assert_eq!(status(reqwest::Method::POST, url).await, 500, "{path}");
        }
        assert_eq!(status(reqwest::Method::GET, jwks.clone()).await, 200);
        close(&targets, five_xx);
        let url = format!("{}/admin/query", stack.instant.url());
        assert_ne!(status(reqwest::Method::POST, url).await, 500, "closed");

        let api_down = kind("clerk-api-down");
        let before = open(&targets, api_down);
        for (method, path) in &clerk_api {
            let url = format!("{}{path}", stack.clerk.url());
            assert_eq!(status(method.clone(), url).await, 503, "{method} {path}");
        }
        assert_eq!(status(reqwest::Method::GET, jwks.clone()).await, 200);
        assert_eq!(close(&targets, api_down) - before, 5);

        for name in ["jwks-down", "jwks-garbage"] {
            let kind = kind(name);
            open(&targets, kind);
            let answer = reqwest::get(&jwks).await.unwrap();
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            assert!(
                status == 503 || body["keys"][0]["n"] == "",
                "{name}: {status} {body}"
            );
            close(&targets, kind);
        }
        if let Ok(stack) = Arc::try_unwrap(targets.stack) {
            stack.shutdown().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_redis_fault_holds_every_command_until_it_closes() {
        let redis = RedisServer::start().await.unwrap();
        let port = redis.port();
        let targets = Targets {
            stack: Arc::new(
                DevStack::start(devstack::DevStackConfig::default())
                    .await
                    .unwrap(),
            ),
            redis: Some(Mutex::new(redis)),
        };
        let ping = || async move {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut stream, b"PING\r\n")
                .await
                .unwrap();
            let mut answer = [0_u8; 7];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut answer)
                .await
                .unwrap();
            answer
        };
        assert_eq!(&ping().await, b"+PONG\r\n");
        assert_eq!(open(&targets, &REDIS_PAUSED), 0);
        let held = tokio::spawn(ping());
        let waited = tokio::time::timeout(Duration::from_millis(300), ping()).await;
        assert!(waited.is_err(), "a paused Redis answered");
        close(&targets, &REDIS_PAUSED);
        assert_eq!(&held.await.unwrap(), b"+PONG\r\n", "answered once resumed");
        if let Ok(stack) = Arc::try_unwrap(targets.stack) {
            stack.shutdown().await;
        }
    }

    #[test]
    fn windows_are_a_twelfth_of_the_run_within_bounds() {
        assert_eq!(
            window_length(Duration::from_secs(20)),
            Duration::from_secs(2)
        );
        assert_eq!(
            window_length(Duration::from_secs(36)),
            Duration::from_secs(3)
        );
        assert_eq!(
            window_length(Duration::from_secs(600)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn the_schedule_starts_with_the_jwks_down_and_names_each_kind_once() {
        for redis in [false, true] {
            let kinds = schedule(redis);
            assert_eq!(kinds[0].name, "jwks-down");
            let mut names: Vec<&str> = kinds.iter().map(|k| k.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), kinds.len());
            assert_eq!(names.contains(&"redis-paused"), redis);
        }
        assert_eq!(
            schedule(true)[1].name,
            "redis-paused",
            "early, for short runs"
        );
    }
}
