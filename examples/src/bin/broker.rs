//! A service calling `auth_core::SessionBroker` directly, without the server: a Clerk
//! session token in, the user's InstantDB session out (reused on the next sign-in, not
//! piled up), a query as the user, then a sign-out of both services.
//!
//! Settings, from the environment:
//!
//! - `CLERK_PUBLISHABLE_KEY`, `INSTANT_APP_ID` (required);
//! - `CLERK_SESSION_TOKEN` (required): the token to sign in with (in a real service it
//!   comes with each request);
//! - `INSTANT_API_URI`: default `https://api.instantdb.com`;
//! - `INSTANT_CLERK_CLIENT_NAME`: the Clerk client's name in Instant, default `clerk`;
//! - `CLERK_SECRET_KEY` (optional, with `CLERK_API_URL`): revoke the Clerk session too
//!   on sign-out; without it the Clerk half is reported as skipped.
//!
//! ```sh
//! CLERK_PUBLISHABLE_KEY=pk_test_… INSTANT_APP_ID=… CLERK_SESSION_TOKEN=$TOKEN \
//!   cargo run -p clerk-instant-examples --bin broker
//! ```
//!
//! Dependencies: `auth-core`, `clerk-jwt`, `instant-client`, `clerk-backend` (for the
//! Clerk half of sign-out), `tokio` (features `macros`, `rt-multi-thread`),
//! `serde_json`.

#![allow(clippy::print_stdout)]

use std::sync::Arc;

use auth_core::{
    BrokerConfig, ClerkSessions, MemorySessionStore, SessionBroker, StoreLimits, Strategy,
};
use clerk_backend::BackendClient;
use clerk_jwt::{PublishableKey, SecretKey, Verifier};
use instant_client::{Client, Query, Uuid};
use serde_json::json;

fn required(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (see this program's docs)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pk: PublishableKey = required("CLERK_PUBLISHABLE_KEY")?.parse()?;
    let app_id = Uuid::parse_str(&required("INSTANT_APP_ID")?)?;
    let token = required("CLERK_SESSION_TOKEN")?;

    let verifier = Verifier::builder().publishable_key(pk).build()?;
    let mut instant = Client::builder(app_id);
    if let Ok(uri) = std::env::var("INSTANT_API_URI") {
        instant = instant.base_url(uri);
    }
    let clerk: Option<Arc<dyn ClerkSessions>> = match std::env::var("CLERK_SECRET_KEY") {
        Ok(secret) => {
            let mut backend = BackendClient::builder(SecretKey::new(secret)?);
            if let Ok(url) = std::env::var("CLERK_API_URL") {
                backend = backend.base_url(url);
            }
            Some(Arc::new(backend.build()?))
        }
        Err(_) => None,
    };
    let client_name = std::env::var("INSTANT_CLERK_CLIENT_NAME").unwrap_or_else(|_| "clerk".into());
    let broker = SessionBroker::new(
        BrokerConfig::new(Strategy::IdToken { client_name }),
        Arc::new(verifier),
        Arc::new(instant.build()?),
        clerk,
        Arc::new(MemorySessionStore::new(StoreLimits::default())),
    );

    // The token is verified locally first: a bad one never reaches InstantDB.
    let session = broker.sign_in(&token).await?;
    println!(
        "signed in: Clerk user {} is InstantDB user {} ({}), created: {}",
        session.clerk.user_id,
        session.user.id,
        session.user.email.as_deref().unwrap_or("no email"),
        session.created,
    );
    // `session.refresh_token` is the user's InstantDB credential: hand it to the client.

    let again = broker.sign_in(&token).await?;
    println!("signed in again: session reused: {}", again.reused);

    let goals = broker
        .query(&token, &Query::new(json!({ "goals": {} })))
        .await?;
    println!("query as the user: {goals}");

    let out = broker.sign_out(&token, None).await?;
    println!(
        "signed out: InstantDB {:?}, Clerk {:?}",
        out.instant, out.clerk_session
    );
    Ok(())
}
