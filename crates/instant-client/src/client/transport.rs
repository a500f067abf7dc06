//! Sending a call: the SDKs' header sets, one request per attempt, and the retries
//! around it (through `http-retry`), inside one `instant_request` span.

use std::time::{Duration, Instant};

use http_retry::Verdict;
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::Result;
use crate::endpoint::Endpoint;
use crate::error::{ConfigError, Error, Outage, from_status};

use super::calls::invalid;
use super::request::{Impersonation, UserRef};
use super::{Client, Inner};

/// Sent as `instant-admin-version` and `instant-core-version` (tracing only, on the
/// server): this crate's version, in the official SDKs' `v1.2.3` form.
const SDK_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));
pub(super) const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(super) const ANY: HeaderValue = HeaderValue::from_static("*/*");
const APP_ID: HeaderName = HeaderName::from_static("app-id");
const ADMIN_VERSION: HeaderName = HeaderName::from_static("instant-admin-version");
const CORE_VERSION: HeaderName = HeaderName::from_static("instant-core-version");
const AS_EMAIL: HeaderName = HeaderName::from_static("as-email");
const AS_TOKEN: HeaderName = HeaderName::from_static("as-token");
const AS_GUEST: HeaderName = HeaderName::from_static("as-guest");

/// One call, ready to send (and resend).
pub(super) struct Call<'a> {
    endpoint: Endpoint,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    /// Credentials sent with the call, scrubbed from anything kept of the answer.
    secrets: Vec<&'a str>,
}

impl Inner {
    /// Admin headers in the order `@instantdb/admin` sends them, with an impersonation
    /// header when given.
    pub(super) fn admin_headers_as(
        &self,
        impersonation: Option<(HeaderName, HeaderValue)>,
    ) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(CONTENT_TYPE, JSON);
        headers.insert(APP_ID, self.app_id_header.clone());
        if let Some(auth) = &self.authorization {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        if let Some((name, value)) = impersonation {
            headers.insert(name, value);
        }
        headers.insert(ADMIN_VERSION, HeaderValue::from_static(SDK_VERSION));
        headers.insert(CORE_VERSION, HeaderValue::from_static(SDK_VERSION));
        headers.insert(ACCEPT, ANY);
        headers
    }
}

impl Client {
    pub(super) fn runtime_call<'a>(
        &'a self,
        endpoint: Endpoint,
        body: &impl Serialize,
        secrets: Vec<&'a str>,
    ) -> Result<Call<'a>> {
        Ok(Call {
            endpoint,
            url: self.inner.urls[endpoint.index()].clone(),
            headers: self.inner.runtime_headers.clone(),
            body: Some(to_body(endpoint, body)?),
            secrets,
        })
    }

    pub(super) fn user_call<'a>(
        &'a self,
        endpoint: Endpoint,
        user: &'a UserRef,
    ) -> Result<Call<'a>> {
        let mut call =
            self.admin_call::<()>(endpoint, None, None, user.secret().into_iter().collect())?;
        let id;
        let value = match user {
            UserRef::Email(email) => email.as_str(),
            UserRef::Id(uuid) => {
                id = uuid.hyphenated().to_string();
                id.as_str()
            }
            UserRef::RefreshToken(token) => token.expose(),
        };
        call.url.query_pairs_mut().append_pair(user.key(), value);
        Ok(call)
    }

    /// Headers in the order `@instantdb/admin` sends them.
    pub(super) fn admin_call<'a, B: Serialize>(
        &'a self,
        endpoint: Endpoint,
        who: Option<&'a Impersonation>,
        body: Option<&B>,
        mut secrets: Vec<&'a str>,
    ) -> Result<Call<'a>> {
        let as_token = matches!(who, Some(Impersonation::RefreshToken(_)));
        let token_optional = as_token && matches!(endpoint, Endpoint::Query | Endpoint::Transact);
        if self.inner.authorization.is_none() && !token_optional {
            return Err(ConfigError::AdminTokenRequired(endpoint).into());
        }
        let headers = match who {
            // The common case: a copy of the headers prepared when the client was built.
            None => self.inner.admin_headers.clone(),
            Some(Impersonation::Email(email)) => {
                let value = HeaderValue::from_str(email)
                    .map_err(|_| invalid(endpoint, "the email cannot be sent in an http header"))?;
                secrets.push(email);
                self.inner.admin_headers_as(Some((AS_EMAIL, value)))
            }
            Some(Impersonation::RefreshToken(token)) => {
                let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
                    invalid(
                        endpoint,
                        "the refresh token cannot be sent in an http header",
                    )
                })?;
                value.set_sensitive(true);
                secrets.push(token.expose());
                self.inner.admin_headers_as(Some((AS_TOKEN, value)))
            }
            Some(Impersonation::Guest) => self
                .inner
                .admin_headers_as(Some((AS_GUEST, HeaderValue::from_static("true")))),
        };
        if let Some(token) = &self.inner.admin_token {
            secrets.push(token.expose());
        }
        Ok(Call {
            endpoint,
            url: self.inner.urls[endpoint.index()].clone(),
            headers,
            body: body.map(|b| to_body(endpoint, b)).transpose()?,
            secrets,
        })
    }

    /// Sends a call, retrying as the policy allows, inside one `tracing` span.
    pub(super) async fn execute<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let span = tracing::info_span!(
            "instant_request",
            endpoint = %call.endpoint,
            attempts = Empty,
            status = Empty,
            duration_ms = Empty,
        );
        self.execute_in_span(call, span.clone())
            .instrument(span)
            .await
    }

    async fn execute_in_span<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        span: tracing::Span,
    ) -> Result<T> {
        let policy = &self.inner.retry;
        let retries_allowed = call.endpoint.is_idempotent_read() || policy.retry_writes;
        let start = Instant::now();
        let finished = http_retry::run(
            &*self.inner.clock,
            &policy.schedule(),
            |attempt| {
                let (call, span) = (&call, &span);
                async move {
                    let attempt_start = Instant::now();
                    let (status, outcome) = self.attempt::<T>(call).await;
                    if let Some(status) = status {
                        span.record("status", status);
                    }
                    tracing::debug!(
                        attempt,
                        status,
                        duration_ms = millis(attempt_start.elapsed()),
                        ok = outcome.is_ok(),
                        "instant request attempt"
                    );
                    outcome
                }
            },
            |err: &Error| {
                if retries_allowed && is_retryable(err) {
                    Verdict::Retry {
                        retry_after: err.retry_after(),
                    }
                } else {
                    Verdict::Stop
                }
            },
            |attempt, wait, err| {
                tracing::debug!(attempt, wait_ms = millis(wait), error = %err, "retrying instant request");
            },
        )
        .await;
        span.record("attempts", finished.attempts);
        span.record("duration_ms", millis(start.elapsed()));
        finished
            .result
            .map_err(|err| err.set_attempts(finished.attempts))
    }

    /// One request: the HTTP status when one came back, and the outcome.
    async fn attempt<T: DeserializeOwned>(&self, call: &Call<'_>) -> (Option<u16>, Result<T>) {
        let endpoint = call.endpoint;
        // Built directly: `RequestBuilder::headers` would re-insert every header.
        let mut request = reqwest::Request::new(endpoint.method(), call.url.clone());
        *request.headers_mut() = call.headers.clone();
        *request.timeout_mut() = Some(self.inner.timeout);
        if let Some(body) = &call.body {
            *request.body_mut() = Some(body.clone().into());
        }
        let response = match self.inner.http.execute(request).await {
            Ok(response) => response,
            Err(e) => return (None, Err(Error::transport(endpoint, e))),
        };
        let status = response.status().as_u16();
        let retry_after = http_retry::retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return (Some(status), Err(Error::transport(endpoint, e))),
        };
        let outcome = if status == 200 {
            serde_json::from_slice(&body).map_err(|e| Error::unexpected_json(endpoint, &e))
        } else {
            Err(from_status(
                endpoint,
                status,
                &body,
                retry_after,
                &call.secrets,
            ))
        };
        (Some(status), outcome)
    }
}

fn is_retryable(err: &Error) -> bool {
    match err {
        Error::RateLimited { .. } => true,
        Error::Unavailable { cause, .. } => match cause {
            Outage::Status { status, .. } => matches!(status, 502..=504),
            Outage::Timeout | Outage::Connect | Outage::ConnectionLost => true,
        },
        _ => false,
    }
}

fn to_body(endpoint: Endpoint, body: &(impl Serialize + ?Sized)) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|_| invalid(endpoint, "the body cannot be serialized to json"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
