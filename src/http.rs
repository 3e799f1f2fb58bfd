//! HTTP plumbing: reading a request safely and writing JSON answers.
//!
//! Everything that touches raw HTTP lives here: the `Content-Type` rule, the body
//! size cap (enforced while streaming, so an oversized body is never buffered),
//! query-string parsing, and the one error type, [`ApiError`], whose JSON shape is
//! the contract for every failure:
//!
//! ```json
//! {"error": "validation_failed", "message": "...",
//!  "details": [{"index": 3, "field": "topic", "message": "is required"}]}
//! ```
//!
//! A request without a `Content-Type` header is treated as JSON: the publishers this
//! replaces were inconsistent about sending one, and the body is parsed strictly anyway.

use futures::StreamExt;
use serde::Serialize;
use spin_sdk::http::{IncomingRequest, Response};

use crate::store::EventQuery;

/// Default page size of `GET /events`, from the contract.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page `GET /events` serves, from the contract.
pub const MAX_LIMIT: u32 = 1000;

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
    /// Methods the route accepts, sent as `Allow` on a 405.
    pub allow: Option<&'static str>,
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
            allow: None,
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
        e.allow = Some(allow);
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

    /// 400: the body could not be read from the connection.
    pub fn unreadable_body() -> Self {
        Self::new(400, "unreadable_body", "the request body could not be read")
    }

    /// 415: a `Content-Type` was sent and it is not JSON.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "unsupported_media_type",
            format!("content type {content_type:?} is not supported; send application/json"),
        )
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
        if let Some(allow) = self.allow {
            response.set_header("allow", allow);
        }
        response
    }
}

/// Builds a JSON response; serialising our own types cannot fail, but if it did we say so.
pub fn json(status: u16, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(bytes)
            .build(),
        Err(_) => Response::builder()
            .status(500)
            .header("content-type", "application/json")
            .body(r#"{"error":"internal","message":"response encoding failed","details":[]}"#)
            .build(),
    }
}

/// First value of a request header, lossily decoded (headers should be ASCII).
pub fn header(req: &IncomingRequest, name: &str) -> Option<String> {
    let values = req.headers().get(name);
    values
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Splits `path?query` so routing only ever sees the path.
pub fn split_path_query(path_with_query: &str) -> (&str, &str) {
    path_with_query
        .split_once('?')
        .unwrap_or((path_with_query, ""))
}

/// Applies the content-type rule: absent is JSON; otherwise `application/json` or `application/*+json`.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let Some(raw) = content_type else {
        return Ok(());
    };
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = match media.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    };
    if is_json {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(raw))
    }
}

/// Reads the body, refusing (413) as soon as it exceeds `max_bytes` — never buffers more.
pub async fn read_body(req: IncomingRequest, max_bytes: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::too_large(format!("request body exceeds {max_bytes} bytes"));
    let declared = header(&req, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_bytes as u64) {
        return Err(too_large());
    }
    // Trust a declared length only so far: it saves re-allocations, not a promise.
    let mut body = Vec::with_capacity(declared.map_or(0, |len| len.min(1 << 20) as usize));
    let mut stream = req.into_body_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::unreadable_body())?;
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Decoded query parameters; the last occurrence of a repeated name wins.
fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .last()
}

fn integer_param(query: &str, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
    let Some(raw) = query_param(query, name) else {
        return Ok(None);
    };
    let range = || format!("must be an integer from {min} to {max}");
    let value: u64 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_query(name, range()))?;
    if value < min || value > max {
        return Err(ApiError::bad_query(name, range()));
    }
    Ok(Some(value))
}

/// Parses `GET /events` parameters: `topic`, `limit` (1–1000), `offset`, `before` (id cursor).
pub fn parse_event_query(query: &str) -> Result<EventQuery, ApiError> {
    let topic = match query_param(query, "topic") {
        Some(t) if t.is_empty() || t.chars().count() > crate::validate::MAX_TEXT_CHARS => {
            return Err(ApiError::bad_query("topic", "must be 1-255 characters"));
        }
        other => other,
    };
    let max = i64::MAX as u64;
    let limit = integer_param(query, "limit", 1, u64::from(MAX_LIMIT))?;
    Ok(EventQuery {
        topic,
        limit: limit.map_or(DEFAULT_LIMIT, |l| l as u32),
        offset: integer_param(query, "offset", 0, max)?.unwrap_or(0),
        before: integer_param(query, "before", 1, max)?,
    })
}

/// Whether the client asked for `202` handling: `Prefer: respond-async` or `?async=true`.
pub fn wants_async(prefer: Option<&str>, query: &str) -> Result<bool, ApiError> {
    let preferred = prefer.is_some_and(|p| {
        p.split([',', ';'])
            .any(|token| token.trim().eq_ignore_ascii_case("respond-async"))
    });
    let asked = match query_param(query, "async").as_deref().map(str::trim) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => return Err(ApiError::bad_query("async", "must be true or false")),
    };
    Ok(preferred || asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_rule() {
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        assert!(check_content_type(Some("application/cloudevents-batch+json")).is_ok());
        for bad in [
            "text/plain",
            "",
            "application/xml",
            "json",
            "text/json",
            "application/jsonx",
        ] {
            let err = check_content_type(Some(bad)).unwrap_err();
            assert_eq!(err.status, 415, "{bad}");
        }
    }

    #[test]
    fn split_path() {
        assert_eq!(split_path_query("/events?topic=a"), ("/events", "topic=a"));
        assert_eq!(split_path_query("/events"), ("/events", ""));
    }

    #[test]
    fn event_query_defaults_and_values() {
        let q = parse_event_query("").unwrap();
        assert_eq!((q.topic, q.limit, q.offset, q.before), (None, 100, 0, None));
        let q = parse_event_query("topic=a%20b&limit=1000&offset=5&before=77").unwrap();
        assert_eq!(q.topic.as_deref(), Some("a b"));
        assert_eq!((q.limit, q.offset, q.before), (1000, 5, Some(77)));
    }

    #[test]
    fn event_query_rejects_bad_parameters_by_name() {
        for (query, param) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=abc", "limit"),
            ("limit=-1", "limit"),
            ("offset=1.5", "offset"),
            ("offset=-3", "offset"),
            ("before=x", "before"),
            ("before=0", "before"),
            ("before=99999999999999999999999", "before"),
            ("topic=", "topic"),
        ] {
            let err = parse_event_query(query).unwrap_err();
            assert_eq!(err.status, 422, "{query}");
            assert_eq!(err.details[0].field.as_deref(), Some(param), "{query}");
        }
    }

    #[test]
    fn async_detection() {
        assert!(!wants_async(None, "").unwrap());
        assert!(wants_async(Some("respond-async"), "").unwrap());
        assert!(wants_async(Some("wait=5, Respond-Async"), "").unwrap());
        assert!(!wants_async(Some("return=minimal"), "").unwrap());
        assert!(wants_async(None, "async=true").unwrap());
        assert!(!wants_async(None, "async=false").unwrap());
        assert_eq!(wants_async(None, "async=maybe").unwrap_err().status, 422);
    }

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
