//! The load bench's calibration (`cargo xtask bench server`, phases `mix` and `cold`):
//! a forwarding proxy that does nothing else. Every request is sent on to the upstream
//! given as the only argument (method, path, query, headers and body as they came), and
//! its status, content type and body come back. It is built from what the server is
//! built from (axum and hyper in, reqwest out, tokio's multi-threaded runtime,
//! mimalloc), so the bench can show what one HTTP hop costs on the machine: the ceiling
//! of any server placed in front of InstantDB there, whatever it does.
//!
//! ```text
//! cargo run --release -p clerk-instant-server --example bench_hop -- http://127.0.0.1:4000
//! ```
//!
//! It prints the address it listens on (`127.0.0.1`, a free port), then serves until
//! killed. Not for production: no limits, no timeouts beyond the connect one, and an
//! upstream failure is a bare 502.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The largest request body forwarded: far above anything the bench sends.
const MAX_BODY: usize = 1 << 20;

#[derive(Clone)]
struct Hop {
    http: reqwest::Client,
    upstream: String,
}

async fn forward(State(hop): State<Hop>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    headers.remove(header::HOST);
    let sent = hop
        .http
        .request(parts.method, format!("{}{path}", hop.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(answer) = sent else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let Ok(body) = answer.bytes().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

async fn serve(upstream: String) -> std::io::Result<()> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(std::io::Error::other)?;
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(Hop { http, upstream });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", listener.local_addr()?)?;
    out.flush()?;
    axum::serve(listener, app).await
}

fn main() -> ExitCode {
    let Some(upstream) = std::env::args().nth(1) else {
        let _ = writeln!(std::io::stderr(), "usage: bench_hop <upstream base URL>");
        return ExitCode::from(2);
    };
    let upstream = upstream.trim_end_matches('/').to_owned();
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .and_then(|runtime| runtime.block_on(serve(upstream)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "bench_hop: {error}");
            ExitCode::FAILURE
        }
    }
}
