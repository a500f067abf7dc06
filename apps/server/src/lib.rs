#![doc = include_str!("../README.md")]
//!
//! # The library
//!
//! The server behind the `clerk-instant-server` binary: configuration, the HTTP routes
//! over `auth-core`'s broker, and (feature `local-stack`, on by default) the embedded
//! local stack that `--dev` runs on. The binary (`main.rs`) only parses
//! flags, sets up logging, prints and waits for a signal; tests start [`Running`]
//! servers in-process on 127.0.0.1.
//!
//! One concern per file: [`config`] (flags and checks), [`state`] (the broker and
//! clients), `upstream` (latency of every upstream call), [`routes`] (the route table
//! driving the router and the metric labels), `middleware` (request id, timeout,
//! metrics, log line), [`ratelimit`] (per client, per session, rejected tokens),
//! `handlers` (the API), `ready` (the cached readiness check), [`body`] (JSON bodies),
//! `webhooks` (Clerk's webhook deliveries), [`cors`] (browser apps on other origins),
//! [`error`] (codes and their statuses), [`metrics`] (request and upstream latency,
//! the build, the process), `serve` (the accept loop of each listener, the main one
//! and the optional `METRICS_LISTEN_ADDR` one: connection timers, the connection cap,
//! the shutdown deadline), `detached` (request work that ends even if its client goes
//! away), `dev` (the local stack, `/dev/token`, `/dev/session/revoke`, the banner),
//! `console` (the dev console page) and [`openapi`] (the OpenAPI description served
//! at `/openapi.json`).

pub mod body;
pub mod config;
#[cfg(feature = "local-stack")]
mod console;
pub mod cors;
mod detached;
#[cfg(feature = "local-stack")]
mod dev;
pub mod error;
mod handlers;
pub mod metrics;
mod middleware;
pub mod openapi;
pub mod ratelimit;
mod ready;
pub mod routes;
mod serve;
pub mod state;
mod upstream;
mod webhooks;

use std::net::SocketAddr;

use anyhow::Context as _;

use crate::config::{Mode, Settings};
#[cfg(feature = "local-stack")]
pub use crate::dev::{DevTokens, dev_banner, dev_settings};
pub use crate::state::AppState;

/// How long shutdown waits, once the connections are closed, for the sign-ins whose
/// clients went away and the broker's background sign-outs.
pub const SIGN_OUT_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A server listening in this process.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it serves `/metrics` and the probes alone, when `METRICS_LISTEN_ADDR` is
    /// set.
    pub metrics_addr: Option<SocketAddr>,
    /// The state (broker, metrics), for tests.
    pub state: AppState,
    /// The local stack, in dev mode.
    #[cfg(feature = "local-stack")]
    pub dev: Option<devstack::DevStack>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Running");
        debug.field("addr", &self.addr);
        debug.field("metrics_addr", &self.metrics_addr);
        #[cfg(feature = "local-stack")]
        debug.field("dev", &self.dev.is_some());
        debug.finish_non_exhaustive()
    }
}

impl Running {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, closes idle connections, lets requests in flight finish (at
    /// most [`ConnectionLimits::shutdown_timeout`](config::ConnectionLimits), after
    /// which the connections still open are dropped), waits (at most
    /// [`SIGN_OUT_DRAIN`]) for the sign-ins whose clients went away and for the
    /// sign-outs the broker started in the background, then stops the local stack.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the server task failed");
        }
        if let Some(task) = self.metrics_task
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the metrics listener's task failed");
        }
        // The HTTP server has stopped: no new request work or sign-out can start from
        // here on, so wait (within a deadline) for those still running.
        self.sweeper.abort();
        let unfinished = self.state.drain(SIGN_OUT_DRAIN).await;
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "sign-ins or background InstantDB sign-outs did not finish before shutdown"
            );
        }
        #[cfg(feature = "local-stack")]
        if let Some(dev) = self.dev {
            dev.shutdown().await;
        }
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await?;
        Ok(())
    }
}

/// Starts the server: in dev mode the local stack first (once its addresses are
/// bound, so that a busy port fails before the stack starts).
pub async fn start(mode: Mode) -> anyhow::Result<Running> {
    match mode {
        Mode::Configured(settings) => serve(&settings).await,
        #[cfg(feature = "local-stack")]
        Mode::Dev(options) => dev::start(*options).await,
    }
}

/// Serves `settings`.
pub async fn serve(settings: &Settings) -> anyhow::Result<Running> {
    let listeners = Listeners::bind(&settings.options).await?;
    launch(
        settings,
        listeners,
        #[cfg(feature = "local-stack")]
        None,
        #[cfg(feature = "local-stack")]
        None,
    )
    .await
}

/// The server's sockets, bound before anything else starts.
struct Listeners {
    main: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// Binds `LISTEN_ADDR` and, when set, `METRICS_LISTEN_ADDR`.
    async fn bind(options: &config::Options) -> anyhow::Result<Listeners> {
        let main = bind(options.listen, "LISTEN_ADDR").await?;
        let metrics = match options.metrics_listen {
            Some(addr) => Some(bind(addr, "METRICS_LISTEN_ADDR").await?),
            None => None,
        };
        Ok(Listeners { main, metrics })
    }
}

async fn bind(addr: SocketAddr, setting: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({setting})"))
}

/// Serves `settings` on `listeners`, with the dev endpoint when `dev` is given, owning
/// the local stack when there is one.
async fn launch(
    settings: &Settings,
    listeners: Listeners,
    #[cfg(feature = "local-stack")] dev: Option<DevTokens>,
    #[cfg(feature = "local-stack")] stack: Option<devstack::DevStack>,
) -> anyhow::Result<Running> {
    #[cfg(feature = "local-stack")]
    let mode = if stack.is_some() { "dev" } else { "configured" };
    #[cfg(not(feature = "local-stack"))]
    let mode = "configured";
    let addr = listeners.main.local_addr()?;
    let metrics_addr = match &listeners.metrics {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    };
    settings.log_summary(mode, addr, metrics_addr);
    // A replica whose keys cannot open what the others sealed would answer 503 for
    // their sessions: refuse to start and say which key is missing.
    match settings.options.store.check_keys().await {
        Ok(None) => {}
        Ok(Some(problem)) => anyhow::bail!("{}: {}", problem.setting, problem.message),
        Err(error) => tracing::warn!(
            error = &error as &dyn std::error::Error,
            "could not check the encryption keys against the sessions in Redis; /readyz says whether Redis answers"
        ),
    }
    let state = AppState::build(
        settings,
        #[cfg(feature = "local-stack")]
        dev,
    )?;
    state.warm_up().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let connections = settings.options.connections;
    let metrics_task = listeners.metrics.map(|listener| {
        tokio::spawn(serve::serve(
            listener,
            state.router_for(routes::Listener::Operators),
            connections,
            stopped.clone(),
        ))
    });
    let main = if metrics_task.is_some() {
        routes::Listener::MainWithoutMetrics
    } else {
        routes::Listener::Main
    };
    let task = tokio::spawn(serve::serve(
        listeners.main,
        state.router_for(main),
        connections,
        stopped,
    ));
    let sweeper = state.spawn_sweeper();
    Ok(Running {
        addr,
        metrics_addr,
        state,
        #[cfg(feature = "local-stack")]
        dev: stack,
        stop,
        task,
        metrics_task,
        sweeper,
    })
}
