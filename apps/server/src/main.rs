//! `clerk-instant-server`: Clerk session in, InstantDB session out, over HTTP.
//!
//! With no configuration it runs on the embedded local stack (feature `local-stack`;
//! without it, no configuration is a configuration error). Exit codes: 0 after a clean
//! shutdown (SIGINT/SIGTERM), 2 for bad configuration, 1 for any other failure.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use clerk_instant_server::config::{Mode, ServerArgs};

fn main() -> ExitCode {
    let args = ServerArgs::parse();
    let mode = match args.resolve() {
        Ok(mode) => mode,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            return ExitCode::from(2);
        }
    };
    let options = match &mode {
        #[cfg(feature = "local-stack")]
        Mode::Dev(options) => options.clone(),
        Mode::Configured(settings) => settings.options.clone(),
    };
    init_logging(options.json_logs, options.log_level);
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

async fn run(mode: Mode, shutdown_timeout: std::time::Duration) -> anyhow::Result<()> {
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
    tracing::info!(addr = %running.addr, "listening");
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
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
