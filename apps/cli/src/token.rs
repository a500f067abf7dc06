//! `clerk-instant token …`: inspect and verify session tokens.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use clerk_jwt::{
    Clock, Error, KeySet, ManualClock, PublishableKey, Reason, RemoteJwks, RemoteOptions,
    SessionClaims, SystemClock, Verifier, VerifyingKey,
};
use serde_json::json;
use service_config::AuthorizedParties;

use crate::date;
use crate::output::rows;
use crate::report::{Failure, Report};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Show a token's header and claims WITHOUT verifying it, with the warnings a user
    /// setting up Clerk and InstantDB needs.
    Inspect(InspectArgs),
    /// Verify a session token with every rule and print its claims or why it was
    /// rejected. Exit 0 valid, 1 rejected, 2 usage or configuration error, 3 not
    /// checked (the signing keys could not be fetched).
    Verify(Box<VerifyArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The token, or - to read it from stdin (keeps it out of shell history).
    token: String,
    /// Judge expiry as of this Unix time instead of now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<i64>,
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
    /// Require azp to be this origin (repeatable, or comma-separated in the env var);
    /// a trailing / is dropped, a path is refused, * accepts any.
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
}

/// Runs `clerk-instant token …`.
pub(crate) async fn run(command: TokenCommand) -> Result<Report, Failure> {
    match command {
        TokenCommand::Inspect(args) => inspect(&args),
        TokenCommand::Verify(args) => verify(*args).await,
    }
}

/// The token given as `arg`, or read from stdin when it is `-`; a pasted `Bearer `
/// prefix is removed. May be empty: an empty token is for the verifier to reject.
pub(crate) fn read_token(arg: &str) -> Result<String, Failure> {
    let token = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage_because("reading the token from stdin failed", &e))?;
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
    Ok(token.to_owned())
}

/// [`read_token`], refusing an empty token as a usage error (for the commands that
/// need the settings before a token can be judged).
pub(crate) fn read_required_token(arg: &str) -> Result<String, Failure> {
    let token = read_token(arg)?;
    if token.is_empty() {
        return Err(Failure::usage("no token given"));
    }
    Ok(token)
}

fn clock(at: Option<i64>) -> Arc<dyn Clock> {
    match at {
        Some(at) => Arc::new(ManualClock::new(at)),
        None => Arc::new(SystemClock),
    }
}

fn inspect(args: &InspectArgs) -> Result<Report, Failure> {
    let token = read_token(&args.token)?;
    let inspection = match clerk_jwt::inspect(&token) {
        Ok(inspection) => inspection,
        Err(error) => return rejection(&error),
    };
    let now = clock(args.at).now();
    let warnings = inspection.warnings(now);
    let times = times(&inspection.payload, now);
    let mut text = String::from(
        "NOT VERIFIED: inspect shows what the token says, not whether it is true\n\nheader:\n",
    );
    text.push_str(&pretty(&inspection.header));
    text.push_str("\n\npayload:\n");
    text.push_str(&pretty(&inspection.payload));
    text.push('\n');
    text.push_str(&times.text);
    if warnings.is_empty() {
        text.push_str("\nno warnings\n");
    } else {
        text.push_str("\nwarnings:\n");
        for warning in &warnings {
            text.push_str(&format!("  - {warning}\n"));
        }
    }
    let json = json!({
        "header": inspection.header,
        "payload": inspection.payload,
        "dates": times.json,
        "warnings": warnings,
    });
    Ok(Report::success(json, text))
}

/// A token's times as dates: text rows and a JSON object of RFC 3339 strings.
struct Times {
    text: String,
    json: serde_json::Value,
}

/// The `iat`, `nbf` and `exp` claims the payload holds as numbers, shown as dates with
/// their age as of `now`, and `now` itself.
fn times(payload: &serde_json::Map<String, serde_json::Value>, now: i64) -> Times {
    let mut text = String::from("\ndates:\n");
    let mut json = serde_json::Map::new();
    let claims = [("iat", "issued"), ("nbf", "not before"), ("exp", "expires")];
    let found = claims
        .iter()
        .filter_map(|(claim, label)| Some((*claim, *label, payload.get(*claim)?.as_i64()?)));
    let mut rows_of: Vec<(&str, String)> = found
        .map(|(claim, label, at)| {
            json.insert(claim.to_owned(), json!(instant(at)));
            (label, date::shown(at, now))
        })
        .collect();
    json.insert("checked_at".to_owned(), json!(instant(now)));
    rows_of.push(("checked at", date::shown(now, now)));
    for line in rows(&rows_of).lines() {
        text.push_str(&format!("  {line}\n"));
    }
    Times {
        text,
        json: serde_json::Value::Object(json),
    }
}

/// Unix seconds as RFC 3339, or the number itself before 1970.
fn instant(unix: i64) -> serde_json::Value {
    match u64::try_from(unix) {
        Ok(unix) => json!(date::rfc3339(unix)),
        Err(_) => json!(unix),
    }
}

/// A JSON value, pretty-printed (a `Value` or a map always serializes).
fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

async fn verify(args: VerifyArgs) -> Result<Report, Failure> {
    let token = read_token(&args.token)?;
    let verifier = build_verifier(&args)?;
    match verifier.verify(&token).await {
        Ok(claims) => {
            let text = describe_valid(&claims, verifier.now());
            Ok(Report::success(
                json!({"valid": true, "claims": claims}),
                text,
            ))
        }
        Err(error) => {
            let mut report = rejection(&error)?;
            // A rejection about time shows the token's times as dates.
            let timely = matches!(
                error.reason(),
                Some(
                    Reason::TokenExpired
                        | Reason::TokenNotActiveYet
                        | Reason::TokenIatInTheFuture
                        | Reason::TokenLifetimeTooLong
                )
            );
            if timely && let Ok(inspection) = clerk_jwt::inspect(&token) {
                let times = times(&inspection.payload, verifier.now());
                report.text.push_str(&times.text);
                report.json["dates"] = times.json;
            }
            Ok(report)
        }
    }
}

/// A verdict against the token (exit 1); a failure to decide is a [`Failure`]: exit 3
/// when the keys could not be fetched, 2 when the verifier is misconfigured.
fn rejection(error: &Error) -> Result<Report, Failure> {
    let Error::Rejected { reason, detail } = error else {
        return Err(Failure::verifier(error));
    };
    let json = json!({
        "valid": false,
        "reason": reason.as_str(),
        "message": detail,
        "hint": error.hint(),
    });
    let text = format!(
        "rejected: {}\n  {detail}\n  fix: {}\n",
        reason.as_str(),
        error.hint()
    );
    Ok(Report::rejected(json, text))
}

fn describe_valid(claims: &SessionClaims, now: i64) -> String {
    let email = match (&claims.email, claims.email_verified) {
        (Some(email), Some(true)) => format!("{email} (verified)"),
        (Some(email), Some(false)) => format!("{email} (NOT verified)"),
        (Some(email), None) => format!("{email} (no email_verified claim)"),
        (None, _) => "(none)".to_owned(),
    };
    let mut text = String::from("valid session token\n");
    let expiry = if claims.exp > now {
        date::shown(claims.exp, now)
    } else {
        format!("{} (within the leeway)", date::shown(claims.exp, now))
    };
    text.push_str(&rows(&[
        ("  user", claims.sub.clone()),
        ("  session", claims.sid.clone()),
        ("  email", email),
        ("  issuer", claims.iss.clone()),
        ("  expires", expiry),
    ]));
    text.push_str("\nclaims:\n");
    text.push_str(&pretty(claims));
    text
}

fn build_verifier(args: &VerifyArgs) -> Result<Verifier, Failure> {
    let mut builder = Verifier::builder()
        .leeway(Duration::from_secs(args.leeway))
        .allow_pending_sessions(args.allow_pending)
        .require_email(!args.email_optional)
        .require_verified_email(!args.allow_unverified_email)
        .clock(clock(args.at));
    if let Some(pk) = &args.publishable_key {
        let pk = PublishableKey::parse(pk).map_err(|e| {
            Failure::usage_because(
                "--publishable-key / CLERK_PUBLISHABLE_KEY is not usable",
                &e,
            )
        })?;
        builder = builder.publishable_key(pk);
    }
    for issuer in &args.issuers {
        builder = builder.issuer(issuer);
    }
    // Read as the server reads CLERK_AUTHORIZED_PARTIES: the same normalised origins.
    let parties = AuthorizedParties::parse(&args.authorized_parties).map_err(|problems| {
        Failure::usage(format!(
            "--authorized-party / CLERK_AUTHORIZED_PARTIES {}",
            problems.join("; ")
        ))
    })?;
    for party in parties.origins() {
        builder = builder.authorized_party(party);
    }
    for audience in &args.audiences {
        builder = builder.audience(audience);
    }
    if let Some(path) = &args.jwks_file {
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| {
            Failure::usage_because(&format!("reading the JWKS file {shown} failed"), &e)
        })?;
        let set = KeySet::from_jwks_json(&bytes).map_err(|e| {
            Failure::usage_because(&format!("the JWKS file {shown} is not usable"), &e)
        })?;
        builder = builder.keys(set);
    } else if let Some(path) = &args.pem_file {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::usage_because(&format!("reading the PEM file {shown} failed"), &e)
        })?;
        let key = VerifyingKey::from_pem(&text).map_err(|e| {
            Failure::usage_because(&format!("the PEM file {shown} is not usable"), &e)
        })?;
        builder = builder.keys(clerk_jwt::KeySource::Pem(key));
    } else if let Some(url) = &args.jwks_url {
        builder = builder.keys(RemoteJwks::url(url.clone(), RemoteOptions::default()));
    } else if let Some(pem) = args.jwt_key.as_deref().filter(|p| !p.trim().is_empty()) {
        let key = VerifyingKey::from_pem(pem)
            .map_err(|e| Failure::usage_because("--jwt-key / CLERK_JWT_KEY is not usable", &e))?;
        builder = builder.keys(clerk_jwt::KeySource::Pem(key));
    }
    builder.build().map_err(|e| Failure::verifier(&e))
}
