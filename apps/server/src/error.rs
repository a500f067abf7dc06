//! Every failure as `{"error": {"code", "message"}}` with a fitting status. Messages
//! come from code that never puts a token, a secret or an upstream body in them.

use std::time::Duration;

use auth_core::ErrorKind;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable kebab-case code.
    pub code: &'static str,
    /// What happened and what to do; safe to show.
    pub message: String,
    /// Seconds to wait before retrying, sent as `Retry-After`.
    pub retry_after: Option<Duration>,
    /// Extra top-level fields (e.g. the halves of a sign-out).
    pub extra: Option<serde_json::Map<String, Value>>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            extra: None,
        }
    }

    /// 401: no token in the request.
    pub fn token_missing() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token-missing",
            "no Clerk session token: send Authorization: Bearer <token> or the __session cookie",
        )
    }

    /// 404 for unknown routes.
    pub fn not_found() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such endpoint; see the README for the API",
        )
    }

    /// 504: the request took longer than the per-request timeout.
    pub fn timeout(limit: Duration) -> Self {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "request-timeout",
            format!(
                "the request did not complete within {} s",
                limit.as_secs_f64()
            ),
        )
    }
}

impl From<auth_core::Error> for ApiError {
    fn from(error: auth_core::Error) -> Self {
        let status = match error.kind() {
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::BadInput => StatusCode::BAD_REQUEST,
            ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            code: error.code().as_str(),
            message: error.public_message(),
            retry_after: error.retry_after(),
            extra: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let (Some(extra), Some(object)) = (self.extra, body.as_object_mut()) {
            object.extend(extra);
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(wait) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        // Handlers record the code for logs and metrics.
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// The error code of an error response, for the logging middleware.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// A JSON body whose rejections are [`ApiError`]s: 400 malformed, 413 too large, 415
/// not JSON.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// Maps axum's JSON rejections to API errors.
pub fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "the request body is larger than the server accepts",
            )
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "the request body is not valid JSON",
        ),
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            format!("the request body has the wrong shape: {}", data_error(e)),
        ),
        _ => ApiError::new(
            rejection.status(),
            "invalid-body",
            "the request body could not be read",
        ),
    }
}

/// serde's message for a data error, without the value it quotes.
fn data_error(e: &axum::extract::rejection::JsonDataError) -> String {
    let text = e.body_text();
    // "Failed to deserialize the JSON body into the target type: missing field `query` at line 1 column 2"
    let text = text
        .split_once(": ")
        .map_or(text.as_str(), |(_, rest)| rest)
        .to_owned();
    match text.find(" `").zip(text.find("invalid type")) {
        Some(_) => "a field has the wrong type".to_owned(),
        None => text,
    }
}
