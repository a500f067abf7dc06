//! Per-call overhead of instant-client (building the request, sending it, parsing the
//! answer, retry and tracing bookkeeping) against a bare `reqwest` call sending the same
//! bytes and reading the body, in one run, single-threaded and sequential, both over
//! one reused connection to a loopback server that answers instantly. Writes
//! `target/bench/instant-client.json`.
//!
//! Run with `cargo bench -p instant-client --bench client_overhead`. With
//! `INSTANT_BENCH_PROFILE=client` (or `raw`) it makes 2000 calls of one side only and
//! exits, for instruction counts under `valgrind --tool=callgrind`.

#![allow(missing_docs, clippy::print_stdout)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use instant_client::{AdminToken, Client, Query, Uuid};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

const ROUNDS: usize = 9;
const ROUND_TIME: Duration = Duration::from_millis(2000);
const BATCH: u32 = 100;
const PROFILE_CALLS: u32 = 2000;
const APP_ID: &str = "11111111-2222-4333-8444-555555555555";
const ADMIN_TOKEN: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
/// What the server answers to every request: a small query result.
const ANSWER: &str = r#"{"goals":[{"id":"00000000-0000-4000-8000-000000000001","title":"Get fit","done":false},{"id":"00000000-0000-4000-8000-000000000002","title":"Read","done":true}]}"#;

fn main() {
    // The server gets its own thread and runtime; the clients run on this thread.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .fallback(|| async { ([("content-type", "application/json")], ANSWER) });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    let base = format!("http://{addr}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // One HTTP client (one connection pool) for both sides.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let client = Client::builder(Uuid::parse_str(APP_ID).unwrap())
        .admin_token(AdminToken::new(ADMIN_TOKEN).unwrap())
        .base_url(&base)
        .http_client(http.clone())
        .build()
        .unwrap();
    let query = Query::new(json!({"goals": {"$": {"where": {"title": "x"}}, "todos": {}}}));

    // The bare call: the bytes the client sends, prepared once.
    let url: reqwest::Url = format!("{base}/admin/query?app_id={APP_ID}")
        .parse()
        .unwrap();
    let body = serde_json::to_vec(&query).unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("app-id", APP_ID),
        ("authorization", &format!("Bearer {ADMIN_TOKEN}")),
        (
            "instant-admin-version",
            concat!("v", env!("CARGO_PKG_VERSION")),
        ),
        (
            "instant-core-version",
            concat!("v", env!("CARGO_PKG_VERSION")),
        ),
        ("accept", "*/*"),
    ] {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    }

    let result = rt.block_on(client.query(&query)).unwrap();
    assert_eq!(result["goals"][1]["title"], "Read");

    if let Ok(side) = std::env::var("INSTANT_BENCH_PROFILE") {
        // For callgrind: a fixed number of calls of one side only, server included.
        rt.block_on(async {
            for _ in 0..PROFILE_CALLS {
                if side == "client" {
                    black_box(client.query(black_box(&query)).await.unwrap());
                } else {
                    let response = http
                        .post(url.clone())
                        .headers(headers.clone())
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    black_box(response.bytes().await.unwrap());
                }
            }
        });
        println!("profiled {PROFILE_CALLS} {side} calls");
        return;
    }
    let mut client_rates = Vec::new();
    let mut raw_rates = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        let (through_client, bare) = rt.block_on(interleaved(
            || async {
                black_box(client.query(black_box(&query)).await.unwrap());
            },
            || async {
                let response = http
                    .post(url.clone())
                    .headers(headers.clone())
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                black_box(response.bytes().await.unwrap());
            },
        ));
        println!(
            "round {}: instant-client {through_client:>8.0}/s  bare reqwest {bare:>8.0}/s  ratio {:.3}",
            round + 1,
            through_client / bare
        );
        client_rates.push(through_client);
        raw_rates.push(bare);
        ratios.push(through_client / bare);
    }
    let client_per_s = median(&mut client_rates);
    let raw_per_s = median(&mut raw_rates);
    // Rounds are interleaved, so the ratio within a round is the steadier figure.
    let ratio = median(&mut ratios);
    println!(
        "client_overhead: instant-client {client_per_s:.0}/s, bare reqwest {raw_per_s:.0}/s, ratio {ratio:.3} (medians of {ROUNDS} rounds; target >= 0.9)"
    );
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let report = json!({
        "client_per_s": client_per_s.round(),
        "raw_reqwest_per_s": raw_per_s.round(),
        "ratio": (ratio * 1000.0).round() / 1000.0,
    });
    let path = dir.join("instant-client.json");
    std::fs::write(&path, format!("{report}\n")).unwrap();
    println!("wrote {}", path.display());
}

/// Runs batches of `a` and `b` in turn (alternating which goes first) for about
/// `ROUND_TIME`, so drift in machine load hits both alike; calls per second of each.
async fn interleaved<A, FA, B, FB>(mut a: A, mut b: B) -> (f64, f64)
where
    A: FnMut() -> FA,
    FA: Future<Output = ()>,
    B: FnMut() -> FB,
    FB: Future<Output = ()>,
{
    for _ in 0..BATCH {
        a().await;
        b().await;
    }
    let (mut time_a, mut time_b) = (Duration::ZERO, Duration::ZERO);
    let mut batches = 0u32;
    let start = Instant::now();
    while start.elapsed() < ROUND_TIME {
        for turn in 0..2 {
            let t = Instant::now();
            if (turn + batches).is_multiple_of(2) {
                for _ in 0..BATCH {
                    a().await;
                }
                time_a += t.elapsed();
            } else {
                for _ in 0..BATCH {
                    b().await;
                }
                time_b += t.elapsed();
            }
        }
        batches += 1;
    }
    let calls = f64::from(batches * BATCH);
    (calls / time_a.as_secs_f64(), calls / time_b.as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `$CLERK_INSTANT_BENCH_DIR`, else `$CARGO_TARGET_DIR/bench`, else
/// `<workspace>/target/bench`.
fn bench_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLERK_INSTANT_BENCH_DIR") {
        return dir.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench")
}
