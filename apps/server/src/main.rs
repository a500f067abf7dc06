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
    match runtime.block_on(run(mode)) {
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

async fn run(mode: Mode) -> anyhow::Result<()> {
    let name = mode.as_str();
    #[cfg(feature = "local-stack")]
    let dev = matches!(mode, Mode::Dev(_));
    let mut running = clerk_instant_server::start(mode).await?;
    #[cfg(feature = "local-stack")]
    if dev {
        let _ = std::io::stdout().write_all(clerk_instant_server::dev_banner(&running).as_bytes());
    }
    tracing::info!(addr = %running.addr, mode = name, "listening");
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            running.shutdown().await;
            Ok(())
        }
        result = running.wait() => result,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
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
