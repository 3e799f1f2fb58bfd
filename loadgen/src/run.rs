//! One load run end to end: start the lazy plan, take the `/stats` baseline (read token), let
//! the workers send (publish token; see [`crate::send`]), drain, verify and report. [`run`] is
//! the entry point of the CLI, the lab's benchmark and the tests.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use rand::RngExt;

use crate::auth::TokenKind;
use crate::client::Client;
use crate::config::Config;
use crate::events::Events;
use crate::ledger::Ledger;
use crate::plan::{Generator, PlanParams};
use crate::report::Report;
use crate::verify::{self, Verification};
use crate::{readback, send};

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
    let plan = Generator::new(&PlanParams {
        run_id: run_id.clone(),
        events: config.events,
        duplicate_rate: config.duplicate_rate,
        batch_size: config.batch_size,
        topics: config.topics,
        mode: config.mode,
        seed,
        base_time: Utc::now(),
    });
    let events = Arc::clone(plan.events());
    let client = Client::with_tls(
        &config.url,
        config.request_timeout,
        config.concurrency,
        &config.tls,
    )?;
    let publisher = client.authorized(TokenKind::Publish, config.tokens.publish.clone());
    let reader = client.authorized(TokenKind::Read, config.tokens.read.clone());

    let mut notes = Vec::new();
    let before = if config.verify {
        let (stats, drained) = verify::settle(&reader, config.drain_timeout, &mut notes)
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
    let sent = send::send_all(plan, &publisher, config, seed).await;
    probe(Phase::SendEnd);
    if let Some(refusal) = &sent.refusal {
        bail!(
            "{refusal}; the run stopped ({} requests answered; 401 and 403 are not retried)",
            sent.ledger.attempts
        );
    }

    // Once requests went out, the report is kept whatever happens next: a service that
    // disappeared mid-run fails verification, it does not erase what was measured.
    let (verification, verification_error) = match before {
        Some(before) => {
            match verify_run(&reader, &events, &sent.ledger, config, seed, before, notes).await {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(format!("{e:#}"))),
            }
        }
        None => (None, None),
    };
    let mut report = Report::build(config, &run_id, seed, &sent, verification);
    if let Some(e) = verification_error {
        report.set_verification_error(e);
    }
    Ok(report)
}

/// Drains, reads `/stats` again, checks the deltas and reads a sample back.
async fn verify_run(
    client: &Client,
    events: &Events,
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
    let sample = readback::sample(&ledger.acked, config.sample, seed.wrapping_add(1));
    let (sample_ok, read_mismatches) =
        readback::read_back(client, events, &sample, config.protocol).await;
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
