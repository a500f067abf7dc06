//! Prometheus text metrics: requests by route and status, request latency by route,
//! verification failures by reason, upstream latency by upstream and call, the build,
//! and (on Linux, read from `/proc`) the process's memory, CPU time and file
//! descriptors. Kept in a few mutex-guarded maps with `&'static str` labels, so
//! recording allocates nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::ratelimit::Limit;

/// Upstream latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Request latency buckets, in seconds: from 50 µs, since a probe, `/metrics` or a
/// sign-in answered from the store takes well under a millisecond, up to the longest
/// request timeout worth having.
const REQUEST_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

#[derive(Clone)]
struct Histogram<const N: usize> {
    counts: [u64; N],
    count: u64,
    sum: f64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            counts: [0; N],
            count: 0,
            sum: 0.0,
        }
    }
}

impl<const N: usize> Histogram<N> {
    fn observe(&mut self, buckets: &[f64; N], seconds: f64) {
        for (bucket, count) in buckets.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bucket {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name` with `labels`.
    fn render(&self, out: &mut String, name: &str, labels: &str, buckets: &[f64; N]) {
        for (bucket, count) in buckets.iter().zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bucket}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The version, the git commit and the compiler, set by `build.rs`.
const BUILD_INFO: (&str, &str, &str) = (
    env!("CARGO_PKG_VERSION"),
    env!("CLERK_INSTANT_GIT_COMMIT"),
    env!("CLERK_INSTANT_RUSTC_VERSION"),
);

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram<{ REQUEST_BUCKETS.len() }>>>,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    upstream:
        Mutex<BTreeMap<(&'static str, &'static str, &'static str), Histogram<{ BUCKETS.len() }>>>,
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
    /// Counts a finished request, and records how long it took by route.
    pub fn request(&self, method: &'static str, route: &'static str, status: u16, took: Duration) {
        *lock(&self.requests)
            .entry((method, route, status))
            .or_default() += 1;
        lock(&self.latency)
            .entry(route)
            .or_default()
            .observe(&REQUEST_BUCKETS, took.as_secs_f64());
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
            .observe(&BUCKETS, took.as_secs_f64());
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
    pub fn render(&self, sessions: Option<usize>) -> String {
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
            "# HELP clerk_instant_request_seconds Time to answer HTTP requests, by route.\n",
        );
        out.push_str("# TYPE clerk_instant_request_seconds histogram\n");
        for (route, h) in lock(&self.latency).iter() {
            let labels = format!("route=\"{route}\"");
            h.render(
                &mut out,
                "clerk_instant_request_seconds",
                &labels,
                &REQUEST_BUCKETS,
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
            h.render(
                &mut out,
                "clerk_instant_upstream_seconds",
                &labels,
                &BUCKETS,
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
        if let Some(sessions) = sessions {
            out.push_str(
                "# HELP clerk_instant_sessions InstantDB sessions held for Clerk sessions.\n",
            );
            out.push_str("# TYPE clerk_instant_sessions gauge\n");
            let _ = writeln!(out, "clerk_instant_sessions {sessions}");
        }
        let (version, commit, rustc) = BUILD_INFO;
        out.push_str(
            "# HELP clerk_instant_build_info The server's version, git commit and compiler (always 1).\n",
        );
        out.push_str("# TYPE clerk_instant_build_info gauge\n");
        let _ = writeln!(
            out,
            "clerk_instant_build_info{{version=\"{version}\",commit=\"{commit}\",rustc=\"{rustc}\"}} 1"
        );
        process::render(&mut out);
        out
    }
}

/// The standard `process_*` metrics, read from `/proc` (Linux only: elsewhere there
/// are none, rather than a dependency to find them).
mod process {
    /// Appends the process metrics that could be read.
    #[cfg(target_os = "linux")]
    pub(super) fn render(out: &mut String) {
        use std::fmt::Write as _;

        let mut gauge = |name: &str, kind: &str, help: &str, value: Option<f64>| {
            if let Some(value) = value {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
                );
            }
        };
        let stat = Stat::read();
        gauge(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            stat.map(|s| s.cpu_seconds),
        );
        gauge(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            stat.and_then(|s| Some(boot_time()? + s.start_after_boot)),
        );
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let kilobytes = |field: &str| {
            status
                .as_deref()
                .and_then(|status| status_kb(status, field))
                .map(|kb| kb * 1024.0)
        };
        gauge(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, in bytes.",
            kilobytes("VmRSS:"),
        );
        gauge(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size, in bytes.",
            kilobytes("VmSize:"),
        );
        gauge(
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            std::fs::read_dir("/proc/self/fd")
                .ok()
                // The directory handle itself is one of them: not counted.
                .map(|dir| dir.count().saturating_sub(1) as f64),
        );
        gauge(
            "process_max_fds",
            "gauge",
            "The limit of open file descriptors (ulimit -n).",
            std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|limits| max_open_files(&limits)),
        );
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn render(_out: &mut String) {}

    /// Clock ticks per second in `/proc/self/stat`: `USER_HZ`, 100 on every Linux
    /// architecture this builds for (reading `sysconf` would take `unsafe` and libc).
    #[cfg(target_os = "linux")]
    const TICKS_PER_SECOND: f64 = 100.0;

    /// What `/proc/self/stat` says.
    #[derive(Debug, Clone, Copy, PartialEq)]
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    struct Stat {
        cpu_seconds: f64,
        start_after_boot: f64,
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    impl Stat {
        #[cfg(target_os = "linux")]
        fn read() -> Option<Stat> {
            Stat::parse(
                &std::fs::read_to_string("/proc/self/stat").ok()?,
                TICKS_PER_SECOND,
            )
        }

        /// Parses `pid (comm) state ppid …`: the name may hold spaces and parentheses,
        /// so the fields are counted from its last `)`.
        fn parse(stat: &str, ticks_per_second: f64) -> Option<Stat> {
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // Fields 14 (utime), 15 (stime) and 22 (starttime) of proc(5); `rest`
            // starts at field 3.
            let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
            Some(Stat {
                cpu_seconds: (field(14)? + field(15)?) / ticks_per_second,
                start_after_boot: field(22)? / ticks_per_second,
            })
        }
    }

    /// The boot time, from `/proc/stat`'s `btime`.
    #[cfg(target_os = "linux")]
    fn boot_time() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|value| value.trim().parse().ok())
    }

    /// A `Name:   1234 kB` line of `/proc/self/status`, in kB.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn status_kb(status: &str, field: &str) -> Option<f64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
    }

    /// The soft limit on the `Max open files` line of `/proc/self/limits`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn max_open_files(limits: &str) -> Option<f64> {
        limits
            .lines()
            .find_map(|line| line.strip_prefix("Max open files"))
            .and_then(|values| values.split_whitespace().next()?.parse().ok())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_proc_files_are_read_by_field() {
            let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 9 0 123400 1000 200 18446744073709551615";
            assert_eq!(
                Stat::parse(stat, 100.0),
                Some(Stat {
                    cpu_seconds: 3.0,
                    start_after_boot: 1234.0
                })
            );
            assert_eq!(Stat::parse("4242 (cut", 100.0), None);
            let status = "Name:\tserver\nVmSize:\t  20000 kB\nVmRSS:\t    1500 kB\n";
            assert_eq!(status_kb(status, "VmRSS:"), Some(1500.0));
            assert_eq!(status_kb(status, "VmHWM:"), None);
            let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
            assert_eq!(max_open_files(limits), Some(1024.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("POST", "/v1/session", 200, Duration::from_millis(40));
        m.request("POST", "/v1/session", 200, Duration::from_millis(3));
        m.request("GET", "/healthz", 200, Duration::from_micros(70));
        m.verification_failure("token-expired");
        m.webhook("session.revoked", "applied");
        m.upstream("instantdb", "sign-in", true, Duration::from_millis(3));
        m.rate_limited(Limit::BadToken);
        m.rate_limited(Limit::BadToken);
        let text = m.render(Some(4));
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
        for line in [
            "clerk_instant_request_seconds_bucket{route=\"/healthz\",le=\"0.00005\"} 0",
            "clerk_instant_request_seconds_bucket{route=\"/healthz\",le=\"0.0001\"} 1",
            "clerk_instant_request_seconds_bucket{route=\"/v1/session\",le=\"0.005\"} 1",
            "clerk_instant_request_seconds_bucket{route=\"/v1/session\",le=\"0.05\"} 2",
            "clerk_instant_request_seconds_bucket{route=\"/v1/session\",le=\"+Inf\"} 2",
            "clerk_instant_request_seconds_count{route=\"/v1/session\"} 2",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(text.contains(&format!(
            "clerk_instant_build_info{{version=\"{}\",",
            env!("CARGO_PKG_VERSION")
        )));
    }
}
