//! The server behind the `clerk-instant-server` binary: configuration, the HTTP routes
//! over `auth-core`'s broker, and the embedded local stack for running with no
//! configuration. The binary (`main.rs`) only parses flags, sets up logging, prints
//! and waits for a signal; tests start [`Running`] servers in-process on 127.0.0.1.

pub mod app;
pub mod config;
pub mod error;
pub mod metrics;

use std::net::SocketAddr;

use anyhow::Context as _;
use auth_core::config::RawServiceConfig;
use devstack::{DevStack, DevStackConfig};

use crate::app::{AppState, DevTokens};
use crate::config::{Mode, Options, Settings};

/// How long shutdown waits for the broker's background sign-outs.
pub const SIGN_OUT_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A server listening in this process.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The state (broker, metrics), for tests.
    pub state: AppState,
    /// The local stack, in dev mode.
    pub dev: Option<DevStack>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("dev", &self.dev.is_some())
            .finish_non_exhaustive()
    }
}

impl Running {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish, waits (at most
    /// [`SIGN_OUT_DRAIN`]) for the sign-outs the broker started in the background, then
    /// stops the local stack.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        match self.task.await {
            Ok(Err(error)) => tracing::warn!(%error, "the server stopped with an error"),
            Err(error) => tracing::warn!(%error, "the server task failed"),
            Ok(Ok(())) => {}
        }
        self.sweeper.abort();
        let unfinished = self.state.broker().drain(SIGN_OUT_DRAIN).await;
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "background InstantDB sign-outs did not finish before shutdown"
            );
        }
        if let Some(dev) = self.dev {
            dev.shutdown().await;
        }
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await??;
        Ok(())
    }
}

/// The settings of the embedded local stack (checked like any other configuration).
pub fn dev_settings(stack: &DevStack, options: Options) -> anyhow::Result<Settings> {
    let mut raw = RawServiceConfig::default();
    raw.clerk_publishable_key = Some(stack.clerk.publishable_key().to_string());
    raw.clerk_secret_key = Some(stack.clerk.secret_key().expose().to_owned());
    raw.clerk_api_url = Some(stack.clerk.url().to_owned());
    raw.instant_app_id = Some(stack.app.id.clone());
    raw.instant_admin_token = Some(stack.app.admin_token.expose().to_owned());
    raw.instant_api_uri = Some(stack.instant.url().to_owned());
    raw.instant_client_name = Some(stack.client_name.clone());
    let service = raw.resolve().map_err(|problems| {
        anyhow::anyhow!(
            "the local stack's settings were refused: {}",
            problems
                .iter()
                .map(|p| format!("{}: {}", p.setting, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    Ok(Settings { options, service })
}

/// Starts the server: in dev mode the local stack first.
pub async fn start(mode: Mode) -> anyhow::Result<Running> {
    match mode {
        Mode::Configured(settings) => serve(&settings, None, None).await,
        Mode::Dev(options) => {
            let stack = DevStack::start(DevStackConfig::default())
                .await
                .context("starting the local stack")?;
            let settings = dev_settings(&stack, options)?;
            // The token endpoint exists only in dev mode, and only on loopback.
            let dev = settings
                .options
                .listen
                .ip()
                .is_loopback()
                .then(|| DevTokens {
                    clerk: stack.clerk.backend(),
                });
            serve(&settings, dev, Some(stack)).await
        }
    }
}

/// Serves `settings` (with the dev endpoint when `dev` is given).
pub async fn serve(
    settings: &Settings,
    dev: Option<DevTokens>,
    stack: Option<DevStack>,
) -> anyhow::Result<Running> {
    let state = AppState::build(settings, dev)?;
    state.warm_up().await;
    let listener = tokio::net::TcpListener::bind(settings.options.listen)
        .await
        .with_context(|| format!("listening on {}", settings.options.listen))?;
    let addr = listener.local_addr()?;
    let router = state.router();
    let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = signal.await;
        })
        .await
    });
    let sweeper = state.spawn_sweeper();
    Ok(Running {
        addr,
        state,
        dev: stack,
        shutdown,
        task,
        sweeper,
    })
}

/// What the server prints at start-up in dev mode: what it started and a copy-paste
/// sequence that signs a test user in.
pub fn dev_banner(running: &Running) -> String {
    let Some(stack) = &running.dev else {
        return String::new();
    };
    let url = running.url();
    let mut text = format!(
        "clerk-instant-server: no CLERK_* or INSTANT_* settings, so it runs on the embedded local stack
  (development only; InstantDB permissions are NOT evaluated by the emulator)

  local Clerk      {clerk}  (publishable key {pk})
  local InstantDB  {instant}  (app id {app})
  server           {url}
",
        clerk = stack.clerk.url(),
        pk = stack.clerk.publishable_key(),
        instant = stack.instant.url(),
        app = stack.app.id,
    );
    if running.addr.ip().is_loopback() {
        text.push_str(&format!(
            r#"
Sign a test user in:
  TOKEN=$(curl -s -X POST {url}/dev/token -H 'content-type: application/json' -d '{{"email":"alice@example.com"}}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
  curl -s -X POST {url}/v1/session -H "authorization: Bearer $TOKEN"
  curl -s -X POST {url}/v1/transact -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"steps":[["update","goals","9f5d3a0e-7f6b-4c61-9d46-2f1b0c3e8a11",{{"title":"Get fit"}}]]}}'
  curl -s -X POST {url}/v1/query -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"query":{{"goals":{{}}}}}}'
  curl -s -X DELETE {url}/v1/session -H "authorization: Bearer $TOKEN"
(tokens live 60 s: mint a new one when a call answers token-expired)
"#
        ));
    } else {
        text.push_str(
            "\n(the /dev/token endpoint is off: the server does not listen on loopback)\n",
        );
    }
    text
}
