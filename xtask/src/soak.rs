//! `cargo xtask soak`: the fault soak. The server binary runs as its own process
//! against a local stack started here (a local Clerk and an InstantDB emulator), with
//! the local Clerk's webhooks delivered to it, while many clients sign in, query,
//! transact, sign out, revoke sessions and delete users through Clerk's Backend API,
//! and send expired and forged tokens, and faults open and close on a schedule in
//! both upstreams. At the end everything the clients hold is signed out through the
//! server, the server is stopped with SIGTERM, and the emulator is reconciled:
//! `target/bench/soak.json` gets requests by route and outcome, p50/p99, the fault
//! timeline and three numbers that must be zero (leaked refresh tokens, sign-outs
//! reported done whose token lived on, 5xx answered outside every fault window).
//!
//! `--redis`: two replicas of the server share their store in a real `redis-server`
//! (sealed with a key made for the run), the clients send each request to the next
//! replica, Clerk's webhooks go to the first, and the shared Redis hangs for a window
//! of its own (SIGSTOP, then SIGCONT). At the end every session key left in Redis
//! counts too: once every session is signed out the store must be empty.

mod faults;
mod report;
mod traffic;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use devstack::clerk::{DeliveryState, WebhookEndpoint, WebhookOptions};
use devstack::{ClerkConfig, DevStack, DevStackConfig, RedisServer, WebhookSecret};
use serde_json::{Value, json};

use self::faults::{Targets, Timeline, since, window_length};
use self::report::{Blame, GRACE_MS, JWKS_GRACE_MS, Span, WEBHOOK_ANSWER_MS, during_a_fault};
use self::traffic::{Rng, World};

pub(crate) const USAGE: &str = "cargo xtask soak [--minutes N] [--seconds N] [--release|--debug] [--users N] [--clients N] [--no-abandon] [--redis]";

/// Replicas of the server in a Redis soak.
const REDIS_REPLICAS: usize = 2;
/// The key prefix the replicas share in Redis.
const REDIS_PREFIX: &str = "soak:";

/// Svix's retry schedule, scaled: retries after 1.5 ms, 90 ms, 0.5 s, 2.2 s, 5.4 s,
/// 11 s and 11 s, so a delivery outlives any fault window (at most 4 s) and the last
/// retry comes about 30 s after the first attempt.
const WEBHOOK_RETRY_SCALE: f64 = 0.0003;

/// The server's own SIGTERM drain is 10 s for background sign-outs after the HTTP
/// server stopped; this leaves room for both.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// Which build of the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    Release,
    Debug,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

/// How a soak runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) duration: Duration,
    pub(crate) profile: Profile,
    /// Clerk users.
    pub(crate) users: usize,
    /// Concurrent clients.
    pub(crate) clients: usize,
    /// Build the server first (`cargo build`); off when a step before built it.
    pub(crate) build: bool,
    /// Clients abandon some sign-ins a few milliseconds in.
    pub(crate) abandon: bool,
    /// Two replicas sharing a Redis store, with a Redis fault (see the module docs).
    pub(crate) redis: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration: Duration::from_secs(60),
            profile: Profile::Release,
            users: 200,
            clients: 16,
            build: true,
            abandon: true,
            redis: false,
        }
    }
}

/// Parses the command line (after `soak`).
pub(crate) fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options::default();
    let mut duration: Option<Duration> = None;
    let mut rest = args.iter();
    let number = |value: Option<&String>, flag: &str| -> anyhow::Result<u64> {
        value
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("{flag} takes a whole number; usage: {USAGE}"))
    };
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--minutes" => {
                let minutes = number(rest.next(), "--minutes")?;
                *duration.get_or_insert(Duration::ZERO) += Duration::from_secs(minutes * 60);
            }
            "--seconds" => {
                let seconds = number(rest.next(), "--seconds")?;
                *duration.get_or_insert(Duration::ZERO) += Duration::from_secs(seconds);
            }
            "--release" => options.profile = Profile::Release,
            "--debug" => options.profile = Profile::Debug,
            "--no-abandon" => options.abandon = false,
            "--redis" => options.redis = true,
            "--users" => options.users = usize::try_from(number(rest.next(), "--users")?)?,
            "--clients" => options.clients = usize::try_from(number(rest.next(), "--clients")?)?,
            other => bail!("unknown argument {other:?}; usage: {USAGE}"),
        }
    }
    if let Some(duration) = duration {
        options.duration = duration;
    }
    if options.duration < Duration::from_secs(5) {
        bail!("a soak runs for at least 5 seconds; usage: {USAGE}");
    }
    if options.clients == 0 || options.users < options.clients {
        bail!(
            "--users ({}) must be at least --clients ({}), and --clients at least 1: each client acts as one user at a time",
            options.users,
            options.clients
        );
    }
    Ok(options)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| crate::root().join("target"), PathBuf::from)
}

/// The server binary, built first when asked.
fn server_binary(options: &Options) -> anyhow::Result<PathBuf> {
    if options.build {
        let mut build = crate::cargo();
        build.args([
            "build",
            "--locked",
            "-p",
            "clerk-instant-server",
            "--bin",
            "clerk-instant-server",
        ]);
        if options.profile == Profile::Release {
            build.arg("--release");
        }
        crate::step("build the server", build)?;
    }
    let binary = target_dir().join(options.profile.dir()).join(format!(
        "clerk-instant-server{}",
        std::env::consts::EXE_SUFFIX
    ));
    if !binary.exists() {
        bail!(
            "{} does not exist; build it with `cargo build -p clerk-instant-server{}`",
            binary.display(),
            if options.profile == Profile::Release {
                " --release"
            } else {
                ""
            }
        );
    }
    Ok(binary)
}

/// Runs a soak, writes `soak.json` and fails when any of the numbers that must be zero
/// is not.
pub(crate) fn run(options: &Options) -> anyhow::Result<()> {
    let binary = server_binary(options)?;
    let dir = crate::bench_dir();
    std::fs::create_dir_all(&dir)?;
    eprintln!(
        "\n==> soak: {} s, {} binary {}, {} users, {} clients, {}",
        options.duration.as_secs(),
        options.profile.dir(),
        binary.display(),
        options.users,
        options.clients,
        if options.redis {
            format!("{REDIS_REPLICAS} replicas sharing a Redis store")
        } else {
            "one server, memory store".to_owned()
        }
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the soak's runtime")?;
    let report = runtime.block_on(soak(options, &binary, &dir))?;
    let path = dir.join(if options.redis {
        "soak-redis.json"
    } else {
        "soak.json"
    });
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    let zero = &report["must_be_zero"];
    eprintln!(
        "==> soak: {} requests, p50 {} ms, p99 {} ms, {} fault windows; report {}",
        report["requests"]["count"],
        report["requests"]["p50_ms"],
        report["requests"]["p99_ms"],
        report["faults"].as_array().map_or(0, Vec::len),
        path.display()
    );
    eprintln!(
        "    leaks {}, sign-outs done but alive {}, 5xx without fault {}; bad tokens accepted {}{}, server exit {}",
        zero["leaks"],
        zero["sign_outs_done_but_alive"],
        zero["unexplained_5xx"],
        zero["bad_tokens_accepted"],
        if options.redis {
            format!(
                "; sessions left in Redis {}",
                zero["sessions_left_in_redis"]
            )
        } else {
            String::new()
        },
        report["server"]["exit"]
    );
    let failed: Vec<String> = zero
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .map(|(name, n)| format!("{name} = {n}"))
        .collect();
    if !failed.is_empty() {
        bail!(
            "the soak found {} (see {})",
            failed.join(", "),
            path.display()
        );
    }
    if report["server"]["clean_exit"] != true {
        bail!(
            "the server did not stop cleanly after SIGTERM ({}); its log is {}",
            report["server"]["exit"],
            report["server"]["log"]
        );
    }
    Ok(())
}

/// The store settings of a Redis soak's replicas: the shared Redis, a prefix, and a
/// sealing key made for the run.
fn redis_env(url: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut key = [0_u8; 32];
    aws_lc_rs::rand::fill(&mut key)
        .map_err(|_| anyhow::anyhow!("no randomness for the sealing key"))?;
    Ok(vec![
        ("SESSION_STORE_URL", url.to_owned()),
        ("SESSION_STORE_PREFIX", REDIS_PREFIX.to_owned()),
        (
            "SESSION_STORE_ENCRYPTION_KEY",
            base64::engine::general_purpose::STANDARD.encode(key),
        ),
    ])
}

/// How many sessions a Redis holds under the soak's prefix (their keys are
/// `<prefix>s:<sid>`).
async fn redis_sessions(url: &str) -> anyhow::Result<usize> {
    let mut redis = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{REDIS_PREFIX}s:*"))
        .query_async(&mut redis)
        .await
        .context("listing the sessions left in Redis")?;
    Ok(keys.len())
}

/// A free port on loopback for the server (released just before it binds it).
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// The server's settings for the soak, by environment name: explicit settings for the
/// local stack (not `--dev`), webhooks on, sessions revalidated often so that path is
/// exercised too, rate limits off. The one place to add a setting the server gains.
fn server_env(
    stack: &DevStack,
    listen: SocketAddr,
    secret: &WebhookSecret,
) -> Vec<(&'static str, String)> {
    vec![
        ("LISTEN_ADDR", listen.to_string()),
        (
            "CLERK_PUBLISHABLE_KEY",
            stack.clerk.publishable_key().to_string(),
        ),
        (
            "CLERK_SECRET_KEY",
            stack.clerk.secret_key().expose().to_owned(),
        ),
        ("CLERK_API_URL", stack.clerk.url().to_owned()),
        ("CLERK_WEBHOOK_SIGNING_SECRET", secret.expose().to_owned()),
        ("INSTANT_APP_ID", stack.app.id.clone()),
        (
            "INSTANT_APP_ADMIN_TOKEN",
            stack.app.admin_token.expose().to_owned(),
        ),
        ("INSTANT_API_URI", stack.instant.url().to_owned()),
        ("INSTANT_CLERK_CLIENT_NAME", stack.client_name.clone()),
        ("USER_DELETED_POLICY", "delete-user".to_owned()),
        ("SESSION_REVALIDATE_SECS", "5".to_owned()),
        // Every client comes from 127.0.0.1 and a tenth of the traffic is bad tokens:
        // the per-address limits would answer most of it 429. The soak is about
        // upstream faults, so they are off (as in the server bench).
        ("RATE_LIMIT_PER_IP_PER_SEC", "0".to_owned()),
        ("RATE_LIMIT_PER_SESSION_PER_MIN", "0".to_owned()),
        ("RATE_LIMIT_BAD_TOKENS_PER_MIN", "0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("LOG_LEVEL", "info".to_owned()),
    ]
}

/// The server process; killed if still running when dropped.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// Starts the binary with only the soak's settings (nothing inherited names a
    /// Clerk or InstantDB setting) and waits until `/healthz` answers.
    async fn start(
        binary: &Path,
        env: Vec<(&'static str, String)>,
        listen: SocketAddr,
        log: PathBuf,
    ) -> anyhow::Result<Server> {
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .env("RUST_BACKTRACE", "1")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Server {
            child,
            url: format!("http://{listen}"),
            log,
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "the server exited at start-up ({status}); its log:\n{}",
                    std::fs::read_to_string(&server.log).unwrap_or_default()
                );
            }
            let up = http
                .get(format!("{}/healthz", server.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return Ok(server);
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "the server did not answer /healthz within 30 s; see {}",
                    server.log.display()
                );
            }
            // Polling a process we do not control: there is no event to await.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit (at most [`STOP_DEADLINE`]).
    async fn stop(mut self) -> anyhow::Result<(bool, String)> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("sending SIGTERM with `kill`")?;
        if !status.success() {
            bail!("`kill -TERM {pid}` failed ({status})");
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status.success(), status.to_string()));
            }
            if started.elapsed() > STOP_DEADLINE {
                return Ok((
                    false,
                    format!("still running {} s after SIGTERM", STOP_DEADLINE.as_secs()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Signs out, through the server, every session a client still holds; a session
/// whose sign-out does not finish is retried a few times, then left to the count of
/// leaks.
async fn sign_out_everything(world: &World) -> Value {
    let mut held = 0;
    let mut signed_out = 0;
    let mut ended_at_clerk = 0;
    let mut attempts = 0;
    for mut user in world.drain_users() {
        if user.session.is_none() {
            continue;
        }
        held += 1;
        for _ in 0..5 {
            attempts += 1;
            match world.sign_out(&mut user, "final-sign-out").await {
                Ok(true) => {
                    signed_out += 1;
                    break;
                }
                // No token can be minted: a sign-out whose InstantDB half failed
                // revoked the Clerk session, whose webhook ends the rest.
                Err(_) => {
                    ended_at_clerk += 1;
                    break;
                }
                // Not over (its 5xx is counted): try again.
                Ok(false) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    json!({
        "sessions": held,
        "signed_out": signed_out,
        "ended_at_clerk": ended_at_clerk,
        "attempts": attempts,
    })
}

/// Waits until the local Clerk has no delivery left to attempt, at most `limit`.
async fn webhooks_settle(stack: &DevStack, limit: Duration) -> bool {
    tokio::time::timeout(limit, stack.clerk.webhooks().idle())
        .await
        .is_ok()
}

async fn soak(options: &Options, binary: &Path, dir: &Path) -> anyhow::Result<Value> {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        d.as_secs().rotate_left(32) ^ u64::from(d.subsec_nanos())
    });
    let config = DevStackConfig::default().clerk(
        ClerkConfig::default()
            .webhook_options(WebhookOptions::default().retry_scale(WEBHOOK_RETRY_SCALE)),
    );
    let stack = Arc::new(
        DevStack::start(config)
            .await
            .context("starting the local stack")?,
    );
    let secret = WebhookSecret::generate();
    let redis = if options.redis {
        Some(
            RedisServer::start()
                .await
                .context("starting redis-server for the Redis soak")?,
        )
    } else {
        None
    };
    // One sealing key for every replica: a replica that cannot open a value treats
    // it as absent and removes it.
    let store_env = match &redis {
        Some(redis) => redis_env(&redis.url())?,
        None => Vec::new(),
    };
    let redis_url = redis.as_ref().map(RedisServer::url);
    let mut servers = Vec::new();
    for replica in 1..=if options.redis { REDIS_REPLICAS } else { 1 } {
        let listen = free_port()?;
        let log = dir.join(if options.redis {
            format!("soak-redis-server-{replica}.log")
        } else {
            "soak-server.log".to_owned()
        });
        let mut env = server_env(&stack, listen, &secret);
        env.extend(store_env.iter().cloned());
        servers.push(Server::start(binary, env, listen, log).await?);
    }
    // Webhooks reach one replica, as through a load balancer: the store is shared.
    stack.clerk.webhooks().add_endpoint(WebhookEndpoint::new(
        format!("{}/v1/webhooks/clerk", servers[0].url),
        secret,
    ));

    let origin = Instant::now();
    let unix_origin_ms = unix_ms();
    let world = Arc::new(World::new(
        Arc::clone(&stack),
        servers.iter().map(|server| server.url.clone()).collect(),
        options.users,
        options.abandon,
        origin,
    )?);
    let deadline = origin + options.duration;
    let window = window_length(options.duration);
    let timeline: Timeline = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let targets = Arc::new(Targets {
        stack: Arc::clone(&stack),
        redis: redis.map(Mutex::new),
    });
    let schedule = faults::schedule(options.redis);
    // The first window (the JWKS down) opens before any client starts.
    let first = faults::open_first(&targets, &schedule, origin);
    tasks.spawn(faults::run(
        Arc::clone(&targets),
        schedule,
        first,
        window,
        origin,
        deadline,
        Arc::clone(&timeline),
    ));
    let mut rng = Rng::new(seed);
    for _ in 0..options.clients {
        tasks.spawn(Arc::clone(&world).client(Rng::new(rng.next()), deadline));
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a soak task failed")?;
    }
    stack.instant.faults().clear();
    stack.clerk.faults().clear();
    let traffic_ms = since(origin);

    // Let every webhook retry run out (faults are gone, so they succeed), then sign
    // out, through the server, every session a client still holds.
    let settled_before = webhooks_settle(&stack, Duration::from_secs(60)).await;
    let final_sign_outs = sign_out_everything(&world).await;
    // The server's sign-outs revoked the Clerk sessions: their webhooks too.
    let settled_after = webhooks_settle(&stack, Duration::from_secs(60)).await;
    let mut server_reports = Vec::new();
    for (n, server) in servers.into_iter().enumerate() {
        let metrics = reqwest::get(format!("{}/metrics", server.url))
            .await
            .ok()
            .map(|r| r.text());
        if let Some(text) = metrics
            && let Ok(text) = text.await
        {
            let name = if options.redis {
                format!("soak-redis-metrics-{}.txt", n + 1)
            } else {
                "soak-metrics.txt".to_owned()
            };
            let _ = std::fs::write(dir.join(name), text);
        }
        let log_path = server.log.clone();
        let (clean_exit, exit) = server.stop().await?;
        server_reports.push(
            json!({"exit": exit, "clean_exit": clean_exit, "log": log_path.display().to_string()}),
        );
    }
    let clean_exit = server_reports.iter().all(|r| r["clean_exit"] == true);
    let exit: Vec<&str> = server_reports
        .iter()
        .filter_map(|r| r["exit"].as_str())
        .collect();
    let logs: Vec<&str> = server_reports
        .iter()
        .filter_map(|r| r["log"].as_str())
        .collect();
    // What the shared store still holds once every session was signed out: nothing.
    let left_in_redis = match &redis_url {
        Some(url) => Some(redis_sessions(url).await?),
        None => None,
    };

    // Reconcile: every refresh token still alive in the emulator is a leak (no client
    // keeps one, and every session was signed out: a memory store went with its
    // process, a Redis store must be empty).
    let (leak_count, mut leaks) = leaked_tokens(&stack)?;
    {
        let abandoned = world
            .abandoned
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let histories = world
            .histories
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for leak in &mut leaks {
            let email = leak["email"].as_str().unwrap_or_default().to_owned();
            leak["had_an_abandoned_sign_in"] = json!(abandoned.contains(&email));
            leak["history"] = json!(histories.get(&email));
        }
    }
    let released_alive: Vec<Value> = {
        let released = world
            .released
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        released
            .iter()
            .filter(|r| world.alive(&r.token))
            .map(|r| json!({"email": r.email, "let_go_because": r.why}))
            .collect()
    };

    let windows: Vec<faults::Window> = timeline
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let spans: Vec<Blame> = windows.iter().map(faults::Window::blame).collect();
    let mut log = std::mem::take(&mut *world.log.lock().unwrap_or_else(PoisonError::into_inner));
    // Each 5xx is blamed on the latest window that explains it, or counted.
    let mut blamed = vec![0_u64; windows.len()];
    let mut unexplained = Vec::new();
    for failure in &log.failures {
        match spans
            .iter()
            .rposition(|blame| during_a_fault(failure.span, std::slice::from_ref(blame)))
        {
            Some(window) => blamed[window] += 1,
            None => unexplained.push(failure.to_json()),
        }
    }
    let webhooks = webhook_report(&stack, unix_origin_ms, &spans);
    let webhook_unexplained = webhooks["unexplained_5xx"].as_array().map_or(0, Vec::len);
    let (routes, mut overall) = log.summary();
    overall["by_route"] = routes;

    let mut report = json!({
        "seed": seed,
        "duration_s": options.duration.as_secs(),
        "traffic_ms": traffic_ms,
        "profile": options.profile.dir(),
        "users": options.users,
        "clients": options.clients,
        "abandoned_sign_ins": options.abandon,
        "grace_ms": {"instantdb_and_clerk_api": GRACE_MS, "jwks": JWKS_GRACE_MS},
        "grace": "a 5xx (or a request with no answer) is explained when it overlaps a fault window or starts within that window's grace_ms after it closed; a webhook attempt (timestamped in whole seconds) when [timestamp, timestamp + webhook_answer_ms] does. JWKS windows get the verifier's 10 s retry floor for a cold cache",
        "webhook_answer_ms": WEBHOOK_ANSWER_MS,
        "requests": overall,
        "actions": log.actions,
        "faults": windows
            .iter()
            .zip(&blamed)
            .map(|(window, blamed)| {
                let mut json = window.to_json();
                json["server_5xx_blamed"] = json!(blamed);
                json
            })
            .collect::<Vec<_>>(),
        "webhooks": webhooks,
        "webhooks_settled": {"before_final_sign_outs": settled_before, "after": settled_after},
        "final_sign_outs": final_sign_outs,
        "store": if options.redis { "redis" } else { "memory" },
        "server": {"exit": exit.join("; "), "clean_exit": clean_exit, "log": logs.join(" ")},
        "replicas": server_reports,
        "leaked": leaks,
        "released_tokens_alive": released_alive,
        "kept_by_clients": [],
        "sign_outs_done_but_alive": log.done_but_alive,
        "unexplained_5xx": unexplained,
        "bad_tokens_accepted": log.bad_tokens_accepted,
        "must_be_zero": {
            "leaks": leak_count,
            "sign_outs_done_but_alive": log.done_but_alive.len(),
            "unexplained_5xx": unexplained.len() + webhook_unexplained,
            "bad_tokens_accepted": log.bad_tokens_accepted.len(),
        },
    });
    if let Some(left) = left_in_redis {
        report["must_be_zero"]["sessions_left_in_redis"] = json!(left);
    }
    drop(targets);
    if let Ok(stack) = Arc::try_unwrap(stack) {
        stack.shutdown().await;
    }
    Ok(report)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Refresh tokens alive in the emulator: how many, and by user
/// (`[{user_id, email, tokens}]`).
fn leaked_tokens(stack: &DevStack) -> anyhow::Result<(usize, Vec<Value>)> {
    let mut leaks = Vec::new();
    let mut counted = 0;
    for user in stack.instant.users(&stack.app.id)? {
        let Some(id) = user["id"].as_str() else {
            continue;
        };
        let tokens = stack.instant.refresh_token_count(&stack.app.id, id)?;
        if tokens > 0 {
            counted += tokens;
            leaks.push(json!({"user_id": id, "email": user["email"], "tokens": tokens}));
        }
    }
    let total = stack.instant.refresh_tokens_total(&stack.app.id)?;
    if total > counted {
        // Tokens of a user that no longer exists cannot be; say so if they are.
        leaks.push(json!({"user_id": null, "email": null, "tokens": total - counted}));
    }
    Ok((total, leaks))
}

/// The local Clerk's deliveries: counts by state and the 5xx answers outside every
/// fault window.
fn webhook_report(stack: &DevStack, unix_origin_ms: u64, windows: &[Blame]) -> Value {
    let deliveries = stack.clerk.webhooks().deliveries();
    let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
    let mut by_type = std::collections::BTreeMap::<String, u64>::new();
    let mut attempts = 0;
    let mut unexplained = Vec::new();
    for delivery in &deliveries {
        let state = match delivery.state {
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
            _ => "pending",
        };
        *by_state.entry(state).or_default() += 1;
        *by_type.entry(delivery.event_type.clone()).or_default() += 1;
        for attempt in &delivery.attempts {
            attempts += 1;
            if attempt.status.is_some_and(|s| s < 500) {
                continue;
            }
            let sent_ms = u64::try_from(attempt.timestamp)
                .unwrap_or(0)
                .saturating_mul(1000)
                .saturating_sub(unix_origin_ms);
            let span = Span {
                start_ms: sent_ms,
                end_ms: sent_ms + WEBHOOK_ANSWER_MS,
            };
            if !during_a_fault(span, windows) {
                unexplained.push(json!({
                    "type": delivery.event_type,
                    "message_id": delivery.message_id,
                    "status": attempt.status,
                    "sent_ms": sent_ms,
                }));
            }
        }
    }
    json!({
        "deliveries": deliveries.len(),
        "attempts": attempts,
        "by_state": by_state,
        "by_type": by_type,
        "unexplained_5xx": unexplained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_command_line_sets_duration_profile_and_load() {
        let options = parse(&args(
            "--minutes 2 --seconds 30 --debug --users 40 --clients 4",
        ))
        .unwrap();
        assert_eq!(
            options,
            Options {
                duration: Duration::from_secs(150),
                profile: Profile::Debug,
                users: 40,
                clients: 4,
                build: true,
                abandon: true,
                redis: false,
            }
        );
        assert_eq!(parse(&[]).unwrap(), Options::default());
        assert_eq!(
            parse(&args("--debug --release")).unwrap().profile,
            Profile::Release
        );
        assert!(!parse(&args("--no-abandon")).unwrap().abandon);
        assert!(parse(&args("--redis")).unwrap().redis);
        for bad in [
            "--minutes",
            "--seconds x",
            "--seconds 2",
            "--users 3 --clients 4",
            "--clients 0",
            "--fast",
        ] {
            let error = parse(&args(bad)).unwrap_err().to_string();
            assert!(error.contains("--"), "{bad}: {error}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_token_nobody_signed_out_is_a_leak() {
        let stack = DevStack::start(DevStackConfig::default()).await.unwrap();
        assert_eq!(leaked_tokens(&stack).unwrap(), (0, Vec::new()));
        let (user, _token) = stack
            .instant
            .create_refresh_token(&stack.app.id, "kept@soak.test")
            .unwrap();
        let (count, leaks) = leaked_tokens(&stack).unwrap();
        assert_eq!(count, 1);
        assert_eq!(
            leaks,
            [json!({"user_id": user["id"], "email": "kept@soak.test", "tokens": 1})]
        );
        stack.shutdown().await;
    }

    #[test]
    fn the_server_gets_explicit_settings_not_dev_mode() {
        // Every setting the server needs to leave dev mode and take webhooks.
        let names = [
            "CLERK_PUBLISHABLE_KEY",
            "CLERK_SECRET_KEY",
            "CLERK_API_URL",
            "CLERK_WEBHOOK_SIGNING_SECRET",
            "INSTANT_APP_ID",
            "INSTANT_APP_ADMIN_TOKEN",
            "INSTANT_API_URI",
            "LISTEN_ADDR",
        ];
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let stack = DevStack::start(DevStackConfig::default()).await.unwrap();
            let env = server_env(&stack, free_port().unwrap(), &WebhookSecret::generate());
            for name in names {
                let value = env.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
                assert!(value.is_some_and(|v| !v.is_empty()), "{name} is not set");
            }
            stack.shutdown().await;
        });
    }
}
