//! Every failure as `{"error": {"code", "message"}}`: one [`Code`] type whose variants
//! know their HTTP status (as axum's rejection types do), and [`ApiError`], the answer
//! every handler and the middleware return. Messages come from code that never puts a
//! token, a secret or an upstream body in them.

use std::time::Duration;

use auth_core::ErrorKind;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clerk_jwt::Refusal;
use serde_json::{Value, json};

/// Every error code the server answers with. Each knows its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// 401: no Clerk token in the request.
    TokenMissing,
    /// 404: no such route.
    NotFound,
    /// 405: the route does not take that method.
    MethodNotAllowed,
    /// 504: the request took longer than the per-request timeout.
    RequestTimeout,
    /// 413: the body is larger than the limit.
    PayloadTooLarge,
    /// 415: the body is not sent as JSON.
    UnsupportedMediaType,
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: the body is JSON of the wrong shape, or could not be read.
    InvalidBody,
    /// 400: the transaction's steps are not valid.
    InvalidTransaction,
    /// 502, 503 or 504: a half of a sign-out failed, for the reason given.
    SignOutIncomplete(Outage),
    /// 503: no `CLERK_WEBHOOK_SIGNING_SECRET` is set, so webhook deliveries cannot be
    /// verified (Svix retries them; nothing is lost once it is set).
    WebhooksNotConfigured,
    /// 400: a webhook delivery that failed verification; the code is
    /// `clerk_webhooks::Error::code` (`webhook-bad-signature`, …). Nothing changed.
    WebhookRefused(&'static str),
    /// 409: another delivery of the same message is being applied right now; retry
    /// (Svix does), the duplicate is answered once that one finished.
    WebhookInProgress,
    /// 503: the effect of a webhook could not be applied now (InstantDB unavailable or
    /// slow); retry after `Retry-After`. The code is the broker's.
    WebhookRetryLater(auth_core::Code),
    /// 403: the dev token endpoint answers loopback clients only.
    #[cfg(feature = "local-stack")]
    DevLoopbackOnly,
    /// 400: the dev token endpoint needs a plausible email address.
    #[cfg(feature = "local-stack")]
    InvalidEmail,
    /// 502: the local Clerk could not mint a token.
    #[cfg(feature = "local-stack")]
    DevClerkFailed,
    /// 429: a rate limit refused the request; retry after `Retry-After`. The limit is
    /// in the message and in `clerk_instant_rate_limited_total{limit}`.
    RateLimited,
    /// A failure of the broker: `auth-core`'s code, answered with the status its kind
    /// calls for.
    Broker {
        /// The code (a Clerk reason for token problems).
        code: auth_core::Code,
        /// What the caller should do.
        kind: ErrorKind,
    },
}

/// Why an upstream call failed, for the status of a partial failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// It did not answer in time (504).
    Timeout,
    /// It is down or rate limiting (503).
    Unavailable,
    /// It refused or failed otherwise (502).
    Failed,
}

impl Code {
    /// The stable kebab-case code sent in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::TokenMissing => Refusal::MISSING.code,
            Code::NotFound => "not-found",
            Code::MethodNotAllowed => "method-not-allowed",
            Code::RequestTimeout => "request-timeout",
            Code::PayloadTooLarge => "payload-too-large",
            Code::UnsupportedMediaType => "unsupported-media-type",
            Code::MalformedJson => "malformed-json",
            Code::InvalidBody => "invalid-body",
            Code::InvalidTransaction => "invalid-transaction",
            Code::SignOutIncomplete(_) => "sign-out-incomplete",
            Code::WebhooksNotConfigured => "webhooks-not-configured",
            Code::WebhookRefused(code) => code,
            Code::WebhookInProgress => "webhook-in-progress",
            Code::WebhookRetryLater(code) => code.as_str(),
            #[cfg(feature = "local-stack")]
            Code::DevLoopbackOnly => "dev-loopback-only",
            #[cfg(feature = "local-stack")]
            Code::InvalidEmail => "invalid-email",
            #[cfg(feature = "local-stack")]
            Code::DevClerkFailed => "dev-clerk-failed",
            Code::RateLimited => "rate-limited",
            Code::Broker { code, .. } => code.as_str(),
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Code::TokenMissing => StatusCode::UNAUTHORIZED,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::RequestTimeout | Code::SignOutIncomplete(Outage::Timeout) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::MalformedJson | Code::InvalidBody | Code::InvalidTransaction => {
                StatusCode::BAD_REQUEST
            }
            Code::SignOutIncomplete(Outage::Unavailable)
            | Code::WebhooksNotConfigured
            | Code::WebhookRetryLater(_) => StatusCode::SERVICE_UNAVAILABLE,
            Code::WebhookRefused(_) => StatusCode::BAD_REQUEST,
            Code::WebhookInProgress => StatusCode::CONFLICT,
            Code::SignOutIncomplete(Outage::Failed) => StatusCode::BAD_GATEWAY,
            #[cfg(feature = "local-stack")]
            Code::DevLoopbackOnly => StatusCode::FORBIDDEN,
            #[cfg(feature = "local-stack")]
            Code::InvalidEmail => StatusCode::BAD_REQUEST,
            #[cfg(feature = "local-stack")]
            Code::DevClerkFailed => StatusCode::BAD_GATEWAY,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Broker { kind, .. } => match kind {
                ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
                ErrorKind::Forbidden => StatusCode::FORBIDDEN,
                ErrorKind::BadInput => StatusCode::BAD_REQUEST,
                ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
                ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl Code {
    /// Every code whose text and status are fixed: all but the webhook verifier's, the
    /// webhook retries' and the broker's, whose text comes from their own crates.
    pub const FIXED: &[Code] = &[
        Code::TokenMissing,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::RequestTimeout,
        Code::PayloadTooLarge,
        Code::UnsupportedMediaType,
        Code::MalformedJson,
        Code::InvalidBody,
        Code::InvalidTransaction,
        Code::SignOutIncomplete(Outage::Timeout),
        Code::SignOutIncomplete(Outage::Unavailable),
        Code::SignOutIncomplete(Outage::Failed),
        Code::WebhooksNotConfigured,
        Code::WebhookInProgress,
        #[cfg(feature = "local-stack")]
        Code::DevLoopbackOnly,
        #[cfg(feature = "local-stack")]
        Code::InvalidEmail,
        #[cfg(feature = "local-stack")]
        Code::DevClerkFailed,
        Code::RateLimited,
    ];

    /// Whether this answers a Clerk token that failed verification: not a missing
    /// token, nor a good token of a signed-out session. The rejected-token limit counts
    /// these.
    pub fn is_token_rejection(self) -> bool {
        matches!(
            self,
            Code::Broker {
                code: auth_core::Code::Token(_),
                kind: ErrorKind::Unauthorized,
            }
        )
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The code, which gives the status.
    pub code: Code,
    /// What happened and what to do; safe to show.
    pub message: String,
    /// Seconds to wait before retrying, sent as `Retry-After`.
    pub retry_after: Option<Duration>,
    /// Extra top-level fields (e.g. the halves of a sign-out).
    pub extra: Option<serde_json::Map<String, Value>>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
            extra: None,
        }
    }

    /// The HTTP status (the code's).
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// 401: no token in the request.
    pub fn token_missing() -> Self {
        ApiError::new(Code::TokenMissing, Refusal::MISSING.message)
    }

    /// 404 for unknown routes.
    pub fn not_found() -> Self {
        ApiError::new(
            Code::NotFound,
            "no such endpoint; see the README for the API",
        )
    }

    /// 405 for a known route with another method.
    pub fn method_not_allowed() -> Self {
        ApiError::new(
            Code::MethodNotAllowed,
            "this endpoint does not take that method",
        )
    }

    /// 504: the request took longer than the per-request timeout.
    pub fn timeout(limit: Duration) -> Self {
        ApiError::new(
            Code::RequestTimeout,
            format!(
                "the request did not complete within {} s",
                limit.as_secs_f64()
            ),
        )
    }

    /// 413: the body is over the limit.
    pub fn payload_too_large() -> Self {
        ApiError::new(
            Code::PayloadTooLarge,
            "the request body is larger than the server accepts",
        )
    }

    /// 415: the body is not declared as JSON.
    pub fn unsupported_media_type() -> Self {
        ApiError::new(
            Code::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        )
    }
}

impl From<auth_core::Error> for ApiError {
    fn from(error: auth_core::Error) -> Self {
        ApiError {
            code: Code::Broker {
                code: error.code(),
                kind: error.kind(),
            },
            message: error.public_message(),
            retry_after: error.retry_after(),
            extra: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let mut body = json!({ "error": { "code": self.code.as_str(), "message": self.message } });
        if let (Some(extra), Some(object)) = (self.extra, body.as_object_mut()) {
            object.extend(extra);
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Whole seconds, rounded up: a client waiting that long finds room.
        if let Some(wait) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(
                &(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
                    .max(1)
                    .to_string(),
            )
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        // The middleware logs the code of every error answer.
        response.extensions_mut().insert(self.code);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails to compile when a code is added without a decision about [`Code::FIXED`].
    fn is_fixed(code: Code) -> bool {
        match code {
            Code::WebhookRefused(_) | Code::WebhookRetryLater(_) | Code::Broker { .. } => false,
            Code::TokenMissing
            | Code::NotFound
            | Code::MethodNotAllowed
            | Code::RequestTimeout
            | Code::PayloadTooLarge
            | Code::UnsupportedMediaType
            | Code::MalformedJson
            | Code::InvalidBody
            | Code::InvalidTransaction
            | Code::SignOutIncomplete(_)
            | Code::WebhooksNotConfigured
            | Code::WebhookInProgress
            | Code::RateLimited => true,
            #[cfg(feature = "local-stack")]
            Code::DevLoopbackOnly | Code::InvalidEmail | Code::DevClerkFailed => true,
        }
    }

    #[test]
    fn fixed_lists_every_fixed_code() {
        assert!(Code::FIXED.iter().all(|code| is_fixed(*code)));
        for (i, code) in Code::FIXED.iter().enumerate() {
            assert!(!Code::FIXED[..i].contains(code), "{code:?} twice");
        }
        // Every fixed variant (SignOutIncomplete once per outage).
        let expected = if cfg!(feature = "local-stack") {
            18
        } else {
            15
        };
        assert_eq!(Code::FIXED.len(), expected);
    }

    #[test]
    fn every_code_is_kebab_case_and_an_error_status() {
        // The fixed codes, and one of each kind whose text comes from elsewhere.
        let codes = Code::FIXED.iter().copied().chain([
            Code::WebhookRefused("webhook-bad-signature"),
            Code::WebhookRetryLater(auth_core::Code::InstantUnavailable),
        ]);
        for code in codes {
            let text = code.as_str();
            assert!(
                text.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{text}"
            );
            assert!(
                code.status().is_client_error() || code.status().is_server_error(),
                "{code:?}"
            );
        }
        assert_eq!(Code::TokenMissing.as_str(), "token-missing");
        assert_eq!(Code::RateLimited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            Code::SignOutIncomplete(Outage::Unavailable).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn only_a_token_that_failed_verification_is_a_token_rejection() {
        let rejected = |reason| Code::Broker {
            code: auth_core::Code::Token(reason),
            kind: ErrorKind::Unauthorized,
        };
        assert!(rejected(clerk_jwt::Reason::TokenExpired).is_token_rejection());
        assert!(rejected(clerk_jwt::Reason::TokenInvalidSignature).is_token_rejection());
        for other in [
            Code::TokenMissing,
            Code::RateLimited,
            Code::Broker {
                code: auth_core::Code::SessionSignedOut,
                kind: ErrorKind::Unauthorized,
            },
            Code::Broker {
                code: auth_core::Code::EmailUnverified,
                kind: ErrorKind::Unauthorized,
            },
            // The keys could not be fetched: not the client's fault.
            Code::Broker {
                code: auth_core::Code::Token(clerk_jwt::Reason::TokenExpired),
                kind: ErrorKind::Unavailable,
            },
        ] {
            assert!(!other.is_token_rejection(), "{other:?}");
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let answer = |wait| {
            let mut error = ApiError::new(Code::RateLimited, "slow down");
            error.retry_after = Some(wait);
            error.into_response().headers()[header::RETRY_AFTER].clone()
        };
        assert_eq!(answer(Duration::from_millis(1500)), "2");
        assert_eq!(answer(Duration::from_secs(7)), "7");
        assert_eq!(answer(Duration::from_millis(1)), "1");
        assert_eq!(answer(Duration::ZERO), "1");
    }
}
