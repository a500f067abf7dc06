//! Every route in one table: its path (also its metric label), its handlers, and
//! whether this server serves it. The router and the metric labels both read it.

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::middleware;
use axum::routing::{MethodRouter, delete, get, post};

use crate::error::ApiError;
use crate::handlers;
use crate::middleware::edge;
use crate::ready::readyz;
use crate::state::AppState;

/// One route of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// `POST /v1/session` signs in, `DELETE` signs out.
    Session,
    /// `GET /v1/me`: the verified Clerk identity and the stored InstantDB user.
    Me,
    /// `POST /v1/query`: an InstaQL query as the user.
    Query,
    /// `POST /v1/transact`: a transaction as the user.
    Transact,
    /// `POST /v1/webhooks/clerk`: Clerk's webhook deliveries (public: verified by
    /// their Svix signature, not a Clerk token).
    ClerkWebhooks,
    /// `GET /healthz`: the process answers.
    Healthz,
    /// `GET /readyz`: keys loaded and InstantDB reachable.
    Readyz,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /openapi.json`: the OpenAPI 3.1 description of the routes served.
    OpenApi,
    /// `POST /dev/token`: a token from the local Clerk (dev mode, loopback only).
    #[cfg(feature = "local-stack")]
    DevToken,
    /// `POST /dev/session/revoke`: revokes a session in the local Clerk (dev mode,
    /// loopback only).
    #[cfg(feature = "local-stack")]
    DevRevokeSession,
    /// `GET /dev/console`: the dev console page (dev mode, loopback only).
    #[cfg(feature = "local-stack")]
    DevConsole,
    /// `GET /dev/console/{asset}`: its script and style sheet.
    #[cfg(feature = "local-stack")]
    DevConsoleAsset,
}

/// The metric label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

impl Route {
    /// Every route, in declaration order.
    pub const ALL: &[Route] = &[
        Route::Session,
        Route::Me,
        Route::Query,
        Route::Transact,
        Route::ClerkWebhooks,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::OpenApi,
        #[cfg(feature = "local-stack")]
        Route::DevToken,
        #[cfg(feature = "local-stack")]
        Route::DevRevokeSession,
        #[cfg(feature = "local-stack")]
        Route::DevConsole,
        #[cfg(feature = "local-stack")]
        Route::DevConsoleAsset,
    ];

    /// The path, which is also the route's metric label.
    pub const fn path(self) -> &'static str {
        match self {
            Route::Session => "/v1/session",
            Route::Me => "/v1/me",
            Route::Query => "/v1/query",
            Route::Transact => "/v1/transact",
            Route::ClerkWebhooks => "/v1/webhooks/clerk",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            #[cfg(feature = "local-stack")]
            Route::DevToken => "/dev/token",
            #[cfg(feature = "local-stack")]
            Route::DevRevokeSession => "/dev/session/revoke",
            #[cfg(feature = "local-stack")]
            Route::DevConsole => "/dev/console",
            #[cfg(feature = "local-stack")]
            Route::DevConsoleAsset => "/dev/console/{asset}",
        }
    }

    /// Whether the per-client rate limit applies: every `/v1/*` route, not the probes,
    /// the metrics or the dev endpoint.
    pub const fn is_rate_limited(self) -> bool {
        matches!(
            self,
            Route::Session | Route::Me | Route::Query | Route::Transact | Route::ClerkWebhooks
        )
    }

    /// Whether the route exists in dev mode only (on the embedded local stack).
    pub const fn is_dev_only(self) -> bool {
        match self {
            #[cfg(feature = "local-stack")]
            Route::DevToken
            | Route::DevRevokeSession
            | Route::DevConsole
            | Route::DevConsoleAsset => true,
            _ => false,
        }
    }

    /// Whether the route takes a Clerk token, so a rejected one counts against the
    /// client's rejected-token limit.
    pub const fn takes_clerk_token(self) -> bool {
        matches!(
            self,
            Route::Session | Route::Me | Route::Query | Route::Transact
        )
    }

    /// The handlers by method on `listener`; any other method is 405. The API
    /// description lists the routes of the listener that serves it.
    fn handlers(self, listener: Listener) -> MethodRouter<AppState> {
        let methods = match self {
            Route::Session => post(handlers::sign_in).merge(delete(handlers::sign_out)),
            Route::Me => get(handlers::me),
            Route::Query => post(handlers::query),
            Route::Transact => post(handlers::transact),
            Route::ClerkWebhooks => post(crate::webhooks::clerk),
            Route::Healthz => get(handlers::healthz),
            Route::Readyz => get(readyz),
            Route::Metrics => get(handlers::metrics),
            Route::OpenApi => get(move |State(state): State<AppState>| {
                crate::openapi::openapi_json(state, listener)
            }),
            #[cfg(feature = "local-stack")]
            Route::DevToken => post(crate::dev::dev_token),
            #[cfg(feature = "local-stack")]
            Route::DevRevokeSession => post(crate::dev::dev_revoke_session),
            #[cfg(feature = "local-stack")]
            Route::DevConsole => get(crate::console::page),
            #[cfg(feature = "local-stack")]
            Route::DevConsoleAsset => get(crate::console::asset),
        };
        methods.fallback(method_not_allowed)
    }

    /// Whether this server serves the route (the dev endpoints only in dev mode on
    /// loopback).
    pub(crate) fn is_served(self, state: &AppState) -> bool {
        #[cfg(feature = "local-stack")]
        if self.is_dev_only() {
            return state.inner.dev.is_some();
        }
        let _ = state;
        true
    }

    /// The route a request matched, by its matched path.
    pub fn of(matched: &MatchedPath) -> Option<Route> {
        Route::ALL
            .iter()
            .copied()
            .find(|route| route.path() == matched.as_str())
    }

    /// The metric label of a request: its route's path, or [`UNMATCHED`].
    pub fn label(matched: Option<&MatchedPath>) -> &'static str {
        matched.and_then(Route::of).map_or(UNMATCHED, Route::path)
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Which listener a router is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Listener {
    /// `LISTEN_ADDR` alone: every served route.
    Main,
    /// `LISTEN_ADDR` beside a `METRICS_LISTEN_ADDR`: every served route but
    /// `/metrics` (the probes stay, for load balancers probing the main port).
    MainWithoutMetrics,
    /// `METRICS_LISTEN_ADDR`: `/metrics`, `/readyz` and `/healthz` only.
    Operators,
}

impl Listener {
    /// Whether this listener serves `route`.
    pub const fn serves(self, route: Route) -> bool {
        match self {
            Listener::Main => true,
            Listener::MainWithoutMetrics => !matches!(route, Route::Metrics),
            Listener::Operators => matches!(route, Route::Metrics | Route::Readyz | Route::Healthz),
        }
    }
}

impl AppState {
    /// The router of the main listener when it is alone: every served route of
    /// [`Route::ALL`], and the middleware.
    pub fn router(&self) -> Router {
        self.router_for(Listener::Main)
    }

    /// The router of `listener`: the served routes of [`Route::ALL`] it serves, and the
    /// middleware (the same request metrics and log line on every listener).
    pub fn router_for(&self, listener: Listener) -> Router {
        let mut router = Router::new();
        for route in Route::ALL
            .iter()
            .filter(|route| route.is_served(self) && listener.serves(**route))
        {
            router = router.route(route.path(), route.handlers(listener));
        }
        router
            .fallback(|| async { ApiError::not_found() })
            .layer(DefaultBodyLimit::max(self.inner.body_limit))
            // Metrics and logs, then CORS (preflights answered before the rate limits),
            // then the rate limits: one layer (see `middleware::edge`).
            .layer(middleware::from_fn_with_state(self.clone(), edge))
            .with_state(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails to compile when a route is added without a place in [`Route::ALL`].
    fn index(route: Route) -> usize {
        match route {
            Route::Session => 0,
            Route::Me => 1,
            Route::Query => 2,
            Route::Transact => 3,
            Route::ClerkWebhooks => 4,
            Route::Healthz => 5,
            Route::Readyz => 6,
            Route::Metrics => 7,
            Route::OpenApi => 8,
            #[cfg(feature = "local-stack")]
            Route::DevToken => 9,
            #[cfg(feature = "local-stack")]
            Route::DevRevokeSession => 10,
            #[cfg(feature = "local-stack")]
            Route::DevConsole => 11,
            #[cfg(feature = "local-stack")]
            Route::DevConsoleAsset => 12,
        }
    }

    #[test]
    fn all_lists_every_route_once_at_its_index() {
        for (i, route) in Route::ALL.iter().enumerate() {
            assert_eq!(index(*route), i, "{route:?}");
        }
        let expected = if cfg!(feature = "local-stack") { 13 } else { 9 };
        assert_eq!(Route::ALL.len(), expected);
    }

    #[test]
    fn every_path_is_distinct_and_is_its_own_label() {
        let mut seen = std::collections::HashSet::new();
        for route in Route::ALL {
            let path = route.path();
            assert!(seen.insert(path), "{path} twice");
            assert!(path.starts_with('/') && path != UNMATCHED, "{path}");
        }
    }

    #[test]
    fn every_dev_route_and_only_those_are_dev_only() {
        for route in Route::ALL {
            assert_eq!(
                route.is_dev_only(),
                route.path().starts_with("/dev/"),
                "{route:?}"
            );
        }
    }

    #[test]
    fn every_v1_route_and_only_those_are_rate_limited() {
        for route in Route::ALL {
            assert_eq!(
                route.is_rate_limited(),
                route.path().starts_with("/v1/"),
                "{route:?}"
            );
            if route.takes_clerk_token() {
                assert!(route.is_rate_limited(), "{route:?}");
            }
        }
        assert!(!Route::ClerkWebhooks.takes_clerk_token());
        assert!(Route::Session.takes_clerk_token());
    }
}
