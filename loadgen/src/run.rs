//! One load run end to end: build the plan, take the `/stats` baseline, let the workers send
//! every planned request (with retries and cautious resends), drain, verify and report.
//! [`run`] is the entry point meant for both the CLI and a future `bench` subcommand.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::client::{Client, RetryPolicy};
use crate::config::Config;
use crate::ledger::Ledger;
use crate::plan::{Plan, PlanParams};
use crate::report::Report;
use crate::verify::{self, Verification};

/// Runs a whole load run on a fresh multi-threaded tokio runtime and returns its report.
pub fn run(config: &Config) -> Result<Report> {
    block_on(run_async(config))
}

/// Runs `f` to completion on a fresh multi-threaded tokio runtime: the synchronous entry point
/// of every subcommand.
pub fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(f)
}

/// The same as [`run`], for callers that already are on a tokio runtime.
///
/// Errors are reserved for runs that could not take place (bad settings, service unreachable
/// for the baseline); everything that went wrong *during* a run is in the report, and
/// [`Report::passed`] tells whether it counts as a success.
pub async fn run_async(config: &Config) -> Result<Report> {
    run_with_probe(config, &mut |_| {}).await
}

/// Where a run is, for callers that measure something around the sending phase only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The baseline is taken; the first request is about to go out.
    SendStart,
    /// The last request has been answered; verification comes next.
    SendEnd,
}

/// [`run_async`], calling `probe` as the sending phase starts and ends (`bench` samples CPU
/// time there, so verification is not counted).
pub async fn run_with_probe(config: &Config, probe: &mut dyn FnMut(Phase)) -> Result<Report> {
    config.validate()?;
    let seed = config.seed.unwrap_or_else(|| rand::rng().random());
    // The run id is random even with --seed, so that replaying a seed never collides with the
    // data an earlier run left in the service.
    let run_id = match &config.run_id {
        Some(id) => id.clone(),
        None => random_run_id(),
    };
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

    let mut notes = Vec::new();
    let before = if config.verify {
        let (stats, drained) = verify::settle(&client, config.drain_timeout, &mut notes)
            .await
            .context("taking the /stats baseline")?;
        if !drained {
            notes.push(format!(
                "queue still held {} events before the run; their processing may skew the deltas",
                stats.queued.unwrap_or(0)
            ));
        }
        Some(stats)
    } else {
        None
    };

    probe(Phase::SendStart);
    let (ledger, elapsed) = send_all(&plan, &client, config, seed).await;
    probe(Phase::SendEnd);

    // Once requests went out, the report is kept whatever happens next: a service that
    // disappeared mid-run fails verification, it does not erase what was measured.
    let (verification, verification_error) = match before {
        Some(before) => {
            match verify_run(&client, &plan, &ledger, config, seed, before, notes).await {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(format!("{e:#}"))),
            }
        }
        None => (None, None),
    };
    let mut report = Report::build(config, &plan, seed, &ledger, elapsed, verification);
    if let Some(e) = verification_error {
        report.set_verification_error(e);
    }
    Ok(report)
}

/// Sends the plan with `config.concurrency` workers; returns the merged ledger and the time
/// taken (verification not included).
async fn send_all(
    plan: &Arc<Plan>,
    client: &Client,
    config: &Config,
    seed: u64,
) -> (Ledger, Duration) {
    let progress = if config.progress {
        let bar =
            ProgressBar::with_draw_target(Some(plan.sent_events()), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
            )
            .expect("static template is valid")
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let policy = RetryPolicy {
        max_attempts: config.max_attempts,
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
    };
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = config.duration.map(|d| start + d);
    let mut workers = Vec::with_capacity(config.concurrency);
    for w in 0..config.concurrency {
        let plan = Arc::clone(plan);
        let client = client.clone();
        let next = Arc::clone(&next);
        let progress = progress.clone();
        let resend_queued = config.resend_queued;
        workers.push(tokio::spawn(async move {
            let mut ledger = Ledger::new(plan.events.len());
            let mut rng = ChaCha8Rng::seed_from_u64(
                seed ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = plan.requests.get(i) else {
                    break;
                };
                ledger.issue(req);
                let body = plan.body(req);
                let path = req.route.path();
                let attempts = client
                    .post_with_retries(path, body.clone(), &policy, &mut rng)
                    .await;
                if ledger.record(i, req, &attempts, false) && resend_queued {
                    let again = client
                        .post_with_retries(path, body, &policy, &mut rng)
                        .await;
                    ledger.record(i, req, &again, true);
                }
                progress.inc(req.events.len() as u64);
            }
            ledger
        }));
    }
    let mut ledger = Ledger::new(plan.events.len());
    for w in workers {
        match w.await {
            Ok(l) => ledger.merge(l),
            Err(e) => ledger.error(format!("a worker died: {e}")),
        }
    }
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    (ledger, elapsed)
}

/// Drains, reads `/stats` again, checks the deltas and reads a sample back.
async fn verify_run(
    client: &Client,
    plan: &Plan,
    ledger: &Ledger,
    config: &Config,
    seed: u64,
    before: verify::Stats,
    mut notes: Vec<String>,
) -> Result<Verification> {
    let drain_start = Instant::now();
    let (after, drained) = verify::settle(client, config.drain_timeout, &mut notes)
        .await
        .context("reading /stats after the run")?;
    let drain_secs = drain_start.elapsed().as_secs_f64();
    let expected = ledger.expected();
    let mut mismatches = verify::check_deltas(&expected, &before, &after);
    if !drained {
        notes.push(format!(
            "the queue did not drain within {:?} of POST /drain and polling",
            config.drain_timeout
        ));
    }

    let acked: Vec<u32> = ledger.acked.iter().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
    let n = config.sample.min(acked.len());
    let sample: Vec<u32> = rand::seq::index::sample(&mut rng, acked.len(), n)
        .into_iter()
        .map(|k| acked[k])
        .collect();
    let (sample_ok, read_mismatches) = verify::read_back(client, plan, &sample).await;
    mismatches.extend(read_mismatches);

    Ok(Verification {
        before,
        after,
        deltas: verify::Deltas::between(&before, &after),
        expected,
        exact: expected.ambiguous_events == 0,
        drained,
        drain_secs,
        sampled: sample.len(),
        sample_ok,
        notes,
        mismatches,
    })
}

/// Eight random lowercase alphanumerics: short, URL-safe, practically never reused.
pub fn random_run_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
