//! The server's shared state: the broker and the clients built from checked settings.

use std::sync::Arc;
use std::time::Duration;

use auth_core::{BrokerConfig, ClerkSessions, InstantAuth, SessionBroker, StoreLimits};
use axum::http::HeaderMap;
use clerk_jwt::{RemoteJwks, TokenExtractor, Verifier};

use crate::config::Settings;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ready::Readiness;
use crate::upstream::{TimedClerk, TimedInstant};

/// The server's shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) broker: SessionBroker,
    pub(crate) extractor: TokenExtractor,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) keys: Option<RemoteJwks>,
    pub(crate) verifier: Verifier,
    pub(crate) ready: Readiness,
    #[cfg(feature = "local-stack")]
    pub(crate) dev: Option<crate::dev::DevTokens>,
    pub(crate) request_timeout: Duration,
    pub(crate) body_limit: usize,
    pub(crate) webhooks: crate::webhooks::Webhooks,
    pub(crate) limits: crate::ratelimit::RateLimits,
    pub(crate) detached: crate::detached::Detached,
    pub(crate) cors: crate::cors::Cors,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("AppState");
        debug.field("broker", &self.inner.broker);
        #[cfg(feature = "local-stack")]
        debug.field("dev", &self.inner.dev.is_some());
        debug.finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the clients and the broker from checked settings (with the dev token
    /// endpoint when `dev` is given).
    pub fn build(
        settings: &Settings,
        #[cfg(feature = "local-stack")] dev: Option<crate::dev::DevTokens>,
    ) -> anyhow::Result<AppState> {
        #[cfg(feature = "local-stack")]
        let dev_mode = dev.is_some();
        let metrics = Arc::new(Metrics::default());
        let clients = settings.service.build_clients()?;
        let ready = Readiness::new(clients.instant.clone());
        let instant: Arc<dyn InstantAuth> = Arc::new(TimedInstant {
            inner: clients.instant,
            metrics: Arc::clone(&metrics),
        });
        let clerk: Option<Arc<dyn ClerkSessions>> = clients.clerk.map(|inner| {
            Arc::new(TimedClerk {
                inner,
                metrics: Arc::clone(&metrics),
            }) as Arc<dyn ClerkSessions>
        });
        let verifier = clients.verifier;
        let keys = clients.keys;

        let options = &settings.options;
        if options.store.is_plaintext() {
            tracing::warn!(
                store = %options.store.describe(),
                "SESSION_STORE_ALLOW_PLAINTEXT: refresh tokens are stored in Redis in the clear; whoever can read Redis can act as every signed-in user in InstantDB"
            );
        }
        let broker = SessionBroker::new(
            BrokerConfig::new(settings.service.strategy.clone())
                .revalidate_after(options.revalidate_after)
                .sign_in_lock(options.sign_in_lock)
                // No token the verifier accepts outlives this: a signed-out session
                // stays refused until all of its tokens have expired.
                .refuse_for(verifier.max_token_lifetime() + verifier.leeway()),
            Arc::new(verifier.clone()),
            Arc::clone(&instant),
            clerk,
            options
                .store
                .build(StoreLimits::default().max_entries(options.max_sessions)),
        );
        let limits = crate::ratelimit::RateLimits::new(&options.rate_limits, Arc::clone(&metrics));
        Ok(AppState {
            inner: Arc::new(Inner {
                broker,
                extractor: TokenExtractor::new(Some(&settings.service.publishable_key)),
                metrics,
                keys,
                verifier,
                ready,
                #[cfg(feature = "local-stack")]
                dev,
                request_timeout: options.request_timeout,
                body_limit: options.body_limit,
                webhooks: crate::webhooks::Webhooks::new(
                    options.webhook_secrets.clone(),
                    options.user_deleted_policy,
                ),
                limits,
                detached: crate::detached::Detached::default(),
                cors: crate::cors::Cors::new(&options.cors_origins.allowed(
                    &settings.service.authorized_parties,
                    #[cfg(feature = "local-stack")]
                    dev_mode,
                    #[cfg(not(feature = "local-stack"))]
                    false,
                )),
            }),
        })
    }

    /// `dev` when serving the embedded local stack (`--dev`), else `configured`.
    pub fn mode(&self) -> &'static str {
        #[cfg(feature = "local-stack")]
        if self.inner.dev.is_some() {
            return "dev";
        }
        "configured"
    }

    /// The origins of the browser apps that may call the API cross-origin.
    pub fn cors_origins(&self) -> impl Iterator<Item = &str> {
        self.inner.cors.origins()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The broker.
    pub fn broker(&self) -> &SessionBroker {
        &self.inner.broker
    }

    /// Fetches the signing keys now, so the first request does not wait for them.
    pub async fn warm_up(&self) {
        if let Some(keys) = &self.inner.keys
            && let Err(error) = keys.refresh(self.inner.verifier.now()).await
        {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "could not load the Clerk signing keys yet; /readyz will say so"
            );
        }
    }

    /// The request's Clerk token, or 401 `token-missing`.
    pub(crate) fn token<'a>(&self, headers: &'a HeaderMap) -> Result<&'a str, ApiError> {
        self.inner
            .extractor
            .extract(headers)
            .map(|found| found.token)
            .ok_or_else(ApiError::token_missing)
    }

    /// Maps a broker error, counting token rejections by reason.
    pub(crate) fn fail(&self, error: auth_core::Error) -> ApiError {
        if let auth_core::Error::Token(e) = &error
            && e.is_token_rejection()
            && let Some(reason) = e.reason()
        {
            self.inner.metrics.verification_failure(reason.as_str());
        }
        ApiError::from(error)
    }

    /// Signs out sessions that expired in the store, every minute, until dropped.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let broker = self.inner.broker.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match broker.sweep().await {
                    Ok(0) => {}
                    Ok(swept) => tracing::info!(swept, "signed out expired InstantDB sessions"),
                    Err(error) => tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "could not sweep expired sessions; trying again in a minute"
                    ),
                }
            }
        })
    }
}
