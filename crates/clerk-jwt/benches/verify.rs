//! Full verification by clerk-jwt (warm remote cache, every rule, typed claims) against
//! the bare RSA-2048 PKCS#1 SHA-256 check with aws-lc-rs on the same tokens, in one run,
//! single-threaded. Writes `target/bench/verify.json`.
//!
//! Run with `cargo xtask bench verify` (or `cargo bench -p clerk-jwt --bench verify`).
//! Both sides run in alternating slices of 64 calls, so machine load hits both alike.
//! Each round prints both rates and their ratio; the median of the rounds' ratios is
//! judged against the target (0.90), and below the floor (0.85) the bench says so and
//! exits non-zero, so a regression cannot pass unnoticed. Allocations and instructions
//! per verification, which machine load does not change, are counted under valgrind
//! with `VERIFY_BENCH_PROFILE` (see below).

#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clerk_jwt::testing::{TestKey, TokenBuilder};
use clerk_jwt::{RemoteJwks, RemoteOptions, Verifier};
use serde_json::json;

const ROUNDS: usize = 5;
const ROUND_TIME: Duration = Duration::from_millis(3000);
const TOKENS: usize = 64;
/// The median ratio the verifier should reach.
const TARGET_RATIO: f64 = 0.90;
/// Below this median ratio the bench fails (non-zero exit).
const FLOOR_RATIO: f64 = 0.85;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = TestKey::generate("ins_2benchinstance00000000000");
    let issuer = "https://clerk.bench.example.com";

    // A JWKS server on loopback, so the verifier uses the real remote cache (warm).
    let jwks = key.jwks();
    let (url, _server) = rt.block_on(async move {
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/.well-known/jwks.json"), server)
    });
    // Under valgrind everything runs tens of times slower: the first fetch gets time.
    let profile = std::env::var("VERIFY_BENCH_PROFILE").ok();
    let mut options = RemoteOptions::default();
    if profile.is_some() {
        options.timeout = Duration::from_secs(300);
        options.connect_timeout = Duration::from_secs(300);
    }
    let verifier = Verifier::builder()
        .issuer(issuer)
        .keys(RemoteJwks::url(url, options))
        .authorized_party("https://app.example.com")
        .build()
        .unwrap();

    // Realistic v2 session tokens: organization, features, plan, custom claims.
    let now = verifier.now();
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| {
            TokenBuilder::session(&key, issuer, now)
                .claim("sub", format!("user_2bench{i:020}"))
                .claim("sid", format!("sess_2bench{i:020}"))
                .claim("exp", now + 3600)
                .claim("azp", "https://app.example.com")
                .claim("email", format!("user{i}@example.com"))
                .claim("fea", "u:chat,o:dashboard,o:billing")
                .claim("pla", "o:pro")
                .claim(
                    "o",
                    json!({"id": "org_2benchorg", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3,2"}),
                )
                .sign()
        })
        .collect();
    rt.block_on(verifier.verify(&tokens[0]))
        .expect("bench token verifies");

    // The raw check: the same key parsed once, the same signing inputs and signatures.
    let jwk = key.jwk();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    let raw_key: ParsedPublicKey = RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .unwrap();
    let raw: Vec<(Vec<u8>, Vec<u8>)> = tokens
        .iter()
        .map(|t| {
            let (input, sig) = t.rsplit_once('.').unwrap();
            (
                input.as_bytes().to_vec(),
                URL_SAFE_NO_PAD.decode(sig).unwrap(),
            )
        })
        .collect();

    let mut clerk_rates = Vec::new();
    let mut raw_rates = Vec::new();
    let mut ratios = Vec::new();
    let mut verify_one = |i: usize| {
        let claims = verifier
            .verify(black_box(&tokens[i % TOKENS]))
            .now_or_never()
            .expect("warm cache never awaits")
            .expect("valid");
        black_box(claims);
    };
    let mut raw_one = |i: usize| {
        let (input, sig) = &raw[i % TOKENS];
        raw_key
            .verify_sig(black_box(input), black_box(sig))
            .expect("valid");
    };
    // `VERIFY_BENCH_PROFILE=clerk|raw|scan|serde`: run 2,000 calls of one side and stop,
    // for instruction counts under `valgrind --tool=callgrind` (stable under machine
    // load) or allocation counts under `valgrind --tool=dhat`. The `raw` side is the
    // floor both tools subtract; `scan` and `serde` read the first token's payload into
    // claim slots with the scanner the verifier uses and with serde_json, for comparing
    // the two.
    if let Some(side) = profile {
        let payload = URL_SAFE_NO_PAD
            .decode(tokens[0].split('.').nth(1).unwrap())
            .unwrap();
        let payload = std::str::from_utf8(&payload).unwrap();
        for i in 0..2000 {
            match side.as_str() {
                "clerk" => verify_one(i),
                "scan" => assert!(clerk_jwt::__fuzz::scan_claims(black_box(payload))),
                "serde" => assert!(clerk_jwt::__fuzz::serde_claims(black_box(payload))),
                _ => raw_one(i),
            }
        }
        return;
    }
    for round in 0..ROUNDS {
        let (clerk, bare) = measure_pair(&mut verify_one, &mut raw_one);
        println!(
            "round {}: clerk-jwt {clerk:>9.0}/s  raw RSA {bare:>9.0}/s  ratio {:.3}",
            round + 1,
            clerk / bare
        );
        clerk_rates.push(clerk);
        raw_rates.push(bare);
        ratios.push(clerk / bare);
    }
    let round_ratios: Vec<f64> = ratios
        .iter()
        .map(|r| (r * 1000.0).round() / 1000.0)
        .collect();
    let clerk = median(&mut clerk_rates);
    let bare = median(&mut raw_rates);
    let ratio = median(&mut ratios);
    println!(
        "verify: clerk-jwt {clerk:.0}/s, raw RSA-2048 {bare:.0}/s (medians), ratio {ratio:.3} (median of the {ROUNDS} rounds' ratios; target >= {TARGET_RATIO:.2}, fails below {FLOOR_RATIO:.2})"
    );
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let report = json!({
        "clerk_jwt_per_s": clerk.round(),
        "raw_rsa_per_s": bare.round(),
        "ratio": (ratio * 1000.0).round() / 1000.0,
        "round_ratios": round_ratios,
    });
    let path = dir.join("verify.json");
    std::fs::write(&path, format!("{report}\n")).unwrap();
    println!("wrote {}", path.display());
    if ratio < FLOOR_RATIO {
        eprintln!(
            "FAILED: the verify ratio {ratio:.3} is below the floor of {FLOOR_RATIO:.2} (clerk-jwt {clerk:.0}/s against raw RSA {bare:.0}/s): the hot path regressed"
        );
        std::process::exit(1);
    }
}

/// Runs `a` and `b` in alternating slices of `SLICE` calls for about `ROUND_TIME`, so
/// both see the same machine load, and returns each one's calls per second.
fn measure_pair(a: &mut impl FnMut(usize), b: &mut impl FnMut(usize)) -> (f64, f64) {
    const SLICE: usize = 64;
    for i in 0..SLICE * 4 {
        a(i);
        b(i);
    }
    let (mut time_a, mut time_b) = (Duration::ZERO, Duration::ZERO);
    let mut calls = 0usize;
    let start = Instant::now();
    while start.elapsed() < ROUND_TIME {
        let t = Instant::now();
        for i in calls..calls + SLICE {
            a(i);
        }
        time_a += t.elapsed();
        let t = Instant::now();
        for i in calls..calls + SLICE {
            b(i);
        }
        time_b += t.elapsed();
        calls += SLICE;
    }
    (
        calls as f64 / time_a.as_secs_f64(),
        calls as f64 / time_b.as_secs_f64(),
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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

/// Polls a future once: the warm-cache path must complete without awaiting.
trait NowOrNever: Future + Sized {
    fn now_or_never(self) -> Option<Self::Output> {
        let mut fut = std::pin::pin!(self);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}

impl<F: Future> NowOrNever for F {}
