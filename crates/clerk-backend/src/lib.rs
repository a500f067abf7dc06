//! A small client for Clerk's Backend API: the calls clerk-instant needs (sessions: get
//! and revoke; users: get), with Clerk's error shape, retries on 429 honouring
//! `Retry-After`, and a secret key that never shows.
//!
//! It works against the real Backend API (`https://api.clerk.com`) and against any
//! server with the same surface, such as the local Clerk of the project's dev stack.
//!
//! ```no_run
//! use clerk_backend::BackendClient;
//! use clerk_jwt::SecretKey;
//!
//! # async fn demo() -> Result<(), clerk_backend::Error> {
//! let clerk = BackendClient::builder(SecretKey::new("sk_test_…").unwrap()).build()?;
//! let session = clerk.revoke_session("sess_2abc").await?;
//! assert_eq!(session.status.as_str(), "revoked");
//! # Ok(()) }
//! ```
//!
//! # Security defaults
//!
//! The secret key (a [`clerk_jwt::SecretKey`]) is redacted in `Debug` and never enters
//! an error or a log line. Ids are checked before they go into a URL path. Every request
//! has a timeout; only 429 answers are retried (the request was not processed), at most
//! [`RetryPolicy::max_attempts`] times and never waiting past
//! [`RetryPolicy::max_total_wait`].

use std::fmt;
use std::time::Duration;

use clerk_jwt::SecretKey;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The Backend API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.clerk.com";

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One entry of Clerk's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ApiError {
    /// Machine-readable, e.g. `resource_not_found`.
    pub code: String,
    /// Short message.
    #[serde(default)]
    pub message: String,
    /// Longer explanation.
    #[serde(default)]
    pub long_message: Option<String>,
}

/// What went wrong, grouped by what the caller does next.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The resource does not exist (404): the id is wrong or the resource is gone.
    #[error("{resource} {id} not found")]
    NotFound {
        /// `session` or `user`.
        resource: &'static str,
        /// The id asked for.
        id: String,
    },
    /// Clerk refused the secret key (401/403): fix the configuration.
    #[error("the Clerk Backend API refused the secret key (HTTP {status}); check CLERK_SECRET_KEY")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// Clerk rejected the request (4xx) with its error list.
    #[error("the Clerk Backend API rejected {call} (HTTP {status}): {}", describe(.errors))]
    Rejected {
        /// Which call.
        call: &'static str,
        /// The HTTP status.
        status: u16,
        /// Clerk's errors.
        errors: Vec<ApiError>,
        /// `clerk_trace_id`, for Clerk support.
        trace_id: Option<String>,
    },
    /// Still rate limited after the allowed retries: retry later.
    #[error("the Clerk Backend API is rate limiting {call}; retry after {retry_after:?}")]
    RateLimited {
        /// Which call.
        call: &'static str,
        /// What the last `Retry-After` asked for.
        retry_after: Option<Duration>,
    },
    /// Clerk could not be reached, timed out or failed (5xx): retry later.
    #[error("the Clerk Backend API is unavailable for {call}: {message}")]
    Unavailable {
        /// Which call.
        call: &'static str,
        /// What happened (status, timeout, connection error).
        message: String,
    },
    /// The answer could not be understood.
    #[error("the Clerk Backend API answered {call} with something unexpected: {message}")]
    InvalidResponse {
        /// Which call.
        call: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// The id cannot be a Clerk id; no request was made.
    #[error("{0:?} is not a valid Clerk id")]
    InvalidId(String),
    /// The client configuration is invalid.
    #[error("invalid Clerk Backend API configuration: {0}")]
    Config(String),
}

fn describe(errors: &[ApiError]) -> String {
    if errors.is_empty() {
        return "no error details".to_owned();
    }
    errors
        .iter()
        .map(|e| {
            if e.message.is_empty() {
                e.code.clone()
            } else {
                format!("{} ({})", e.message, e.code)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// Whether retrying later may succeed (rate limited or unavailable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::RateLimited { .. } | Error::Unavailable { .. })
    }

    /// Whether the configuration (secret key, base URL) must be fixed.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Unauthorized { .. } | Error::Config(_))
    }

    /// Whether the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// A session's status. Unknown values are kept (new ones appear).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// `active`.
    Active,
    /// `pending`.
    Pending,
    /// `revoked`.
    Revoked,
    /// `ended`.
    Ended,
    /// `expired`.
    Expired,
    /// `removed`.
    Removed,
    /// `abandoned`.
    Abandoned,
    /// `replaced`.
    Replaced,
    /// Any other value.
    Other(String),
}

impl SessionStatus {
    fn parse(s: String) -> Self {
        match s.as_str() {
            "active" => SessionStatus::Active,
            "pending" => SessionStatus::Pending,
            "revoked" => SessionStatus::Revoked,
            "ended" => SessionStatus::Ended,
            "expired" => SessionStatus::Expired,
            "removed" => SessionStatus::Removed,
            "abandoned" => SessionStatus::Abandoned,
            "replaced" => SessionStatus::Replaced,
            _ => SessionStatus::Other(s),
        }
    }

    /// The status as Clerk writes it.
    pub fn as_str(&self) -> &str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Pending => "pending",
            SessionStatus::Revoked => "revoked",
            SessionStatus::Ended => "ended",
            SessionStatus::Expired => "expired",
            SessionStatus::Removed => "removed",
            SessionStatus::Abandoned => "abandoned",
            SessionStatus::Replaced => "replaced",
            SessionStatus::Other(s) => s,
        }
    }

    /// Whether the session can still mint tokens.
    pub fn is_live(&self) -> bool {
        matches!(self, SessionStatus::Active | SessionStatus::Pending)
    }
}

impl<'de> Deserialize<'de> for SessionStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(SessionStatus::parse)
    }
}

/// A Clerk session.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// `sess_…`.
    pub id: String,
    /// `user_…`.
    pub user_id: String,
    /// The status.
    pub status: SessionStatus,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One of a user's email addresses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct EmailAddress {
    /// `idn_…`.
    pub id: String,
    /// The address.
    pub email_address: String,
    /// How and whether it was verified.
    #[serde(default)]
    pub verification: Option<Verification>,
}

/// An email address's verification.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Verification {
    /// `verified`, `unverified`, …
    pub status: String,
    /// `email_code`, `oauth_google`, …
    #[serde(default)]
    pub strategy: Option<String>,
}

/// A Clerk user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// `user_…`.
    pub id: String,
    /// The primary email address's id, if the user has one.
    #[serde(default)]
    pub primary_email_address_id: Option<String>,
    /// Every email address.
    #[serde(default)]
    pub email_addresses: Vec<EmailAddress>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// The primary email address.
    pub fn primary_email(&self) -> Option<&EmailAddress> {
        let id = self.primary_email_address_id.as_deref()?;
        self.email_addresses.iter().find(|e| e.id == id)
    }

    /// The primary email address, if it is verified.
    pub fn verified_primary_email(&self) -> Option<&str> {
        self.primary_email()
            .filter(|e| {
                e.verification
                    .as_ref()
                    .is_some_and(|v| v.status == "verified")
            })
            .map(|e| e.email_address.as_str())
    }
}

/// When to retry a rate-limited request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 3.
    pub max_attempts: u32,
    /// The wait when a 429 carries no `Retry-After`. Default 1 s.
    pub default_wait: Duration,
    /// Never wait longer than this in all; a `Retry-After` beyond it fails at once.
    /// Default 10 s.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            default_wait: Duration::from_secs(1),
            max_total_wait: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Sets the attempt count and the total wait bound.
    pub fn new(max_attempts: u32, default_wait: Duration, max_total_wait: Duration) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            default_wait,
            max_total_wait,
        }
    }
}

/// Configures a [`BackendClient`].
#[derive(Debug)]
#[must_use]
pub struct BackendClientBuilder {
    secret: SecretKey,
    base_url: String,
    timeout: Duration,
    retry: RetryPolicy,
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
            return Err(Error::Config(format!(
                "base URL {base:?} must be an http:// or https:// URL"
            )));
        }
        let http = match self.http {
            Some(client) => client,
            None => reqwest::Client::builder()
                .user_agent(concat!("clerk-instant-backend/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(self.timeout)
                .build()
                .map_err(|e| Error::Config(format!("HTTP client: {e}")))?,
        };
        Ok(BackendClient {
            http,
            base,
            secret: self.secret,
            timeout: self.timeout,
            retry: self.retry,
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

/// Parses `Retry-After`: delta seconds or an HTTP date.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

impl BackendClient {
    /// Starts a configuration with the secret key.
    pub fn builder(secret: SecretKey) -> BackendClientBuilder {
        BackendClientBuilder {
            secret,
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
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

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        call: &'static str,
        resource: &'static str,
        id: &str,
        method: reqwest::Method,
        path: &str,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let mut waited = Duration::ZERO;
        let mut attempt = 1;
        loop {
            let started = std::time::Instant::now();
            let mut request = self
                .http
                .request(method.clone(), &url)
                .timeout(self.timeout)
                .bearer_auth(self.secret.expose())
                .header(http::header::ACCEPT, "application/json");
            if let Some(version) = &self.api_version {
                request = request.header("Clerk-API-Version", version);
            }
            let response = request.send().await.map_err(|e| Error::Unavailable {
                call,
                message: if e.is_timeout() {
                    format!("timed out after {:?}", self.timeout)
                } else {
                    transport_message(&e)
                },
            })?;
            let status = response.status().as_u16();
            tracing::debug!(call, status, attempt, elapsed = ?started.elapsed(), "clerk backend api");
            if status == 429 {
                let wait = retry_after(response.headers()).unwrap_or(self.retry.default_wait);
                if attempt >= self.retry.max_attempts || waited + wait > self.retry.max_total_wait {
                    return Err(Error::RateLimited {
                        call,
                        retry_after: Some(wait),
                    });
                }
                tracing::info!(call, attempt, wait = ?wait, "rate limited by Clerk; retrying");
                tokio::time::sleep(wait).await;
                waited += wait;
                attempt += 1;
                continue;
            }
            let body = response.bytes().await.map_err(|e| Error::Unavailable {
                call,
                message: format!("reading the answer: {}", transport_message(&e)),
            })?;
            return match status {
                200..=299 => serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse {
                    call,
                    message: format!(
                        "HTTP {status} with a body that is not the expected JSON: {e}"
                    ),
                }),
                401 | 403 => Err(Error::Unauthorized { status }),
                404 => Err(Error::NotFound {
                    resource,
                    id: id.to_owned(),
                }),
                500..=599 => Err(Error::Unavailable {
                    call,
                    message: format!("HTTP {status}"),
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
            };
        }
    }
}

fn transport_message(error: &reqwest::Error) -> String {
    let mut text = if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the connection failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let mut headers = http::HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

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
