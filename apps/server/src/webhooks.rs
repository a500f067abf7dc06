//! `POST /v1/webhooks/clerk`: Clerk's webhook deliveries (through Svix), verified on
//! their raw body bytes, deduplicated by message id, and applied through the broker's
//! effects (`auth_core::effects`).
//!
//! Answers, so that Svix retries exactly what was not done:
//! - 503 `webhooks-not-configured` without `CLERK_WEBHOOK_SIGNING_SECRET` (logged
//!   once; Svix keeps retrying, so nothing is lost once the secret is set);
//! - 400 with the library's code (`webhook-bad-signature`, `webhook-stale`, …) for a
//!   delivery that fails verification, whatever the reason: nothing changes;
//! - 200 `{"status": "duplicate"}` for a message applied already;
//! - 409 `webhook-in-progress` with `Retry-After` while another delivery of the same
//!   message is being applied (the first may still fail, so this one must be retried);
//! - 200 `applied`, `ignored` or `unmapped` once the effect is done (the claim is
//!   completed first), 503 with `Retry-After` when InstantDB is unavailable or slow,
//!   or the broker error's own status otherwise; on any error the claim is released
//!   so the retry applies it (when the store cannot be reached, in the background as
//!   soon as it answers: a claim written by a store that then lost its answer must
//!   not hold off the retries for the 5-minute lease).
//!
//! Logs name the message id, the type and the Clerk ids, never the body or a secret.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use auth_core::{DeliveryClaim, EmailChanged, SessionEnded, UserDeleted, UserDeletedPolicy};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use clerk_webhooks::{Delivery, Event, Secrets, Verifier};
use serde_json::{Value, json};

use crate::body::body_error;
use crate::error::{ApiError, Code};
use crate::routes::Route;
use crate::state::AppState;

/// How long Svix is asked to wait when the effect could not be applied now, unless
/// InstantDB said.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long Svix is asked to wait while another delivery of the message is applied.
const IN_PROGRESS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The webhook settings and state.
pub(crate) struct Webhooks {
    verifier: Option<Verifier>,
    policy: UserDeletedPolicy,
    warned: AtomicBool,
    /// Dev mode: the secret was generated, so the banner prints it.
    #[cfg_attr(not(feature = "local-stack"), allow(dead_code))]
    pub(crate) generated_secret: AtomicBool,
}

impl Webhooks {
    pub(crate) fn new(secrets: Option<Secrets>, policy: UserDeletedPolicy) -> Webhooks {
        Webhooks {
            verifier: secrets.map(Verifier::new),
            policy,
            warned: AtomicBool::new(false),
            generated_secret: AtomicBool::new(false),
        }
    }

    /// The secrets deliveries are verified with, when configured.
    #[cfg_attr(not(feature = "local-stack"), allow(dead_code))]
    pub(crate) fn secrets(&self) -> Option<&Secrets> {
        self.verifier.as_ref().map(Verifier::secrets)
    }
}

/// The metric label of an event type: a known type, or `other`.
fn type_label(event: &Event) -> &'static str {
    let name = event.event_type();
    Event::KNOWN_TYPES
        .iter()
        .copied()
        .find(|known| *known == name)
        .unwrap_or("other")
}

/// What applying a delivery did: the outcome label and extra fields of the answer.
struct Applied {
    outcome: &'static str,
    fields: Value,
}

impl Applied {
    fn new(outcome: &'static str, fields: Value) -> Applied {
        Applied { outcome, fields }
    }
}

/// A webhook answer (the server's keys): the outcome, Svix's message id, the event
/// type, and what the effect did (`session`, `user`, `instant_session_signed_out`,
/// `sessions_signed_out`, `policy`, `instant_users`, `users_deleted`, `reason`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "only described: answer writes it")]
pub(crate) struct WebhookAnswer {
    /// `applied`, `ignored`, `unmapped` or `duplicate`.
    #[schema(pattern = "^(applied|ignored|unmapped|duplicate)$")]
    status: String,
    /// Svix's message id.
    id: String,
    /// The Clerk event type, e.g. `session.ended`.
    #[schema(rename = "type")]
    event_type: String,
}

#[utoipa::path(
    post,
    path = Route::ClerkWebhooks.path(),
    tag = "webhooks",
    summary = "Clerk's webhook deliveries (through Svix)",
    description = "Verified by their Svix signature (the `svix-id`, `svix-timestamp` and \
        `svix-signature` headers) over the raw body, not by a Clerk token.",
    request_body(content = Object, content_type = "application/json",
        description = "A Clerk webhook event (Clerk's shape), signed by Svix"),
    responses((status = 200, description = "Applied, ignored, unmapped or a duplicate",
        body = WebhookAnswer)),
)]
pub(crate) async fn clerk(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_error(&e))?;
    let webhooks = &state.inner.webhooks;
    let metrics = &state.inner.metrics;
    let Some(verifier) = &webhooks.verifier else {
        if !webhooks.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "a Clerk webhook delivery arrived but CLERK_WEBHOOK_SIGNING_SECRET is not set; answering 503 so Svix retries"
            );
        }
        return Err(ApiError::new(
            Code::WebhooksNotConfigured,
            "this server has no CLERK_WEBHOOK_SIGNING_SECRET, so it cannot verify Clerk webhooks; set it to the endpoint's signing secret (the delivery is retried)",
        ));
    };
    let now =
        UNIX_EPOCH + Duration::from_secs(u64::try_from(state.inner.verifier.now()).unwrap_or(0));
    let delivery = match verifier.verify(&headers, &body, now) {
        Ok(delivery) => delivery,
        Err(error) => {
            metrics.webhook("other", "refused");
            tracing::warn!(
                code = error.code(),
                error = &error as &dyn std::error::Error,
                "Clerk webhook delivery refused"
            );
            return Err(ApiError::new(
                Code::WebhookRefused(error.code()),
                error.to_string(),
            ));
        }
    };
    let label = type_label(&delivery.event);
    let id = delivery.id.as_str();
    let event_type = delivery.event.event_type();
    let user = delivery.event.user_id();
    let session = delivery.event.session_id();
    let broker = state.broker();
    let claim = match broker.claim_delivery(id).await {
        Ok(claim) => claim,
        Err(error) => {
            // The store is down: nothing was applied, Svix retries.
            metrics.webhook(label, "failed");
            tracing::warn!(
                message = id,
                event_type,
                error = &error as &dyn std::error::Error,
                "Clerk webhook delivery not claimed; the store is unavailable"
            );
            return Err(failure(error));
        }
    };
    let held = match claim {
        DeliveryClaim::Claimed(held) => held,
        DeliveryClaim::Done => {
            metrics.webhook(label, "duplicate");
            tracing::info!(
                message = id,
                event_type,
                user,
                session,
                "duplicate Clerk webhook delivery; already applied"
            );
            return Ok(answer(&delivery, "duplicate", json!({})));
        }
        _ => {
            metrics.webhook(label, "duplicate");
            tracing::info!(
                message = id,
                event_type,
                user,
                session,
                "Clerk webhook delivery while another of the same message is applied; asked to retry"
            );
            let mut error = ApiError::new(
                Code::WebhookInProgress,
                "another delivery of this message is being applied; retry later",
            );
            error.retry_after = Some(IN_PROGRESS_RETRY_AFTER);
            return Err(error);
        }
    };
    match apply(&state, &delivery, webhooks.policy).await {
        Ok(applied) => {
            if let Err(error) = broker.complete_delivery(&held).await {
                // Applied, but not recorded as done: acknowledge only what is durable.
                // The redelivery applies it again, which every effect allows.
                metrics.webhook(label, "failed");
                tracing::warn!(
                    message = id,
                    event_type,
                    error = &error as &dyn std::error::Error,
                    "Clerk webhook applied but not recorded; the redelivery will repeat it"
                );
                return Err(failure(error));
            }
            metrics.webhook(label, applied.outcome);
            if applied.outcome == "unmapped" {
                tracing::warn!(
                    message = id,
                    event_type,
                    user,
                    "Clerk user deleted, but no InstantDB user is known for it; nothing done in InstantDB"
                );
            } else {
                tracing::info!(
                    message = id,
                    event_type,
                    user,
                    session,
                    outcome = applied.outcome,
                    "Clerk webhook delivery handled"
                );
            }
            Ok(answer(&delivery, applied.outcome, applied.fields))
        }
        Err(error) => {
            if let Err(release) = broker.release_delivery(held).await {
                tracing::warn!(
                    message = id,
                    error = &release as &dyn std::error::Error,
                    "could not release a Clerk webhook claim; given back once the store answers"
                );
            }
            metrics.webhook(label, "failed");
            tracing::warn!(
                message = id,
                event_type,
                user,
                session,
                error = &error as &dyn std::error::Error,
                "Clerk webhook effect failed; released for the retry"
            );
            Err(failure(error))
        }
    }
}

/// The error answer of an effect that failed: 503 with `Retry-After` when a retry may
/// succeed, else the broker error's own status.
fn failure(error: auth_core::Error) -> ApiError {
    if error.is_retry_later() {
        let wait = error.retry_after().unwrap_or(RETRY_AFTER);
        let mut answer = ApiError::new(
            Code::WebhookRetryLater(error.code()),
            format!("{}; the delivery is retried", error.public_message()),
        );
        answer.retry_after = Some(wait);
        answer
    } else {
        ApiError::from(error)
    }
}

fn answer(delivery: &Delivery, status: &str, fields: Value) -> Response {
    let mut body = json!({
        "status": status,
        "id": delivery.id,
        "type": delivery.event.event_type(),
    });
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    Json(body).into_response()
}

async fn apply(
    state: &AppState,
    delivery: &Delivery,
    policy: UserDeletedPolicy,
) -> Result<Applied, auth_core::Error> {
    let broker = state.broker();
    let event = &delivery.event;
    match event {
        Event::SessionEnded(s) | Event::SessionRemoved(s) | Event::SessionRevoked(s) => {
            let ended = broker.end_session(&s.id).await?;
            let signed_out = matches!(ended, SessionEnded::SignedOut { .. });
            Ok(Applied::new(
                "applied",
                json!({"session": s.id, "instant_session_signed_out": signed_out}),
            ))
        }
        Event::UserDeleted(deleted) => {
            let Some(user) = deleted.id.as_deref() else {
                return Ok(Applied::new(
                    "ignored",
                    json!({"reason": "the user.deleted event names no user"}),
                ));
            };
            match broker.delete_user(user, policy).await? {
                UserDeleted::Applied {
                    policy,
                    sessions_signed_out,
                    instant_users,
                    users_deleted,
                } => Ok(Applied::new(
                    "applied",
                    json!({
                        "user": user,
                        "policy": policy.as_str(),
                        "sessions_signed_out": sessions_signed_out,
                        "instant_users": instant_users,
                        "users_deleted": users_deleted,
                    }),
                )),
                _ => Ok(Applied::new(
                    "unmapped",
                    json!({
                        "user": user,
                        "reason": "no InstantDB user is known for this Clerk user here; nothing was done in InstantDB",
                    }),
                )),
            }
        }
        Event::UserUpdated(user) => match user.primary_email_address() {
            None => Ok(Applied::new(
                "ignored",
                json!({"user": user.id, "reason": "the user has no primary email"}),
            )),
            Some(email) => match broker.primary_email_changed(&user.id, email).await? {
                EmailChanged::SignedOut { sessions } => Ok(Applied::new(
                    "applied",
                    json!({"user": user.id, "sessions_signed_out": sessions}),
                )),
                _ => Ok(Applied::new(
                    "applied",
                    json!({"user": user.id, "sessions_signed_out": 0}),
                )),
            },
        },
        _ => Ok(Applied::new("ignored", json!({}))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_labels_are_bounded() {
        let unknown = Event::Unknown {
            event_type: "organization.created".into(),
            data: Value::Null,
        };
        assert_eq!(type_label(&unknown), "other");
        let body = br#"{"type":"session.revoked","object":"event","data":{"id":"sess_1","user_id":"user_1"}}"#;
        let event = clerk_webhooks::Envelope::from_json(body).unwrap().event;
        assert_eq!(type_label(&event), "session.revoked");
    }

    #[test]
    fn a_retryable_failure_is_503_with_retry_after() {
        let error = ApiError::new(Code::WebhookInProgress, "x");
        assert_eq!(error.status(), axum::http::StatusCode::CONFLICT);
        assert_eq!(
            Code::WebhookRetryLater(auth_core::Code::InstantUnavailable).status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
