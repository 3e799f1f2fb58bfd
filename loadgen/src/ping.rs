//! `loadgen ping`: the HTTP floor. It posts exactly the bodies a load run would post (same plan:
//! batch bodies to `/publish/batch`, single events to `/publish`) to any URL and expects `200`,
//! without retries or verification. Pointed at a trivial component (`lab/fixtures/hello`)
//! it measures what the host itself costs per request: HTTP, a fresh Wasm instance, moving the
//! body into the guest. No service can beat that number on the same host.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use hyper::Method;

use crate::auth::{Secret, TokenKind};
use crate::client::{Client, snippet};
use crate::measure::{Measurement, Tally, per_sec};
use crate::plan::Shape;
use crate::report::Latency;
use crate::tls::TlsOptions;

/// Settings of one ping run.
#[derive(Clone, Debug)]
pub struct PingConfig {
    /// Base URL.
    pub url: String,
    /// Bearer token sent with every post (a protected edgelog needs its publish token).
    pub token: Option<Secret>,
    /// Certificate checks for `https://`.
    pub tls: TlsOptions,
    /// Events, batches, connections, topics, route and seed.
    pub shape: Shape,
    /// Time limit of one request.
    pub request_timeout: Duration,
}

/// Runs a ping measurement on a fresh tokio runtime.
pub fn ping(config: &PingConfig) -> Result<Measurement> {
    crate::run::block_on(ping_async(config))
}

/// Posts every planned body once; any answer but `200` is an error.
pub async fn ping_async(config: &PingConfig) -> Result<Measurement> {
    let run_id = format!("ping{}", crate::run::random_run_id());
    let (plan, seed) = config.shape.plan(&run_id)?;
    let plan = Arc::new(plan);
    let client = Client::with_tls(
        &config.url,
        config.request_timeout,
        config.shape.concurrency,
        &config.tls,
    )?
    .authorized(TokenKind::Publish, config.token.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(config.shape.concurrency);
    for _ in 0..config.shape.concurrency {
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
        mode: config.shape.mode,
        seed,
        run_id,
        concurrency: config.shape.concurrency,
        batch_size: config.shape.batch_size,
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
