//! `clerk-instant token …`: inspect and verify session tokens.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};
use clerk_jwt::{
    Clock, Error, KeySet, ManualClock, PublishableKey, RemoteJwks, RemoteOptions, SessionClaims,
    SystemClock, Verifier, VerifyingKey,
};
use serde_json::json;

use crate::Outcome;
use crate::output::{print, print_json, rows};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Show a token's header and claims WITHOUT verifying it, with the warnings a user
    /// setting up Clerk and InstantDB needs.
    Inspect(InspectArgs),
    /// Verify a session token with every rule and print its claims or why it was
    /// rejected. Exit 0 valid, 1 rejected, 2 usage or configuration error.
    Verify(Box<VerifyArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The token, or - to read it from stdin (keeps it out of shell history).
    token: String,
    /// Judge expiry as of this Unix time instead of now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<i64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("key_source").args(["jwks_file", "jwks_url", "pem_file"])))]
pub(crate) struct VerifyArgs {
    /// The token, or - to read it from stdin (keeps it out of shell history).
    token: String,
    /// Verify with the keys of this JWKS file.
    #[arg(long, value_name = "FILE")]
    jwks_file: Option<PathBuf>,
    /// Verify with the keys fetched from this JWKS URL.
    #[arg(long, value_name = "URL")]
    jwks_url: Option<String>,
    /// Verify with this PEM public key (the dashboard's "JWT public key"), no network.
    #[arg(long, value_name = "FILE")]
    pem_file: Option<PathBuf>,
    /// The PEM public key itself, used when no other key source flag is given.
    #[arg(
        long,
        env = "CLERK_JWT_KEY",
        hide_env_values = true,
        value_name = "PEM"
    )]
    jwt_key: Option<String>,
    /// The publishable key: gives the issuer and, with no other key source, the JWKS URL.
    #[arg(long, env = "CLERK_PUBLISHABLE_KEY", value_name = "PK")]
    publishable_key: Option<String>,
    /// Also accept this issuer (satellite domain, proxy). Repeatable.
    #[arg(long = "issuer", value_name = "URL")]
    issuers: Vec<String>,
    /// Require azp to be this origin (repeatable, or comma-separated in the env var).
    #[arg(
        long = "authorized-party",
        env = "CLERK_AUTHORIZED_PARTIES",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    authorized_parties: Vec<String>,
    /// Require aud to contain this value. Repeatable.
    #[arg(long = "audience", value_name = "AUD")]
    audiences: Vec<String>,
    /// Clock-skew allowance in seconds (at most 30).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    leeway: u64,
    /// Verify as of this Unix time instead of now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<i64>,
    /// Accept sessions whose status is pending.
    #[arg(long)]
    allow_pending: bool,
    /// Do not require the email claim.
    #[arg(long)]
    email_optional: bool,
    /// Accept email_verified: false.
    #[arg(long)]
    allow_unverified_email: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(command: TokenCommand) -> anyhow::Result<Outcome> {
    match command {
        TokenCommand::Inspect(args) => inspect(&args),
        TokenCommand::Verify(args) => verify(*args).await,
    }
}

pub(crate) fn read_token(arg: &str) -> anyhow::Result<String> {
    let token = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .context("reading the token from stdin")?;
        text
    } else {
        arg.to_owned()
    };
    let token = token.trim();
    // Accept a pasted "Bearer <token>" header value.
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token);
    anyhow::ensure!(!token.is_empty(), "no token given");
    Ok(token.to_owned())
}

fn clock(at: Option<i64>) -> Arc<dyn Clock> {
    match at {
        Some(at) => Arc::new(ManualClock::new(at)),
        None => Arc::new(SystemClock),
    }
}

fn inspect(args: &InspectArgs) -> anyhow::Result<Outcome> {
    let token = read_token(&args.token)?;
    let inspection = match clerk_jwt::inspect(&token) {
        Ok(inspection) => inspection,
        Err(error) => return report_rejection(&error, args.json),
    };
    let now = clock(args.at).now();
    let warnings = inspection.warnings(now);
    if args.json {
        print_json(&json!({
            "header": inspection.header,
            "payload": inspection.payload,
            "warnings": warnings,
        }))?;
    } else {
        let mut text = String::from(
            "NOT VERIFIED: inspect shows what the token says, not whether it is true\n\nheader:\n",
        );
        text.push_str(&serde_json::to_string_pretty(&inspection.header)?);
        text.push_str("\n\npayload:\n");
        text.push_str(&serde_json::to_string_pretty(&inspection.payload)?);
        text.push('\n');
        if warnings.is_empty() {
            text.push_str("\nno warnings\n");
        } else {
            text.push_str("\nwarnings:\n");
            for warning in &warnings {
                text.push_str(&format!("  - {warning}\n"));
            }
        }
        print(&text)?;
    }
    Ok(Outcome::Success)
}

async fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let token = read_token(&args.token)?;
    let verifier = build_verifier(&args)?;
    match verifier.verify(&token).await {
        Ok(claims) => {
            let now = verifier.now();
            if args.json {
                print_json(&json!({"valid": true, "claims": claims}))?;
            } else {
                print(&describe_valid(&claims, now)?)?;
            }
            Ok(Outcome::Success)
        }
        Err(error) if error.is_config() => Err(anyhow::anyhow!(
            "{:#}\nhint: {}",
            anyhow::Error::new(error.clone()),
            error.hint()
        )),
        Err(error) => report_rejection(&error, args.json),
    }
}

fn report_rejection(error: &Error, json: bool) -> anyhow::Result<Outcome> {
    let reason = error
        .reason()
        .map_or("token-verification-failed", |r| r.as_str());
    let message = match error {
        Error::Rejected { detail, .. } => detail.clone(),
        other => format!("{:#}", anyhow::Error::new(other.clone())),
    };
    if json {
        print_json(&json!({
            "valid": false,
            "reason": reason,
            "message": message,
            "hint": error.hint(),
        }))?;
    } else {
        print(&format!(
            "rejected: {reason}\n  {message}\n  fix: {}\n",
            error.hint()
        ))?;
    }
    Ok(Outcome::Rejected)
}

fn describe_valid(claims: &SessionClaims, now: i64) -> anyhow::Result<String> {
    let email = match (&claims.email, claims.email_verified) {
        (Some(email), Some(true)) => format!("{email} (verified)"),
        (Some(email), Some(false)) => format!("{email} (NOT verified)"),
        (Some(email), None) => format!("{email} (no email_verified claim)"),
        (None, _) => "(none)".to_owned(),
    };
    let mut text = String::from("valid session token\n");
    let expiry = if claims.exp > now {
        format!("{} (in {} s)", claims.exp, claims.exp - now)
    } else {
        format!(
            "{} ({} s ago, within the leeway)",
            claims.exp,
            now - claims.exp
        )
    };
    text.push_str(&rows(&[
        ("  user", claims.sub.clone()),
        ("  session", claims.sid.clone()),
        ("  email", email),
        ("  issuer", claims.iss.clone()),
        ("  expires", expiry),
    ]));
    text.push_str("\nclaims:\n");
    text.push_str(&serde_json::to_string_pretty(claims)?);
    Ok(text)
}

fn build_verifier(args: &VerifyArgs) -> anyhow::Result<Verifier> {
    let mut builder = Verifier::builder()
        .leeway(Duration::from_secs(args.leeway))
        .allow_pending_sessions(args.allow_pending)
        .require_email(!args.email_optional)
        .require_verified_email(!args.allow_unverified_email)
        .clock(clock(args.at));
    if let Some(pk) = &args.publishable_key {
        let pk = PublishableKey::parse(pk).context("--publishable-key / CLERK_PUBLISHABLE_KEY")?;
        builder = builder.publishable_key(pk);
    }
    for issuer in &args.issuers {
        builder = builder.issuer(issuer);
    }
    for party in args
        .authorized_parties
        .iter()
        .filter(|p| !p.trim().is_empty())
    {
        builder = builder.authorized_party(party.trim());
    }
    for audience in &args.audiences {
        builder = builder.audience(audience);
    }
    if let Some(path) = &args.jwks_file {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let set = KeySet::from_jwks_json(&bytes).with_context(|| format!("{}", path.display()))?;
        builder = builder.keys(set);
    } else if let Some(path) = &args.pem_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let key = VerifyingKey::from_pem(&text).with_context(|| format!("{}", path.display()))?;
        builder = builder.keys(clerk_jwt::KeySource::Pem(key));
    } else if let Some(url) = &args.jwks_url {
        builder = builder.keys(RemoteJwks::url(url.clone(), RemoteOptions::default()));
    } else if let Some(pem) = args.jwt_key.as_deref().filter(|p| !p.trim().is_empty()) {
        let key = VerifyingKey::from_pem(pem).context("--jwt-key / CLERK_JWT_KEY")?;
        builder = builder.keys(clerk_jwt::KeySource::Pem(key));
    }
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("{:#}\nhint: {}", anyhow::Error::new(e.clone()), e.hint()))
}
