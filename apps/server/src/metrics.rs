//! Prometheus text metrics: requests by route and status, verification failures by
//! reason, upstream latency by upstream and call. Kept in a few mutex-guarded maps with
//! `&'static str` labels, so recording allocates nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::ratelimit::Limit;

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bucket, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bucket {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    upstream: Mutex<BTreeMap<(&'static str, &'static str, &'static str), Histogram>>,
    webhooks: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    rate_limited: Mutex<BTreeMap<&'static str, u64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Counts a finished request.
    pub fn request(&self, method: &'static str, route: &'static str, status: u16) {
        *lock(&self.requests)
            .entry((method, route, status))
            .or_default() += 1;
    }

    /// Counts a token rejected for `reason`.
    pub fn verification_failure(&self, reason: &'static str) {
        *lock(&self.failures).entry(reason).or_default() += 1;
    }

    /// Records one upstream call.
    pub fn upstream(&self, upstream: &'static str, call: &'static str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        lock(&self.upstream)
            .entry((upstream, call, outcome))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// Counts a webhook delivery by event type (a known type or `other`) and outcome
    /// (`applied`, `duplicate`, `ignored`, `unmapped`, `refused`, `failed`).
    pub fn webhook(&self, event_type: &'static str, outcome: &'static str) {
        *lock(&self.webhooks)
            .entry((event_type, outcome))
            .or_default() += 1;
    }

    /// How many webhook deliveries of `event_type` ended with `outcome`.
    pub fn webhooks(&self, event_type: &str, outcome: &str) -> u64 {
        lock(&self.webhooks)
            .iter()
            .filter(|((t, o), _)| *t == event_type && *o == outcome)
            .map(|(_, n)| *n)
            .sum()
    }

    /// Counts a request refused with 429 by `limit`.
    pub fn rate_limited(&self, limit: Limit) {
        *lock(&self.rate_limited).entry(limit.as_str()).or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, sessions: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP clerk_instant_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE clerk_instant_requests_total counter\n");
        for ((method, route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "clerk_instant_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP clerk_instant_token_rejections_total Clerk tokens rejected, by reason code.\n",
        );
        out.push_str("# TYPE clerk_instant_token_rejections_total counter\n");
        for (reason, n) in lock(&self.failures).iter() {
            let _ = writeln!(
                out,
                "clerk_instant_token_rejections_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP clerk_instant_upstream_seconds Latency of calls to InstantDB and Clerk.\n",
        );
        out.push_str("# TYPE clerk_instant_upstream_seconds histogram\n");
        for ((upstream, call, outcome), h) in lock(&self.upstream).iter() {
            let labels = format!("upstream=\"{upstream}\",call=\"{call}\",outcome=\"{outcome}\"");
            for (bucket, count) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "clerk_instant_upstream_seconds_bucket{{{labels},le=\"{bucket}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "clerk_instant_upstream_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "clerk_instant_upstream_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "clerk_instant_upstream_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str(
            "# HELP clerk_instant_webhooks_total Clerk webhook deliveries, by event type and outcome.\n",
        );
        out.push_str("# TYPE clerk_instant_webhooks_total counter\n");
        for ((event_type, outcome), n) in lock(&self.webhooks).iter() {
            let _ = writeln!(
                out,
                "clerk_instant_webhooks_total{{type=\"{event_type}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP clerk_instant_rate_limited_total Requests refused with 429, by the limit that refused them.\n",
        );
        out.push_str("# TYPE clerk_instant_rate_limited_total counter\n");
        {
            let counts = lock(&self.rate_limited);
            for limit in Limit::ALL {
                let n = counts.get(limit.as_str()).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "clerk_instant_rate_limited_total{{limit=\"{limit}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP clerk_instant_sessions InstantDB sessions held for Clerk sessions.\n");
        out.push_str("# TYPE clerk_instant_sessions gauge\n");
        let _ = writeln!(out, "clerk_instant_sessions {sessions}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("POST", "/v1/session", 200);
        m.request("POST", "/v1/session", 200);
        m.request("GET", "/healthz", 200);
        m.verification_failure("token-expired");
        m.webhook("session.revoked", "applied");
        m.upstream("instantdb", "sign-in", true, Duration::from_millis(3));
        m.rate_limited(Limit::BadToken);
        m.rate_limited(Limit::BadToken);
        let text = m.render(4);
        assert!(text.contains("clerk_instant_rate_limited_total{limit=\"bad-token\"} 2"));
        assert!(text.contains("clerk_instant_rate_limited_total{limit=\"ip\"} 0"));
        assert!(text.contains(
            "clerk_instant_requests_total{method=\"POST\",route=\"/v1/session\",status=\"200\"} 2"
        ));
        assert!(text.contains("clerk_instant_token_rejections_total{reason=\"token-expired\"} 1"));
        assert!(text.contains(
            "clerk_instant_upstream_seconds_bucket{upstream=\"instantdb\",call=\"sign-in\",outcome=\"ok\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains(
            "clerk_instant_upstream_seconds_bucket{upstream=\"instantdb\",call=\"sign-in\",outcome=\"ok\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("clerk_instant_sessions 4"));
        assert!(text.contains(
            "clerk_instant_webhooks_total{type=\"session.revoked\",outcome=\"applied\"} 1"
        ));
        assert_eq!(m.webhooks("session.revoked", "applied"), 1);
    }
}
