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
    match runtime.block_on(run(mode)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(mode: Mode) -> anyhow::Result<()> {
    #[cfg(feature = "local-stack")]
    let dev = matches!(mode, Mode::Dev(_));
    let mut running = clerk_instant_server::start(mode).await?;
    #[cfg(feature = "local-stack")]
    if dev {
        let _ = std::io::stdout().write_all(clerk_instant_server::dev_banner(&running).as_bytes());
    }
    tracing::info!(addr = %running.addr, "listening");
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
