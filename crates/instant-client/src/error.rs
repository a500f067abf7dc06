//! The crate's error type, grouped by what the caller does next, and the parsing of
//! InstantDB's error bodies into it (keeping only fields safe to show).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::endpoint::Endpoint;
use crate::redact::scrub;
use crate::secret::CredentialError;

/// A failed call. Never contains a token, the admin token or an error body verbatim:
/// only the fields listed here, scrubbed of anything token-shaped.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// InstantDB refused the request as made (HTTP 4xx with its error body): do not
    /// retry the same request; fix the input or tell the user.
    #[error("{endpoint} was rejected with HTTP {status}: {rejection}")]
    Rejected {
        /// The call.
        endpoint: Endpoint,
        /// The HTTP status (400 for most).
        status: u16,
        /// What InstantDB said, scrubbed.
        rejection: Box<Rejection>,
    },
    /// The admin token (or the app id it belongs to) was refused — InstantDB answers
    /// 400 `record-not-found` for `app-admin-token`: fix the configuration.
    #[error(
        "{endpoint} was refused with HTTP {status}: the admin token is not valid for this app id; check both in the Instant dashboard"
    )]
    BadCredentials {
        /// The call.
        endpoint: Endpoint,
        /// The HTTP status (400, or 401).
        status: u16,
        /// What InstantDB said, scrubbed, when it said something.
        rejection: Option<Box<Rejection>>,
    },
    /// Too many requests (HTTP 429): retry after [`Error::retry_after`], or later.
    #[error("{endpoint} was rate limited (HTTP 429) after {attempts} attempt(s){}", http_retry::RetryAfterText(*.retry_after))]
    RateLimited {
        /// The call.
        endpoint: Endpoint,
        /// How long the server asked to wait, when it said.
        retry_after: Option<Duration>,
        /// How many requests were made.
        attempts: u32,
        /// What InstantDB said, scrubbed, when it said something.
        rejection: Option<Box<Rejection>>,
    },
    /// InstantDB could not be reached or failed (5xx, timeout, connection refused or
    /// lost): retry later. A write that timed out may or may not have been applied.
    #[error("{endpoint} is unavailable after {attempts} attempt(s): {cause}")]
    Unavailable {
        /// The call.
        endpoint: Endpoint,
        /// What went wrong on the last attempt.
        cause: Outage,
        /// How many requests were made.
        attempts: u32,
        /// The HTTP client's error, for transport failures (its URL removed).
        #[source]
        source: Option<Arc<reqwest::Error>>,
    },
    /// The answer could not be understood (a 200 that is not the expected JSON, a
    /// non-JSON error body, an unknown route, a redirect): check the base URL points
    /// at an InstantDB server of a supported version.
    #[error(
        "{endpoint} answered HTTP {status} with a response that could not be understood: {detail}"
    )]
    UnexpectedResponse {
        /// The call.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it (no body content beyond scrubbed parser messages).
        detail: String,
    },
    /// The arguments cannot be sent as given (nothing was sent): fix the call.
    #[error("invalid input for {endpoint}: {detail}")]
    InvalidInput {
        /// The call.
        endpoint: Endpoint,
        /// What is wrong.
        detail: String,
    },
    /// The client's configuration is invalid or does not allow the call: fix it. Its
    /// text is the [`ConfigError`]'s (printed once: this variant adds no message).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A configuration mistake, found when the client is built or before a call is sent.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The base URL is unusable.
    #[error("invalid instant client configuration: the base url {0}")]
    BaseUrl(&'static str),
    /// The call needs an admin token and the client has none.
    #[error(
        "{0} needs an admin token: set one on the client (only query and transact impersonating a refresh token work without)"
    )]
    AdminTokenRequired(Endpoint),
    /// A credential is unusable.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The HTTP client could not be built.
    #[error("invalid instant client configuration: the http client could not be built")]
    HttpClient(#[source] Arc<reqwest::Error>),
}

/// Why InstantDB was unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outage {
    /// A 5xx answer; InstantDB's error body, scrubbed, when it sent one.
    Status {
        /// The HTTP status.
        status: u16,
        /// What InstantDB said (e.g. `unknown` with a trace id), scrubbed.
        rejection: Option<Box<Rejection>>,
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
            Outage::Status {
                status,
                rejection: Some(r),
            } => write!(f, "HTTP {status} ({r})"),
            Outage::Status {
                status,
                rejection: None,
            } => write!(f, "HTTP {status}"),
            Outage::Timeout => f.write_str("timed out"),
            Outage::Connect => f.write_str("could not connect"),
            Outage::ConnectionLost => {
                f.write_str("the connection broke before the answer was complete")
            }
        }
    }
}

/// InstantDB's `type` for an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorType {
    /// `record-not-found` (e.g. an unknown refresh token or OAuth client name).
    RecordNotFound,
    /// `record-expired`.
    RecordExpired,
    /// `record-not-unique`.
    RecordNotUnique,
    /// `record-foreign-key-invalid`.
    RecordForeignKeyInvalid,
    /// `record-check-violation`.
    RecordCheckViolation,
    /// `sql-raise`.
    SqlRaise,
    /// `sql-exception`.
    SqlException,
    /// `permission-denied`.
    PermissionDenied,
    /// `permission-evaluation-failed`.
    PermissionEvaluationFailed,
    /// `param-missing`.
    ParamMissing,
    /// `param-malformed`.
    ParamMalformed,
    /// `validation-failed` (e.g. the id token's issuer or subject).
    ValidationFailed,
    /// `operation-timed-out`.
    OperationTimedOut,
    /// `timeout`.
    Timeout,
    /// `rate-limited`.
    RateLimited,
    /// `parameter-limit-exceeded`.
    ParameterLimitExceeded,
    /// `oauth-error`: the id token was refused (see [`Rejection::oauth_error`]).
    OauthError,
    /// `unknown`: an unexpected server failure.
    Unknown,
    /// Any other `type`, as sent (scrubbed).
    Other(String),
}

impl ErrorType {
    /// Parses InstantDB's kebab-case name.
    pub fn parse(name: &str) -> ErrorType {
        match name {
            "record-not-found" => ErrorType::RecordNotFound,
            "record-expired" => ErrorType::RecordExpired,
            "record-not-unique" => ErrorType::RecordNotUnique,
            "record-foreign-key-invalid" => ErrorType::RecordForeignKeyInvalid,
            "record-check-violation" => ErrorType::RecordCheckViolation,
            "sql-raise" => ErrorType::SqlRaise,
            "sql-exception" => ErrorType::SqlException,
            "permission-denied" => ErrorType::PermissionDenied,
            "permission-evaluation-failed" => ErrorType::PermissionEvaluationFailed,
            "param-missing" => ErrorType::ParamMissing,
            "param-malformed" => ErrorType::ParamMalformed,
            "validation-failed" => ErrorType::ValidationFailed,
            "operation-timed-out" => ErrorType::OperationTimedOut,
            "timeout" => ErrorType::Timeout,
            "rate-limited" => ErrorType::RateLimited,
            "parameter-limit-exceeded" => ErrorType::ParameterLimitExceeded,
            "oauth-error" => ErrorType::OauthError,
            "unknown" => ErrorType::Unknown,
            other => ErrorType::Other(scrub(other, &[])),
        }
    }

    /// InstantDB's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorType::RecordNotFound => "record-not-found",
            ErrorType::RecordExpired => "record-expired",
            ErrorType::RecordNotUnique => "record-not-unique",
            ErrorType::RecordForeignKeyInvalid => "record-foreign-key-invalid",
            ErrorType::RecordCheckViolation => "record-check-violation",
            ErrorType::SqlRaise => "sql-raise",
            ErrorType::SqlException => "sql-exception",
            ErrorType::PermissionDenied => "permission-denied",
            ErrorType::PermissionEvaluationFailed => "permission-evaluation-failed",
            ErrorType::ParamMissing => "param-missing",
            ErrorType::ParamMalformed => "param-malformed",
            ErrorType::ValidationFailed => "validation-failed",
            ErrorType::OperationTimedOut => "operation-timed-out",
            ErrorType::Timeout => "timeout",
            ErrorType::RateLimited => "rate-limited",
            ErrorType::ParameterLimitExceeded => "parameter-limit-exceeded",
            ErrorType::OauthError => "oauth-error",
            ErrorType::Unknown => "unknown",
            ErrorType::Other(name) => name,
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What InstantDB said when it refused a request: only the fields safe to show, each
/// scrubbed of tokens. The `hint` object is never kept whole (it echoes the input,
/// including tokens): only its keys, its `record-type` and its `retry-after`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejection {
    /// The `type`.
    pub error_type: ErrorType,
    /// The `message`, scrubbed.
    pub message: Option<String>,
    /// For `oauth-error`: the `error` text (e.g. `Error validating JWT. Token is
    /// expired.`), scrubbed — the official JS SDK drops it.
    pub oauth_error: Option<String>,
    /// `hint.record-type` for `record-not-found` and friends (e.g. `app-admin-token`,
    /// `app-oauth-client`).
    pub record_type: Option<String>,
    /// The keys of `hint`, for diagnosis; never its values.
    pub hint_keys: Vec<String>,
    /// `trace-id`, to quote to InstantDB support.
    pub trace_id: Option<String>,
}

impl Rejection {
    /// A rejection with only a type and a message, for tests and doubles.
    pub fn new(error_type: ErrorType, message: Option<&str>) -> Self {
        Rejection {
            error_type,
            message: message.map(|m| scrub(m, &[])),
            oauth_error: None,
            record_type: None,
            hint_keys: Vec::new(),
            trace_id: None,
        }
    }

    /// The most useful text: the message, else the OAuth error text.
    pub fn text(&self) -> Option<&str> {
        self.message.as_deref().or(self.oauth_error.as_deref())
    }

    /// Whether this is `record-not-found` for `record_type` (e.g. `app-admin-token`).
    pub fn is_record_not_found(&self, record_type: &str) -> bool {
        self.error_type == ErrorType::RecordNotFound
            && (self.record_type.as_deref() == Some(record_type)
                || self
                    .message
                    .as_deref()
                    .is_some_and(|m| m.trim_end().ends_with(&format!(": {record_type}"))))
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text() {
            Some(text) => write!(f, "{}: {text}", self.error_type)?,
            None => write!(f, "{}", self.error_type)?,
        }
        if let Some(trace) = &self.trace_id {
            write!(f, " (trace id {trace})")?;
        }
        Ok(())
    }
}

impl Error {
    /// The call that failed, unless the client's configuration did.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            Error::Rejected { endpoint, .. }
            | Error::BadCredentials { endpoint, .. }
            | Error::RateLimited { endpoint, .. }
            | Error::Unavailable { endpoint, .. }
            | Error::UnexpectedResponse { endpoint, .. }
            | Error::InvalidInput { endpoint, .. } => Some(*endpoint),
            Error::Config(ConfigError::AdminTokenRequired(endpoint)) => Some(*endpoint),
            Error::Config(_) => None,
        }
    }

    /// The HTTP status of the last answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Rejected { status, .. }
            | Error::BadCredentials { status, .. }
            | Error::UnexpectedResponse { status, .. }
            | Error::Unavailable {
                cause: Outage::Status { status, .. },
                ..
            } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// What InstantDB said, when it said something.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Error::Rejected { rejection, .. } => Some(rejection),
            Error::BadCredentials { rejection, .. } | Error::RateLimited { rejection, .. } => {
                rejection.as_deref()
            }
            Error::Unavailable {
                cause: Outage::Status { rejection, .. },
                ..
            } => rejection.as_deref(),
            _ => None,
        }
    }

    /// InstantDB's error `type`, when it sent one.
    pub fn error_type(&self) -> Option<&ErrorType> {
        self.rejection().map(|r| &r.error_type)
    }

    /// How long the server asked to wait before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether InstantDB refused the request itself (do not retry it unchanged).
    pub fn is_rejected(&self) -> bool {
        matches!(self, Error::Rejected { .. })
    }

    /// Whether the request was refused with `record-not-found` (an unknown refresh
    /// token, user or OAuth client name).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Rejected { rejection, .. } if rejection.error_type == ErrorType::RecordNotFound)
    }

    /// Whether the admin token or app id was refused.
    pub fn is_bad_credentials(&self) -> bool {
        matches!(self, Error::BadCredentials { .. })
    }

    /// Whether the call was rate limited.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Error::RateLimited { .. })
    }

    /// Whether trying again later may succeed: rate limited, or InstantDB unreachable
    /// or failing (5xx, timeout, connection). The same meaning as in `clerk-backend`.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::RateLimited { .. } | Error::Unavailable { .. })
    }

    /// Whether the configuration must be fixed (including a refused admin token).
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config(_) | Error::BadCredentials { .. })
    }

    pub(crate) fn set_attempts(mut self, n: u32) -> Self {
        if let Error::RateLimited { attempts, .. } | Error::Unavailable { attempts, .. } = &mut self
        {
            *attempts = n;
        }
        self
    }

    /// A transport failure (no HTTP answer, or a broken body).
    pub(crate) fn transport(endpoint: Endpoint, err: reqwest::Error) -> Self {
        let cause = if err.is_timeout() {
            Outage::Timeout
        } else if err.is_connect() {
            Outage::Connect
        } else {
            Outage::ConnectionLost
        };
        Error::Unavailable {
            endpoint,
            cause,
            attempts: 1,
            // The URL can hold an email or a refresh token (GET /admin/users?…).
            source: Some(Arc::new(err.without_url())),
        }
    }

    /// A 200 whose body is not what the endpoint returns.
    pub(crate) fn unexpected_json(endpoint: Endpoint, err: &serde_json::Error) -> Self {
        Error::UnexpectedResponse {
            endpoint,
            status: 200,
            detail: describe_json_error(err),
        }
    }
}

/// A parser message without any quoted value from the body (serde quotes the
/// offending string: `invalid type: string "…", expected …`), then scrubbed.
pub(crate) fn describe_json_error(err: &serde_json::Error) -> String {
    let what = match err.classify() {
        serde_json::error::Category::Eof => "the json ends early",
        serde_json::error::Category::Syntax => "the body is not json",
        serde_json::error::Category::Data => "the json is not of the expected shape",
        serde_json::error::Category::Io => "the body could not be read",
    };
    format!("{what} ({})", without_values(&err.to_string()))
}

/// A parser message with every quoted string elided (`"…"`), then scrubbed.
pub(crate) fn without_values(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_quote = false;
    for c in raw.chars() {
        if c == '"' {
            if !in_quote {
                out.push_str("\"…\"");
            }
            in_quote = !in_quote;
        } else if !in_quote {
            out.push(c);
        }
    }
    scrub(&out, &[])
}

/// Turns a non-200 answer into an error. `secrets` are the credentials sent with the
/// request, removed from anything kept.
pub(crate) fn from_status(
    endpoint: Endpoint,
    status: u16,
    body: &[u8],
    retry_after_header: Option<Duration>,
    secrets: &[&str],
) -> Error {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let rejection = parsed.as_ref().and_then(|v| parse_rejection(v, secrets));
    match status {
        429 => {
            let retry_after = retry_after_header.or_else(|| {
                parsed
                    .as_ref()
                    .and_then(|v| v.get("hint"))
                    .and_then(|h| h.get("retry-after"))
                    .and_then(seconds)
            });
            Error::RateLimited {
                endpoint,
                retry_after,
                attempts: 1,
                rejection,
            }
        }
        500..=599 => Error::Unavailable {
            endpoint,
            cause: Outage::Status { status, rejection },
            attempts: 1,
            source: None,
        },
        400..=499 => match rejection {
            Some(r) if r.is_record_not_found("app-admin-token") => Error::BadCredentials {
                endpoint,
                status,
                rejection: Some(r),
            },
            r @ None if status == 401 => Error::BadCredentials {
                endpoint,
                status,
                rejection: r,
            },
            Some(r) if status == 401 => Error::BadCredentials {
                endpoint,
                status,
                rejection: Some(r),
            },
            Some(rejection) => Error::Rejected {
                endpoint,
                status,
                rejection,
            },
            None => Error::UnexpectedResponse {
                endpoint,
                status,
                detail: unparsed_detail(status, parsed.as_ref(), body),
            },
        },
        _ => Error::UnexpectedResponse {
            endpoint,
            status,
            detail: if (300..400).contains(&status) {
                "a redirect, which is never followed (check the base url)".to_owned()
            } else {
                "an unexpected status".to_owned()
            },
        },
    }
}

fn unparsed_detail(status: u16, parsed: Option<&Value>, body: &[u8]) -> String {
    match parsed {
        Some(v) if status == 404 && v.get("message").is_some() => {
            "no such route (is the base url an InstantDB server?)".to_owned()
        }
        Some(_) => "an error body without a `type`".to_owned(),
        None if body.is_empty() => "an empty error body".to_owned(),
        None => format!("a non-json error body of {} bytes", body.len()),
    }
}

/// Reads both error shapes: `{type, message, hint, trace-id}` and
/// `{type: "oauth-error", error}`.
fn parse_rejection(body: &Value, secrets: &[&str]) -> Option<Box<Rejection>> {
    let obj = body.as_object()?;
    let error_type = ErrorType::parse(obj.get("type")?.as_str()?);
    let text = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .map(|s| scrub(s, secrets))
    };
    let hint = obj.get("hint").and_then(Value::as_object);
    Some(Box::new(Rejection {
        error_type,
        message: text("message"),
        oauth_error: text("error"),
        record_type: hint
            .and_then(|h| h.get("record-type"))
            .and_then(Value::as_str)
            .map(|s| scrub(s, secrets)),
        hint_keys: hint
            .map(|h| h.keys().take(16).map(|k| scrub(k, secrets)).collect())
            .unwrap_or_default(),
        trace_id: text("trace-id"),
    }))
}

impl From<CredentialError> for Error {
    fn from(e: CredentialError) -> Self {
        Error::Config(e.into())
    }
}

/// A number of seconds, as a JSON number or string.
fn seconds(v: &Value) -> Option<Duration> {
    let secs = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_round_trip() {
        for name in [
            "record-not-found",
            "param-missing",
            "oauth-error",
            "unknown",
            "timeout",
            "brand-new-type",
        ] {
            assert_eq!(ErrorType::parse(name).as_str(), name);
        }
        assert_eq!(
            ErrorType::parse("brand-new-type"),
            ErrorType::Other("brand-new-type".into())
        );
    }

    #[test]
    fn json_error_description_drops_quoted_values() {
        let err =
            serde_json::from_str::<u64>("\"ffffffff-0000-4111-8222-333333333333\"").unwrap_err();
        let text = describe_json_error(&err);
        assert!(!text.contains("ffffffff"), "{text}");
        assert!(
            text.starts_with("the json is not of the expected shape"),
            "{text}"
        );
    }
}
