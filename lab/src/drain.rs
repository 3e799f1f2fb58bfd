//! The drain loops of the backlog measurements (bench and chaos): `POST /drain` again and again
//! while the service says there is more, timing each call; one loop, or one per lane in
//! parallel (`POST /drain?lane=I&lanes=N`).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper::Method;
use loadgen::client::Client;
use serde_json::Value;

/// What one `POST /drain` loop (or several, merged) saw, for the backlog measurements.
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
    /// Entries the drains reported applied (`drained_batches`: each counted by the one call
    /// that applied it, so a sum over parallel loops above the entries queued is double work).
    pub batches: u64,
    /// Whether the loop finished: `queued` reached 0 (a lane loop: its lane said no `more`).
    pub emptied: bool,
}

impl Drain {
    /// Several loops as one: counts added, the longest request, finished when all finished.
    pub fn merge(loops: &[Drain]) -> Drain {
        Drain {
            requests: loops.iter().map(|d| d.requests).sum(),
            longest: loops.iter().map(|d| d.longest).max().unwrap_or_default(),
            server_errors: loops.iter().map(|d| d.server_errors).sum(),
            processed: loops.iter().map(|d| d.processed).sum(),
            batches: loops.iter().map(|d| d.batches).sum(),
            emptied: !loops.is_empty() && loops.iter().all(|d| d.emptied),
        }
    }
}

/// Calls `POST /drain` while it answers `"more": true` (or, from a service without that field,
/// while `queued` is above 0), until `timeout`.
pub async fn drain(client: &Client, timeout: Duration) -> Drain {
    drain_at(client, "/drain", false, timeout).await
}

/// `lanes` loops at once, `POST /drain?lane=I&lanes=N` for I = 0..N, each until its lane says
/// no `more`; merged (see [`Drain::merge`]). One lane is the plain loop of [`drain`].
pub async fn drain_lanes(client: &Client, lanes: u64, timeout: Duration) -> Drain {
    if lanes <= 1 {
        return drain(client, timeout).await;
    }
    let loops: Vec<_> = (0..lanes)
        .map(|lane| {
            let client = client.clone();
            tokio::spawn(async move {
                let path = format!("/drain?lane={lane}&lanes={lanes}");
                drain_at(&client, &path, true, timeout).await
            })
        })
        .collect();
    let mut done = Vec::with_capacity(loops.len());
    for l in loops {
        done.push(l.await.unwrap_or_default());
    }
    Drain::merge(&done)
}

/// One loop on `path`; a lane loop (`lane`) stops on `"more": false` alone, since `queued`
/// counts the other lanes too.
async fn drain_at(client: &Client, path: &str, lane: bool, timeout: Duration) -> Drain {
    let start = Instant::now();
    let mut d = Drain::default();
    while start.elapsed() < timeout {
        let t0 = Instant::now();
        let a = client
            .attempt(Method::POST, path, Some(bytes::Bytes::from_static(b"{}")))
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
        d.batches += body
            .get("drained_batches")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let more = body.get("more").and_then(Value::as_bool);
        let queued = body.get("queued").and_then(Value::as_u64).unwrap_or(0);
        // `more` (when the service has it) says whether to call again; `queued` is checked
        // too, so a service without the field is looped until its queue is empty.
        if more != Some(true) && (lane || queued == 0) {
            d.emptied = true;
            return d;
        }
    }
    d
}

/// Events queued now, from `/health`'s `queue_size` (which, unlike `/stats`, consumes nothing).
pub async fn queue_size(client: &Client) -> anyhow::Result<u64> {
    let health = client.get_json("/health").await?;
    health["queue_size"]
        .as_u64()
        .with_context(|| format!("GET /health has no queue_size: {health}"))
}
