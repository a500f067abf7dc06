//! `clerk-instant`: the command-line face of the clerk-instant crates.
//!
//! `main` parses flags, runs one command and maps the outcome to an exit code in one
//! place: 0 success, 1 the token was rejected or a call or check failed, 2 a usage or
//! configuration error.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dev;
mod doctor;
mod key;
mod output;
mod report;
mod service;
mod session;
mod token;

/// Sign users in to InstantDB with their Clerk session: keys, tokens and a local stack.
#[derive(Debug, Parser)]
#[command(name = "clerk-instant", version, about, long_about = None)]
struct Cli {
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
    /// Check the Clerk and InstantDB setup step by step, each with its fix. Exit 1 if a
    /// check fails.
    Doctor(Box<doctor::DoctorArgs>),
}

/// How a command ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the input was examined and rejected, or a call or check failed.
    Rejected,
    /// Exit 2: a usage or configuration problem, already reported.
    Invalid,
    /// A command that chose its own exit code.
    Exit(ExitCode),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(1),
        Ok(Outcome::Invalid) => ExitCode::from(2),
        Ok(Outcome::Exit(code)) => code,
        Err(error) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Key(command) => key::run(command),
            Command::Token(command) => token::run(command).await,
            Command::Dev(args) => dev::run(args).await.map(Outcome::Exit),
            Command::SignIn(args) => session::sign_in(&args).await,
            Command::SignOut(args) => session::sign_out(&args).await,
            Command::Query(args) => session::query(&args).await,
            Command::Transact(args) => session::transact(&args).await,
            Command::Doctor(args) => doctor::run(&args).await,
        }
    })
}
