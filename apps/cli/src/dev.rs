//! `clerk-instant dev`: a local Clerk and an InstantDB emulator for development without
//! accounts, and `clerk-instant dev token` to get a session token from them.

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use devstack::clerk::SigningKeySource;
use devstack::{ClerkBackend, ClerkConfig, DevStack, DevStackConfig, InstantConfig};
use serde_json::json;

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
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The user's email address.
    #[arg(long)]
    email: String,
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

/// Runs `clerk-instant dev …`.
pub(crate) async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(DevCommand::Token(token)) => {
            let jwt = session_token(&token).await?;
            write_stdout(&format!("{jwt}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        None => serve(&args.serve, interrupted(), write_stdout).await,
    }
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

    fn json(&self) -> String {
        json!({
            "clerk_url": self.clerk_url,
            "publishable_key": self.publishable_key,
            "secret_key": self.secret_key,
            "instant_url": self.instant_url,
            "app_id": self.app_id,
            "admin_token": self.admin_token,
            "client_name": self.client_name,
        })
        .to_string()
            + "\n"
    }

    fn text(&self) -> String {
        let rows = [
            ("Clerk URL", &self.clerk_url),
            ("publishable key", &self.publishable_key),
            ("secret key", &self.secret_key),
            ("Instant URL", &self.instant_url),
            ("app id", &self.app_id),
            ("admin token", &self.admin_token),
            ("client name", &self.client_name),
        ];
        let mut out =
            String::from("local Clerk and InstantDB emulator running (Ctrl-C to stop)\n\n");
        for (label, value) in rows {
            out.push_str(&format!("  {label:<16} {value}\n"));
        }
        out.push_str("\nenvironment:\n");
        for (name, value) in [
            ("CLERK_PUBLISHABLE_KEY", &self.publishable_key),
            ("CLERK_SECRET_KEY", &self.secret_key),
            ("CLERK_API_URL", &self.clerk_url),
            ("INSTANT_API_URI", &self.instant_url),
            ("INSTANT_APP_ID", &self.app_id),
            ("INSTANT_APP_ADMIN_TOKEN", &self.admin_token),
        ] {
            out.push_str(&format!("  {name}={value}\n"));
        }
        out.push_str(
            "\nsession token:  clerk-instant dev token --email alice@example.com\n\
             \nThe emulator does not evaluate InstantDB permission rules: every query and\n\
             transaction is allowed. Local development only; nothing here is persisted.\n",
        );
        out
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

/// Starts the stack, prints how to reach it, and stops it cleanly once `until` resolves.
async fn serve(
    args: &ServeArgs,
    until: impl Future<Output = anyhow::Result<()>>,
    print: impl FnOnce(&str) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let stack = DevStack::start(config(args))
        .await
        .context("starting the local stack")?;
    let info = StackInfo::of(&stack);
    let printed = print(&if args.json { info.json() } else { info.text() });
    let waited = match printed {
        Ok(()) => until.await,
        Err(error) => Err(error),
    };
    stack.shutdown().await;
    waited?;
    if !args.json {
        write_stderr("stopped\n")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn interrupted() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("listening for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("listening for Ctrl-C")
    }
}

fn parse_secret_key(text: &str) -> Result<clerk_jwt::SecretKey, clerk_jwt::SecretKeyError> {
    clerk_jwt::SecretKey::new(text)
}

async fn session_token(args: &TokenArgs) -> anyhow::Result<String> {
    ClerkBackend::new(args.clerk_url.clone(), args.secret_key.clone())
        .session_token(&args.email)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{:#}\nhint: start `clerk-instant dev` and pass the Clerk URL and secret key it prints (--clerk-url/CLERK_API_URL, --secret-key/CLERK_SECRET_KEY)",
                anyhow::Error::new(e)
            )
        })
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn write_stderr(text: &str) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    err.write_all(text.as_bytes())?;
    err.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
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
    fn prints_a_block_and_one_json_object() {
        insta::assert_snapshot!("dev_text", example().text());
        let json: serde_json::Value = serde_json::from_str(&example().json()).unwrap();
        insta::assert_json_snapshot!("dev_json", json);
        assert_eq!(example().json().lines().count(), 1);
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
        assert!(cli.dev.serve.json);
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
        assert!(Cli::try_parse_from(["dev", "--json", "token", "--email", "a@b.c"]).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_until_told_and_dev_token_signs_in_at_the_emulator() {
        let args = ServeArgs {
            clerk_port: 0,
            instant_port: 0,
            key_file: None,
            client_name: "clerk".into(),
            allow_unverified_email: false,
            json: true,
        };
        let stack = DevStack::start(config(&args)).await.unwrap();
        let info = StackInfo::of(&stack);
        let token = session_token(&TokenArgs {
            email: "alice@example.com".into(),
            clerk_url: info.clerk_url.clone(),
            secret_key: parse_secret_key(&info.secret_key).unwrap(),
        })
        .await
        .unwrap();
        let answer: serde_json::Value = reqwest_post(
            &format!("{}/runtime/oauth/id_token", info.instant_url),
            &json!({"app_id": info.app_id, "id_token": token, "client_name": info.client_name}),
        )
        .await;
        assert_eq!(answer["user"]["email"], "alice@example.com");
        stack.shutdown().await;

        let error = session_token(&TokenArgs {
            email: "alice@example.com".into(),
            clerk_url: info.clerk_url.clone(),
            secret_key: parse_secret_key(&info.secret_key).unwrap(),
        })
        .await
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("hint: start `clerk-instant dev`"),
            "{error}"
        );

        // `serve` prints one JSON object and returns once its future resolves, after
        // shutting down (the ports are free again).
        let mut printed = String::new();
        let code = serve(&args, async { Ok(()) }, |text| {
            printed.push_str(text);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let printed: serde_json::Value = serde_json::from_str(&printed).unwrap();
        let clerk_url = printed["clerk_url"].as_str().unwrap();
        let port = clerk_url
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap();
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("port released");
        assert_eq!(printed["client_name"], "clerk");
    }

    async fn reqwest_post(url: &str, body: &serde_json::Value) -> serde_json::Value {
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
