//! Receive Clerk webhooks: an axum route that verifies each delivery's Svix signature
//! on the raw body with `clerk_webhooks::Verifier` and reads it as a typed Clerk event.
//! A forged, tampered or stale delivery gets 400; a verified one 200.
//!
//! Settings, from the environment:
//!
//! - `CLERK_WEBHOOK_SIGNING_SECRET` (required): the endpoint's `whsec_…` signing secret
//!   (several, separated by spaces or commas, during a rotation);
//! - `LISTEN_ADDR`: default `127.0.0.1:3001` (`127.0.0.1:0` picks a free port).
//!
//! Point a Clerk webhook endpoint at `http://<host>/webhooks/clerk`.
//!
//! ```sh
//! CLERK_WEBHOOK_SIGNING_SECRET=whsec_… cargo run -p clerk-instant-examples --bin webhook-receiver
//! ```
//!
//! Dependencies: `clerk-webhooks`, `axum`, `tokio` (features `macros`,
//! `rt-multi-thread`, `net`).

#![allow(clippy::print_stdout)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clerk_webhooks::{Event, Secrets, Verifier};

async fn receive(
    State(verifier): State<Arc<Verifier>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    match verifier.verify_now(&headers, &body) {
        Ok(delivery) => {
            let what = match &delivery.event {
                Event::SessionRevoked(s) | Event::SessionEnded(s) | Event::SessionRemoved(s) => {
                    format!("session {} of user {}", s.id, s.user_id)
                }
                Event::UserDeleted(u) => format!("user {} deleted", u.id.as_deref().unwrap_or("?")),
                other => format!("user {}", other.user_id().unwrap_or("-")),
            };
            println!(
                "verified {} {}: {what}",
                delivery.id,
                delivery.event.event_type()
            );
            (StatusCode::OK, "ok\n".into())
        }
        Err(error) => {
            // Behaviour hangs on the error's kind, never on its text.
            println!("refused: {}", error.code());
            let status = if error.is_refused() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (status, format!("{}\n", error.code()))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secrets = Secrets::parse(
        &std::env::var("CLERK_WEBHOOK_SIGNING_SECRET")
            .map_err(|_| "set CLERK_WEBHOOK_SIGNING_SECRET to the endpoint's whsec_… secret")?,
    )?;
    let verifier = Arc::new(Verifier::new(secrets));
    let app = Router::new()
        .route("/webhooks/clerk", post(receive))
        .with_state(verifier);

    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
