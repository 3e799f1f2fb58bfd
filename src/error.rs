//! The one error type: every non-2xx answer the component gives, and its JSON shape.
//!
//! ```json
//! {"error": "validation_failed", "message": "...",
//!  "details": [{"index": 3, "field": "topic", "message": "is required"}]}
//! ```
//!
//! `http`, `validate`, `auth` and the handlers build these; none of them imports
//! another for its errors.

use serde::Serialize;
use spin_sdk::http::Response;

use crate::http::json;

/// One bad field (or event) of a rejected request, so clients can fix exactly that.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Position in the batch; absent when the request carried a single event object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Field (or query parameter) name; absent when the whole event is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, in words a client developer can act on.
    pub message: String,
}

impl FieldError {
    /// Names a bad field; the index is filled in by the batch parser.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            index: None,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

/// Every non-2xx answer: a status, a short machine code, a message and field details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code to answer with.
    pub status: u16,
    /// Short stable code clients can branch on (e.g. `validation_failed`).
    pub code: &'static str,
    /// Human-readable summary; never contains SQL, credentials or stack traces.
    pub message: String,
    /// Per-field problems (may be empty).
    pub details: Vec<FieldError>,
    /// Extra response headers (`Allow` on a 405, `WWW-Authenticate` on a 401, `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    details: &'a [FieldError],
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Attaches field details, so one error can name every bad field at once.
    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.details = details;
        self
    }

    /// 404: the path is not one of ours.
    pub fn not_found(path: &str) -> Self {
        Self::new(404, "not_found", format!("no route for path {path:?}"))
    }

    /// 405: the path exists but not with this method; `allow` becomes the `Allow` header.
    pub fn method_not_allowed(method: &str, allow: &'static str) -> Self {
        let mut e = Self::new(
            405,
            "method_not_allowed",
            format!("method {method} is not allowed here; use {allow}"),
        );
        e.headers.push(("allow", allow.to_owned()));
        e
    }

    /// 400: the body is not JSON at all.
    pub fn malformed_json(reason: impl std::fmt::Display) -> Self {
        Self::new(
            400,
            "malformed_json",
            format!("request body is not valid JSON: {reason}"),
        )
    }

    /// 400: a protocol body (OTLP, Loki) that does not decode as that protocol's message.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(400, "malformed_body", message)
    }

    /// 400: the body could not be read from the connection.
    pub fn unreadable_body() -> Self {
        Self::new(400, "unreadable_body", "the request body could not be read")
    }

    /// 415: a `Content-Type` was sent and it is not JSON.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "unsupported_media_type",
            format!(
                "content type {content_type:?} is not supported; send application/json \
                 (or application/x-ndjson: one event per line)"
            ),
        )
    }

    /// 415: a `Content-Encoding` this service cannot undo.
    pub fn unsupported_encoding(message: impl Into<String>) -> Self {
        Self::new(415, "unsupported_media_type", message)
    }

    /// 400: a compressed body that does not decompress (corrupt or truncated).
    pub fn bad_encoding(message: impl Into<String>) -> Self {
        Self::new(400, "bad_encoding", message)
    }

    /// 413: a configured size limit was exceeded.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "payload_too_large", message)
    }

    /// 422: well-formed JSON that breaks the event rules.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, "validation_failed", message)
    }

    /// 422: a query parameter is out of range or not a number.
    pub fn bad_query(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(format!("invalid query parameter {param:?}"))
            .with_details(vec![FieldError::new(param, message)])
    }

    /// 503: the key-value queue cannot be reached, so nothing can be acknowledged.
    pub fn queue_unavailable() -> Self {
        Self::new(
            503,
            "queue_unavailable",
            "the queue is unavailable; nothing was accepted, retry later",
        )
    }

    /// 503: the event store cannot be reached.
    pub fn store_unavailable() -> Self {
        Self::new(
            503,
            "store_unavailable",
            "the event store is unavailable, retry later",
        )
    }

    /// 401: the route needs a bearer token and none (or an unknown one) was sent.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = Self::new(401, "unauthorized", message);
        e.headers
            .push(("www-authenticate", "Bearer realm=\"edgelog\"".to_owned()));
        e
    }

    /// 403: a valid token of another group was sent.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    /// 404: a named item (e.g. a dead letter) does not exist.
    pub fn no_such(kind: &str, id: &str) -> Self {
        Self::new(404, "not_found", format!("no {kind} with id {id:?}"))
    }

    /// 409: the request conflicts with the item's state (e.g. retrying a discarded dead letter).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    /// 500: an operator-supplied Spin variable is wrong; names the variable.
    pub fn config(variable: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "config_error",
            format!("Spin variable {variable:?}: {message}"),
        )
    }

    /// Renders the contract's error body (plus `Allow` on a 405).
    pub fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
            details: &self.details,
        };
        let mut response = json(self.status, &body);
        for (name, value) in &self.headers {
            response.set_header(*name, value.as_str());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape() {
        let err = ApiError::invalid("bad").with_details(vec![FieldError {
            index: Some(2),
            field: Some("topic".into()),
            message: "is required".into(),
        }]);
        let body = ErrorBody {
            error: err.code,
            message: &err.message,
            details: &err.details,
        };
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "validation_failed", "message": "bad",
                "details": [{"index": 2, "field": "topic", "message": "is required"}]})
        );
        let single = serde_json::to_value(FieldError::new("topic", "x")).unwrap();
        assert!(single.get("index").is_none());
    }
}
