//! The realistic mix, the cold sign-in, and the machine's raw RSA rate (see the bench's
//! doc comment for what each measures and why).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use devstack::DevStack;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::{
    CLIENTS, Failures, Hop, MEASURED_SLOTS, MakeRequest, Phase, Request, Rng, SLOT, Server,
    WARM_UP_SLOTS, drive, drive_paced, http_client, instant_calls_by_call, mint_all, mint_each,
    round3, verdict,
};

/// Users in the mix by default (`CLERK_INSTANT_BENCH_MIX_USERS` changes it).
pub(super) const USERS: usize = 10_000;
/// Clerk refreshes a session's token every 50 s.
const ROTATION: Duration = Duration::from_secs(50);
/// Lifetime of the cold run's tokens, minted ahead (the check costs the same whatever
/// the lifetime).
const TOKEN_LIFETIME: Duration = Duration::from_secs(1800);
/// Clerk's tokens live 60 s, 10 s past the next rotation.
const CLERK_LIFETIME: Duration = Duration::from_secs(60);
/// The mix's tokens are minted before the users sign in and their entities are made:
/// each expires this much later than Clerk's would, so none expires during that setup.
/// Their expiries keep Clerk's order (a user's older token ends first), which is what
/// the verified-token cache's eviction goes by.
const SETUP_SLACK: Duration = Duration::from_secs(120);
/// Users' entities per namespace (see the bench's doc comment: the emulator scans).
const PER_NAMESPACE: usize = 100;
/// The mix, in percent: the rest are `GET /v1/me`.
const QUERY_PCT: usize = 70;
const TRANSACT_PCT: usize = 15;
const SESSION_PCT: usize = 10;
/// Clerk users the cold sign-ins are spread over (at most; fewer with fewer mix users).
const COLD_USERS: usize = 1_000;
/// Single-use tokens of the server's side of the cold run: enough for its 11 flat-out
/// turns at 12,000 sign-ins/s and its 11 paced ones at half that rate. A side whose
/// pool runs dry stops sending for the rest of that turn; only what was sent counts,
/// and the turns it happened in are reported (`cold_dry_turns`).
const COLD_POOL: usize = 200_000;
/// Tokens of the floor's side, sent in turn over and over: the emulator keeps no
/// verified-token cache, so a token it saw before costs it the same full check and
/// sign-in (the server's side must not repeat one: its cache would answer).
const COLD_DIRECT_POOL: usize = 20_000;
const TARGET_RATIO: f64 = 0.8;
const TARGET_P99_ADDED_MS: f64 = 1.0;
/// The offered load of the latency turns, as a share of the slowest side's flat-out
/// throughput: every side gets the same requests per second, which each can sustain
/// (see [`Comparison`]).
const PACED_SHARE: f64 = 0.5;

/// The calibration side's name, in failures.
const HOP_NAME: &str = "the floor through the calibration hop";

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const AS_TOKEN: HeaderName = HeaderName::from_static("as-token");
const APP_ID: HeaderName = HeaderName::from_static("app-id");

/// The server's side and the emulator's side of the same turns: flat out (32 clients
/// back to back) for throughput, then both at the same fixed offered load for latency.
///
/// Flat out, each client waits for its answer before sending again, so the latency is
/// 32 / throughput, queueing included: it measures throughput a second time, and any
/// throughput gap shows up there as added milliseconds (at a ratio of 0.8 and 9,000
/// requests/s, already +0.9 ms at the median). What the server adds to a request is
/// measured at equal load instead: both sides offered the same requests per second
/// (`PACED_SHARE` of the slowest side's flat-out rate), each client on a fixed schedule,
/// latency counted from when a request was due. The flat-out percentiles are reported
/// too (`…_saturated_p99_added_ms`).
///
/// A third side takes its turns too when `examples/bench_hop.rs` is built: the floor's
/// requests through a forwarding proxy that does nothing else (the calibration, see
/// [`super::Hop`]). Its ratio is the most any server in front of the emulator could
/// reach on this machine, and the server's throughput over the hop's says what the
/// server's own work costs beyond the hop.
pub(super) struct Comparison {
    server: Phase,
    direct: Phase,
    /// The paced turns: the server's side and the floor's, at `rate` requests/s.
    paced_server: Phase,
    paced_direct: Phase,
    /// The hop's flat-out and paced turns.
    hop: Option<(Phase, Phase)>,
    rate: f64,
    server_name: &'static str,
    direct_name: &'static str,
    users: usize,
    /// The server's InstantDB calls over both runs, by call (`sign-in-with-id-token`,
    /// `query`, …): the sign-ins are the ones requests waited for.
    instant_calls: std::collections::BTreeMap<String, u64>,
}

/// The sides of a comparison, in the order they take their turns; each with the process
/// whose CPU time counts for it.
struct Sides {
    server: (MakeRequest, u32),
    direct: (MakeRequest, u32),
    hop: Option<(MakeRequest, u32)>,
}

impl Comparison {
    fn ratio(&self) -> f64 {
        self.server.per_s() / self.direct.per_s()
    }

    /// At equal offered load (the paced turns).
    fn p99_added_ms(&self) -> f64 {
        self.paced_server.percentile_ms(99) - self.paced_direct.percentile_ms(99)
    }

    /// At equal offered load, turn against turn: the median over the paced rounds of
    /// the server turn's p99 minus the floor turn's p99 of the same round. A stall of
    /// the machine (a kernel thread holding a core for tens of milliseconds; the
    /// calibration hop is hit by them too) sets the p99 of the one turn it lands in,
    /// and with it the pooled p99 of that side: this figure is what the server adds in
    /// a typical second, the pooled one what it added over all of them.
    fn p99_added_by_turn_ms(&self) -> f64 {
        added_by_turn(&self.paced_server, &self.paced_direct)
    }

    fn saturated_p99_added_ms(&self) -> f64 {
        self.server.percentile_ms(99) - self.direct.percentile_ms(99)
    }

    /// The hop's throughput over the floor's (flat out), and its added p99 (paced),
    /// pooled and turn against turn.
    fn hop_figures(&self) -> Option<(f64, f64, f64)> {
        self.hop.as_ref().map(|(flat_out, paced)| {
            (
                flat_out.per_s() / self.direct.per_s(),
                paced.percentile_ms(99) - self.paced_direct.percentile_ms(99),
                added_by_turn(paced, &self.paced_direct),
            )
        })
    }

    /// Records the server's InstantDB calls by call since `before` (counts from
    /// [`instant_calls_by_call`]), prints them, and returns their sum.
    fn count_instant_calls(
        &mut self,
        before: &std::collections::BTreeMap<String, u64>,
        after: std::collections::BTreeMap<String, u64>,
    ) -> u64 {
        self.instant_calls = after
            .into_iter()
            .map(|(call, n)| {
                let since = n - before.get(&call).copied().unwrap_or(0);
                (call, since)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        self.instant_calls.values().sum()
    }

    /// Its figures, as `<prefix>_…` fields.
    pub(super) fn report(&self, prefix: &str, report: &mut Map<String, Value>) {
        let fields = [
            ("users", json!(self.users)),
            ("server_per_s", json!(self.server.per_s().round())),
            (
                "server_p50_ms",
                json!(round3(self.server.percentile_ms(50))),
            ),
            (
                "server_p99_ms",
                json!(round3(self.server.percentile_ms(99))),
            ),
            ("direct_per_s", json!(self.direct.per_s().round())),
            (
                "direct_p50_ms",
                json!(round3(self.direct.percentile_ms(50))),
            ),
            (
                "direct_p99_ms",
                json!(round3(self.direct.percentile_ms(99))),
            ),
            ("ratio", json!(round3(self.ratio()))),
            (
                "saturated_p99_added_ms",
                json!(round3(self.saturated_p99_added_ms())),
            ),
            ("paced_per_s", json!(self.rate.round())),
            (
                "paced_server_p50_ms",
                json!(round3(self.paced_server.percentile_ms(50))),
            ),
            (
                "paced_server_p99_ms",
                json!(round3(self.paced_server.percentile_ms(99))),
            ),
            (
                "paced_direct_p50_ms",
                json!(round3(self.paced_direct.percentile_ms(50))),
            ),
            (
                "paced_direct_p99_ms",
                json!(round3(self.paced_direct.percentile_ms(99))),
            ),
            ("p99_added_ms", json!(round3(self.p99_added_ms()))),
            (
                "p99_added_by_turn_ms",
                json!(round3(self.p99_added_by_turn_ms())),
            ),
            ("paced_server_turn_p99s_ms", turn_p99s(&self.paced_server)),
            ("paced_direct_turn_p99s_ms", turn_p99s(&self.paced_direct)),
            ("dry_turns", json!(self.dry_turns())),
        ];
        for (name, value) in fields {
            report.insert(format!("{prefix}_{name}"), value);
        }
        if !self.instant_calls.is_empty() {
            report.insert(format!("{prefix}_instant_calls"), json!(self.instant_calls));
        }
        if let (Some((hop, paced_hop)), Some((hop_ratio, hop_added, hop_by_turn))) =
            (&self.hop, self.hop_figures())
        {
            let fields = [
                ("hop_per_s", json!(hop.per_s().round())),
                ("hop_p99_ms", json!(round3(hop.percentile_ms(99)))),
                ("hop_ratio", json!(round3(hop_ratio))),
                (
                    "server_of_hop",
                    json!(round3(self.server.per_s() / hop.per_s())),
                ),
                (
                    "paced_hop_p99_ms",
                    json!(round3(paced_hop.percentile_ms(99))),
                ),
                ("hop_p99_added_ms", json!(round3(hop_added))),
                ("hop_p99_added_by_turn_ms", json!(round3(hop_by_turn))),
                ("paced_hop_turn_p99s_ms", turn_p99s(paced_hop)),
            ];
            for (name, value) in fields {
                report.insert(format!("{prefix}_{name}"), value);
            }
        }
    }

    fn dry_turns(&self) -> u64 {
        self.server.dry_turns
            + self.direct.dry_turns
            + self.paced_server.dry_turns
            + self.paced_direct.dry_turns
            + self
                .hop
                .as_ref()
                .map_or(0, |(flat_out, paced)| flat_out.dry_turns + paced.dry_turns)
    }

    /// The summary line.
    pub(super) fn verdict(&self, name: &str) -> String {
        let ratio = self.ratio();
        let added = self.p99_added_ms();
        let dry = self.dry_turns();
        format!(
            "{name}: server {:.0}/s vs direct {:.0}/s -> ratio {ratio:.3} ({} target >= {TARGET_RATIO}); at {:.0} requests/s each, p99 {:.3} ms vs {:.3} ms -> added {added:.3} ms ({} target <= {TARGET_P99_ADDED_MS} ms; turn against turn {:+.3} ms, median of the rounds; flat out it was {:+.3} ms){}",
            self.server.per_s(),
            self.direct.per_s(),
            verdict(ratio >= TARGET_RATIO),
            self.rate,
            self.paced_server.percentile_ms(99),
            self.paced_direct.percentile_ms(99),
            verdict(added <= TARGET_P99_ADDED_MS),
            self.p99_added_by_turn_ms(),
            self.saturated_p99_added_ms(),
            if dry > 0 {
                format!(
                    "; a token pool ran dry in {dry} measured turns: figures count only what was sent"
                )
            } else {
                String::new()
            }
        ) + &self.hop_verdict()
    }

    /// The calibration's half of the summary line.
    fn hop_verdict(&self) -> String {
        let (Some((hop, _)), Some((hop_ratio, hop_added, hop_by_turn))) =
            (&self.hop, self.hop_figures())
        else {
            return String::new();
        };
        format!(
            "\n  calibration: a forwarding proxy that does nothing else (examples/bench_hop.rs) {:.0}/s -> ratio {hop_ratio:.3}, p99 added {hop_added:.3} ms at the same paced load ({hop_by_turn:+.3} ms turn against turn); the server does {:.3} of the hop's throughput",
            hop.per_s(),
            self.server.per_s() / hop.per_s(),
        )
    }

    pub(super) fn failures(self) -> Vec<(&'static str, Failures)> {
        let mut all = vec![
            (self.server_name, self.server.failures),
            (self.direct_name, self.direct.failures),
            (self.server_name, self.paced_server.failures),
            (self.direct_name, self.paced_direct.failures),
        ];
        if let Some((flat_out, paced)) = self.hop {
            all.push((HOP_NAME, flat_out.failures));
            all.push((HOP_NAME, paced.failures));
        }
        all
    }

    /// All sides flat out, then all paced at `PACED_SHARE` of the slowest one's
    /// throughput (the sides' clock continuing, so tokens keep rotating as they would).
    /// `names`: the sides' names in the printed lines, then in failures; `users`: for
    /// the report.
    async fn measure(
        sides: Sides,
        names: [&'static str; 2],
        failure_names: [&'static str; 2],
        users: usize,
    ) -> anyhow::Result<Comparison> {
        let Sides {
            server,
            direct,
            hop,
        } = sides;
        let ((server, direct, hop), rate) = match hop {
            Some(hop) => {
                let sides = [server.0, direct.0, hop.0];
                let pids = [server.1, direct.1, hop.1];
                let names = [names[0], names[1], "hop (calibration)"];
                let ([s, d, h], rate) = measure_sides(sides, pids, names).await?;
                ((s, d, Some(h)), rate)
            }
            None => {
                let sides = [server.0, direct.0];
                let pids = [server.1, direct.1];
                let ([s, d], rate) = measure_sides(sides, pids, names).await?;
                ((s, d, None), rate)
            }
        };
        Ok(Comparison {
            server: server.0,
            direct: direct.0,
            paced_server: server.1,
            paced_direct: direct.1,
            hop,
            rate,
            server_name: failure_names[0],
            direct_name: failure_names[1],
            users,
            instant_calls: std::collections::BTreeMap::new(),
        })
    }
}

/// The sides flat out, then paced: per side its two phases, and the paced rate.
async fn measure_sides<const N: usize>(
    sides: [MakeRequest; N],
    pids: [u32; N],
    names: [&'static str; N],
) -> anyhow::Result<([(Phase, Phase); N], f64)> {
    let again = sides.clone();
    let flat_out = drive(sides, pids).await?;
    for (phase, name) in flat_out.iter().zip(names) {
        println!("{}", phase.line(name));
    }
    super::print_turn_ratios(&flat_out[0], &flat_out[1]);
    let rate = flat_out
        .iter()
        .map(Phase::per_s)
        .fold(f64::INFINITY, f64::min)
        * PACED_SHARE;
    let paced = drive_paced(again, pids, Some(rate), turns_length()).await?;
    println!("paced at {rate:.0} requests/s each (half the slowest side's flat-out rate):");
    for (phase, name) in paced.iter().zip(names) {
        println!("{}", phase.line(name));
    }
    for (phase, name) in paced.iter().zip(names) {
        let turns: Vec<String> = phase
            .turn_p99s_ms
            .iter()
            .map(|p99| format!("{p99:.2}"))
            .collect();
        println!("  p99 by turn, {name:<17} {} ms", turns.join(" "));
    }
    let mut paced = paced.into_iter();
    let phases = flat_out.map(|flat_out| (flat_out, paced.next().unwrap_or_default()));
    Ok((phases, rate))
}

/// The median over the rounds of `side`'s turn p99 minus `floor`'s (turn `k` of each
/// side is in the same round, a second or two apart), in milliseconds.
fn added_by_turn(side: &Phase, floor: &Phase) -> f64 {
    let mut added: Vec<f64> = side
        .turn_p99s_ms
        .iter()
        .zip(&floor.turn_p99s_ms)
        .map(|(s, f)| s - f)
        .collect();
    if added.is_empty() {
        return f64::NAN;
    }
    added.sort_by(f64::total_cmp);
    let mid = added.len() / 2;
    if added.len().is_multiple_of(2) {
        (added[mid - 1] + added[mid]) / 2.0
    } else {
        added[mid]
    }
}

/// A side's paced turn p99s, for the report.
fn turn_p99s(phase: &Phase) -> Value {
    json!(
        phase
            .turn_p99s_ms
            .iter()
            .copied()
            .map(round3)
            .collect::<Vec<_>>()
    )
}

/// One user of the mix.
struct MixUser {
    /// `Bearer <token>` for each 50 s period since the turns began, in order.
    tokens: Vec<HeaderValue>,
    /// Where in Clerk's 50 s cycle this user's token changes.
    offset: Duration,
    /// The InstantDB refresh token the server got for the user's session.
    refresh_token: HeaderValue,
    /// `{"query": …}`: the user's own entity, found by a where clause.
    query: String,
    namespace: String,
    entity: String,
    /// `POST /runtime/auth/verify_refresh_token`'s body for the refresh token.
    verify: String,
    /// `/admin/users?app_id=…&refresh_token=…`, below the emulator's (or the hop's) URL.
    me_path: String,
}

impl MixUser {
    /// The token Clerk would have handed the user at `since` (the turns' start + `since`).
    fn token(&self, since: Duration) -> HeaderValue {
        let period = usize::try_from((since + self.offset).as_nanos() / ROTATION.as_nanos())
            .unwrap_or(usize::MAX)
            .min(self.tokens.len() - 1);
        self.tokens[period].clone()
    }

    /// `{"steps": …}`: one attribute of the user's own entity.
    fn transact(&self, seen: u64) -> String {
        json!({"steps": [["update", self.namespace, self.entity, {"seen": seen}]]}).to_string()
    }
}

/// The emulator's admin headers, as `instant-client` sends them (the SDK version
/// headers aside).
fn admin_headers(stack: &DevStack) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, JSON);
    headers.insert(APP_ID, HeaderValue::from_str(&stack.app.id)?);
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", stack.app.admin_token.expose()))?,
    );
    Ok(headers)
}

/// The time one set of turns takes.
fn turns_length() -> Duration {
    SLOT * u32::try_from(2 * (WARM_UP_SLOTS + MEASURED_SLOTS)).unwrap_or(u32::MAX)
}

/// The time the turns of one run take (flat out, then paced), and a second to spare.
fn run_length() -> Duration {
    2 * turns_length() + SLOT
}

/// The realistic mix: `users` users signed in once through a fresh server, then the
/// mix through the server against the same mix straight to the emulator.
pub(super) async fn mix(stack: &DevStack, users: usize) -> anyhow::Result<Comparison> {
    let server = Server::spawn_with(stack, &[("MAX_SESSIONS", (users + 1_000).to_string())])?;
    let mut server = server;
    server.wait_ready().await?;
    let http = http_client()?;

    // Users, one session each, and the tokens Clerk would hand each over the run.
    let started = Instant::now();
    let clerk = &stack.clerk;
    let mut seed = Rng::new(0x000F_F5E7);
    let mut offsets = Vec::with_capacity(users);
    let mut sessions = Vec::new();
    let mut periods = Vec::with_capacity(users);
    for i in 0..users {
        let signed = clerk.sign_in(&format!("mix-{i}@example.com"))?;
        let offset = Duration::from_millis(seed.next_u64() % (ROTATION.as_secs() * 1000));
        let count = usize::try_from((offset + run_length()).as_nanos() / ROTATION.as_nanos())? + 1;
        sessions.extend(std::iter::repeat_n(signed.session.id, count));
        offsets.push(offset);
        periods.push(count);
    }
    // The token of period `p` is handed out from `p * ROTATION - offset` after the turns
    // begin and expires `CLERK_LIFETIME` after that, plus the setup slack.
    let lifetimes: Vec<Duration> = periods
        .iter()
        .zip(&offsets)
        .flat_map(|(&count, &offset)| {
            (0..count).map(move |p| {
                (ROTATION * u32::try_from(p).unwrap_or(u32::MAX) + CLERK_LIFETIME + SETUP_SLACK)
                    .saturating_sub(offset)
            })
        })
        .collect();
    let minted = mint_each(stack, &sessions, |i| lifetimes[i])?;
    println!(
        "minted {} tokens for {users} users in {:.1} s (each changes every {} s at its own offset and expires {} s after it is handed out, {} s later than Clerk's for the setup)",
        minted.len(),
        started.elapsed().as_secs_f64(),
        ROTATION.as_secs(),
        CLERK_LIFETIME.as_secs(),
        SETUP_SLACK.as_secs(),
    );
    let mut minted = minted.into_iter();
    let tokens: Vec<Vec<String>> = periods
        .iter()
        .map(|&n| minted.by_ref().take(n).collect())
        .collect();

    // Every user signed in once through the server, with the first token.
    let started = Instant::now();
    let answers = sign_in_each(&server.url, tokens.iter().map(|t| t[0].clone()).collect()).await?;
    println!(
        "signed the {users} users in through the server in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Each user's own entity, in namespaces of PER_NAMESPACE entities.
    let instant = stack.instant.url();
    let app_id = &stack.app.id;
    let mut mix_users = Vec::with_capacity(users);
    for (i, ((answer, tokens), offset)) in answers.iter().zip(tokens).zip(offsets).enumerate() {
        let refresh = answer["refresh_token"]
            .as_str()
            .context("a sign-in answer without refresh_token")?;
        let instant_id = answer["user"]["id"]
            .as_str()
            .context("a sign-in answer without user.id")?;
        let namespace = format!("profiles{}", i / PER_NAMESPACE);
        let entity = uuid::Uuid::from_u128(0x6d69_7800_0000_4000_8000_0000_0000_0000 + i as u128)
            .to_string();
        let mut refresh_token = HeaderValue::from_str(refresh)?;
        refresh_token.set_sensitive(true);
        mix_users.push(MixUser {
            tokens: tokens
                .iter()
                .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
                .collect::<Result<_, _>>()?,
            offset,
            refresh_token,
            query: json!({"query": {&namespace: {"$": {"where": {"owner": instant_id}}}}})
                .to_string(),
            verify: json!({"app-id": app_id, "refresh-token": refresh}).to_string(),
            me_path: format!("/admin/users?app_id={app_id}&refresh_token={refresh}"),
            namespace,
            entity,
        });
    }
    let admin = admin_headers(stack)?;
    let transact_url = format!("{instant}/admin/transact?app_id={app_id}");
    for (n, chunk) in answers.chunks(PER_NAMESPACE).enumerate() {
        let steps: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(j, answer)| {
                let user = &mix_users[n * PER_NAMESPACE + j];
                json!(["create", user.namespace, user.entity, {"owner": answer["user"]["id"], "seen": 0}])
            })
            .collect();
        let answer = http
            .post(&transact_url)
            .headers(admin.clone())
            .body(json!({"steps": steps}).to_string())
            .send()
            .await?;
        let status = answer.status();
        ensure!(
            status == 200,
            "creating the mix's entities answered {status}: {}",
            answer.text().await?
        );
    }

    let users = Arc::new(mix_users);
    let hop = Hop::spawn(instant)?;
    let through_server = server_side(&server.url, &users);
    let direct = direct_side(stack, &users, instant)?;
    let through_hop = match &hop {
        Some(hop) => Some((direct_side(stack, &users, &hop.url)?, hop.pid())),
        None => None,
    };
    // Every side finds the user's entity, once.
    let mut all = vec![through_server.clone(), direct.clone()];
    all.extend(through_hop.iter().map(|(side, _)| side.clone()));
    check_query(&http, &all).await?;

    let upstream_before = instant_calls_by_call(&http, &server.url).await?;
    let mut comparison = Comparison::measure(
        Sides {
            server: (through_server, server.pid()),
            direct: (direct, server.pid()),
            hop: through_hop,
        },
        ["server mix", "direct mix"],
        ["mix through the server", "mix straight to the emulator"],
        users.len(),
    )
    .await?;
    // By call: the sign-ins are the confirmations and fresh sign-ins that requests
    // waited for.
    let upstream = instant_calls_by_call(&http, &server.url).await?;
    let total = comparison.count_instant_calls(&upstream_before, upstream);
    let by_call: Vec<String> = comparison
        .instant_calls
        .iter()
        .map(|(call, n)| format!("{call} {n}"))
        .collect();
    println!(
        "({total} InstantDB calls from the server over both runs: {})",
        by_call.join(", ")
    );
    Ok(comparison)
}

/// The mix through the server: the user's current token on every route.
fn server_side(url: &str, users: &Arc<Vec<MixUser>>) -> MakeRequest {
    let users = Arc::clone(users);
    let [query, transact, session, me] =
        ["query", "transact", "session", "me"].map(|route| format!("{url}/v1/{route}"));
    Arc::new(move |http, rng, since| {
        let user = &users[rng.below(users.len())];
        let auth = user.token(since);
        let roll = rng.below(100);
        Some(if roll < QUERY_PCT {
            Request {
                what: "POST /v1/query",
                builder: http
                    .post(&query)
                    .header(AUTHORIZATION, auth)
                    .header(CONTENT_TYPE, JSON)
                    .body(user.query.clone()),
            }
        } else if roll < QUERY_PCT + TRANSACT_PCT {
            Request {
                what: "POST /v1/transact",
                builder: http
                    .post(&transact)
                    .header(AUTHORIZATION, auth)
                    .header(CONTENT_TYPE, JSON)
                    .body(user.transact(rng.next_u64() >> 12)),
            }
        } else if roll < QUERY_PCT + TRANSACT_PCT + SESSION_PCT {
            Request {
                what: "POST /v1/session",
                builder: http.post(&session).header(AUTHORIZATION, auth),
            }
        } else {
            Request {
                what: "GET /v1/me",
                builder: http.get(&me).header(AUTHORIZATION, auth),
            }
        })
    })
}

/// The same mix straight to the emulator, with the user's refresh token: query and
/// transact as admin calls with `as-token`, session as the refresh token's check, me
/// as the user read by refresh token.
/// `instant` is the emulator's URL, or the calibration hop's in front of it.
fn direct_side(
    stack: &DevStack,
    users: &Arc<Vec<MixUser>>,
    instant: &str,
) -> anyhow::Result<MakeRequest> {
    let me_urls: Vec<String> = users
        .iter()
        .map(|user| format!("{instant}{}", user.me_path))
        .collect();
    let users = Arc::clone(users);
    let admin = admin_headers(stack)?;
    let app_id = &stack.app.id;
    let query = format!("{instant}/admin/query?app_id={app_id}");
    let transact = format!("{instant}/admin/transact?app_id={app_id}");
    let verify = format!("{instant}/runtime/auth/verify_refresh_token?app_id={app_id}");
    Ok(Arc::new(move |http, rng, _| {
        // Drawn as the server's side draws them, so both sides pick alike.
        let pick = rng.below(users.len());
        let user = &users[pick];
        let roll = rng.below(100);
        Some(if roll < QUERY_PCT {
            Request {
                what: "POST /admin/query (as-token)",
                builder: http
                    .post(&query)
                    .headers(admin.clone())
                    .header(AS_TOKEN, user.refresh_token.clone())
                    .body(user.query.clone()),
            }
        } else if roll < QUERY_PCT + TRANSACT_PCT {
            Request {
                what: "POST /admin/transact (as-token)",
                builder: http
                    .post(&transact)
                    .headers(admin.clone())
                    .header(AS_TOKEN, user.refresh_token.clone())
                    .body(user.transact(rng.next_u64() >> 12)),
            }
        } else if roll < QUERY_PCT + TRANSACT_PCT + SESSION_PCT {
            Request {
                what: "POST /runtime/auth/verify_refresh_token",
                builder: http
                    .post(&verify)
                    .header(CONTENT_TYPE, JSON)
                    .body(user.verify.clone()),
            }
        } else {
            Request {
                what: "GET /admin/users?refresh_token=",
                builder: http.get(&me_urls[pick]).headers(admin.clone()),
            }
        })
    }))
}

/// One query on each side (the first draw of a fresh PRNG is a query for some user)
/// finds exactly that user's entity.
async fn check_query(http: &reqwest::Client, sides: &[MakeRequest]) -> anyhow::Result<()> {
    for side in sides {
        // Draw until a query comes up: the PRNG is the clients' kind.
        let mut rng = Rng::new(1);
        let request = loop {
            let request = side(http, &mut rng, Duration::ZERO).context("a request")?;
            if request.what.contains("query") {
                break request;
            }
        };
        let answer = request.builder.send().await?;
        let status = answer.status();
        let body: Value = answer.json().await?;
        let rows = body
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        ensure!(
            status == 200 && rows == 1,
            "{} answered {status} with {rows} rows, not the user's one entity",
            request.what
        );
    }
    Ok(())
}

/// Signs each token in once through the server; the answers, in order. Any failure
/// stops the bench: the mix needs every user signed in.
async fn sign_in_each(url: &str, tokens: Vec<String>) -> anyhow::Result<Vec<Value>> {
    let url: Arc<str> = format!("{url}/v1/session").into();
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let http = http_client()?;
        let (url, tokens, next) = (Arc::clone(&url), Arc::clone(&tokens), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = tokens.get(i) else { break };
                let answer = http.post(&*url).bearer_auth(token).send().await?;
                let status = answer.status();
                let body = answer.text().await?;
                if status != 200 {
                    bail!("signing a mix user in answered {status}: {body}");
                }
                answers.push((i, serde_json::from_str::<Value>(&body)?));
            }
            Ok(answers)
        }));
    }
    let mut answers = Vec::with_capacity(tokens.len());
    for task in tasks {
        answers.extend(task.await??);
    }
    answers.sort_unstable_by_key(|(i, _)| *i);
    Ok(answers.into_iter().map(|(_, answer)| answer).collect())
}

/// The cold sign-in: every request through a fresh server is a new Clerk session (so
/// the server signs in at InstantDB each time), against the emulator's id-token
/// sign-in called directly with other new sessions' tokens.
pub(super) async fn cold(stack: &DevStack, users: usize) -> anyhow::Result<Comparison> {
    let clerk_users = users.min(COLD_USERS);
    let pool = COLD_POOL;
    let mut server = Server::spawn_with(
        stack,
        &[("MAX_SESSIONS", (pool + clerk_users + 1_000).to_string())],
    )?;
    server.wait_ready().await?;
    let http = http_client()?;
    let clerk = &stack.clerk;

    // Existing users: known to Clerk and to InstantDB (signed in once, directly).
    let started = Instant::now();
    let firsts = (0..clerk_users)
        .map(|i| Ok(clerk.sign_in(&format!("cold-{i}@example.com"))?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sessions: Vec<String> = firsts.iter().map(|s| s.session.id.clone()).collect();
    let first_tokens = mint_all(stack, &sessions, TOKEN_LIFETIME)?;
    let instant = stack.instant.url();
    let id_token_url = format!("{instant}/runtime/oauth/id_token");
    let body = |token: &str| {
        json!({"app_id": stack.app.id, "id_token": token, "client_name": stack.client_name})
            .to_string()
    };
    for token in &first_tokens {
        let answer = http
            .post(&id_token_url)
            .header(CONTENT_TYPE, JSON)
            .body(body(token))
            .send()
            .await?;
        let status = answer.status();
        ensure!(
            status == 200,
            "signing a cold user in at the emulator answered {status}: {}",
            answer.text().await?
        );
    }
    // New sessions of those users, a token each: the server's pool, then the floor's.
    let sessions = (0..pool + COLD_DIRECT_POOL)
        .map(|i| Ok(clerk.create_session(&firsts[i % clerk_users].user.id)?.id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut tokens = mint_all(stack, &sessions, TOKEN_LIFETIME)?;
    println!(
        "minted {} tokens of new sessions over {clerk_users} existing users ({pool} single-use for the server, {COLD_DIRECT_POOL} reused in turn for the floor) in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    let direct_pool: Vec<String> = tokens.split_off(pool).iter().map(|t| body(t)).collect();
    let server_pool = tokens
        .iter()
        .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
        .collect::<Result<Vec<_>, _>>()?;

    let session_url = format!("{}/v1/session", server.url);
    let server_pool = Arc::new(server_pool);
    let server_next = Arc::new(AtomicUsize::new(0));
    let server_side: MakeRequest = {
        let (pool, next) = (Arc::clone(&server_pool), Arc::clone(&server_next));
        Arc::new(move |http, _, _| {
            let auth = pool.get(next.fetch_add(1, Ordering::Relaxed))?;
            Some(Request {
                what: "POST /v1/session (new session)",
                builder: http.post(&session_url).header(AUTHORIZATION, auth.clone()),
            })
        })
    };
    // The floor's side, and the hop's: the same tokens in turn, each side from its own
    // place in the pool.
    let direct_pool = Arc::new(direct_pool);
    let id_token_side = |url: String, first: usize| -> MakeRequest {
        let pool = Arc::clone(&direct_pool);
        let next = AtomicUsize::new(first);
        Arc::new(move |http, _, _| {
            let body = &pool[next.fetch_add(1, Ordering::Relaxed) % pool.len()];
            Some(Request {
                what: "POST /runtime/oauth/id_token",
                builder: http
                    .post(&url)
                    .header(CONTENT_TYPE, JSON)
                    .body(body.clone()),
            })
        })
    };
    let direct = id_token_side(id_token_url, 0);
    let hop = Hop::spawn(instant)?;
    let through_hop = hop.as_ref().map(|hop| {
        let side = id_token_side(
            format!("{}/runtime/oauth/id_token", hop.url),
            COLD_DIRECT_POOL / 2,
        );
        (side, hop.pid())
    });

    let upstream_before = instant_calls_by_call(&http, &server.url).await?;
    let mut comparison = Comparison::measure(
        Sides {
            server: (server_side, server.pid()),
            direct: (direct, server.pid()),
            hop: through_hop,
        },
        ["server cold", "direct cold"],
        [
            "cold sign-in through the server",
            "cold sign-in straight to the emulator",
        ],
        clerk_users,
    )
    .await?;
    let upstream = instant_calls_by_call(&http, &server.url).await?;
    let upstream = comparison.count_instant_calls(&upstream_before, upstream);
    println!(
        "({upstream} InstantDB calls from the server; {} of its {pool} tokens used)",
        server_next.load(Ordering::Relaxed).min(pool),
    );
    Ok(comparison)
}

/// RS256 verifications per second on one core for one second: aws-lc-rs's
/// `ParsedPublicKey::verify_sig` (PKCS#1 v1.5, SHA-256) of a token of the local Clerk,
/// with its 2048-bit key, parsed once (as `cargo xtask bench verify` measures its floor).
pub(super) fn raw_rsa_verify_per_s(stack: &DevStack) -> anyhow::Result<f64> {
    let signed = stack.clerk.sign_in("bench-rsa@example.com")?;
    let token = stack.clerk.mint(&signed.session.id)?;
    let jwks = stack.clerk.jwks();
    let jwk = &jwks["keys"][0];
    let part = |name: &str| -> anyhow::Result<Vec<u8>> {
        let text = jwk[name].as_str().context("a JWK without n or e")?;
        Ok(URL_SAFE_NO_PAD.decode(text)?)
    };
    let (n, e) = (part("n")?, part("e")?);
    let key: ParsedPublicKey = RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .map_err(|_| anyhow::anyhow!("the local Clerk's JWK is not an RSA key aws-lc-rs takes"))?;
    let (input, signature) = token
        .rsplit_once('.')
        .context("a token without a signature")?;
    let signature = URL_SAFE_NO_PAD.decode(signature)?;
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        for _ in 0..64 {
            key.verify_sig(std::hint::black_box(input.as_bytes()), &signature)
                .map_err(|_| anyhow::anyhow!("the local Clerk's token does not verify"))?;
        }
        count += 64;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}
