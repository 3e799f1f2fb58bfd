//! `loadgen ping`: the HTTP floor. It posts exactly the bodies a load run would post (same plan:
//! batch bodies to `/publish/batch`, single events to `/publish`) to any URL and expects `200`,
//! without retries or verification. Pointed at a trivial component (`lab/fixtures/hello`)
//! it measures what the host itself costs per request: HTTP, a fresh Wasm instance, moving the
//! body into the guest. No service can beat that number on the same host.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use hyper::Method;

use crate::auth::{Secret, TokenKind};
use crate::client::{Client, snippet};
use crate::measure::{Measurement, Tally, per_sec};
use crate::plan::{Generator, Shape};
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
    let params = config.shape.params(&run_id)?;
    let plan = Arc::new(Mutex::new(Generator::new(&params)));
    let events = Arc::clone(plan.lock().expect("plan lock").events());
    let client = Client::with_tls(
        &config.url,
        config.request_timeout,
        config.shape.concurrency,
        &config.tls,
    )?
    .authorized(TokenKind::Publish, config.token.clone());
    let start = Instant::now();
    let mut workers = Vec::with_capacity(config.shape.concurrency);
    for _ in 0..config.shape.concurrency {
        let plan = Arc::clone(&plan);
        let events = Arc::clone(&events);
        let client = client.clone();
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let Some(req) = plan.lock().expect("plan lock").next() else {
                    break;
                };
                let path = req.route.path();
                match client
                    .attempt(Method::POST, path, Some(events.body(&req)))
                    .await
                {
                    Ok(a) if a.status == 200 => tally.done(req.events.len(), a.latency),
                    Ok(a) => tally.error(format!(
                        "POST {path} answered {}: {}",
                        a.status,
                        snippet(&a.body)
                    )),
                    Err(f) => tally.error(format!("POST {path}: {f}")),
                }
            }
            tally
        }));
    }
    let tally = Tally::join(workers).await;
    let secs = start.elapsed().as_secs_f64();
    let plan = plan.lock().expect("plan lock");
    let (planned, distinct) = (plan.requests(), plan.distinct());
    Ok(Measurement {
        kind: "ping".into(),
        target: config.url.clone(),
        statement: None,
        mode: config.shape.mode,
        seed: params.seed,
        run_id,
        concurrency: config.shape.concurrency,
        batch_size: config.shape.batch_size,
        events_sent: tally.events,
        unique_ids: distinct,
        requests: tally.requests,
        elapsed_secs: secs,
        events_per_sec: per_sec(tally.events, secs),
        requests_per_sec: per_sec(tally.requests, secs),
        latency_ms: Latency::from_us(&tally.latency_us),
        checked: format!("{} of {planned} requests answered 200", tally.requests),
        error_count: tally.error_count,
        passed: tally.error_count == 0 && tally.requests == planned,
        errors: tally.errors,
    })
}
