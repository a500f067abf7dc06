//! An axum app whose routes need a verified Clerk session: `clerk_jwt::axum::ClerkSession`
//! in a handler's arguments is all it takes. The token is read from
//! `Authorization: Bearer …` or the `__session` cookie, verified with every rule, and a
//! failure answers 401 (`{"error": {"code", "message"}}`) before the handler runs.
//!
//! Settings, from the environment:
//!
//! - `CLERK_PUBLISHABLE_KEY` (required): `pk_test_…`/`pk_live_…`, which gives the issuer
//!   and the JWKS URL;
//! - `CLERK_AUTHORIZED_PARTIES` (recommended): comma-separated origins allowed in `azp`;
//! - `LISTEN_ADDR`: default `127.0.0.1:3000` (`127.0.0.1:0` picks a free port).
//!
//! ```sh
//! CLERK_PUBLISHABLE_KEY=pk_test_… cargo run -p clerk-instant-examples --bin axum-app
//! curl -s localhost:3000/me -H "authorization: Bearer $TOKEN"
//! ```
//!
//! Dependencies: `clerk-jwt` (feature `axum`), `axum`, `tokio` (features `macros`,
//! `rt-multi-thread`, `net`), `serde_json`.

#![allow(clippy::print_stdout)]

use axum::routing::get;
use axum::{Json, Router};
use clerk_jwt::axum::{ClerkAuth, ClerkSession};
use clerk_jwt::{PublishableKey, Verifier};
use serde_json::{Value, json};

/// Only a verified session reaches this handler.
async fn me(session: ClerkSession) -> Json<Value> {
    let claims = session.claims;
    Json(json!({
        "user_id": claims.sub,
        "session_id": claims.sid,
        "email": claims.email,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pk: PublishableKey = std::env::var("CLERK_PUBLISHABLE_KEY")
        .map_err(|_| "set CLERK_PUBLISHABLE_KEY to your Clerk publishable key (pk_test_…)")?
        .parse()?;
    let mut verifier = Verifier::builder().publishable_key(pk.clone());
    for origin in std::env::var("CLERK_AUTHORIZED_PARTIES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        verifier = verifier.authorized_party(origin);
    }
    let auth = ClerkAuth::new(verifier.build()?, Some(&pk));

    let app = Router::new()
        .route("/", get(|| async { "public: no session needed\n" }))
        .route("/me", get(me))
        .with_state(auth);

    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
