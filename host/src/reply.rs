//! The answers edge-host gives on its own, without a guest: the request was too slow, the host is
//! full, no route matched, the guest failed. All are JSON in the app's error shape
//! (`{"error","message","details"}`), so clients parse one format whoever answered.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A JSON error answer: `{"error": code, "message": message, "details": []}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<HyperOutgoingBody> {
    let body = serde_json::json!({ "error": code, "message": message, "details": [] });
    let body = Full::new(Bytes::from(body.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Marks an answer given before the request body was read to the end: the connection cannot be
/// reused (the rest of the body would be read as the next request), so hyper closes it.
pub fn closing(mut resp: Response<HyperOutgoingBody>) -> Response<HyperOutgoingBody> {
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// `408`: the client stopped sending its body, or sent it slower than the request timeout.
pub fn request_timeout(message: &str) -> Response<HyperOutgoingBody> {
    closing(error(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        message,
    ))
}

/// `503` with `Retry-After`: every slot for receiving request bodies is taken.
pub fn overloaded(retry_after_secs: u64) -> Response<HyperOutgoingBody> {
    let mut resp = closing(error(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "too many requests are still sending their bodies; retry shortly",
    ));
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

/// `404`: no route of the app matches the path.
pub fn not_found() -> Response<HyperOutgoingBody> {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no route matches this path",
    )
}

/// `500`: the guest trapped, failed or answered with an error instead of a response.
pub fn guest_failed() -> Response<HyperOutgoingBody> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the component failed while handling the request",
    )
}

/// `500`: the guest ran past the request timeout and was stopped.
pub fn guest_timed_out(timeout: std::time::Duration) -> Response<HyperOutgoingBody> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "timeout",
        &format!(
            "the component did not answer within the request timeout ({}s)",
            timeout.as_secs_f64()
        ),
    )
}

/// `500`: the host itself could not run the request (logged with the cause).
pub fn host_failed() -> Response<HyperOutgoingBody> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the host could not run the request",
    )
}
