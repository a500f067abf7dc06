//! `clerk-instant-server`: Clerk session in, InstantDB session out, over HTTP.
//!
//! It serves real Clerk and InstantDB from its settings, or with `--dev`
//! (`CLERK_INSTANT_DEV=1`) the embedded local stack (feature `local-stack`); with
//! neither it stops and names both. Exit codes: 0 after a clean shutdown
//! (SIGINT/SIGTERM), 2 for bad configuration, 1 for any other failure.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use clerk_instant_server::config::{Mode, ServerArgs};
use service_config::AuthorizedParties;

/// mimalloc, not glibc's malloc: a request allocates and frees dozens of small buffers
/// across the runtime's threads, and mimalloc's per-thread free lists make that a
/// fraction of the cost (see docs/architecture.md, the server's `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = ServerArgs::parse();
    let mode = match args.resolve_in(|name| std::env::var_os(name)) {
        Ok(mode) => mode,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            return ExitCode::from(2);
        }
    };
    let options = mode.options();
    init_logging(options.json_logs, options.log_level);
    warn_about(&mode);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot start the runtime: {error}"
            );
            return ExitCode::from(1);
        }
    };
    let shutdown_timeout = options.connections.shutdown_timeout;
    match runtime.block_on(run(mode, shutdown_timeout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// What the settings leave open, said once at start-up.
fn warn_about(mode: &Mode) {
    let parties = match mode {
        Mode::Configured(settings) => &settings.service.authorized_parties,
        // The local stack's tokens are its own.
        #[cfg(feature = "local-stack")]
        Mode::Dev(_) => return,
    };
    match parties {
        AuthorizedParties::Unset => tracing::warn!(
            "CLERK_AUTHORIZED_PARTIES is not set: a token's azp claim is not checked, so a token Clerk issued to any origin of this instance is accepted; list your app's origins (or set it to * to accept any on purpose)"
        ),
        AuthorizedParties::Any => {
            tracing::info!("CLERK_AUTHORIZED_PARTIES is *: a token's azp claim is not checked")
        }
        AuthorizedParties::Only(_) => {}
    }
}

async fn run(mode: Mode, shutdown_timeout: std::time::Duration) -> anyhow::Result<()> {
    let name = mode.as_str();
    // Caught from before the server listens: a signal that came earlier would take its
    // default action and kill the process without a graceful shutdown.
    let mut signals = Signals::install()?;
    #[cfg(feature = "local-stack")]
    let dev = matches!(mode, Mode::Dev(_));
    let mut running = clerk_instant_server::start(mode).await?;
    #[cfg(feature = "local-stack")]
    if dev {
        let _ = std::io::stdout().write_all(clerk_instant_server::dev_banner(&running).as_bytes());
    }
    tracing::info!(
        addr = %running.addr,
        metrics_addr = running.metrics_addr.map(tracing::field::display),
        mode = name,
        "listening"
    );
    tokio::select! {
        () = signals.next() => {
            tracing::info!(
                shutdown_timeout_secs = shutdown_timeout.as_secs(),
                "shutting down: requests in flight may finish (a second signal stops at once)"
            );
            tokio::select! {
                () = running.shutdown() => {}
                () = signals.next() => {
                    tracing::warn!("a second signal: stopping without waiting for requests in flight");
                }
            }
            Ok(())
        }
        result = running.wait() => result,
    }
}

/// SIGINT (Ctrl-C) and SIGTERM.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use anyhow::Context as _;
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt()).context("catching SIGINT")?,
                terminate: signal(SignalKind::terminate()).context("catching SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_logging(json: bool, level: tracing::Level) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    if json {
        // One copy of the span's fields: `span` (the innermost span, the request's id,
        // method and route) is kept and `spans` (the list from the root) dropped. The
        // server opens one level of spans, so the list only repeated `span`; and a
        // record reads the same whether or not a span is open around it.
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        use std::io::IsTerminal as _;
        let colour = colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        builder.with_ansi(colour).init();
    }
}

/// Whether text logs are coloured: only on a terminal, and not when `NO_COLOR` is set
/// to anything but the empty string (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::colour;

    #[test]
    fn text_logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new("1"))));
    }
}
