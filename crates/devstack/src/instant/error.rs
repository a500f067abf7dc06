//! InstantDB's error bodies, exactly as its server renders them.

use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::server::json_response;

/// An InstantDB error answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

fn trace_id() -> String {
    crate::util::random_base62(32).to_lowercase()
}

fn path_text(path: &[&str]) -> String {
    let quoted: Vec<String> = path.iter().map(|p| format!("{p:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

impl ApiError {
    /// `{"type", "message", "hint", "trace-id"}`, 400.
    pub(crate) fn bad_request(kind: &str, message: impl Into<String>, hint: Value) -> Self {
        let mut body = Map::new();
        body.insert("type".into(), Value::String(kind.to_owned()));
        body.insert("message".into(), Value::String(message.into()));
        body.insert("hint".into(), hint);
        body.insert("trace-id".into(), Value::String(trace_id()));
        ApiError {
            status: 400,
            body: Value::Object(body),
        }
    }

    /// `record-not-found`: `Record not found: <record-type>`.
    pub(crate) fn record_not_found(record_type: &str, mut hint: Value) -> Self {
        if let Value::Object(map) = &mut hint {
            map.insert("record-type".into(), Value::String(record_type.into()));
        }
        ApiError::bad_request(
            "record-not-found",
            format!("Record not found: {record_type}"),
            hint,
        )
    }

    /// `param-missing`: `Missing parameter: ["body" "app_id"]`.
    pub(crate) fn param_missing(path: &[&str]) -> Self {
        ApiError::bad_request(
            "param-missing",
            format!("Missing parameter: {}", path_text(path)),
            json!({"in": path}),
        )
    }

    /// `param-malformed`, echoing the input as InstantDB does.
    pub(crate) fn param_malformed(path: &[&str], input: &Value) -> Self {
        ApiError::bad_request(
            "param-malformed",
            format!("Malformed parameter: {}", path_text(path)),
            json!({"in": path, "original-input": input}),
        )
    }

    /// `validation-failed`: `Validation failed for <data-type>: <messages>`.
    pub(crate) fn validation(data_type: &str, input: Value, errors: Vec<Value>) -> Self {
        let messages: Vec<&str> = errors
            .iter()
            .filter_map(|e| e.get("message").and_then(Value::as_str))
            .collect();
        let message = if messages.is_empty() {
            format!("Validation failed for {data_type}")
        } else {
            format!("Validation failed for {data_type}: {}", messages.join(", "))
        };
        let mut hint = Map::new();
        hint.insert("data-type".into(), Value::String(data_type.to_owned()));
        hint.insert("input".into(), input);
        hint.insert("errors".into(), Value::Array(errors));
        ApiError::bad_request("validation-failed", message, Value::Object(hint))
    }

    /// A validation failure with one message.
    pub(crate) fn validation_message(data_type: &str, input: Value, message: &str) -> Self {
        ApiError::validation(data_type, input, vec![json!({"message": message})])
    }

    /// `{"type": "oauth-error", "error": "<message>"}`, 400, no `message` field.
    pub(crate) fn oauth(message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            body: json!({"type": "oauth-error", "error": message.into()}),
        }
    }

    /// The 500 InstantDB sends for anything unexpected.
    pub(crate) fn unknown() -> Self {
        ApiError {
            status: 500,
            body: unknown_body(),
        }
    }

    /// The 404 of an unmatched route.
    pub(crate) fn route_not_found() -> Self {
        ApiError {
            status: 404,
            body: json!({"message": "Oops! We couldn't match this route."}),
        }
    }

    /// The `message` (or `error`) text, for Rust callers.
    pub(crate) fn text(&self) -> String {
        self.body
            .get("message")
            .or_else(|| self.body.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .to_owned()
    }
}

fn unknown_body() -> Value {
    json!({
        "type": "unknown",
        "message": "Something went wrong. Sorry about this!",
        "hint": {"debug-uri": null},
        "trace-id": trace_id(),
    })
}

/// The body a [`crate::Fault::Status`] without body sends.
pub(crate) fn default_error_body(status: u16) -> Value {
    match status {
        429 => json!({
            "type": "rate-limited",
            "message": "You're making too many requests. Please email support@instantdb.com or ask for help in the Discord.",
            "hint": null,
            "trace-id": trace_id(),
        }),
        404 => json!({"message": "Oops! We couldn't match this route."}),
        400..=499 => json!({
            "type": "validation-failed",
            "message": "Validation failed (injected fault)",
            "hint": null,
            "trace-id": trace_id(),
        }),
        _ => unknown_body(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_instantdb() {
        let e = ApiError::param_missing(&["body", "app_id"]);
        assert_eq!(e.body["message"], r#"Missing parameter: ["body" "app_id"]"#);
        assert_eq!(e.body["hint"], json!({"in": ["body", "app_id"]}));
        let e = ApiError::record_not_found("app-user", json!({"args": []}));
        assert_eq!(e.body["message"], "Record not found: app-user");
        assert_eq!(e.body["hint"]["record-type"], "app-user");
        let e =
            ApiError::validation_message("id_token", json!("x"), "The id_token had no subject.");
        assert_eq!(
            e.body["message"],
            "Validation failed for id_token: The id_token had no subject."
        );
        let e = ApiError::oauth("Invalid JWT.");
        assert_eq!(
            e.body,
            json!({"type": "oauth-error", "error": "Invalid JWT."})
        );
    }
}
