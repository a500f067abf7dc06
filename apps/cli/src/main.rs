//! `clerk-instant`: the command-line face of the clerk-instant crates.
//!
//! `main` parses flags, runs one command and maps the outcome to an exit code in one
//! place: 0 success, 2 a usage or configuration error.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dev;

/// Sign users in to InstantDB with their Clerk session.
#[derive(Debug, Parser)]
#[command(name = "clerk-instant", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local Clerk and an InstantDB emulator (no accounts needed), or get a
    /// session token from them with `dev token`.
    Dev(dev::DevArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async move {
                match cli.command {
                    Command::Dev(args) => dev::run(args).await,
                }
            })
        });
    match result {
        Ok(code) => code,
        Err(error) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {error:#}");
            ExitCode::from(2)
        }
    }
}
