//! `clerk-instant dev`: a local Clerk and an InstantDB emulator for development without
//! accounts, and `clerk-instant dev token` to get a session token from them.

use std::future::Future;
use std::io;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use devstack::clerk::SigningKeySource;
use devstack::{ClerkBackend, ClerkConfig, DevStack, DevStackConfig, InstantConfig, MintOptions};
use serde_json::{Value, json};

use crate::Outcome;
use crate::output::eprint;
use crate::report::{Failure, Report, because, finish};

/// Run a local Clerk and an InstantDB emulator until interrupted, or (`dev token`) get a
/// session token from a running local Clerk.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct DevArgs {
    #[command(subcommand)]
    command: Option<DevCommand>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DevCommand {
    /// Print a fresh session token for a user of the local Clerk, creating the user and
    /// a session if needed. Use it as `id_token` at the emulator, or as a Bearer token.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Port of the local Clerk on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    clerk_port: u16,
    /// Port of the InstantDB emulator on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    instant_port: u16,
    /// Keep the local Clerk's signing key in this file (created if missing), so its kid,
    /// secret key and tokens survive restarts.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Name of the Clerk client registered in the emulator's app.
    #[arg(long, default_value = "clerk", value_name = "NAME")]
    client_name: String,
    /// Let the Clerk client keep unverified emails (InstantDB's older clients).
    #[arg(long)]
    allow_unverified_email: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The user's email address.
    #[arg(long)]
    email: String,
    /// Add the azp claim (the origin of the page that asked for the token, as Clerk's
    /// browser SDKs do), to try CLERK_AUTHORIZED_PARTIES.
    #[arg(long, value_name = "ORIGIN")]
    azp: Option<String>,
    /// Set a claim after the session token template: the value as JSON when it parses
    /// as JSON (42, true, {"a":1}, null), else as a string. Repeatable.
    #[arg(long = "claim", value_name = "KEY=VALUE", value_parser = parse_claim)]
    claims: Vec<(String, Value)>,
    /// Leave out the email and email_verified claims, as Clerk's default session token
    /// does, to try the email checks.
    #[arg(long)]
    no_email: bool,
    /// Expire the token this many seconds from now instead of the local Clerk's 60; zero
    /// or negative mints a token that has already expired.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    expires_in: Option<i64>,
    /// The local Clerk's URL, as `clerk-instant dev` prints it.
    #[arg(long, env = "CLERK_API_URL", value_name = "URL")]
    clerk_url: String,
    /// The local Clerk's secret key, as `clerk-instant dev` prints it.
    #[arg(
        long,
        env = "CLERK_SECRET_KEY",
        hide_env_values = true,
        value_name = "SK",
        value_parser = parse_secret_key
    )]
    secret_key: clerk_jwt::SecretKey,
}

/// Runs `clerk-instant dev …`; `dev` itself prints its report as soon as the stack
/// runs, then waits for Ctrl-C.
pub(crate) async fn run(args: DevArgs, json: bool) -> io::Result<Outcome> {
    match args.command {
        Some(DevCommand::Token(token)) => finish(token_report(&token).await, json),
        None => {
            let print = |report| finish(report, json);
            serve(&args.serve, json, interrupted(), print).await
        }
    }
}

async fn token_report(args: &TokenArgs) -> Result<Report, Failure> {
    let jwt = session_token(args).await?;
    let json = json!({"token": jwt});
    Ok(Report::success(json, format!("{jwt}\n")))
}

/// What `clerk-instant dev` prints: everything a project needs to point at the stack.
/// No `Debug`: it holds the secret key and the admin token.
struct StackInfo {
    clerk_url: String,
    publishable_key: String,
    secret_key: String,
    instant_url: String,
    app_id: String,
    admin_token: String,
    client_name: String,
}

impl StackInfo {
    fn of(stack: &DevStack) -> Self {
        StackInfo {
            clerk_url: stack.clerk.url().to_owned(),
            publishable_key: stack.clerk.publishable_key().as_str().to_owned(),
            secret_key: stack.clerk.secret_key().expose().to_owned(),
            instant_url: stack.instant.url().to_owned(),
            app_id: stack.app.id.clone(),
            admin_token: stack.app.admin_token.expose().to_owned(),
            client_name: stack.client_name.clone(),
        }
    }

    /// The environment that points the server and the other commands at the stack:
    /// one table for the text's `export` lines and the JSON's `env` object.
    fn env(&self) -> [(&'static str, &str); 7] {
        [
            ("CLERK_PUBLISHABLE_KEY", &self.publishable_key),
            ("CLERK_SECRET_KEY", &self.secret_key),
            ("CLERK_API_URL", &self.clerk_url),
            ("INSTANT_API_URI", &self.instant_url),
            ("INSTANT_APP_ID", &self.app_id),
            ("INSTANT_APP_ADMIN_TOKEN", &self.admin_token),
            ("INSTANT_CLERK_CLIENT_NAME", &self.client_name),
        ]
    }

    fn json(&self) -> Value {
        let env: serde_json::Map<String, Value> = self
            .env()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), json!(value)))
            .collect();
        json!({
            "clerk_url": self.clerk_url,
            "publishable_key": self.publishable_key,
            "secret_key": self.secret_key,
            "instant_url": self.instant_url,
            "app_id": self.app_id,
            "admin_token": self.admin_token,
            "client_name": self.client_name,
            "env": env,
        })
    }

    /// The report, its JSON on one line: `dev` keeps running, so a reader takes the
    /// first line.
    fn report(&self) -> Report {
        let mut report = Report::success(self.json(), self.text());
        report.one_line = true;
        report
    }

    /// Shell lines: `export` lines and `#` comments, so that pasting all of it into a
    /// shell sets the environment and runs nothing else.
    fn text(&self) -> String {
        let mut out = String::from(
            "# local Clerk and InstantDB emulator running (Ctrl-C to stop)\n\
             # paste into another shell (made-up development secrets of this stack only):\n",
        );
        for (name, value) in self.env() {
            out.push_str(&format!("export {name}={}\n", shell_quote(value)));
        }
        out.push_str(
            "# then: clerk-instant dev token --email alice@example.com\n\
             # the emulator does not evaluate InstantDB permission rules (every query and\n\
             # transaction is allowed); local development only, nothing is persisted\n",
        );
        out
    }
}

/// `value` as one shell word: as it is when it has only characters no shell treats
/// specially, else in single quotes.
fn shell_quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@%+=,".contains(&b));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

fn config(args: &ServeArgs) -> DevStackConfig {
    let mut clerk = ClerkConfig::default().port(args.clerk_port);
    if let Some(path) = &args.key_file {
        clerk = clerk.signing_key(SigningKeySource::File(path.clone()));
    }
    let mut config = DevStackConfig::default()
        .clerk(clerk)
        .instant(InstantConfig::default().port(args.instant_port));
    config.client_name = args.client_name.clone();
    config.allow_unverified_email = args.allow_unverified_email;
    config
}

/// Starts the stack, prints how to reach it with `print` (or why it did not start),
/// and stops it cleanly once `until` resolves (saying so on stderr, unless `json`).
async fn serve(
    args: &ServeArgs,
    json: bool,
    until: impl Future<Output = Result<(), Failure>>,
    print: impl FnOnce(Result<Report, Failure>) -> io::Result<Outcome>,
) -> io::Result<Outcome> {
    let stack = match DevStack::start(config(args)).await {
        Ok(stack) => stack,
        Err(error) => {
            let failure = Failure::misconfigured(
                "local-stack-failed",
                because("starting the local stack failed", &error),
                "pick free ports (--clerk-port, --instant-port; 0 picks any) and a writable --key-file",
            );
            return print(Err(failure));
        }
    };
    let printed = print(Ok(StackInfo::of(&stack).report()));
    let waited = match &printed {
        Ok(_) => until.await,
        Err(_) => Ok(()),
    };
    stack.shutdown().await;
    let outcome = printed?;
    match waited {
        Ok(()) => {
            if !json {
                eprint("stopped");
            }
            Ok(outcome)
        }
        // The report is out (the one JSON document): the failure is a diagnostic.
        Err(failure) => Ok(failure.eprint()),
    }
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn interrupted() -> Result<(), Failure> {
    let listening = |e: io::Error| Failure::setup_because("listening for Ctrl-C failed", &e);
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(listening)?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(listening),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(listening)
    }
}

fn parse_secret_key(text: &str) -> Result<clerk_jwt::SecretKey, clerk_jwt::SecretKeyError> {
    clerk_jwt::SecretKey::new(text)
}

/// `KEY=VALUE`: the value as JSON when it parses as JSON, else as a string.
fn parse_claim(text: &str) -> Result<(String, Value), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE, e.g. org_id=org_1"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("{text:?} has no claim name before ="));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

/// Whether `email` looks like an address (the server's `/dev/token` check).
fn plausible_email(email: &str) -> bool {
    email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
        && !email.contains(char::is_whitespace)
}

impl TokenArgs {
    /// The minting options the flags ask for.
    fn mint_options(&self) -> MintOptions {
        let mut options = MintOptions::new();
        if let Some(azp) = &self.azp {
            options = options.azp(azp.clone());
        }
        if self.no_email {
            options = options.without_email();
        }
        for (name, value) in &self.claims {
            options = options.claim(name.clone(), value.clone());
        }
        if let Some(seconds) = self.expires_in {
            options = options.expires_in(seconds);
        }
        options
    }
}

async fn session_token(args: &TokenArgs) -> Result<String, Failure> {
    let email = args.email.trim();
    if !plausible_email(email) {
        return Err(Failure::usage(format!(
            "--email {email:?} is not an email address"
        ))
        .with_hint("give the test user's address, e.g. --email alice@example.com (the local Clerk creates the user)"));
    }
    ClerkBackend::new(args.clerk_url.clone(), args.secret_key.clone())
        .session_token_with(email, &args.mint_options())
        .await
        .map_err(|e| {
            Failure::misconfigured(
                "local-clerk-failed",
                because("getting a session token from the local Clerk failed", &e),
                "start `clerk-instant dev` and pass the Clerk URL and secret key it prints (--clerk-url/CLERK_API_URL, --secret-key/CLERK_SECRET_KEY)",
            )
        })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        dev: DevArgs,
    }

    fn example() -> StackInfo {
        StackInfo {
            clerk_url: "http://127.0.0.1:4100".into(),
            publishable_key: "pk_test_MTI3LjAuMC4xOjQxMDAk".into(),
            secret_key: "sk_test_0123".into(),
            instant_url: "http://127.0.0.1:4200".into(),
            app_id: "11111111-2222-4333-8444-555555555555".into(),
            admin_token: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee".into(),
            client_name: "clerk".into(),
        }
    }

    #[test]
    fn values_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(
            shell_quote("http://127.0.0.1:4100"),
            "http://127.0.0.1:4100"
        );
        assert_eq!(shell_quote("my client"), "'my client'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn every_text_line_is_an_export_or_a_comment() {
        let text = example().text();
        for line in text.lines() {
            assert!(
                line.starts_with("export ") || line.starts_with('#'),
                "{line:?} would run as a command when pasted"
            );
        }
        assert!(text.contains("export INSTANT_APP_ID=11111111-2222-4333-8444-555555555555\n"));
    }

    #[test]
    fn prints_a_block_and_one_json_object() {
        let report = example().report();
        insta::assert_snapshot!("dev_text", report.text);
        insta::assert_json_snapshot!("dev_json", report.json);
        assert!(report.one_line, "dev keeps running: its JSON is one line");
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "dev",
            "--clerk-port",
            "4100",
            "--instant-port",
            "4200",
            "--json",
        ])
        .unwrap();
        assert!(cli.dev.command.is_none());
        assert_eq!(cli.dev.serve.clerk_port, 4100);
        assert!(cli.json);
        let cli = Cli::try_parse_from([
            "dev",
            "token",
            "--email",
            "alice@example.com",
            "--clerk-url",
            "http://127.0.0.1:4100",
            "--secret-key",
            "sk_test_x",
        ])
        .unwrap();
        let Some(DevCommand::Token(token)) = &cli.dev.command else {
            panic!("dev token parses as the token command");
        };
        assert_eq!(token.expires_in, None);
        assert!(token.claims.is_empty() && !token.no_email && token.azp.is_none());
        let cli = Cli::try_parse_from([
            "dev",
            "token",
            "--email",
            "alice@example.com",
            "--clerk-url",
            "http://127.0.0.1:4100",
            "--secret-key",
            "sk_test_x",
            "--expires-in",
            "-30",
            "--claim",
            "a=1",
            "--claim",
            "b=x",
            "--no-email",
            "--azp",
            "http://localhost:3000",
        ])
        .unwrap();
        let Some(DevCommand::Token(token)) = &cli.dev.command else {
            panic!("dev token parses as the token command");
        };
        assert_eq!(token.expires_in, Some(-30));
        assert_eq!(token.claims.len(), 2);
        assert!(token.no_email);
        assert_eq!(token.azp.as_deref(), Some("http://localhost:3000"));
        assert!(!format!("{token:?}").contains("sk_test_x"), "{token:?}");
        assert!(
            Cli::try_parse_from([
                "dev",
                "token",
                "--email",
                "a@b.c",
                "--clerk-url",
                "u",
                "--secret-key",
                "pk_x"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from(["dev", "--clerk-port", "1", "token", "--email", "a@b.c"]).is_err()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_until_told_and_dev_token_signs_in_at_the_emulator() {
        let args = ServeArgs {
            clerk_port: 0,
            instant_port: 0,
            key_file: None,
            client_name: "clerk".into(),
            allow_unverified_email: false,
        };
        let stack = DevStack::start(config(&args)).await.unwrap();
        let info = StackInfo::of(&stack);
        let token = session_token(&token_args("alice@example.com", &info))
            .await
            .unwrap();
        let answer: Value = reqwest_post(
            &format!("{}/runtime/oauth/id_token", info.instant_url),
            &json!({"app_id": info.app_id, "id_token": token, "client_name": info.client_name}),
        )
        .await;
        assert_eq!(answer["user"]["email"], "alice@example.com");

        // The flags travel to the local Clerk over HTTP.
        let token = session_token(&TokenArgs {
            azp: Some("http://localhost:3000".into()),
            claims: vec![
                parse_claim("org_id=org_1").unwrap(),
                parse_claim("n=7").unwrap(),
            ],
            no_email: true,
            expires_in: Some(-30),
            ..token_args("alice@example.com", &info)
        })
        .await
        .unwrap();
        let claims = clerk_jwt::inspect(&token).unwrap().payload;
        assert_eq!(claims["azp"], "http://localhost:3000");
        assert_eq!(
            (&claims["org_id"], &claims["n"]),
            (&json!("org_1"), &json!(7))
        );
        assert!(!claims.contains_key("email"), "{claims:?}");
        let exp = claims["exp"].as_i64().unwrap();
        assert!(
            exp < stack.clerk.now(),
            "--expires-in -30 is already expired"
        );
        stack.shutdown().await;

        // A wrong email is about the email, not about the stack (which is down now).
        let (outcome, json) = error_json(
            session_token(&token_args("not-an-email", &info))
                .await
                .unwrap_err(),
        );
        assert_eq!(outcome, Outcome::Invalid);
        assert_eq!(json["error"]["code"], "invalid-input");
        let hint = json["error"]["hint"].as_str().unwrap();
        assert!(hint.contains("--email alice@example.com"), "{json}");

        let error = session_token(&token_args("alice@example.com", &info))
            .await
            .unwrap_err();
        let (outcome, json) = error_json(error);
        assert_eq!(outcome, Outcome::Invalid);
        assert_eq!(json["error"]["code"], "local-clerk-failed");
        assert!(
            json["error"]["hint"]
                .as_str()
                .unwrap()
                .starts_with("start `clerk-instant dev`"),
            "{json}"
        );

        // `serve` prints one report and returns once its future resolves, after
        // shutting down (the ports are free again).
        let mut printed = None;
        let outcome = serve(&args, true, async { Ok(()) }, |report| {
            printed = Some(report.unwrap().json);
            Ok(Outcome::Success)
        })
        .await
        .unwrap();
        assert_eq!(outcome, Outcome::Success);
        let printed = printed.unwrap();
        let clerk_url = printed["clerk_url"].as_str().unwrap();
        let port = clerk_url
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap();
        let taken = std::net::TcpListener::bind(("127.0.0.1", port)).expect("port released");
        assert_eq!(printed["client_name"], "clerk");

        // A stack that cannot start is one failure, printed instead of the report.
        let busy = ServeArgs {
            clerk_port: port,
            ..args
        };
        let mut printed = None;
        serve(&busy, true, async { Ok(()) }, |report| {
            printed = Some(error_json(report.unwrap_err()));
            Ok(Outcome::Invalid)
        })
        .await
        .unwrap();
        drop(taken);
        let (outcome, json) = printed.unwrap();
        assert_eq!(outcome, Outcome::Invalid);
        assert_eq!(json["error"]["code"], "local-stack-failed");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("starting the local stack failed: ")
                && message.contains(&port.to_string()),
            "{message}"
        );
    }

    fn token_args(email: &str, info: &StackInfo) -> TokenArgs {
        TokenArgs {
            email: email.into(),
            clerk_url: info.clerk_url.clone(),
            secret_key: parse_secret_key(&info.secret_key).unwrap(),
            azp: None,
            claims: Vec::new(),
            no_email: false,
            expires_in: None,
        }
    }

    #[test]
    fn a_claim_is_json_when_it_parses_else_a_string() {
        assert_eq!(parse_claim("n=42").unwrap(), ("n".into(), json!(42)));
        assert_eq!(parse_claim("ok=true").unwrap(), ("ok".into(), json!(true)));
        assert_eq!(
            parse_claim(r#"meta={"a":[1]}"#).unwrap(),
            ("meta".into(), json!({"a": [1]}))
        );
        assert_eq!(
            parse_claim("org=org_1").unwrap(),
            ("org".into(), json!("org_1"))
        );
        assert_eq!(parse_claim("eq=a=b").unwrap(), ("eq".into(), json!("a=b")));
        assert_eq!(parse_claim("empty=").unwrap(), ("empty".into(), json!("")));
        assert!(parse_claim("no-equals").is_err());
        assert!(parse_claim("=v").is_err());
    }

    #[test]
    fn emails_are_checked_before_any_call() {
        for good in ["alice@example.com", "a+b@x.co"] {
            assert!(plausible_email(good), "{good}");
        }
        for bad in [
            "not-an-email",
            "@example.com",
            "a@localhost",
            "a b@x.co",
            "a@b@c.d",
        ] {
            assert!(!plausible_email(bad), "{bad}");
        }
    }

    /// A failure's outcome and JSON document.
    fn error_json(failure: Failure) -> (Outcome, Value) {
        failure.into_json()
    }

    async fn reqwest_post(url: &str, body: &Value) -> Value {
        reqwest::Client::new()
            .post(url)
            .json(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}
