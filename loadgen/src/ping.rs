//! `loadgen ping`: the HTTP floor. It posts exactly the bodies a load run would post (same plan:
//! batch bodies to `/publish/batch`, single events to `/publish`) to any URL and expects `200`,
//! without retries or verification. Pointed at a trivial component (`loadgen/fixtures/hello`)
//! it measures what the host itself costs per request: HTTP, a fresh Wasm instance, moving the
//! body into the guest. No service can beat that number on the same host.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::Utc;
use hyper::Method;
use rand::RngExt;

use crate::client::{Client, snippet};
use crate::config::Mode;
use crate::measure::{Measurement, Tally, per_sec};
use crate::plan::{Plan, PlanParams};
use crate::report::Latency;

/// Settings of one ping run.
#[derive(Clone, Debug)]
pub struct PingConfig {
    /// Base URL.
    pub url: String,
    /// Events carried, replays included.
    pub events: u64,
    /// Fraction of replays (only changes the bodies' content).
    pub duplicate_rate: f64,
    /// Events per batch body.
    pub batch_size: usize,
    /// Concurrent connections.
    pub concurrency: usize,
    /// Number of topics.
    pub topics: u32,
    /// Body shape and route.
    pub mode: Mode,
    /// Plan seed; random when absent.
    pub seed: Option<u64>,
    /// Time limit of one request.
    pub request_timeout: Duration,
}

/// Runs a ping measurement on a fresh tokio runtime.
pub fn ping(config: &PingConfig) -> Result<Measurement> {
    crate::run::block_on(ping_async(config))
}

/// Posts every planned body once; any answer but `200` is an error.
pub async fn ping_async(config: &PingConfig) -> Result<Measurement> {
    if config.concurrency == 0 || config.batch_size == 0 || config.events == 0 {
        bail!("--events, --batch-size and --concurrency must be at least 1");
    }
    let seed = config.seed.unwrap_or_else(|| rand::rng().random());
    let run_id = format!("ping{}", crate::run::random_run_id());
    let plan = Arc::new(Plan::generate(&PlanParams {
        run_id: run_id.clone(),
        events: config.events,
        duplicate_rate: config.duplicate_rate,
        batch_size: config.batch_size,
        topics: config.topics,
        mode: config.mode,
        seed,
        base_time: Utc::now(),
    })?);
    let client = Client::new(&config.url, config.request_timeout, config.concurrency)?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(config.concurrency);
    for _ in 0..config.concurrency {
        let plan = Arc::clone(&plan);
        let client = client.clone();
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = plan.requests.get(i) else {
                    break;
                };
                let body = plan.body(req);
                match client
                    .attempt(Method::POST, req.route.path(), Some(body))
                    .await
                {
                    Ok(a) if a.status == 200 => tally.done(req.events.len(), a.latency),
                    Ok(a) => tally.error(format!(
                        "POST {} answered {}: {}",
                        req.route.path(),
                        a.status,
                        snippet(&a.body)
                    )),
                    Err(f) => tally.error(format!("POST {}: {f}", req.route.path())),
                }
            }
            tally
        }));
    }
    let tally = Tally::join(workers).await;
    let secs = start.elapsed().as_secs_f64();
    Ok(Measurement {
        kind: "ping".into(),
        target: config.url.clone(),
        statement: None,
        mode: config.mode,
        seed,
        run_id,
        concurrency: config.concurrency,
        batch_size: config.batch_size,
        events_sent: tally.events,
        unique_ids: plan.events.len() as u64,
        requests: tally.requests,
        elapsed_secs: secs,
        events_per_sec: per_sec(tally.events, secs),
        requests_per_sec: per_sec(tally.requests, secs),
        latency_ms: Latency::from_us(&tally.latency_us),
        checked: format!(
            "{} of {} requests answered 200",
            tally.requests,
            plan.requests.len()
        ),
        error_count: tally.error_count,
        passed: tally.error_count == 0 && tally.requests == plan.requests.len() as u64,
        errors: tally.errors,
    })
}
