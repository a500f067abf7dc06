//! Clerk webhooks as Svix delivers them: signed with `svix-*` headers, retried on
//! failure on Svix's schedule (scaled down for tests).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clerk_jwt::Clock;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::WebhookSecret;

/// Svix's retry schedule: the wait before each attempt, the first being immediate.
/// Eight attempts in all, spread over about 28 hours.
pub const SVIX_RETRY_SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Signs a webhook as Svix does: `v1,` + base64(HMAC-SHA256(key, `<id>.<timestamp>.<body>`))
/// where the key is the base64-decoded part of the secret after `whsec_`.
///
/// ```
/// use devstack::{WebhookSecret, clerk::sign_webhook};
///
/// let secret = WebhookSecret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")?;
/// let body = br#"{"email":"test@example.com","username":"test_user"}"#;
/// assert_eq!(
///     sign_webhook(&secret, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body),
///     "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
/// );
/// # Ok::<(), devstack::Error>(())
/// ```
pub fn sign_webhook(
    secret: &WebhookSecret,
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret.key_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(message_id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

/// Where events are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// The URL events are POSTed to.
    pub url: String,
    /// The signing secret.
    pub secret: WebhookSecret,
}

impl WebhookEndpoint {
    /// An endpoint.
    pub fn new(url: impl Into<String>, secret: WebhookSecret) -> Self {
        WebhookEndpoint {
            url: url.into(),
            secret,
        }
    }
}

/// How deliveries are retried.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WebhookOptions {
    /// Multiplies every delay of [`SVIX_RETRY_SCHEDULE`]: 1.0 is Svix's real timing,
    /// 0.0 retries at once (tests), 0.001 turns hours into seconds.
    pub retry_scale: f64,
    /// How long one attempt may take before it counts as failed (Svix: about 15 s).
    pub timeout: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            retry_scale: 1.0,
            timeout: Duration::from_secs(15),
        }
    }
}

impl WebhookOptions {
    /// Sets the retry scale (negative or NaN values count as 0).
    #[must_use]
    pub fn retry_scale(mut self, scale: f64) -> Self {
        self.retry_scale = scale;
        self
    }

    /// Sets the attempt timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn delay(&self, base: Duration) -> Duration {
        let scale = if self.retry_scale.is_finite() && self.retry_scale > 0.0 {
            self.retry_scale
        } else {
            0.0
        };
        base.mul_f64(scale)
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The `svix-timestamp` sent.
    pub timestamp: i64,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The transport error, when none did.
    pub error: Option<String>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Attempts remain.
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Every attempt failed.
    Failed,
}

/// The delivery of one message to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The message id (`svix-id`), the same for every attempt and endpoint.
    pub message_id: String,
    /// The event type, e.g. `user.created`.
    pub event_type: String,
    /// The endpoint URL.
    pub url: String,
    /// The attempts so far.
    pub attempts: Vec<Attempt>,
    /// The outcome.
    pub state: DeliveryState,
}

struct Inner {
    endpoints: Mutex<Vec<WebhookEndpoint>>,
    deliveries: Mutex<Vec<Delivery>>,
    tasks: Mutex<JoinSet<()>>,
    in_flight: watch::Sender<usize>,
    options: WebhookOptions,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    instance_id: String,
}

/// Sends Clerk events to the registered endpoints. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhooks")
            .field("endpoints", &self.endpoints())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Decrements the in-flight count when a delivery task ends, even when aborted.
struct InFlight(watch::Sender<usize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Webhooks {
    pub(crate) fn new(
        endpoints: Vec<WebhookEndpoint>,
        options: WebhookOptions,
        clock: Arc<dyn Clock>,
        instance_id: String,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .user_agent("Svix-Webhooks/1.0 (devstack)")
            .build()
            .unwrap_or_default();
        Webhooks {
            inner: Arc::new(Inner {
                endpoints: Mutex::new(endpoints),
                deliveries: Mutex::default(),
                tasks: Mutex::new(JoinSet::new()),
                in_flight: watch::channel(0).0,
                options,
                clock,
                client,
                instance_id,
            }),
        }
    }

    /// Adds an endpoint; every later event is delivered to it.
    pub fn add_endpoint(&self, endpoint: WebhookEndpoint) {
        lock(&self.inner.endpoints).push(endpoint);
    }

    /// The endpoints' URLs.
    pub fn endpoints(&self) -> Vec<String> {
        lock(&self.inner.endpoints)
            .iter()
            .map(|e| e.url.clone())
            .collect()
    }

    /// Every delivery so far, oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.inner.deliveries).clone()
    }

    /// Waits until no delivery has attempts left to make.
    pub async fn idle(&self) {
        let mut count = self.inner.in_flight.subscribe();
        let _ = count.wait_for(|n| *n == 0).await;
    }

    /// Sends an event (`type`, `data`) in Clerk's envelope to every endpoint, in the
    /// background. Returns the message id (`msg_…`), or `None` with no endpoint.
    pub fn send(&self, event_type: &str, data: &Value) -> Option<String> {
        let endpoints = lock(&self.inner.endpoints).clone();
        if endpoints.is_empty() {
            return None;
        }
        let message_id = crate::util::clerk_id("msg");
        let envelope = json!({
            "data": data,
            "object": "event",
            "type": event_type,
            "timestamp": self.inner.clock.now().saturating_mul(1000),
            "instance_id": self.inner.instance_id,
            "event_attributes": {
                "http_request": {"client_ip": "127.0.0.1", "user_agent": "devstack"}
            },
        });
        let body = envelope.to_string();
        for endpoint in endpoints {
            let index = {
                let mut deliveries = lock(&self.inner.deliveries);
                deliveries.push(Delivery {
                    message_id: message_id.clone(),
                    event_type: event_type.to_owned(),
                    url: endpoint.url.clone(),
                    attempts: Vec::new(),
                    state: DeliveryState::Pending,
                });
                deliveries.len() - 1
            };
            self.inner.in_flight.send_modify(|n| *n += 1);
            let guard = InFlight(self.inner.in_flight.clone());
            let inner = Arc::clone(&self.inner);
            let message_id = message_id.clone();
            let body = body.clone();
            let mut tasks = lock(&self.inner.tasks);
            while tasks.try_join_next().is_some() {}
            tasks.spawn(async move {
                let _guard = guard;
                deliver(&inner, index, &endpoint, &message_id, &body).await;
            });
        }
        tracing::debug!(event_type, %message_id, "webhook queued");
        Some(message_id)
    }

    /// Stops every delivery still under way.
    pub(crate) fn abort_all(&self) {
        lock(&self.inner.tasks).abort_all();
    }
}

async fn deliver(
    inner: &Inner,
    index: usize,
    endpoint: &WebhookEndpoint,
    message_id: &str,
    body: &str,
) {
    for wait in SVIX_RETRY_SCHEDULE {
        let wait = inner.options.delay(wait);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let timestamp = inner.clock.now();
        let signature = sign_webhook(&endpoint.secret, message_id, timestamp, body.as_bytes());
        let result = inner
            .client
            .post(&endpoint.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("svix-id", message_id)
            .header("svix-timestamp", timestamp.to_string())
            .header("svix-signature", signature)
            .body(body.to_owned())
            .send()
            .await;
        let attempt = match &result {
            Ok(response) => Attempt {
                timestamp,
                status: Some(response.status().as_u16()),
                error: None,
            },
            Err(error) => Attempt {
                timestamp,
                status: None,
                error: Some(error.to_string()),
            },
        };
        let succeeded = attempt.status.is_some_and(|s| (200..300).contains(&s));
        {
            let mut deliveries = lock(&inner.deliveries);
            if let Some(delivery) = deliveries.get_mut(index) {
                delivery.attempts.push(attempt);
                if succeeded {
                    delivery.state = DeliveryState::Succeeded;
                }
            }
        }
        if succeeded {
            return;
        }
        tracing::debug!(url = %endpoint.url, %message_id, "webhook attempt failed");
    }
    if let Some(delivery) = lock(&inner.deliveries).get_mut(index) {
        delivery.state = DeliveryState::Failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_known_good_vector() {
        let secret = WebhookSecret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            sign_webhook(
                &secret,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                body
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn delays_scale() {
        let options = WebhookOptions::default().retry_scale(0.001);
        assert_eq!(
            options.delay(Duration::from_secs(5)),
            Duration::from_millis(5)
        );
        let zero = WebhookOptions::default().retry_scale(f64::NAN);
        assert_eq!(zero.delay(Duration::from_secs(5)), Duration::ZERO);
    }
}
