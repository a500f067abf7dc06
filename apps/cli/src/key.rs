//! `clerk-instant key …`: publishable keys.

use clap::{Args, Subcommand};
use clerk_jwt::PublishableKey;
use serde_json::json;

use crate::Outcome;
use crate::output::{print, print_json, rows};

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Decode a publishable key: its Frontend API host, instance kind, issuer and URLs.
    Decode(DecodeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The publishable key (pk_test_… or pk_live_…).
    #[arg(env = "CLERK_PUBLISHABLE_KEY")]
    publishable_key: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: KeyCommand) -> anyhow::Result<Outcome> {
    match command {
        KeyCommand::Decode(args) => decode(&args),
    }
}

fn decode(args: &DecodeArgs) -> anyhow::Result<Outcome> {
    let pk = PublishableKey::parse(&args.publishable_key).map_err(|e| {
        anyhow::anyhow!(
            "{:#}\nhint: copy the publishable key from the Clerk dashboard (API keys)",
            anyhow::Error::new(e)
        )
    })?;
    if args.json {
        print_json(&json!({
            "publishable_key": pk.as_str(),
            "instance": pk.kind(),
            "frontend_api": pk.frontend_api(),
            "issuer": pk.issuer(),
            "jwks_url": pk.jwks_url(),
            "discovery_url": pk.discovery_url(),
            "cookie_suffix": pk.cookie_suffix(),
        }))?;
    } else {
        print(&rows(&[
            ("publishable key", pk.as_str().to_owned()),
            ("instance", pk.kind().to_string()),
            ("frontend API", pk.frontend_api().to_owned()),
            ("issuer", pk.issuer()),
            ("JWKS URL", pk.jwks_url()),
            ("discovery URL", pk.discovery_url()),
            (
                "session cookie",
                format!(
                    "__session (or __session_{} on shared domains)",
                    pk.cookie_suffix()
                ),
            ),
        ]))?;
    }
    Ok(Outcome::Success)
}
