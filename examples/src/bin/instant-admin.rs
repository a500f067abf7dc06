//! `instant-client` alone, with an app's admin token: write and read data, mint a
//! refresh token for a user, and read as that user (InstantDB's permission rules apply
//! to impersonated calls). No Clerk involved.
//!
//! Settings, from the environment:
//!
//! - `INSTANT_APP_ID`, `INSTANT_APP_ADMIN_TOKEN` (required);
//! - `INSTANT_API_URI`: default `https://api.instantdb.com`.
//!
//! ```sh
//! INSTANT_APP_ID=… INSTANT_APP_ADMIN_TOKEN=… cargo run -p clerk-instant-examples --bin instant-admin
//! ```
//!
//! Dependencies: `instant-client`, `tokio` (features `macros`, `rt-multi-thread`),
//! `serde_json`.

#![allow(clippy::print_stdout)]

use instant_client::{
    AdminToken, Client, EntityId, Query, TokenSubject, Transaction, UserRef, Uuid,
};
use serde_json::json;

fn required(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (see this program's docs)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app_id = Uuid::parse_str(&required("INSTANT_APP_ID")?)?;
    let mut builder =
        Client::builder(app_id).admin_token(AdminToken::new(required("INSTANT_APP_ADMIN_TOKEN")?)?);
    if let Ok(uri) = std::env::var("INSTANT_API_URI") {
        builder = builder.base_url(uri);
    }
    let client = builder.build()?;

    // Write as the admin (no permission rules), then read it back.
    let goal = EntityId::random();
    let tx = client
        .transact(&Transaction::new().update("goals", goal, json!({ "title": "Get fit" })))
        .await?;
    println!("transacted: tx {}", tx.0);
    let goals = client.query(&Query::new(json!({ "goals": {} }))).await?;
    println!("goals: {goals}");

    // A user and their InstantDB session, minted with the admin token.
    let email = "admin-example@example.com";
    let signed_in = client
        .create_token(&TokenSubject::Email(email.into()))
        .await?;
    println!(
        "refresh token minted for InstantDB user {}",
        signed_in.user.id
    );
    let found = client.get_user(&UserRef::Email(email.into())).await?;
    println!(
        "user by email: {}",
        found.map_or("none".to_owned(), |u| u.id.to_string())
    );

    // Read as that user: the same query, under their permissions.
    let theirs = client
        .as_refresh_token(signed_in.refresh_token.clone())
        .query(&Query::new(json!({ "goals": {} })))
        .await?;
    println!("goals as the user: {theirs}");

    // End the session again (refresh tokens never expire by themselves).
    client.sign_out(&signed_in.refresh_token).await?;
    println!("signed the user's refresh token out");
    Ok(())
}
