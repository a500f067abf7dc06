//! The crate's error type, grouped by what the caller does next, with predicates and
//! transport sources whose URL is removed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

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
    #[error("the Clerk Backend API refused the secret key (HTTP {status})")]
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
    #[error("the Clerk Backend API is rate limiting {call}{}", http_retry::RetryAfterText(*.retry_after))]
    RateLimited {
        /// Which call.
        call: &'static str,
        /// What the last `Retry-After` asked for (else the policy's default wait).
        retry_after: Option<Duration>,
    },
    /// Clerk could not be reached, timed out or failed (5xx): retry later.
    #[error("the Clerk Backend API is unavailable for {call}: {cause}")]
    Unavailable {
        /// Which call.
        call: &'static str,
        /// What went wrong.
        cause: Outage,
        /// The HTTP client's error, for transport failures (its URL removed).
        #[source]
        source: Option<Arc<reqwest::Error>>,
    },
    /// The answer could not be understood.
    #[error("the Clerk Backend API answered {call} with something unexpected: {message}")]
    InvalidResponse {
        /// Which call.
        call: &'static str,
        /// What was wrong with it (kinds and positions, never values from the body).
        message: String,
    },
    /// The id cannot be a Clerk id; no request was made.
    #[error("{0:?} is not a valid Clerk id")]
    InvalidId(String),
    /// The client configuration is invalid: fix it.
    #[error("invalid Clerk Backend API configuration: {problem}")]
    Config {
        /// What is wrong.
        problem: &'static str,
        /// The HTTP client's error, when it could not be built.
        #[source]
        source: Option<Arc<reqwest::Error>>,
    },
}

/// Why the Backend API was unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outage {
    /// A 5xx answer.
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// No complete answer within the request timeout.
    Timeout,
    /// The connection could not be made (refused, DNS, TLS).
    Connect,
    /// The connection broke before the answer was complete.
    ConnectionLost,
}

impl fmt::Display for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outage::Status { status } => write!(f, "HTTP {status}"),
            Outage::Timeout => f.write_str("timed out"),
            Outage::Connect => f.write_str("could not connect"),
            Outage::ConnectionLost => {
                f.write_str("the connection broke before the answer was complete")
            }
        }
    }
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

    /// Whether Clerk gave no complete answer within the request timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::Unavailable {
                cause: Outage::Timeout,
                ..
            }
        )
    }

    /// Whether the call was still rate limited after the allowed retries.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Error::RateLimited { .. })
    }

    /// Why Clerk was unavailable, when it was.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            Error::Unavailable { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    /// Whether the configuration (secret key, base URL) must be fixed.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Unauthorized { .. } | Error::Config { .. })
    }

    /// Whether the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// A transport failure (no HTTP answer, or a broken body).
    pub(crate) fn transport(call: &'static str, err: reqwest::Error) -> Self {
        let cause = if err.is_timeout() {
            Outage::Timeout
        } else if err.is_connect() {
            Outage::Connect
        } else {
            Outage::ConnectionLost
        };
        Error::Unavailable {
            call,
            cause,
            source: Some(Arc::new(err.without_url())),
        }
    }

    /// A 2xx whose body is not what the call returns: the parser's kind and position,
    /// never its message (which can quote values from the body).
    pub(crate) fn unexpected_json(
        call: &'static str,
        status: u16,
        err: &serde_json::Error,
    ) -> Self {
        let what = match err.classify() {
            serde_json::error::Category::Eof => "the json ends early",
            serde_json::error::Category::Syntax => "the body is not json",
            serde_json::error::Category::Data => "the json is not of the expected shape",
            serde_json::error::Category::Io => "the body could not be read",
        };
        Error::InvalidResponse {
            call,
            message: format!(
                "HTTP {status}: {what} (line {}, column {})",
                err.line(),
                err.column()
            ),
        }
    }
}
