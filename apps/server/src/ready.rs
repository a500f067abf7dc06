//! `/readyz`: signing keys loaded, InstantDB reachable and the session store
//! answering. Concurrent probes share one
//! check and its answer is reused for two seconds, so probes cannot load either
//! upstream; the public body names each dependency's state with a short stable reason,
//! and the full error goes to the log.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clerk_jwt::FetchError;
use instant_client::RefreshToken;
use serde_json::{Value, json};

use crate::state::AppState;

/// How long a readiness answer is reused.
const FRESH_FOR: Duration = Duration::from_secs(2);

/// The metric label of the probe's InstantDB call: not one of the broker's calls, so
/// probes never show up as `verify-refresh-token` errors.
const PROBE_CALL: &str = "readiness-probe";

/// The last readiness answer and when it was found, and the turn to find the next.
pub(crate) struct Readiness {
    last: Mutex<Option<(Instant, bool, Value)>>,
    /// Held while a check runs: concurrent probes wait for it and share its answer.
    checking: tokio::sync::Mutex<()>,
    /// The InstantDB client itself, not the metered one the broker uses.
    instant: instant_client::Client,
}

impl Readiness {
    pub(crate) fn new(instant: instant_client::Client) -> Readiness {
        Readiness {
            last: Mutex::new(None),
            checking: tokio::sync::Mutex::new(()),
            instant,
        }
    }

    fn fresh(&self) -> Option<(bool, Value)> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match &*last {
            Some((at, ok, body)) if at.elapsed() < FRESH_FOR => Some((*ok, body.clone())),
            _ => None,
        }
    }

    fn remember(&self, ok: bool, body: Value) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), ok, body));
    }
}

/// `GET /readyz`'s answer, 200 or 503 (the server's keys).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "only described: check writes it")]
pub(crate) struct ReadyAnswer {
    /// Whether every check passed.
    ready: bool,
    /// `configured` or `dev`.
    mode: String,
    /// Each dependency: `{"status": "ok" | "failed", "reason"?, …}` under `clerk_keys`,
    /// `instantdb` and `store`.
    #[schema(value_type = Object)]
    checks: Value,
}

/// Keys loaded and InstantDB reachable. One check at a time, shared by every probe
/// that arrives while it runs, and its answer reused for two seconds.
#[utoipa::path(
    get,
    path = crate::routes::Route::Readyz.path(),
    tag = "probes",
    summary = "Keys loaded, InstantDB reachable, the store answering",
    responses(
        (status = 200, description = "Ready", body = ReadyAnswer),
        (status = 503, description = "Not ready: the failed checks have a reason", body = ReadyAnswer),
    ),
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let ready = &state.inner.ready;
    if let Some((ok, body)) = ready.fresh() {
        return ready_response(ok, body);
    }
    let _turn = ready.checking.lock().await;
    // The check that held the turn has answered for this probe too.
    if let Some((ok, body)) = ready.fresh() {
        return ready_response(ok, body);
    }
    let (ok, body) = check(&state).await;
    ready.remember(ok, body.clone());
    ready_response(ok, body)
}

/// Runs the checks: the public body, and whether all passed.
async fn check(state: &AppState) -> (bool, Value) {
    let keys = match &state.inner.keys {
        None => json!({"status": "ok", "source": "pem"}),
        Some(remote) => {
            let cached = remote.status().kids.len();
            let loaded = if cached > 0 {
                Ok(cached)
            } else {
                remote.refresh(state.inner.verifier.now()).await
            };
            match loaded {
                Ok(n) => json!({"status": "ok", "source": "jwks", "kids": n}),
                Err(error) => {
                    let reason = match &error {
                        FetchError::Transport { .. } => "unreachable",
                        FetchError::Unauthorized { .. } => "refused",
                        FetchError::Status { .. } => "error-status",
                        _ => "unusable",
                    };
                    tracing::warn!(
                        dependency = "clerk_keys",
                        reason,
                        error = &error as &dyn std::error::Error,
                        "not ready: the Clerk signing keys could not be loaded"
                    );
                    json!({"status": "failed", "source": "jwks", "reason": reason})
                }
            }
        }
    };
    // Any answer from InstantDB to a made-up refresh token proves it is reachable.
    let probe = RefreshToken::new(uuid::Uuid::new_v4().to_string()).expect("a uuid is a token");
    let instant_client = &state.inner.ready.instant;
    let start = Instant::now();
    let answer = instant_client.verify_refresh_token(&probe).await;
    let reachable = match &answer {
        Ok(_) => Ok(()),
        Err(error) if error.is_rejected() => Ok(()),
        Err(error) => Err(error),
    };
    state
        .inner
        .metrics
        .upstream("instantdb", PROBE_CALL, reachable.is_ok(), start.elapsed());
    let instant = match reachable {
        Ok(()) => json!({"status": "ok"}),
        Err(error) => {
            let reason = if error.is_rate_limited() {
                "rate-limited"
            } else if error.is_unavailable() {
                "unreachable"
            } else if error.is_config() {
                "configuration-refused"
            } else {
                "unexpected-answer"
            };
            tracing::warn!(
                dependency = "instantdb",
                reason,
                error = error as &dyn std::error::Error,
                "not ready: InstantDB did not answer as expected"
            );
            json!({"status": "failed", "reason": reason})
        }
    };
    let store = state.inner.broker.store();
    let store = match store.ping().await {
        Ok(()) => json!({"status": "ok", "kind": store.kind()}),
        Err(error) => {
            let reason = match error {
                auth_core::StoreError::Full => "full",
                _ => "unreachable",
            };
            tracing::warn!(
                dependency = "store",
                reason,
                error = &error as &dyn std::error::Error,
                "not ready: the session store did not answer"
            );
            json!({"status": "failed", "kind": store.kind(), "reason": reason})
        }
    };
    let ok = keys["status"] == "ok" && instant["status"] == "ok" && store["status"] == "ok";
    let body = json!({
        "ready": ok,
        "mode": state.mode(),
        "checks": {"clerk_keys": keys, "instantdb": instant, "store": store},
    });
    (ok, body)
}

fn ready_response(ok: bool, body: Value) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
