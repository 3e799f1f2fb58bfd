//! The drain loop of the backlog measurements (bench and chaos): `POST /drain` again and again
//! while the service says there is more, timing each call.

use std::time::{Duration, Instant};

use hyper::Method;
use loadgen::client::Client;
use serde_json::Value;

/// What one `POST /drain` loop saw, for the backlog measurements (chaos and bench).
#[derive(Clone, Copy, Debug, Default)]
pub struct Drain {
    /// `POST /drain` requests made.
    pub requests: u64,
    /// Longest of them.
    pub longest: Duration,
    /// `5xx` answers among them.
    pub server_errors: u64,
    /// Events the drains reported stored (`processed`).
    pub processed: u64,
    /// Whether `queued` reached 0.
    pub emptied: bool,
}

/// Calls `POST /drain` while it answers `"more": true` (or, from a service without that field,
/// while `queued` is above 0), until `timeout`.
pub async fn drain(client: &Client, timeout: Duration) -> Drain {
    let start = Instant::now();
    let mut d = Drain::default();
    while start.elapsed() < timeout {
        let t0 = Instant::now();
        let a = client
            .attempt(
                Method::POST,
                "/drain",
                Some(bytes::Bytes::from_static(b"{}")),
            )
            .await;
        d.requests += 1;
        d.longest = d.longest.max(t0.elapsed());
        let body: Option<Value> = match &a {
            Ok(ans) if ans.status < 300 => serde_json::from_slice(&ans.body).ok(),
            Ok(ans) => {
                if ans.status >= 500 {
                    d.server_errors += 1;
                }
                None
            }
            Err(_) => None,
        };
        let Some(body) = body else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        d.processed += body.get("processed").and_then(Value::as_u64).unwrap_or(0);
        let more = body.get("more").and_then(Value::as_bool);
        let queued = body.get("queued").and_then(Value::as_u64).unwrap_or(0);
        // `more` (when the service has it) says whether to call again; `queued` is checked
        // too, so a service without the field is looped until its queue is empty.
        if more != Some(true) && queued == 0 {
            d.emptied = true;
            return d;
        }
    }
    d
}
