//! `GET /`: what the service is, for clients of the predecessors (JSON); the web console comes next.

use serde::Serialize;
use spin_sdk::http::{IncomingRequest, Response};

use crate::http;

#[derive(Serialize)]
struct Summary {
    service: &'static str,
    status: &'static str,
    version: &'static str,
    docs: &'static str,
}

/// Serves the summary JSON.
pub fn serve(_req: &IncomingRequest) -> Response {
    http::json(
        200,
        &Summary {
            service: "Log Aggregator",
            status: "running",
            version: env!("CARGO_PKG_VERSION"),
            docs: "/openapi.json",
        },
    )
}
