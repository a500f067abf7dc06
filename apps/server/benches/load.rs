//! The real server binary under load on loopback, against a local stack started in this
//! process: requests/s and p50/p99 latency of `GET /healthz` (the floor) and of
//! `POST /v1/session` with a reused session, 32 concurrent keep-alive clients each,
//! then the server's resident memory idle and after 100,000 distinct sessions. Then the same turns with the Redis
//! store (a second server over a throwaway `redis-server`), and Redis's memory per
//! stored session. Writes `target/bench/server.json`.
//!
//! The two endpoints take turns in one-second slots (3 s of warm-up each, then 8 s
//! measured each), so load from other processes on the machine hits both alike.
//!
//! Run with `cargo xtask bench server` (or `cargo bench -p clerk-instant-server --bench
//! load`). Targets, for the memory and the Redis store alike: the sign-in path at >=
//! 50 % of the floor's throughput, its p99 under 5 ms. Any answer other than 200 fails
//! the bench.
//!
//! The clients share the machine with the server, so on a small machine they take part
//! of its CPU; both phases pay that alike. The InstantDB emulator and the local Clerk
//! live in this process, so the server's resident memory counts the server alone.

#![allow(missing_docs, clippy::print_stdout)]

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use devstack::{DevStack, DevStackConfig, MintOptions, NewUser};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};

const CLIENTS: usize = 32;
/// One turn of one endpoint.
const SLOT: Duration = Duration::from_secs(1);
/// Turns per endpoint, not measured and measured.
const WARM_UP_SLOTS: usize = 3;
const MEASURED_SLOTS: usize = 8;
/// Distinct Clerk sessions signed in for the memory figure, spread over `USERS` users.
const SESSIONS: usize = 100_000;
const USERS: usize = 1_000;
/// Lifetime of the tokens minted ahead for those sessions (Clerk's are 60 s; minting
/// 100,000 RS256 tokens takes longer than that here).
const BULK_TOKEN_LIFETIME: Duration = Duration::from_secs(900);
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Sessions stored in Redis for the bytes-per-session figure (minted with the others).
const REDIS_SESSIONS: usize = 10_000;
/// The tests' encryption key for the Redis store (sealing costs what it costs in
/// production).
const REDIS_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const TARGET_RATIO: f64 = 0.5;
const TARGET_P99_MS: f64 = 5.0;

fn main() -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            println!("\nserver bench: FAILED: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when some answer was not 200.
async fn run() -> anyhow::Result<bool> {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let report_path = dir.join("server.json");
    // A stale report must not pass for this run's if this run fails.
    let _ = std::fs::remove_file(&report_path);

    let stack = DevStack::start(DevStackConfig::default())
        .await
        .context("starting the local stack")?;
    let mut server = Server::spawn(&stack)?;
    server.wait_ready().await?;
    let http = http_client()?;
    println!(
        "server pid {} on {} (local Clerk {}, InstantDB emulator {}); {CLIENTS} clients, per endpoint {} s warm-up + {} s measured, in turns of {} ms",
        server.pid(),
        server.url,
        stack.clerk.url(),
        stack.instant.url(),
        (SLOT * u32::try_from(WARM_UP_SLOTS)?).as_secs_f64(),
        (SLOT * u32::try_from(MEASURED_SLOTS)?).as_secs_f64(),
        SLOT.as_millis()
    );

    // Idle: started, one sign-in done.
    let first = stack.clerk.sign_in("bench-idle@example.com")?;
    let token = stack.clerk.mint(&first.session.id)?;
    let answer = sign_in(&http, &server.url, &token).await?;
    ensure!(
        answer["created"] == true,
        "the first sign-in did not create the InstantDB user: {answer}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = server.rss_mib()?;
    println!("rss idle: {rss_idle:.1} MiB");

    // (a) The floor and (b) a reused session: signed in once, then every request reuses
    // the stored session. The token is minted just before (tokens live 60 s; the turns
    // take 22 s, and the stored session is revalidated after 60 s).
    let reuse = stack.clerk.sign_in("bench-reuse@example.com")?;
    let token = stack.clerk.mint(&reuse.session.id)?;
    sign_in(&http, &server.url, &token).await?;
    let token = stack.clerk.mint(&reuse.session.id)?;
    let upstream_before = instant_calls(&http, &server.url).await?;
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).context("a token header")?;
    let [healthz, session] = drive(&server.url, &auth, server.pid()).await?;
    let upstream_calls = instant_calls(&http, &server.url).await? - upstream_before;
    println!("{}", healthz.line("GET /healthz"));
    println!(
        "{} ({upstream_calls} InstantDB calls)",
        session.line("POST /v1/session")
    );
    let mut round_ratios: Vec<f64> = session
        .slot_counts
        .iter()
        .zip(&healthz.slot_counts)
        .map(|(s, h)| *s as f64 / *h as f64)
        .collect();
    round_ratios.sort_by(f64::total_cmp);
    println!(
        "ratio by turn: min {:.3}, median {:.3}, max {:.3}",
        round_ratios[0],
        round_ratios[round_ratios.len() / 2],
        round_ratios[round_ratios.len() - 1]
    );
    let last = sign_in(&http, &server.url, &token).await?;
    ensure!(
        last["reused"] == true,
        "the session phase did not reuse the stored session: reused = {}",
        last["reused"]
    );

    // Memory after 100,000 distinct sessions.
    let started = Instant::now();
    let tokens = mint_sessions(&stack)?;
    let minting = started.elapsed();
    println!(
        "minted {} session tokens ({USERS} users) at the local Clerk in {:.1} s",
        SESSIONS + REDIS_SESSIONS,
        minting.as_secs_f64()
    );
    // The last REDIS_SESSIONS tokens are for the Redis store's memory figure.
    let mut tokens = tokens;
    let tokens_for_redis = tokens.split_off(tokens.len() - REDIS_SESSIONS);
    let bulk = sign_in_all(&server.url, tokens).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_sessions = server.rss_mib()?;
    println!(
        "signed {SESSIONS} sessions in with {CLIENTS} clients in {:.1} s ({:.0}/s); rss {rss_sessions:.1} MiB",
        bulk.elapsed.as_secs_f64(),
        SESSIONS as f64 / bulk.elapsed.as_secs_f64()
    );

    // The same turns with the Redis store (a second server on a throwaway Redis), then
    // Redis's memory per stored session.
    let redis_run = redis_run(&stack, &http, &tokens_for_redis).await?;

    let ratio = session.per_s() / healthz.per_s();
    let report = json!({
        "healthz_per_s": healthz.per_s().round(),
        "healthz_p50_ms": round3(healthz.percentile_ms(50)),
        "healthz_p99_ms": round3(healthz.percentile_ms(99)),
        "session_per_s": session.per_s().round(),
        "session_p50_ms": round3(session.percentile_ms(50)),
        "session_p99_ms": round3(session.percentile_ms(99)),
        "ratio": round3(ratio),
        "rss_idle_mib": round1(rss_idle),
        "rss_100k_sessions_mib": round1(rss_sessions),
        "sessions_100k_secs": (bulk.elapsed.as_secs_f64() * 100.0).round() / 100.0,
        "redis_healthz_per_s": redis_run.healthz.per_s().round(),
        "redis_session_per_s": redis_run.session.per_s().round(),
        "redis_session_p50_ms": round3(redis_run.session.percentile_ms(50)),
        "redis_session_p99_ms": round3(redis_run.session.percentile_ms(99)),
        "redis_ratio": round3(redis_run.session.per_s() / redis_run.healthz.per_s()),
        "redis_bytes_per_session": redis_run.bytes_per_session.round(),
    });
    let p99 = session.percentile_ms(99);
    println!(
        "\nserver: session {:.0}/s vs healthz {:.0}/s -> ratio {ratio:.3} ({} target >= {TARGET_RATIO}); session p99 {p99:.3} ms ({} target < {TARGET_P99_MS} ms); rss {rss_idle:.1} MiB idle, {rss_sessions:.1} MiB with 100k sessions",
        session.per_s(),
        healthz.per_s(),
        verdict(ratio >= TARGET_RATIO),
        verdict(p99 < TARGET_P99_MS),
    );

    let redis_ratio = redis_run.session.per_s() / redis_run.healthz.per_s();
    let redis_p99 = redis_run.session.percentile_ms(99);
    println!(
        "server, Redis store: session {:.0}/s vs healthz {:.0}/s -> ratio {redis_ratio:.3} ({} target >= {TARGET_RATIO}); session p99 {redis_p99:.3} ms ({} target < {TARGET_P99_MS} ms); Redis {:.0} bytes per session",
        redis_run.session.per_s(),
        redis_run.healthz.per_s(),
        verdict(redis_ratio >= TARGET_RATIO),
        verdict(redis_p99 < TARGET_P99_MS),
        redis_run.bytes_per_session,
    );

    let failures = [
        ("GET /healthz", &healthz.failures),
        ("POST /v1/session", &session.failures),
        ("POST /v1/session (100k sessions)", &bulk.failures),
        ("GET /healthz (Redis store)", &redis_run.healthz.failures),
        (
            "POST /v1/session (Redis store)",
            &redis_run.session.failures,
        ),
        (
            "POST /v1/session (Redis sessions)",
            &redis_run.bulk.failures,
        ),
    ];
    let mut clean = true;
    for (name, failures) in failures {
        if failures.count > 0 {
            clean = false;
            println!(
                "{name}: {} answers were not 200; the first: {}",
                failures.count,
                failures.first.as_deref().unwrap_or("?")
            );
        }
    }
    if !clean {
        println!("server bench: FAILED (answers other than 200); no report written");
        return Ok(false);
    }
    std::fs::write(&report_path, format!("{report}\n"))
        .with_context(|| format!("writing {}", report_path.display()))?;
    println!("wrote {}", report_path.display());
    drop(server);
    stack.shutdown().await;
    Ok(true)
}

/// The Redis store's figures.
struct RedisRun {
    healthz: Phase,
    session: Phase,
    bulk: Bulk,
    bytes_per_session: f64,
}

/// A second server over a throwaway Redis: the reused-session turns against
/// `/healthz`, then `tokens` (new sessions) signed in and Redis's `used_memory` growth
/// divided by their number.
async fn redis_run(
    stack: &DevStack,
    http: &reqwest::Client,
    tokens: &[String],
) -> anyhow::Result<RedisRun> {
    let redis = devstack::RedisServer::start()
        .await
        .context("starting redis-server for the Redis store run")?;
    let mut server = Server::spawn_with(
        stack,
        &[
            ("SESSION_STORE_URL", redis.url()),
            ("SESSION_STORE_ENCRYPTION_KEY", REDIS_KEY.to_owned()),
        ],
    )?;
    server.wait_ready().await?;
    let reuse = stack.clerk.sign_in("bench-redis@example.com")?;
    let token = stack.clerk.mint(&reuse.session.id)?;
    sign_in(http, &server.url, &token).await?;
    let token = stack.clerk.mint(&reuse.session.id)?;
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).context("a token header")?;
    let [healthz, session] = drive(&server.url, &auth, server.pid()).await?;
    println!("{}", healthz.line("GET /healthz"));
    println!("{}", session.line("POST /v1/session (Redis store)"));
    let before = redis.used_memory().await?;
    let bulk = sign_in_all(&server.url, tokens.to_vec()).await?;
    let after = redis.used_memory().await?;
    let bytes_per_session = after.saturating_sub(before) as f64 / tokens.len() as f64;
    println!(
        "signed {} sessions in with the Redis store in {:.1} s; Redis used_memory {before} -> {after} bytes ({bytes_per_session:.0} per session, with its user link and index entries)",
        tokens.len(),
        bulk.elapsed.as_secs_f64()
    );
    drop(server);
    Ok(RedisRun {
        healthz,
        session,
        bulk,
        bytes_per_session,
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "meets" } else { "BELOW" }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The server binary, running against the stack; killed when dropped (panics too).
struct Server {
    child: Child,
    url: String,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn spawn(stack: &DevStack) -> anyhow::Result<Server> {
        Server::spawn_with(stack, &[])
    }

    /// With these settings added.
    fn spawn_with(stack: &DevStack, extra: &[(&str, String)]) -> anyhow::Result<Server> {
        // A port that was free a moment ago; the server fails loudly if it was taken since.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_clerk-instant-server"))
            // Only these settings: nothing from the caller's environment leaks in.
            .env_clear()
            .env("LISTEN_ADDR", &listen)
            .env("LOG_LEVEL", "warn")
            .env("SIGN_IN_STRATEGY", "id-token")
            .env(
                "CLERK_PUBLISHABLE_KEY",
                stack.clerk.publishable_key().to_string(),
            )
            .env("CLERK_SECRET_KEY", stack.clerk.secret_key().expose())
            .env("CLERK_API_URL", stack.clerk.url())
            .env("INSTANT_APP_ID", &stack.app.id)
            .env("INSTANT_APP_ADMIN_TOKEN", stack.app.admin_token.expose())
            .env("INSTANT_API_URI", stack.instant.url())
            .env("INSTANT_CLERK_CLIENT_NAME", &stack.client_name)
            // The bench measures the server's work: one client, one session, flat out.
            .env("RATE_LIMIT_PER_IP_PER_SEC", "0")
            .env("RATE_LIMIT_PER_SESSION_PER_MIN", "0")
            .env("RATE_LIMIT_BAD_TOKENS_PER_MIN", "0")
            // Room for the 100,000 sessions and the few signed in before them: a full
            // memory store sheds new sign-ins (503 store-full).
            .env("MAX_SESSIONS", (SESSIONS + 1_000).to_string())
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the clerk-instant-server binary")?;
        // Drain stderr on a thread, so the server never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(&buf[..n]);
            }
        });
        Ok(Server {
            child,
            url: format!("http://{listen}"),
            stderr,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// Polls `/healthz` until it answers 200, the process exits, or `START_TIMEOUT`.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = http_client()?;
        let start = Instant::now();
        loop {
            let probe = http
                .get(format!("{}/healthz", self.url))
                .timeout(Duration::from_secs(1));
            if let Ok(answer) = probe.send().await
                && answer.status() == 200
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                // Let the drain thread catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                bail!(
                    "the server exited during start-up ({status}); its stderr:\n{}",
                    self.stderr()
                );
            }
            if start.elapsed() > START_TIMEOUT {
                bail!(
                    "the server did not answer GET {}/healthz within {} s; its stderr:\n{}",
                    self.url,
                    START_TIMEOUT.as_secs(),
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `VmRSS` from `/proc/<pid>/status`, in MiB.
    fn rss_mib(&self) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no VmRSS line in {path}"))?;
        Ok(kib / 1024.0)
    }
}

/// User plus system CPU time of a process, all threads, from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    /// Linux reports these times in USER_HZ ticks, 100 a second.
    const TICKS_PER_S: f64 = 100.0;
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces) in parentheses; utime and
    // stime are the 14th and 15th fields of the line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .with_context(|| format!("{path} is too short"))?
            .parse::<u64>()? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_S)
}

/// A client for loopback: no proxy from the environment, one idle connection kept.
fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// One sign-in; its answer, which must be a 200.
async fn sign_in(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Value> {
    let answer = http
        .post(format!("{url}/v1/session"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = answer.status();
    let body = answer.text().await?;
    ensure!(status == 200, "POST /v1/session answered {status}: {body}");
    Ok(serde_json::from_str(&body)?)
}

/// Calls the server made to InstantDB so far, by its `/metrics`.
async fn instant_calls(http: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("clerk_instant_upstream_seconds_count{")
                && l.contains("upstream=\"instantdb\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum())
}

#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

impl Failures {
    fn add(&mut self, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(what());
        }
    }

    fn merge(&mut self, other: Failures) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

/// One endpoint's measured requests.
#[derive(Default)]
struct Phase {
    /// Latencies of the requests started in a measured turn, in nanoseconds, sorted.
    latencies: Vec<u64>,
    /// Requests started in each measured turn.
    slot_counts: Vec<u64>,
    /// CPU time the server process spent in the measured turns, in seconds.
    server_cpu_secs: f64,
    /// CPU time this process (the clients, mostly) spent in the measured turns.
    client_cpu_secs: f64,
    failures: Failures,
}

impl Phase {
    fn per_s(&self) -> f64 {
        self.latencies.len() as f64 / (SLOT.as_secs_f64() * MEASURED_SLOTS as f64)
    }

    /// The `p`th percentile (nearest rank), in milliseconds.
    fn percentile_ms(&self, p: usize) -> f64 {
        let n = self.latencies.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = (n * p).div_ceil(100).max(1);
        self.latencies[rank - 1] as f64 / 1e6
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<17} {:>8.0} req/s  p50 {:.3} ms  p99 {:.3} ms  CPU/request: server {:.1} us, clients {:.1} us ({} requests measured, {} not 200)",
            self.per_s(),
            self.percentile_ms(50),
            self.percentile_ms(99),
            self.server_cpu_secs * 1e6 / self.latencies.len() as f64,
            self.client_cpu_secs * 1e6 / self.latencies.len() as f64,
            self.latencies.len(),
            self.failures.count
        )
    }
}

/// `CLIENTS` tasks, each on its own keep-alive connection, sending back to back. Time is
/// cut in `SLOT`s; even slots send `GET /healthz`, odd ones `POST /v1/session` with
/// `auth`. The first `2 * WARM_UP_SLOTS` slots are not measured. A request counts for
/// the slot it started in. Returns `[healthz, session]`, with the CPU time `server_pid`
/// and this process used in each endpoint's measured turns.
async fn drive(url: &str, auth: &HeaderValue, server_pid: u32) -> anyhow::Result<[Phase; 2]> {
    let urls: Arc<[String; 2]> = Arc::new([format!("{url}/healthz"), format!("{url}/v1/session")]);
    let slots = 2 * (WARM_UP_SLOTS + MEASURED_SLOTS);
    let start = Instant::now();
    // The server's CPU time at every slot boundary.
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(slots + 1);
        for slot in 0..=slots {
            let at = start + SLOT * u32::try_from(slot).unwrap_or(u32::MAX);
            tokio::time::sleep_until(at.into()).await;
            samples.push((cpu_secs(server_pid), cpu_secs(std::process::id())));
        }
        samples
    });
    let mut tasks = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let http = http_client()?;
        let urls = Arc::clone(&urls);
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            // Per slot: latencies; per endpoint: failures.
            let mut latencies: Vec<Vec<u64>> =
                (0..slots).map(|_| Vec::with_capacity(4096)).collect();
            let mut failures = [Failures::default(), Failures::default()];
            loop {
                let sent = Instant::now();
                let slot = usize::try_from(sent.duration_since(start).as_nanos() / SLOT.as_nanos())
                    .unwrap_or(usize::MAX);
                if slot >= slots {
                    break;
                }
                let which = slot % 2;
                let request = if which == 0 {
                    http.get(&urls[0])
                } else {
                    http.post(&urls[1]).header(AUTHORIZATION, auth.clone())
                };
                let failed = &mut failures[which];
                match request.send().await {
                    Ok(answer) => {
                        let status = answer.status();
                        match answer.bytes().await {
                            Ok(_) if status == 200 => {}
                            Ok(body) => failed
                                .add(|| format!("{status}: {}", String::from_utf8_lossy(&body))),
                            Err(error) => failed.add(|| format!("reading the body: {error}")),
                        }
                    }
                    Err(error) => failed.add(|| format!("sending: {error}")),
                }
                latencies[slot].push(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
            }
            (latencies, failures)
        }));
    }
    let mut phases = [Phase::default(), Phase::default()];
    for phase in &mut phases {
        phase.slot_counts = vec![0; MEASURED_SLOTS];
    }
    for task in tasks {
        let (latencies, failures) = task.await?;
        for (slot, taken) in latencies.into_iter().enumerate() {
            if slot < 2 * WARM_UP_SLOTS {
                continue;
            }
            let phase = &mut phases[slot % 2];
            phase.slot_counts[(slot - 2 * WARM_UP_SLOTS) / 2] += taken.len() as u64;
            phase.latencies.extend(taken);
        }
        for (phase, failures) in phases.iter_mut().zip(failures) {
            phase.failures.merge(failures);
        }
    }
    let cpu = sampler.await?;
    for slot in 2 * WARM_UP_SLOTS..slots {
        if let (Some((Ok(s0), Ok(c0))), Some((Ok(s1), Ok(c1)))) = (cpu.get(slot), cpu.get(slot + 1))
        {
            phases[slot % 2].server_cpu_secs += s1 - s0;
            phases[slot % 2].client_cpu_secs += c1 - c0;
        }
    }
    for phase in &mut phases {
        phase.latencies.sort_unstable();
    }
    Ok(phases)
}

/// `SESSIONS + REDIS_SESSIONS` new sessions over `USERS` new users at the local Clerk, a token each,
/// minted on every core.
fn mint_sessions(stack: &DevStack) -> anyhow::Result<Vec<String>> {
    let clerk = &stack.clerk;
    let users = (0..USERS)
        .map(|i| Ok(clerk.create_user(NewUser::with_email(format!("bench-{i}@example.com")))?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sessions = (0..SESSIONS + REDIS_SESSIONS)
        .map(|i| Ok(clerk.create_session(&users[i % USERS].id)?.id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = MintOptions::new().lifetime(BULK_TOKEN_LIFETIME);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = sessions.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .chunks(chunk)
            .map(|ids| {
                let options = &options;
                scope.spawn(move || {
                    ids.iter()
                        .map(|id| Ok(clerk.mint_with(id, options)?))
                        .collect::<anyhow::Result<Vec<String>>>()
                })
            })
            .collect();
        let mut tokens = Vec::with_capacity(SESSIONS + REDIS_SESSIONS);
        for handle in handles {
            tokens.extend(handle.join().expect("a minting thread panicked")?);
        }
        Ok(tokens)
    })
}

struct Bulk {
    elapsed: Duration,
    failures: Failures,
}

/// Signs every token in once, with `CLIENTS` tasks taking the next token in turn.
async fn sign_in_all(url: &str, tokens: Vec<String>) -> anyhow::Result<Bulk> {
    let url: Arc<str> = format!("{url}/v1/session").into();
    let tokens = Arc::new(tokens);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let http = http_client()?;
        let url = Arc::clone(&url);
        let tokens = Arc::clone(&tokens);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let mut failures = Failures::default();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(token) = tokens.get(i) else { break };
                match http.post(&*url).bearer_auth(token).send().await {
                    Ok(answer) => {
                        let status = answer.status();
                        match answer.bytes().await {
                            Ok(_) if status == 200 => {}
                            Ok(body) => failures
                                .add(|| format!("{status}: {}", String::from_utf8_lossy(&body))),
                            Err(error) => failures.add(|| format!("reading the body: {error}")),
                        }
                    }
                    Err(error) => failures.add(|| format!("sending: {error}")),
                }
            }
            failures
        }));
    }
    let mut failures = Failures::default();
    for task in tasks {
        failures.merge(task.await?);
    }
    Ok(Bulk {
        elapsed: start.elapsed(),
        failures,
    })
}

/// `$CLERK_INSTANT_BENCH_DIR`, else `<target dir>/bench`.
fn bench_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLERK_INSTANT_BENCH_DIR") {
        return dir.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench")
}
