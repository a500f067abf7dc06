//! What the soak records while it runs, and the judgement at the end: latency
//! percentiles, outcomes by route, and which 5xx fell outside every fault window.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// How long after an InstantDB or Clerk Backend API fault window closes a 5xx is
/// still blamed on it (time for retries, `Retry-After` waits and requests already
/// under way to finish).
pub(crate) const GRACE_MS: u64 = 3_000;

/// The same for a JWKS fault: a failed fetch with no keys cached is retried no sooner
/// than 10 s later (clerk-jwt's `MIN_REFRESH_INTERVAL`), so the server may answer
/// `keys-unavailable` for up to 10 s after the JWKS is back.
pub(crate) const JWKS_GRACE_MS: u64 = 11_000;

/// How long after a webhook attempt's `svix-timestamp` (whole seconds) its answer may
/// come: one second of rounding plus the server's request timeout.
pub(crate) const WEBHOOK_ANSWER_MS: u64 = 11_000;

/// A time span in milliseconds since the soak started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start_ms: u64,
    pub(crate) end_ms: u64,
}

/// A fault window and how long after its close a 5xx is still blamed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blame {
    pub(crate) window: Span,
    pub(crate) grace_ms: u64,
}

/// Whether a request spanning `request` overlaps a fault window extended by its grace.
pub(crate) fn during_a_fault(request: Span, windows: &[Blame]) -> bool {
    windows.iter().any(|blame| {
        request.start_ms <= blame.window.end_ms.saturating_add(blame.grace_ms)
            && blame.window.start_ms <= request.end_ms
    })
}

/// The `p`-th percentile (0–100) of sorted values, by the nearest-rank method.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil();
    let index = if rank.is_finite() && rank >= 1.0 {
        // The rank is at most the length, which is a usize.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = rank as usize;
        rank.min(sorted.len()) - 1
    } else {
        0
    };
    sorted.get(index).copied()
}

/// One answer worth keeping in full: a 5xx or a request that got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) route: &'static str,
    /// The status, or `None` when no answer came.
    pub(crate) status: Option<u16>,
    /// The error code of the body, when there was one.
    pub(crate) code: Option<String>,
    pub(crate) span: Span,
}

impl Failure {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "route": self.route,
            "status": self.status,
            "code": self.code,
            "start_ms": self.span.start_ms,
            "end_ms": self.span.end_ms,
        })
    }
}

/// Requests of one route: outcomes and latencies.
#[derive(Debug, Default)]
pub(crate) struct RouteStats {
    /// `"200"`, `"401 token-expired"`, `"no answer"` … → count.
    pub(crate) outcomes: BTreeMap<String, u64>,
    /// Latencies in microseconds.
    pub(crate) latencies_us: Vec<u32>,
}

/// Everything the traffic recorded.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// By route label (`"POST /v1/session"`).
    pub(crate) routes: BTreeMap<&'static str, RouteStats>,
    /// Every 5xx and every request without an answer.
    pub(crate) failures: Vec<Failure>,
    /// What the clients did, by action.
    pub(crate) actions: BTreeMap<&'static str, u64>,
    /// Sign-outs answered `instant: done` whose refresh token was still alive.
    pub(crate) done_but_alive: Vec<Value>,
    /// Expired or forged tokens that were accepted.
    pub(crate) bad_tokens_accepted: Vec<Value>,
}

impl Log {
    /// Records one answer (`status` `None`: no answer).
    pub(crate) fn record(
        &mut self,
        route: &'static str,
        status: Option<u16>,
        code: Option<&str>,
        span: Span,
        latency_us: u32,
    ) {
        let outcome = match (status, code) {
            (None, _) => "no answer".to_owned(),
            (Some(status), Some(code)) => format!("{status} {code}"),
            (Some(status), None) => status.to_string(),
        };
        let stats = self.routes.entry(route).or_default();
        *stats.outcomes.entry(outcome).or_default() += 1;
        stats.latencies_us.push(latency_us);
        if status.is_none_or(|s| s >= 500) {
            self.failures.push(Failure {
                route,
                status,
                code: code.map(str::to_owned),
                span,
            });
        }
    }

    /// Counts an action.
    pub(crate) fn act(&mut self, action: &'static str) {
        *self.actions.entry(action).or_default() += 1;
    }

    /// Requests by route: count, outcomes, p50 and p99 in milliseconds; and the same
    /// over all routes.
    pub(crate) fn summary(&mut self) -> (Value, Value) {
        let mut routes = serde_json::Map::new();
        let mut all = Vec::new();
        for (route, stats) in &mut self.routes {
            stats.latencies_us.sort_unstable();
            all.extend_from_slice(&stats.latencies_us);
            routes.insert(
                (*route).to_owned(),
                json!({
                    "count": stats.latencies_us.len(),
                    "p50_ms": ms(percentile(&stats.latencies_us, 50.0)),
                    "p99_ms": ms(percentile(&stats.latencies_us, 99.0)),
                    "outcomes": stats.outcomes,
                }),
            );
        }
        all.sort_unstable();
        let overall = json!({
            "count": all.len(),
            "p50_ms": ms(percentile(&all, 50.0)),
            "p99_ms": ms(percentile(&all, 99.0)),
        });
        (Value::Object(routes), overall)
    }
}

/// Microseconds as milliseconds with three decimals.
fn ms(us: Option<u32>) -> Option<f64> {
    us.map(|us| f64::from(us) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start_ms: u64, end_ms: u64) -> Span {
        Span { start_ms, end_ms }
    }

    #[test]
    fn a_5xx_is_blamed_on_a_window_it_overlaps_or_follows_within_the_grace() {
        let windows = [Blame {
            window: span(10_000, 14_000),
            grace_ms: GRACE_MS,
        }];
        // Inside, straddling either edge, and within the grace after the close.
        assert!(during_a_fault(span(11_000, 11_100), &windows));
        assert!(during_a_fault(span(9_000, 10_000), &windows));
        assert!(during_a_fault(span(13_900, 20_000), &windows));
        assert!(during_a_fault(
            span(14_000 + GRACE_MS, 14_000 + GRACE_MS + 5),
            &windows
        ));
        // Before the window opens, and after the grace ran out.
        assert!(!during_a_fault(span(9_000, 9_999), &windows));
        assert!(!during_a_fault(
            span(14_001 + GRACE_MS, 14_100 + GRACE_MS),
            &windows
        ));
        assert!(!during_a_fault(span(1, 2), &[]));
        // Each window has its own grace.
        let jwks = [Blame {
            window: span(10_000, 14_000),
            grace_ms: JWKS_GRACE_MS,
        }];
        assert!(during_a_fault(span(24_000, 24_100), &jwks));
        assert!(!during_a_fault(span(24_000, 24_100), &windows));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), Some(50));
        assert_eq!(percentile(&values, 99.0), Some(99));
        assert_eq!(percentile(&values, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn only_5xx_and_missing_answers_are_kept_as_failures() {
        let mut log = Log::default();
        let at = span(1, 2);
        log.record("GET /v1/me", Some(200), None, at, 900);
        log.record("GET /v1/me", Some(401), Some("token-expired"), at, 800);
        log.record(
            "GET /v1/me",
            Some(503),
            Some("instant-unavailable"),
            at,
            700,
        );
        log.record("GET /v1/me", None, None, at, 600);
        assert_eq!(log.failures.len(), 2);
        let (routes, overall) = log.summary();
        assert_eq!(overall["count"], 4);
        assert_eq!(routes["GET /v1/me"]["outcomes"]["401 token-expired"], 1);
        assert_eq!(routes["GET /v1/me"]["outcomes"]["no answer"], 1);
        assert_eq!(routes["GET /v1/me"]["p50_ms"], 0.7);
    }
}
