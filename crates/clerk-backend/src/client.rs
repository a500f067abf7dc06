//! The client: configuration, the three calls, and sending them with retries on 429.

use std::fmt;
use std::time::Duration;

use clerk_jwt::SecretKey;
use http_retry::{SharedClock, Verdict};
use serde::Deserialize;

use crate::error::{ApiError, Error, Outage};
use crate::model::{Session, User};
use crate::retry::RetryPolicy;
use crate::{DEFAULT_BASE_URL, Result};

/// Configures a [`BackendClient`].
#[derive(Debug)]
#[must_use]
pub struct BackendClientBuilder {
    secret: SecretKey,
    base_url: String,
    timeout: Duration,
    retry: RetryPolicy,
    clock: SharedClock,
    api_version: Option<String>,
    http: Option<reqwest::Client>,
}

impl BackendClientBuilder {
    /// The API base URL (default [`DEFAULT_BASE_URL`]), without `/v1`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The timeout of each request (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// When to retry on 429.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The clock retries wait through. Default [`http_retry::TokioClock`]; tests pass
    /// `http_retry::TestClock` (feature `testing`) so that no retry waits for real.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends `Clerk-API-Version` (e.g. `2026-05-12`).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// Uses this HTTP client (to share its connection pool).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Checks the configuration and builds the client.
    pub fn build(self) -> Result<BackendClient> {
        let base = self.base_url.trim().trim_end_matches('/').to_owned();
        let valid = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
        if !valid {
            return Err(Error::Config {
                problem: "the base url must be an http:// or https:// url",
                source: None,
            });
        }
        let http = match self.http {
            Some(client) => client,
            None => reqwest::Client::builder()
                .user_agent(concat!("clerk-instant-backend/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(self.timeout)
                // A redirect would carry the secret key to another host.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::Config {
                    problem: "the http client could not be built",
                    source: Some(std::sync::Arc::new(e)),
                })?,
        };
        Ok(BackendClient {
            http,
            base,
            secret: self.secret,
            timeout: self.timeout,
            retry: self.retry,
            clock: self.clock,
            api_version: self.api_version,
        })
    }
}

/// A Clerk Backend API client. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct BackendClient {
    http: reqwest::Client,
    base: String,
    secret: SecretKey,
    timeout: Duration,
    retry: RetryPolicy,
    clock: SharedClock,
    api_version: Option<String>,
}

impl fmt::Debug for BackendClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendClient")
            .field("base", &self.base)
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ApiError>,
    #[serde(default)]
    clerk_trace_id: Option<String>,
}

fn check_id(id: &str, prefix: &str) -> Result<()> {
    let valid = id.starts_with(prefix)
        && id.len() > prefix.len()
        && id.len() <= 128
        && id[prefix.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidId(id.chars().take(64).collect()))
    }
}

impl BackendClient {
    /// Starts a configuration with the secret key.
    pub fn builder(secret: SecretKey) -> BackendClientBuilder {
        BackendClientBuilder {
            secret,
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            clock: http_retry::default_clock(),
            api_version: None,
            http: None,
        }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /v1/sessions/{id}`.
    pub async fn get_session(&self, id: &str) -> Result<Session> {
        check_id(id, "sess_")?;
        self.call(
            "get session",
            "session",
            id,
            reqwest::Method::GET,
            &format!("/v1/sessions/{id}"),
        )
        .await
    }

    /// `POST /v1/sessions/{id}/revoke`: ends the session. Tokens already minted stay
    /// valid until they expire (at most 60 s).
    pub async fn revoke_session(&self, id: &str) -> Result<Session> {
        check_id(id, "sess_")?;
        self.call(
            "revoke session",
            "session",
            id,
            reqwest::Method::POST,
            &format!("/v1/sessions/{id}/revoke"),
        )
        .await
    }

    /// `GET /v1/users/{id}`.
    pub async fn get_user(&self, id: &str) -> Result<User> {
        check_id(id, "user_")?;
        self.call(
            "get user",
            "user",
            id,
            reqwest::Method::GET,
            &format!("/v1/users/{id}"),
        )
        .await
    }

    /// Sends a call, retrying 429s as the policy allows.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        call: &'static str,
        resource: &'static str,
        id: &str,
        method: reqwest::Method,
        path: &str,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let finished = http_retry::run(
            &*self.clock,
            &self.retry.schedule(),
            |attempt| {
                let (method, url) = (&method, &url);
                async move {
                    self.attempt(call, resource, id, method.clone(), url, attempt)
                        .await
                }
            },
            |err: &Error| match err {
                Error::RateLimited { retry_after, .. } => Verdict::Retry {
                    retry_after: *retry_after,
                },
                _ => Verdict::Stop,
            },
            |attempt, wait, _| {
                tracing::info!(call, attempt, wait = ?wait, "rate limited by Clerk; retrying");
            },
        )
        .await;
        finished.result
    }

    /// One request and its answer.
    async fn attempt<T: serde::de::DeserializeOwned>(
        &self,
        call: &'static str,
        resource: &'static str,
        id: &str,
        method: reqwest::Method,
        url: &str,
        attempt: u32,
    ) -> Result<T> {
        let started = std::time::Instant::now();
        let mut request = self
            .http
            .request(method, url)
            .timeout(self.timeout)
            .bearer_auth(self.secret.expose())
            .header(http::header::ACCEPT, "application/json");
        if let Some(version) = &self.api_version {
            request = request.header("Clerk-API-Version", version);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::transport(call, e))?;
        let status = response.status().as_u16();
        tracing::debug!(call, status, attempt, elapsed = ?started.elapsed(), "clerk backend api");
        if status == 429 {
            return Err(Error::RateLimited {
                call,
                retry_after: Some(
                    http_retry::retry_after(response.headers()).unwrap_or(self.retry.default_wait),
                ),
            });
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::transport(call, e))?;
        match status {
            200..=299 => {
                serde_json::from_slice(&body).map_err(|e| Error::unexpected_json(call, status, &e))
            }
            401 | 403 => Err(Error::Unauthorized { status }),
            404 => Err(Error::NotFound {
                resource,
                id: id.to_owned(),
            }),
            500..=599 => Err(Error::Unavailable {
                call,
                cause: Outage::Status { status },
                source: None,
            }),
            _ => match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(parsed) if !parsed.errors.is_empty() => Err(Error::Rejected {
                    call,
                    status,
                    errors: parsed.errors,
                    trace_id: parsed.clerk_trace_id,
                }),
                _ => Err(Error::InvalidResponse {
                    call,
                    message: format!("HTTP {status} without Clerk's error body"),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_they_reach_a_path() {
        assert!(check_id("sess_2abcDEF_9-x", "sess_").is_ok());
        for bad in [
            "sess_../../users",
            "user_2abc",
            "sess_",
            "sess_a/b",
            "sess_a?x=1",
        ] {
            assert!(check_id(bad, "sess_").is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_secret_key() {
        let client = BackendClient::builder(SecretKey::new("sk_test_supersecret").unwrap())
            .build()
            .unwrap();
        assert!(!format!("{client:?}").contains("supersecret"));
    }
}
