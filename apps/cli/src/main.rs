//! `clerk-instant`: the command-line face of the clerk-instant crates.
//!
//! `main` parses flags, runs one command and maps the outcome to an exit code in one
//! place. Every command reports through one path ([`report::finish`]): text (a
//! failure's on stderr) or, with `--json` anywhere on the command line, exactly one
//! JSON document on stdout, usage errors included.
//!
//! Exit codes:
//!
//! - 0: success; also when stdout is closed early (`clerk-instant … | head -1`), which
//!   ends the command quietly, as ripgrep does;
//! - 1: the token was rejected, a webhook delivery was refused, or a call or a check
//!   failed;
//! - 2: a usage or configuration error;
//! - 3: the token could not be checked: the signing keys could not be fetched (not a
//!   rejection: retry later, or verify with the PEM public key, without the network).

use std::ffi::OsString;
use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod date;
#[cfg(feature = "local-stack")]
mod dev;
mod docs;
mod doctor;
mod key;
mod output;
mod report;
mod service;
mod session;
mod token;
mod webhook;

use report::{Failure, finish};

/// The exit codes, as `--help` prints them.
const EXIT_CODES: &str = "\
Exit codes:
  0  success (also when stdout is closed early, e.g. by `| head -1`)
  1  the token was rejected, a webhook delivery was refused, or a call or a check failed
  2  a usage or configuration error
  3  the token could not be checked: the signing keys could not be fetched (retry later)";

/// Sign users in to InstantDB with their Clerk session: keys, tokens and a local stack.
#[derive(Debug, Parser)]
#[command(name = "clerk-instant", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    /// Print one JSON document on stdout instead of text, whatever the outcome.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with Clerk publishable keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Inspect and verify Clerk session tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Run a local Clerk and an InstantDB emulator (no accounts needed), or get a
    /// session token from them with `dev token`.
    ///
    /// `dev` prints `export NAME=value` lines to paste into another shell (with --json,
    /// one JSON line). The secret key and admin token among them are made up at start-up
    /// for this local stack and open nothing else: printing them is the point.
    #[cfg(feature = "local-stack")]
    Dev(dev::DevArgs),
    /// Sign a user in to InstantDB with their Clerk session token and print the
    /// InstantDB session: user, refresh token, whether the user was created.
    SignIn(Box<session::SignInArgs>),
    /// Sign out of InstantDB (the refresh token given), then revoke the Clerk session
    /// when a secret key is configured; print each half.
    SignOut(Box<session::SignOutArgs>),
    /// Run an InstaQL query as the user of a Clerk session token (permissions apply).
    Query(Box<session::QueryArgs>),
    /// Run a transaction as the user of a Clerk session token (permissions apply).
    Transact(Box<session::TransactArgs>),
    /// Check the Clerk and InstantDB setup step by step, each with its fix.
    ///
    /// Every check the given settings allow runs; the others are skipped, each saying
    /// why (only CLERK_PUBLISHABLE_KEY set: the Clerk checks run, the InstantDB ones are
    /// skipped). Exit 0 when no check failed (some may be skipped), 1 when one failed, 2
    /// when a setting is given but unusable.
    Doctor(Box<doctor::DoctorArgs>),
    /// Verify captured Clerk webhook deliveries offline.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Print a shell completion script on stdout, e.g.
    /// `clerk-instant completions bash > ~/.local/share/bash-completion/completions/clerk-instant`.
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff) on stdout, e.g. `clerk-instant man > clerk-instant.1`.
    Man,
}

/// How a command ended; [`Outcome::exit_code`] is the one place that maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the input was examined and rejected (a token, a webhook delivery), or a
    /// call or check failed.
    Rejected,
    /// Exit 2: a usage or configuration problem.
    Invalid,
    /// Exit 3: the token could not be checked because the keys could not be fetched.
    Unchecked,
}

impl Outcome {
    fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Rejected => ExitCode::from(1),
            Outcome::Invalid => ExitCode::from(2),
            Outcome::Unchecked => ExitCode::from(3),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let json = wants_json(&args);
    let printed = match Cli::try_parse_from(&args) {
        Ok(cli) => run(cli),
        Err(error) => usage_error(&error, json),
    };
    match printed {
        Ok(outcome) => outcome.exit_code(),
        // The reader went away (`| head -1`): nothing more is wanted, end quietly.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(
                io::stderr().lock(),
                "error: writing to stdout failed: {error}"
            );
            ExitCode::from(2)
        }
    }
}

/// Whether `--json` is on the command line (before a `--`), read before parsing so
/// that a usage error can be reported as JSON too.
fn wants_json(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "--json")
}

/// Reports a command line clap refused. Help and version are printed as clap prints
/// them; every other refusal is a usage error (exit 2), as JSON when asked.
fn usage_error(error: &clap::Error, json: bool) -> io::Result<Outcome> {
    use clap::error::ErrorKind;
    let informational = matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    );
    if informational || !json {
        let rendered = error.render().to_string();
        if error.use_stderr() {
            output::eprint(&rendered);
        } else {
            output::print(&rendered)?;
        }
        return Ok(if informational {
            Outcome::Success
        } else {
            Outcome::Invalid
        });
    }
    finish(Err(Failure::from_clap(error)), true)
}

fn run(cli: Cli) -> io::Result<Outcome> {
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return finish(
                Err(Failure::setup_because(
                    "starting the async runtime failed",
                    &error,
                )),
                json,
            );
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Key(command) => finish(key::run(command), json),
            Command::Token(command) => finish(token::run(command).await, json),
            #[cfg(feature = "local-stack")]
            Command::Dev(args) => dev::run(args, json).await,
            Command::SignIn(args) => finish(session::sign_in(&args).await, json),
            Command::SignOut(args) => finish(session::sign_out(&args).await, json),
            Command::Query(args) => finish(session::query(&args).await, json),
            Command::Transact(args) => finish(session::transact(&args).await, json),
            Command::Doctor(args) => finish(doctor::run(&args).await, json),
            Command::Webhook(command) => finish(webhook::run(command), json),
            Command::Completions(args) => finish(docs::completions(&args), json),
            Command::Man => finish(docs::man(), json),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_seen_anywhere_before_a_double_dash() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(wants_json(&args(&["x", "token", "verify", "--json", "t"])));
        assert!(wants_json(&args(&["x", "--json", "nonsense"])));
        assert!(!wants_json(&args(&[
            "x", "token", "verify", "--", "--json"
        ])));
        assert!(!wants_json(&args(&["--json"])));
    }
}
