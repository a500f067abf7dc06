//! The real server binary under load on loopback, against a local stack started in this
//! process, 32 concurrent keep-alive clients, in phases (`CLERK_INSTANT_BENCH_PHASES`,
//! a comma list, runs some of them; default all, in this order):
//!
//! - `reuse`: `GET /healthz` (the floor) against `POST /v1/session` with one reused
//!   session. It shows the verified-token cache, not the service.
//! - `memory`: the server's resident memory idle and after 100,000 distinct sessions
//!   (and the difference: RSS per 100k sessions).
//! - `redis`: the `reuse` turns with the Redis store (a second server over a throwaway
//!   `redis-server`), and Redis's memory per stored session.
//! - `mix`: a realistic mix. 10,000 users (`CLERK_INSTANT_BENCH_MIX_USERS` scales it
//!   for quick runs; printed when not the default), each a Clerk user with one session,
//!   all signed in once through a fresh server before measuring (which gives each its
//!   InstantDB refresh token). Their tokens are minted ahead and rotate on Clerk's
//!   schedule: each user's token changes every 50 s at its own offset (uniform over
//!   50 s), so about 200 new tokens reach the server each second, each costing a real
//!   RSA check. Each expires 60 s after it is handed out, as Clerk's do, plus 120 s
//!   for the setup between minting and the turns; their expiries keep Clerk's order,
//!   which the verified-token cache's eviction goes by. Each request is for a
//!   random user (a seeded SplitMix64 per client): 70 % `POST /v1/query` (the user's own
//!   entity, by a `where` on its `owner`), 15 % `POST /v1/transact` (one attribute of
//!   that entity), 10 % `POST /v1/session`, 5 % `GET /v1/me`. The floor is the same mix
//!   sent straight to the emulator with the user's refresh token: query and transact
//!   to `/admin/query` and `/admin/transact` with `as-token` (what the server sends);
//!   session to `POST /runtime/auth/verify_refresh_token` (a signed-in user's session
//!   is their refresh token, and checking it is the InstantDB call that confirms one
//!   and answers the user, as a reused sign-in does); me to
//!   `GET /admin/users?refresh_token=` (reading the user by their refresh token, what
//!   `/v1/me` answers about InstantDB). The emulator answers a `where` by scanning the
//!   namespace (InstantDB uses indexes), so the users' entities are spread over
//!   namespaces of 100 (`profiles0`, `profiles1`, …): the floor then costs what an
//!   indexed lookup would, not the emulator's scan of 10,000 entities.
//! - `cold`: every request through a fresh server is a new Clerk session of an existing
//!   user (1,000 users, known to InstantDB), so the server verifies the token and signs
//!   in at InstantDB (`/runtime/oauth/id_token`) each time; the floor calls that
//!   endpoint directly with other new sessions' tokens, as `instant-client` does. The
//!   server's side has a pool of 200,000 single-use tokens (a pool that runs dry stops
//!   sending for the rest of that turn, only what was sent counts, and the dry turns
//!   are reported: `cold_dry_turns`); the floor reuses its 20,000 in turn, since the
//!   emulator keeps no verified-token cache and a repeated token costs it the same.
//!
//! The two sides of a phase take turns in one-second slots (3 s of warm-up each, then
//! 8 s measured each), so load from other processes on the machine hits both alike.
//! `mix` and `cold` run their turns twice: flat out (each client sends again as soon
//! as it is answered) for throughput, then paced, both sides offered the same load
//! (half the slowest side's flat-out rate, each client on a fixed schedule, a request's
//! latency counted from when it was due) for the latency the server adds. Flat out,
//! 32 clients waiting on each other make latency 32 / throughput, so a throughput gap
//! shows there a second time as milliseconds; the paced turns compare like with like.
//! Both are reported; the p99 target is judged on the paced turns.
//! `mix` and `cold` have a third side in the same turns, the calibration: the floor's
//! requests through `examples/bench_hop.rs`, a forwarding proxy built like the server
//! (axum, reqwest, mimalloc) that does nothing but forward. Its ratio is the most any
//! server in front of the emulator could reach on this machine, and the server's
//! throughput over the hop's (`…_server_of_hop`) is what the server's own work costs
//! beyond the hop. `cargo xtask bench server` builds the example first; without it the
//! calibration is left out (and said so).
//! The machine's raw RSA rate is measured first (aws-lc-rs, one core, one second, an
//! RS256 signature of the local Clerk's 2048-bit key) and reported beside the figures,
//! so figures from different machines can be compared.
//!
//! Run with `cargo xtask bench server` (or `cargo bench -p clerk-instant-server --bench
//! load`). Targets: in `reuse` and `redis`, the sign-in path at >= 50 % of the floor's
//! throughput and its p99 under 5 ms; in `mix` and `cold`, the server at >= 80 % of
//! the direct throughput (flat out), adding <= 1 ms to p99 (paced). Any answer other
//! than 200 fails the bench. A full run writes `target/bench/server.json`; a partial one prints its
//! figures and writes nothing (xtask's checks need every figure).
//!
//! The clients share the machine with the server, so on a small machine they take part
//! of its CPU; both sides pay that alike. The InstantDB emulator and the local Clerk
//! live in this process, so the server's resident memory counts the server alone.

#![allow(missing_docs, clippy::print_stdout)]

#[path = "load/mix.rs"]
mod mix;

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

/// The phases, in the order they run (`CLERK_INSTANT_BENCH_PHASES` picks some).
const PHASES: [&str; 5] = ["reuse", "memory", "redis", "mix", "cold"];

/// `CLERK_INSTANT_BENCH_PHASES`: a comma list of `PHASES`; all when unset.
fn selected_phases() -> anyhow::Result<Vec<&'static str>> {
    const VAR: &str = "CLERK_INSTANT_BENCH_PHASES";
    let list = match std::env::var(VAR) {
        Ok(list) => list,
        Err(std::env::VarError::NotPresent) => return Ok(PHASES.to_vec()),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{VAR} is not UTF-8"),
    };
    let mut chosen = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(phase) = PHASES.iter().find(|p| **p == name) else {
            bail!(
                "{VAR}: unknown phase {name:?}; known: {}",
                PHASES.join(", ")
            );
        };
        if !chosen.contains(phase) {
            chosen.push(*phase);
        }
    }
    ensure!(
        !chosen.is_empty(),
        "{VAR} names no phase; known: {}",
        PHASES.join(", ")
    );
    Ok(chosen)
}

/// `CLERK_INSTANT_BENCH_MIX_USERS`: the users of the mix (default `mix::USERS`).
fn mix_users() -> anyhow::Result<usize> {
    const VAR: &str = "CLERK_INSTANT_BENCH_MIX_USERS";
    match std::env::var(VAR) {
        Err(std::env::VarError::NotPresent) => Ok(mix::USERS),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{VAR} is not UTF-8"),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("{VAR} must be a number of users above 0, e.g. 500; got {text:?}"),
        },
    }
}

/// Runs the selected phases; `Ok(false)` when some answer was not 200.
async fn run() -> anyhow::Result<bool> {
    let phases = selected_phases()?;
    let has = |name: &str| phases.contains(&name);
    let full = phases.len() == PHASES.len();
    let users = mix_users()?;
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let report_path = dir.join("server.json");
    // A stale report must not pass for this run's if this run fails or is partial.
    let _ = std::fs::remove_file(&report_path);

    let stack = DevStack::start(DevStackConfig::default())
        .await
        .context("starting the local stack")?;
    let mut server = Server::spawn(&stack)?;
    server.wait_ready().await?;
    let http = http_client()?;
    println!(
        "server pid {} on {} (local Clerk {}, InstantDB emulator {}); {CLIENTS} clients, per side {} s warm-up + {} s measured, in turns of {} ms",
        server.pid(),
        server.url,
        stack.clerk.url(),
        stack.instant.url(),
        (SLOT * u32::try_from(WARM_UP_SLOTS)?).as_secs_f64(),
        (SLOT * u32::try_from(MEASURED_SLOTS)?).as_secs_f64(),
        SLOT.as_millis()
    );
    if !full {
        println!(
            "phases: {} (a partial run: its figures are printed, no report is written)",
            phases.join(", ")
        );
    }
    if users != mix::USERS {
        println!(
            "mix users: {users} (CLERK_INSTANT_BENCH_MIX_USERS; the default is {})",
            mix::USERS
        );
    }

    // The machine's RSA speed, so figures from different machines can be compared.
    let raw_rsa = mix::raw_rsa_verify_per_s(&stack)?;
    println!(
        "raw RSA verify (aws-lc-rs, RS256, the local Clerk's 2048-bit key, one core, 1 s): {raw_rsa:.0}/s"
    );

    let mut report = serde_json::Map::new();
    report.insert("raw_rsa_verify_per_s".into(), json!(raw_rsa.round()));
    // Printed together at the end, after every phase's details.
    let mut verdicts: Vec<String> = Vec::new();
    let mut failures: Vec<(&str, Failures)> = Vec::new();

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
    report.insert("rss_idle_mib".into(), json!(round1(rss_idle)));

    if has("reuse") {
        // (a) The floor and (b) a reused session: signed in once, then every request
        // reuses the stored session. The token is minted just before (tokens live 60 s;
        // the turns take 22 s, and the stored session is revalidated after 60 s).
        println!("\n== reuse: one session reused by every client, against GET /healthz");
        let reuse = stack.clerk.sign_in("bench-reuse@example.com")?;
        let token = stack.clerk.mint(&reuse.session.id)?;
        sign_in(&http, &server.url, &token).await?;
        let token = stack.clerk.mint(&reuse.session.id)?;
        let upstream_before = instant_calls(&http, &server.url).await?;
        let auth = HeaderValue::from_str(&format!("Bearer {token}")).context("a token header")?;
        let [healthz, session] = drive(reuse_sides(&server.url, &auth), [server.pid(); 2]).await?;
        let upstream_calls = instant_calls(&http, &server.url).await? - upstream_before;
        println!("{}", healthz.line("GET /healthz"));
        println!(
            "{} ({upstream_calls} InstantDB calls)",
            session.line("POST /v1/session")
        );
        print_turn_ratios(&session, &healthz);
        let last = sign_in(&http, &server.url, &token).await?;
        ensure!(
            last["reused"] == true,
            "the session phase did not reuse the stored session: reused = {}",
            last["reused"]
        );
        let ratio = session.per_s() / healthz.per_s();
        let p99 = session.percentile_ms(99);
        report.extend([
            ("healthz_per_s".into(), json!(healthz.per_s().round())),
            (
                "healthz_p50_ms".into(),
                json!(round3(healthz.percentile_ms(50))),
            ),
            (
                "healthz_p99_ms".into(),
                json!(round3(healthz.percentile_ms(99))),
            ),
            ("session_per_s".into(), json!(session.per_s().round())),
            (
                "session_p50_ms".into(),
                json!(round3(session.percentile_ms(50))),
            ),
            ("session_p99_ms".into(), json!(round3(p99))),
            ("ratio".into(), json!(round3(ratio))),
        ]);
        verdicts.push(format!(
            "server, reused session: session {:.0}/s vs healthz {:.0}/s -> ratio {ratio:.3} ({} target >= {TARGET_RATIO}); session p99 {p99:.3} ms ({} target < {TARGET_P99_MS} ms)",
            session.per_s(),
            healthz.per_s(),
            verdict(ratio >= TARGET_RATIO),
            verdict(p99 < TARGET_P99_MS),
        ));
        failures.push(("GET /healthz", healthz.failures));
        failures.push(("POST /v1/session", session.failures));
    }

    // Tokens for the memory figure (100,000 new sessions) and the Redis store's.
    let mut tokens = Vec::new();
    if has("memory") || has("redis") {
        let count = if has("memory") { SESSIONS } else { 0 }
            + if has("redis") { REDIS_SESSIONS } else { 0 };
        let started = Instant::now();
        tokens = mint_sessions(&stack, count)?;
        println!(
            "\nminted {count} session tokens ({USERS} users) at the local Clerk in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    // The last REDIS_SESSIONS tokens are for the Redis store's memory figure.
    let tokens_for_redis = if has("redis") {
        tokens.split_off(tokens.len() - REDIS_SESSIONS)
    } else {
        Vec::new()
    };

    if has("memory") {
        println!("\n== memory: {SESSIONS} distinct sessions signed in");
        let bulk = sign_in_all(&server.url, tokens).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_sessions = server.rss_mib()?;
        println!(
            "signed {SESSIONS} sessions in with {CLIENTS} clients in {:.1} s ({:.0}/s); rss {rss_sessions:.1} MiB",
            bulk.elapsed.as_secs_f64(),
            SESSIONS as f64 / bulk.elapsed.as_secs_f64()
        );
        report.extend([
            ("rss_100k_sessions_mib".into(), json!(round1(rss_sessions))),
            (
                "rss_per_100k_sessions_mib".into(),
                json!(round1(rss_sessions - rss_idle)),
            ),
            (
                "sessions_100k_secs".into(),
                json!((bulk.elapsed.as_secs_f64() * 100.0).round() / 100.0),
            ),
        ]);
        verdicts.push(format!(
            "server, memory: rss {rss_idle:.1} MiB idle, {rss_sessions:.1} MiB with 100k sessions ({:.1} MiB per 100k sessions)",
            rss_sessions - rss_idle
        ));
        failures.push(("POST /v1/session (100k sessions)", bulk.failures));
    }
    drop(server);

    if has("redis") {
        // The same turns with the Redis store (a second server on a throwaway Redis),
        // then Redis's memory per stored session.
        println!("\n== redis: the reuse turns and the memory figure with the Redis store");
        let redis_run = redis_run(&stack, &http, &tokens_for_redis).await?;
        let redis_ratio = redis_run.session.per_s() / redis_run.healthz.per_s();
        let redis_p99 = redis_run.session.percentile_ms(99);
        report.extend([
            (
                "redis_healthz_per_s".into(),
                json!(redis_run.healthz.per_s().round()),
            ),
            (
                "redis_session_per_s".into(),
                json!(redis_run.session.per_s().round()),
            ),
            (
                "redis_session_p50_ms".into(),
                json!(round3(redis_run.session.percentile_ms(50))),
            ),
            ("redis_session_p99_ms".into(), json!(round3(redis_p99))),
            ("redis_ratio".into(), json!(round3(redis_ratio))),
            (
                "redis_bytes_per_session".into(),
                json!(redis_run.bytes_per_session.round()),
            ),
        ]);
        verdicts.push(format!(
            "server, Redis store: session {:.0}/s vs healthz {:.0}/s -> ratio {redis_ratio:.3} ({} target >= {TARGET_RATIO}); session p99 {redis_p99:.3} ms ({} target < {TARGET_P99_MS} ms); Redis {:.0} bytes per session",
            redis_run.session.per_s(),
            redis_run.healthz.per_s(),
            verdict(redis_ratio >= TARGET_RATIO),
            verdict(redis_p99 < TARGET_P99_MS),
            redis_run.bytes_per_session,
        ));
        failures.push(("GET /healthz (Redis store)", redis_run.healthz.failures));
        failures.push(("POST /v1/session (Redis store)", redis_run.session.failures));
        failures.push(("POST /v1/session (Redis sessions)", redis_run.bulk.failures));
    }

    if has("mix") {
        println!(
            "\n== mix: {users} users, query/transact/session/me, against the emulator directly"
        );
        let mix = mix::mix(&stack, users).await?;
        mix.report("mix", &mut report);
        verdicts.push(mix.verdict("server, realistic mix"));
        failures.extend(mix.failures());
    }

    if has("cold") {
        println!(
            "\n== cold: every sign-in a new Clerk session, against the emulator's id-token sign-in"
        );
        let cold = mix::cold(&stack, users).await?;
        cold.report("cold", &mut report);
        verdicts.push(cold.verdict("server, cold sign-in"));
        failures.extend(cold.failures());
    }

    println!();
    for line in &verdicts {
        println!("{line}");
    }
    println!("(raw RSA verify on this machine: {raw_rsa:.0}/s on one core)");

    let mut clean = true;
    for (name, failures) in &failures {
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
    if full {
        let report = Value::Object(report);
        std::fs::write(&report_path, format!("{report}\n"))
            .with_context(|| format!("writing {}", report_path.display()))?;
        println!("wrote {}", report_path.display());
    } else {
        println!(
            "a partial run (phases {}): no report written",
            phases.join(", ")
        );
    }
    stack.shutdown().await;
    Ok(true)
}

/// The session side's throughput over the floor's, turn by turn.
fn print_turn_ratios(side: &Phase, floor: &Phase) {
    let mut ratios: Vec<f64> = side
        .slot_counts
        .iter()
        .zip(&floor.slot_counts)
        .map(|(s, h)| *s as f64 / *h as f64)
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "ratio by turn: min {:.3}, median {:.3}, max {:.3}",
        ratios[0],
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1]
    );
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
    let [healthz, session] = drive(reuse_sides(&server.url, &auth), [server.pid(); 2]).await?;
    println!("{}", healthz.line("GET /healthz"));
    println!("{}", session.line("POST /v1/session (Redis store)"));
    print_turn_ratios(&session, &healthz);
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

/// The calibration of `mix` and `cold`: `examples/bench_hop.rs`, a forwarding proxy that
/// does nothing else, in front of the emulator; killed when dropped. Its binary is built
/// by `cargo xtask bench server` (`cargo build --release -p clerk-instant-server
/// --example bench_hop`), next to this bench's own binary.
struct Hop {
    child: Child,
    /// Where it listens, `http://127.0.0.1:<port>`.
    url: String,
}

impl Drop for Hop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Hop {
    /// The example's binary: `target/<profile>/examples/bench_hop`, this bench being
    /// `target/<profile>/deps/load-<hash>`.
    fn binary() -> anyhow::Result<PathBuf> {
        let exe = std::env::current_exe()?;
        let profile_dir = exe
            .parent()
            .and_then(std::path::Path::parent)
            .context("the bench's binary is not in target/<profile>/deps")?;
        Ok(profile_dir.join("examples").join("bench_hop"))
    }

    /// Started in front of `upstream`; `None` (said why) when its binary was not built.
    fn spawn(upstream: &str) -> anyhow::Result<Option<Hop>> {
        let binary = Hop::binary()?;
        if !binary.exists() {
            println!(
                "no calibration hop: {} was not built (cargo xtask bench server builds it; by hand: cargo build --release -p clerk-instant-server --example bench_hop)",
                binary.display()
            );
            return Ok(None);
        }
        let mut child = Command::new(&binary)
            .arg(upstream)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("the hop's stdout is piped")?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let addr = line.trim();
        if addr.is_empty() {
            let _ = child.kill();
            bail!(
                "{} exited without saying where it listens",
                binary.display()
            );
        }
        Ok(Some(Hop {
            url: format!("http://{addr}"),
            child,
        }))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
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
    Ok(instant_calls_by_call(http, url).await?.values().sum())
}

/// The server's InstantDB calls so far, by the `call` label of its metrics (`sign-in`,
/// `query`, `transact`, …).
async fn instant_calls_by_call(
    http: &reqwest::Client,
    url: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut calls = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| {
        l.starts_with("clerk_instant_upstream_seconds_count{")
            && l.contains("upstream=\"instantdb\"")
    }) {
        let Some(count) = line.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let call = line
            .split_once("call=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map_or("?", |(call, _)| call);
        *calls.entry(call.to_owned()).or_default() += count;
    }
    Ok(calls)
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
    /// Each measured turn's p99, in milliseconds: a stall of the machine lands in one
    /// side's turn, where it sets that turn's p99 and leaves the others alone.
    turn_p99s_ms: Vec<f64>,
    /// CPU time the server process spent in the measured turns, in seconds.
    server_cpu_secs: f64,
    /// CPU time this process (the clients, mostly) spent in the measured turns.
    client_cpu_secs: f64,
    /// Measured turns in which the side ran out of requests to send (and waited).
    dry_turns: u64,
    failures: Failures,
}

impl Phase {
    fn per_s(&self) -> f64 {
        self.latencies.len() as f64 / (SLOT.as_secs_f64() * MEASURED_SLOTS as f64)
    }

    /// The `p`th percentile (nearest rank), in milliseconds.
    fn percentile_ms(&self, p: usize) -> f64 {
        percentile_ms(&self.latencies, p)
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

/// The `p`th percentile (nearest rank) of sorted nanosecond latencies, in milliseconds.
fn percentile_ms(sorted: &[u64], p: usize) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let rank = (n * p).div_ceil(100).max(1);
    sorted[rank - 1] as f64 / 1e6
}

/// One request of a turn, and what it is (named in a failure).
struct Request {
    what: &'static str,
    builder: reqwest::RequestBuilder,
}

/// Makes one side's requests: from a client's connection, its random numbers and the
/// time since the turns began. `None` when the side has nothing left to send (a pool of
/// single-use tokens ran dry): the client then waits for the next turn.
type MakeRequest =
    Arc<dyn Fn(&reqwest::Client, &mut Rng, Duration) -> Option<Request> + Send + Sync>;

/// A tiny seeded PRNG (SplitMix64): each client draws its own reproducible sequence.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is negligible for small `n`).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }
}

/// The reused-session turns: `GET /healthz` against `POST /v1/session` with `auth`.
fn reuse_sides(url: &str, auth: &HeaderValue) -> [MakeRequest; 2] {
    let healthz = format!("{url}/healthz");
    let session = format!("{url}/v1/session");
    let auth = auth.clone();
    [
        Arc::new(move |http, _, _| {
            Some(Request {
                what: "GET /healthz",
                builder: http.get(&healthz),
            })
        }),
        Arc::new(move |http, _, _| {
            Some(Request {
                what: "POST /v1/session",
                builder: http.post(&session).header(AUTHORIZATION, auth.clone()),
            })
        }),
    ]
}

/// `CLIENTS` tasks, each on its own keep-alive connection, sending back to back. Time is
/// cut in `SLOT`s, and the sides take them in turn: slot `k` sends `sides[k % N]`'s
/// requests. The first `N * WARM_UP_SLOTS` slots are not measured. A request counts for
/// the slot it started in. Returns a `Phase` per side, with the CPU time its process in
/// `pids` (the server, or what stands in its place) and this process used in that side's
/// measured turns.
async fn drive<const N: usize>(
    sides: [MakeRequest; N],
    pids: [u32; N],
) -> anyhow::Result<[Phase; N]> {
    drive_paced(sides, pids, None, Duration::ZERO).await
}

/// [`drive`], flat out (`rate` `None`) or at a fixed offered load: `rate` requests per
/// second over all clients, each client sending on its own fixed schedule (open loop).
/// A paced request's latency runs from when it was due: a client still waiting for an
/// earlier answer sends late, and that wait counts (no coordinated omission); a client
/// woken late by the timer (tokio's is 1 ms coarse) counts from its wake, which is the
/// timer's lateness, not the server's. `clock` is added to the time handed to the
/// sides, so a second run continues the first's token rotation instead of replaying it.
async fn drive_paced<const N: usize>(
    sides: [MakeRequest; N],
    pids: [u32; N],
    rate: Option<f64>,
    clock: Duration,
) -> anyhow::Result<[Phase; N]> {
    let interval = rate.map(|rate| Duration::from_secs_f64(CLIENTS as f64 / rate));
    let sides = Arc::new(sides);
    let slots = N * (WARM_UP_SLOTS + MEASURED_SLOTS);
    let warm_up = N * WARM_UP_SLOTS;
    let start = Instant::now();
    // At every slot boundary: the CPU time of the process of the side whose turn ends
    // or begins there, and this process's.
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(slots + 1);
        for slot in 0..=slots {
            let at = start + SLOT * u32::try_from(slot).unwrap_or(u32::MAX);
            tokio::time::sleep_until(at.into()).await;
            samples.push((pids.map(cpu_secs), cpu_secs(std::process::id())));
        }
        samples
    });
    let mut tasks = Vec::with_capacity(CLIENTS);
    for client in 0..CLIENTS {
        let http = http_client()?;
        let sides = Arc::clone(&sides);
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(0x5EED_0000 + client as u64);
            // Per slot: latencies and whether the side ran dry; per side: failures.
            let mut latencies: Vec<Vec<u64>> =
                (0..slots).map(|_| Vec::with_capacity(4096)).collect();
            let mut dry = vec![false; slots];
            let mut failures: [Failures; N] = std::array::from_fn(|_| Failures::default());
            // Paced: this client's first due time, spread evenly over the clients.
            let mut due = interval.map(|i| start + i.mul_f64(client as f64 / CLIENTS as f64));
            loop {
                let (sent, at) = match (&mut due, interval) {
                    (Some(next), Some(interval)) => {
                        let at = *next;
                        *next += interval;
                        if Instant::now() < at {
                            tokio::time::sleep_until(at.into()).await;
                            (Instant::now(), at)
                        } else {
                            (at, at)
                        }
                    }
                    _ => {
                        let now = Instant::now();
                        (now, now)
                    }
                };
                let since = at.duration_since(start);
                let slot =
                    usize::try_from(since.as_nanos() / SLOT.as_nanos()).unwrap_or(usize::MAX);
                if slot >= slots {
                    break;
                }
                let which = slot % N;
                let Some(Request { what, builder }) = sides[which](&http, &mut rng, clock + since)
                else {
                    dry[slot] = true;
                    if interval.is_none() {
                        let next = start + SLOT * u32::try_from(slot + 1).unwrap_or(u32::MAX);
                        tokio::time::sleep_until(next.into()).await;
                    }
                    continue;
                };
                let failed = &mut failures[which];
                match builder.send().await {
                    Ok(answer) => {
                        let status = answer.status();
                        match answer.bytes().await {
                            Ok(_) if status == 200 => {}
                            Ok(body) => failed.add(|| {
                                format!("{what}: {status}: {}", String::from_utf8_lossy(&body))
                            }),
                            Err(error) => {
                                failed.add(|| format!("{what}: reading the body: {error}"))
                            }
                        }
                    }
                    Err(error) => failed.add(|| format!("{what}: sending: {error}")),
                }
                latencies[slot].push(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
            }
            (latencies, dry, failures)
        }));
    }
    let mut phases: [Phase; N] = std::array::from_fn(|_| Phase {
        slot_counts: vec![0; MEASURED_SLOTS],
        ..Phase::default()
    });
    // Every client's latencies of each measured slot, pooled by slot.
    let mut by_slot: Vec<Vec<u64>> = vec![Vec::new(); slots];
    let mut dry_slots = vec![false; slots];
    for task in tasks {
        let (latencies, dry, failures) = task.await?;
        for (slot, taken) in latencies.into_iter().enumerate() {
            if slot < warm_up {
                continue;
            }
            phases[slot % N].slot_counts[(slot - warm_up) / N] += taken.len() as u64;
            by_slot[slot].extend(taken);
        }
        for (any, this) in dry_slots.iter_mut().zip(dry) {
            *any |= this;
        }
        for (phase, failures) in phases.iter_mut().zip(failures) {
            phase.failures.merge(failures);
        }
    }
    for (slot, dry) in dry_slots.into_iter().enumerate() {
        if dry && slot >= warm_up {
            phases[slot % N].dry_turns += 1;
        }
    }
    let cpu = sampler.await?;
    for slot in warm_up..slots {
        let which = slot % N;
        if let (Some((s0, Ok(c0))), Some((s1, Ok(c1)))) = (cpu.get(slot), cpu.get(slot + 1))
            && let (Ok(s0), Ok(s1)) = (&s0[which], &s1[which])
        {
            phases[which].server_cpu_secs += s1 - s0;
            phases[which].client_cpu_secs += c1 - c0;
        }
    }
    // Each turn's p99, then its latencies into its side's.
    for (slot, mut taken) in by_slot.into_iter().enumerate().skip(warm_up) {
        taken.sort_unstable();
        let phase = &mut phases[slot % N];
        phase.turn_p99s_ms.push(percentile_ms(&taken, 99));
        phase.latencies.extend(taken);
    }
    for phase in &mut phases {
        phase.latencies.sort_unstable();
    }
    Ok(phases)
}

/// `count` new sessions over `USERS` new users at the local Clerk, a token each.
fn mint_sessions(stack: &DevStack, count: usize) -> anyhow::Result<Vec<String>> {
    let clerk = &stack.clerk;
    let users = (0..USERS)
        .map(|i| Ok(clerk.create_user(NewUser::with_email(format!("bench-{i}@example.com")))?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sessions = (0..count)
        .map(|i| Ok(clerk.create_session(&users[i % USERS].id)?.id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    mint_all(stack, &sessions, BULK_TOKEN_LIFETIME)
}

/// A token for each of these sessions, living `lifetime`, in order, minted on every
/// core.
fn mint_all(
    stack: &DevStack,
    sessions: &[String],
    lifetime: Duration,
) -> anyhow::Result<Vec<String>> {
    mint_each(stack, sessions, |_| lifetime)
}

/// A token for each session, the `i`th living `lifetime(i)`, minted on every core.
fn mint_each(
    stack: &DevStack,
    sessions: &[String],
    lifetime: impl Fn(usize) -> Duration + Sync,
) -> anyhow::Result<Vec<String>> {
    let clerk = &stack.clerk;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = sessions.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .chunks(chunk)
            .enumerate()
            .map(|(n, ids)| {
                let lifetime = &lifetime;
                scope.spawn(move || {
                    ids.iter()
                        .enumerate()
                        .map(|(i, id)| {
                            let options = MintOptions::new().lifetime(lifetime(n * chunk + i));
                            Ok(clerk.mint_with(id, &options)?)
                        })
                        .collect::<anyhow::Result<Vec<String>>>()
                })
            })
            .collect();
        let mut tokens = Vec::with_capacity(sessions.len());
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
