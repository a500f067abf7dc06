//! `clerk-instant`: the command-line face of the clerk-instant crates.
//!
//! `main` parses flags, runs one command and maps the outcome to an exit code in one
//! place: 0 success, 1 the token (or check) was rejected, 2 a usage or configuration
//! error.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dev;
mod key;
mod output;
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
}

/// How a command ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the input was examined and rejected.
    Rejected,
    /// A command that chose its own exit code.
    Exit(ExitCode),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(1),
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
        }
    })
}
