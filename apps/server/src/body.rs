//! Request bodies: the JSON extractor and the checks every body goes through. A body
//! that cannot be used is answered with its position and the expected shape, never
//! with a value it contained.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Code};

/// A request body the server takes as JSON: the shape it expects, for error messages.
pub trait Shape: DeserializeOwned {
    /// An example of the expected body, e.g. `{"email": "alice@example.com"}`.
    const SHAPE: &'static str;
}

/// A JSON body whose rejections are [`ApiError`]s: 415 not declared as JSON, 413 too
/// large, 400 malformed or of the wrong shape.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: Shape,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(&e))?;
        parse::<T>(&bytes).map(ApiJson)
    }
}

/// Parses a body as `T`: 400 `malformed-json` when it is not JSON, 400 `invalid-body`
/// (with the position and the expected shape) when it is JSON of another shape.
pub fn parse<T: Shape>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::new(
            Code::InvalidBody,
            format!(
                "the request body has the wrong shape at line {} column {}; send {}",
                e.line(),
                e.column(),
                T::SHAPE
            ),
        ),
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => {
            ApiError::new(Code::MalformedJson, "the request body is not valid JSON")
        }
    })
}

/// A body that could not be read: 413 over the limit, else 400.
pub fn body_error(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large()
    } else {
        ApiError::new(Code::InvalidBody, "the request body could not be read")
    }
}

/// 415 unless the body is declared as JSON (`application/json` or `application/*+json`).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only parsed")]
    struct Body {
        email: String,
    }

    impl Shape for Body {
        const SHAPE: &'static str = r#"{"email": "alice@example.com"}"#;
    }

    #[test]
    fn a_body_of_the_wrong_shape_is_answered_with_its_position_and_no_value() {
        for (body, at) in [
            (r#"{"email": 12345678}"#, "line 1 column 18"),
            (
                r#"{"email": "a@b.c", "secret-field": "hunter2"}"#,
                "line 1 column 33",
            ),
            ("{}", "line 1 column 2"),
        ] {
            let error = parse::<Body>(body.as_bytes()).unwrap_err();
            assert_eq!(error.code, Code::InvalidBody, "{body}");
            assert_eq!(
                error.message,
                format!(
                    "the request body has the wrong shape at {at}; send {{\"email\": \"alice@example.com\"}}"
                )
            );
            assert!(!error.message.contains("12345678"), "{}", error.message);
            assert!(!error.message.contains("hunter2"), "{}", error.message);
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_malformed() {
        for body in ["{\"email\":", "nope", r#"{"email": "a@b.c"} {}"#] {
            let error = parse::<Body>(body.as_bytes()).unwrap_err();
            assert_eq!(error.code, Code::MalformedJson, "{body}");
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            require_json(&headers).is_ok()
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/vnd.api+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(require_json(&HeaderMap::new()).is_err());
    }
}
