//! `clerk-instant sign-in`, `sign-out`, `query` and `transact`: a user's Clerk session
//! token in; their InstantDB session, or what they can read and write, out.
//!
//! Without `SESSION_STORE_URL` a command is one process with no session store, so
//! `query` and `transact` sign in, act as the user through their fresh refresh token,
//! and sign that token out again: InstantDB refresh tokens never expire, and one-shot
//! commands must not pile them up. With the servers' shared store they use (and keep)
//! the session stored there, as a server replica would: signing it out would sign the
//! user's browser out too.

use std::io::Read as _;
use std::path::PathBuf;

use auth_core::{Half, InstantOp, SignIn};
use clap::Args;
use instant_client::{Impersonated, Query, RefreshToken, Transaction, TxId};
use serde_json::{Value, json};

use crate::output::rows;
use crate::report::{Failure, Report, describe};
use crate::service::{Service, ServiceArgs, is_stdin, read_secret};
use crate::token::read_required_token;

/// The most bytes read for a query or a transaction (from a file or stdin).
const MAX_DOCUMENT: u64 = 1024 * 1024;

#[derive(Debug, Args)]
pub(crate) struct SignInArgs {
    /// The Clerk session token, or - to read it from stdin (keeps it out of shell history).
    token: String,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SignOutArgs {
    /// The Clerk session token, or - to read it from stdin.
    token: String,
    /// The InstantDB refresh token to sign out (the one `sign-in` printed), or - to read
    /// it from stdin; also from INSTANT_REFRESH_TOKEN or --refresh-token-file (a value
    /// given here is visible in `ps` and shell history). Without one, only the Clerk
    /// session is revoked.
    #[arg(
        long,
        value_name = "REFRESH_TOKEN",
        env = "INSTANT_REFRESH_TOKEN",
        hide_env_values = true
    )]
    refresh_token: Option<String>,
    /// Read the InstantDB refresh token from FILE, or from stdin with -.
    #[arg(long, value_name = "FILE|-", conflicts_with = "refresh_token")]
    refresh_token_file: Option<PathBuf>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The Clerk session token, or - to read it from stdin.
    token: String,
    /// The InstaQL query as JSON (e.g. '{"goals": {}}'), or @FILE, or @- for stdin.
    #[arg(value_name = "INSTAQL_JSON|@FILE")]
    query: String,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TransactArgs {
    /// The Clerk session token, or - to read it from stdin.
    token: String,
    /// The steps as JSON, in InstantDB's wire format: an array of steps such as
    /// [["update", "goals", ID, {"title": "Run"}]] (ID a UUID, quoted), or
    /// {"steps": [...]}; or @FILE, or @- for stdin.
    #[arg(value_name = "STEPS_JSON|@FILE")]
    steps: String,
    #[command(flatten)]
    service: ServiceArgs,
}

fn token_arg(arg: &str) -> Result<String, Failure> {
    read_required_token(arg)
}

fn one_stdin(a: &str, b: &str, what: &str) -> Result<(), Failure> {
    if a == "-" && b == "-" {
        Err(Failure::usage(format!(
            "the token and {what} cannot both be read from stdin"
        )))
    } else {
        Ok(())
    }
}

/// At most one of the command's values (the token, a refresh token, the secrets) may
/// come from stdin.
pub(crate) fn stdin_once(token: &str, others: usize) -> Result<(), Failure> {
    if usize::from(token == "-") + others > 1 {
        Err(Failure::usage(
            "only one value can be read from stdin; give the others as arguments, files or environment variables",
        ))
    } else {
        Ok(())
    }
}

/// JSON given inline, or `@FILE`, or `@-` (stdin).
fn document_arg(arg: &str, what: &str) -> Result<Vec<u8>, Failure> {
    let Some(path) = arg.strip_prefix('@') else {
        return Ok(arg.as_bytes().to_vec());
    };
    let mut bytes = Vec::new();
    let (read, from) = if path == "-" {
        let read = std::io::stdin()
            .take(MAX_DOCUMENT + 1)
            .read_to_end(&mut bytes);
        (read, "stdin")
    } else {
        let read = std::fs::File::open(path)
            .and_then(|file| file.take(MAX_DOCUMENT + 1).read_to_end(&mut bytes));
        (read, path)
    };
    read.map_err(|e| Failure::usage_because(&format!("reading {what} from {from} failed"), &e))?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(Failure::usage(format!(
            "{what} is larger than {MAX_DOCUMENT} bytes"
        )));
    }
    Ok(bytes)
}

/// "alice@example.com (InstantDB user …)".
fn who(signed: &SignIn) -> String {
    let id = signed.user.id;
    match signed.user.email.as_ref().or(signed.clerk.email.as_ref()) {
        Some(email) => format!("{email} (InstantDB user {id})"),
        None => format!("InstantDB user {id}"),
    }
}

/// Runs `clerk-instant sign-in`.
pub(crate) async fn sign_in(args: &SignInArgs) -> Result<Report, Failure> {
    stdin_once(&args.token, args.service.stdin_reads())?;
    let token = token_arg(&args.token)?;
    let service = args.service.connect()?;
    let signed = service
        .broker
        .sign_in(&token)
        .await
        .map_err(|e| Failure::broker(&e))?;
    let json = json!({
        "clerk": signed.clerk,
        "user": &*signed.user,
        "refresh_token": signed.refresh_token.expose(),
        "created": signed.created,
    });
    let email = match &signed.user.email {
        Some(email) => email.clone(),
        None => "(none: InstantDB keeps the email only when the token's email_verified is true)"
            .to_owned(),
    };
    let mut text = format!(
        "signed in to InstantDB (strategy {})\n",
        service.config.strategy.as_str()
    );
    text.push_str(&rows(&[
        ("  InstantDB user", signed.user.id.to_string()),
        ("  email", email),
        (
            "  created",
            if signed.created {
                "yes: InstantDB created the user for this sign-in".to_owned()
            } else {
                "no: the user already existed".to_owned()
            },
        ),
        ("  Clerk user", signed.clerk.user_id.clone()),
        ("  Clerk session", signed.clerk.session_id.clone()),
        ("  refresh token", signed.refresh_token.expose().to_owned()),
    ]));
    text.push_str(
        "\nThe refresh token is the user's InstantDB session and never expires. End it with\n  \
         clerk-instant sign-out <Clerk session token> --refresh-token-file <file holding it>\n  \
         (or --refresh-token - to read it from stdin, or INSTANT_REFRESH_TOKEN)\n",
    );
    Ok(Report::success(json, text))
}

/// One half of a sign-out, as printed.
enum HalfView {
    /// A status with nothing to add (done), by its wire name.
    Plain(&'static str),
    /// Not attempted, and why.
    Skipped(String),
    /// Attempted and failed, and how.
    Failed(String),
}

impl HalfView {
    fn of(half: &Half) -> Self {
        match half {
            Half::Skipped(why) => HalfView::Skipped((*why).to_owned()),
            Half::Failed(error) => HalfView::Failed(describe(error)),
            other => HalfView::Plain(other.as_str()),
        }
    }

    fn json(&self) -> Value {
        match self {
            HalfView::Plain(status) => json!({"status": status}),
            HalfView::Skipped(why) => json!({"status": "skipped", "reason": why}),
            HalfView::Failed(message) => json!({"status": "failed", "message": message}),
        }
    }

    fn text(&self) -> String {
        match self {
            HalfView::Plain(status) => (*status).to_owned(),
            HalfView::Skipped(why) => format!("skipped: {why}"),
            HalfView::Failed(message) => format!("failed: {message}"),
        }
    }
}

/// Runs `clerk-instant sign-out`.
pub(crate) async fn sign_out(args: &SignOutArgs) -> Result<Report, Failure> {
    one_stdin(
        &args.token,
        args.refresh_token.as_deref().unwrap_or_default(),
        "the refresh token",
    )?;
    let refresh_from_stdin = args.refresh_token.as_deref() == Some("-")
        || args.refresh_token_file.as_deref().is_some_and(is_stdin);
    stdin_once(
        &args.token,
        usize::from(refresh_from_stdin) + args.service.stdin_reads(),
    )?;
    let token = token_arg(&args.token)?;
    let refresh_text = match (&args.refresh_token, &args.refresh_token_file) {
        (_, Some(file)) => Some(read_secret(file, "the refresh token")?),
        (Some(arg), None) => Some(read_required_token(arg)?),
        (None, None) => None,
    };
    let refresh_token = match refresh_text {
        None => None,
        Some(text) => Some(RefreshToken::new(text).map_err(|_| {
            Failure::usage("the refresh token given is not an InstantDB refresh token")
        })?),
    };
    let given = refresh_token.is_some();
    let service = args.service.connect()?;
    let out = service
        .broker
        .sign_out(&token, refresh_token)
        .await
        .map_err(|e| Failure::broker(&e))?;
    let instant = match &out.instant {
        // The broker looked for a stored session; a one-shot command has none.
        Half::Skipped(_) if !given => HalfView::Skipped(
            "no refresh token given (a one-shot command keeps no sessions): pass the one sign-in printed, with --refresh-token-file, --refresh-token - (stdin) or INSTANT_REFRESH_TOKEN, to end it".to_owned(),
        ),
        half => HalfView::of(half),
    };
    let clerk = HalfView::of(&out.clerk_session);
    let halves = rows(&[
        ("  InstantDB", instant.text()),
        ("  Clerk session", clerk.text()),
    ]);
    let session = &out.clerk.session_id;
    let failed = match (out.instant.is_failed(), out.clerk_session.is_failed()) {
        (true, true) => Some("neither InstantDB nor Clerk could be signed out"),
        (true, false) => Some("the InstantDB session could not be signed out"),
        (false, true) => Some("the Clerk session could not be revoked"),
        (false, false) => None,
    };
    if let Some(which) = failed {
        let mut failure = Failure::incomplete_sign_out(format!("{which}; retry"));
        failure = failure.with("clerk", json!(out.clerk), None);
        failure = failure.with("instant", instant.json(), None);
        failure = failure.with(
            "clerk_session",
            clerk.json(),
            Some(halves.trim_end().to_owned()),
        );
        return Err(failure);
    }
    let json = json!({
        "clerk": out.clerk,
        "instant": instant.json(),
        "clerk_session": clerk.json(),
    });
    let text = format!("signed out (Clerk session {session})\n{halves}");
    Ok(Report::success(json, text))
}

/// How signing out a one-shot command's session went (`None`: kept, because it lives
/// in the servers' shared store).
struct OneShot(Option<Result<(), instant_client::Error>>);

impl OneShot {
    fn json(&self) -> Value {
        match &self.0 {
            None => json!({
                "status": "skipped",
                "message": "the session is kept in the shared session store (SESSION_STORE_URL), where the servers reuse it",
            }),
            Some(Ok(())) => json!({"status": "done"}),
            Some(Err(e)) => json!({"status": "failed", "message": describe(e)}),
        }
    }

    fn warning(&self) -> Option<String> {
        self.0.as_ref().and_then(|r| r.as_ref().err()).map(|e| {
            format!(
                "the InstantDB session opened for this command could not be signed out: {}",
                describe(e)
            )
        })
    }
}

/// Signs in, runs `call` as the user through the fresh refresh token, and signs that
/// token out again whatever `call` returned.
async fn as_user<T, F, Fut>(
    service: &Service,
    token: &str,
    op: InstantOp,
    call: F,
) -> Result<(SignIn, T, OneShot), Failure>
where
    F: FnOnce(Impersonated) -> Fut,
    Fut: Future<Output = Result<T, instant_client::Error>>,
{
    let signed = service
        .broker
        .sign_in(token)
        .await
        .map_err(|e| Failure::broker(&e))?;
    let instant = &service.clients.instant;
    let result = call(instant.as_refresh_token(signed.refresh_token.clone())).await;
    let signed_out = if service.shared_store() {
        OneShot(None)
    } else {
        OneShot(Some(instant.sign_out(&signed.refresh_token).await))
    };
    match result {
        Ok(value) => Ok((signed, value, signed_out)),
        Err(source) => Err(
            Failure::broker(&auth_core::Error::Instant { op, source }).with(
                "sign_out",
                signed_out.json(),
                signed_out.warning().map(|w| format!("warning: {w}")),
            ),
        ),
    }
}

/// Runs `clerk-instant query`.
pub(crate) async fn query(args: &QueryArgs) -> Result<Report, Failure> {
    one_stdin(
        &args.token,
        args.query.strip_prefix('@').unwrap_or_default(),
        "the query",
    )?;
    stdin_once(&args.token, args.service.stdin_reads())?;
    let token = token_arg(&args.token)?;
    let bytes = document_arg(&args.query, "the query")?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::usage(format!("the query is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(Failure::usage(
            "the query must be an InstaQL object, e.g. {\"goals\": {}}",
        ));
    }
    let query = Query::new(value);
    let service = args.service.connect()?;
    let (signed, result, signed_out) =
        as_user(&service, &token, InstantOp::Query, |user| async move {
            user.query(&query).await
        })
        .await?;
    let json = json!({
        "clerk": signed.clerk,
        "user": &*signed.user,
        "result": result,
        "sign_out": signed_out.json(),
    });
    let text = format!(
        "as {}:\n{}",
        who(&signed),
        serde_json::to_string_pretty(&result).unwrap_or_default()
    );
    let mut report = Report::success(json, text);
    report.warnings.extend(signed_out.warning());
    Ok(report)
}

/// Runs `clerk-instant transact`.
pub(crate) async fn transact(args: &TransactArgs) -> Result<Report, Failure> {
    one_stdin(
        &args.token,
        args.steps.strip_prefix('@').unwrap_or_default(),
        "the steps",
    )?;
    stdin_once(&args.token, args.service.stdin_reads())?;
    let token = token_arg(&args.token)?;
    let bytes = document_arg(&args.steps, "the steps")?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::usage(format!("the steps are not JSON: {e}")))?;
    let body = match value {
        Value::Array(steps) => json!({"steps": steps}),
        other => other,
    };
    let transaction = Transaction::from_json(body.to_string().as_bytes()).map_err(|e| match e {
        instant_client::Error::InvalidInput { detail, .. } => {
            Failure::usage(format!("the transaction is not valid: {detail}"))
        }
        other => Failure::usage(format!("the transaction is not valid: {other}")),
    })?;
    let service = args.service.connect()?;
    let (signed, TxId(tx_id), signed_out) =
        as_user(&service, &token, InstantOp::Transact, |user| async move {
            user.transact(&transaction).await
        })
        .await?;
    let json = json!({
        "clerk": signed.clerk,
        "user": &*signed.user,
        "tx_id": tx_id,
        "sign_out": signed_out.json(),
    });
    let text = format!("transaction {tx_id} applied as {}\n", who(&signed));
    let mut report = Report::success(json, text);
    report.warnings.extend(signed_out.warning());
    Ok(report)
}
