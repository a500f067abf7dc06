//! `/readyz`: signing keys loaded and InstantDB reachable, the answer cached for two
//! seconds so probes cannot load either.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use instant_client::RefreshToken;
use serde_json::{Value, json};

use crate::state::AppState;

/// How long a readiness answer is reused.
const FRESH_FOR: Duration = Duration::from_secs(2);

/// The last readiness answer and when it was found.
#[derive(Default)]
pub(crate) struct Readiness {
    last: Mutex<Option<(Instant, bool, Value)>>,
}

impl Readiness {
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

/// Keys loaded and InstantDB reachable; the answer is cached for two seconds.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if let Some((ok, body)) = state.inner.ready.fresh() {
        return ready_response(ok, body);
    }
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
                Err(e) => {
                    json!({"status": "failed", "message": format!("{:#}", anyhow::Error::new(e))})
                }
            }
        }
    };
    // Any answer from InstantDB to a made-up refresh token proves it is reachable.
    let probe = RefreshToken::new(uuid::Uuid::new_v4().to_string()).expect("a uuid is a token");
    let instant = match state.inner.instant.verify_refresh_token(&probe).await {
        Ok(_) => json!({"status": "ok"}),
        Err(e) if e.is_rejected() => json!({"status": "ok"}),
        Err(e) => json!({"status": "failed", "message": e.to_string()}),
    };
    let ok = keys["status"] == "ok" && instant["status"] == "ok";
    let body = json!({"ready": ok, "checks": {"clerk_keys": keys, "instantdb": instant}});
    state.inner.ready.remember(ok, body.clone());
    ready_response(ok, body)
}

fn ready_response(ok: bool, body: Value) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
