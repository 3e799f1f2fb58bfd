//! `GET /openapi.json`: the API contract, `docs/openapi.json` embedded in the component.

use spin_sdk::http::Response;

/// The contract document, compiled in so it always matches this build.
const DOCUMENT: &str = include_str!("../docs/openapi.json");

/// Serves the document.
pub fn serve() -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(DOCUMENT)
        .build()
}
