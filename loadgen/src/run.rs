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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::mock::{Faults, MockServer};

    fn config(url: String, mode: Mode) -> Config {
        Config {
            url,
            events: 3_000,
            batch_size: 50,
            concurrency: 4,
            topics: 3,
            mode,
            seed: Some(5),
            request_timeout: Duration::from_millis(300),
            drain_timeout: Duration::from_secs(5),
            ..Config::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clean_service_verifies_exactly() {
        for mode in [Mode::Batch, Mode::Single, Mode::Mixed] {
            let mock = MockServer::start(Faults::default()).await;
            let report = run_async(&config(mock.url(), mode)).await.unwrap();
            let v = report.verification.as_ref().unwrap();
            assert!(report.passed(), "{mode:?}: {:#?}", report.failure_lines());
            assert!(v.exact);
            assert_eq!(v.deltas.received, 3_000);
            assert_eq!(v.deltas.unique_processed, 1_950);
            assert_eq!(v.deltas.duplicate_dropped, 1_050);
            assert_eq!(v.sample_ok, 20);
            assert_eq!(report.events_sent, 3_000);
            assert_eq!(report.unique_ids, 1_950);
            assert_eq!(report.retries, 0);
            assert!(report.verified_line().unwrap().starts_with("verified: "));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retries_queueing_and_unknown_outcomes_are_accounted() {
        let faults = Faults {
            reject_every: Some(7),
            fail_after_store_every: Some(11),
            queue_every: Some(5),
            slow_every: Some(97),
            ..Faults::default()
        };
        let mock = MockServer::start(faults).await;
        let report = run_async(&config(mock.url(), Mode::Mixed)).await.unwrap();
        let v = report.verification.as_ref().unwrap();
        assert!(report.passed(), "{:#?}", report.failure_lines());
        assert!(
            !v.exact,
            "500-after-store and timeouts make outcomes unknown"
        );
        assert!(report.retries > 0);
        assert!(report.queued_resends > 0);
        assert!(report.status_counts.contains_key("202"));
        assert!(report.status_counts.contains_key("503"));
        assert!(report.status_counts.contains_key("timeout"));
        // Retries and resends were acknowledged copies too: more received than planned.
        assert!(v.deltas.received > 3_000);
        assert_eq!(v.deltas.unique_processed, 1_950);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cautious_resends_after_202_still_verify_exactly() {
        let faults = Faults {
            queue_every: Some(3),
            ..Faults::default()
        };
        let mock = MockServer::start(faults).await;
        let report = run_async(&config(mock.url(), Mode::Batch)).await.unwrap();
        let v = report.verification.as_ref().unwrap();
        assert!(report.passed(), "{:#?}", report.failure_lines());
        assert!(v.exact, "202s and their resends leave no outcome unknown");
        assert_eq!(report.retries, 0);
        assert!(report.queued_resends > 0);
        // Every acknowledged copy, resends included, is received.
        assert_eq!(v.deltas.received as u64, report.acknowledged.events);
        assert!(report.acknowledged.events > 3_000);
        assert_eq!(v.deltas.unique_processed, 1_950);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_service_that_loses_or_miscounts_events_fails_verification() {
        let mock = MockServer::start(Faults {
            lose_every: Some(100),
            ..Faults::default()
        })
        .await;
        let report = run_async(&config(mock.url(), Mode::Batch)).await.unwrap();
        assert!(!report.passed());
        let lines = report.failure_lines().join("\n");
        assert!(lines.contains("unique_processed delta"), "{lines}");

        let mock = MockServer::start(Faults {
            count_twice_every: Some(50),
            ..Faults::default()
        })
        .await;
        let report = run_async(&config(mock.url(), Mode::Single)).await.unwrap();
        assert!(!report.passed());
        let lines = report.failure_lines().join("\n");
        assert!(lines.contains("received delta"), "{lines}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_left_in_the_queue_fail_verification() {
        let mock = MockServer::start(Faults {
            queue_every: Some(4),
            no_drain: true,
            ..Faults::default()
        })
        .await;
        let mut cfg = config(mock.url(), Mode::Batch);
        cfg.drain_timeout = Duration::from_millis(300);
        let report = run_async(&cfg).await.unwrap();
        assert!(!report.passed());
        let v = report.verification.as_ref().unwrap();
        assert!(!v.drained);
        assert!(
            v.notes
                .iter()
                .any(|n| n.contains("POST /drain answered 404")),
            "{:?}",
            v.notes
        );
        let lines = report.failure_lines().join("\n");
        assert!(lines.contains("queue not drained"), "{lines}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_errors_fail_the_run_and_duration_stops_early() {
        let mock = MockServer::start(Faults {
            unprocessable_every: Some(10),
            ..Faults::default()
        })
        .await;
        let report = run_async(&config(mock.url(), Mode::Batch)).await.unwrap();
        assert!(!report.passed());
        assert!(
            report
                .failure_lines()
                .iter()
                .any(|l| l.contains("unexpected status 422"))
        );
        // The verification itself still holds: the 422s acknowledged nothing.
        assert!(report.verification.as_ref().unwrap().passed());

        let mock = MockServer::start(Faults {
            delay: Some(Duration::from_millis(20)),
            ..Faults::default()
        })
        .await;
        let mut cfg = config(mock.url(), Mode::Single);
        cfg.concurrency = 2;
        cfg.duration = Some(Duration::from_millis(300));
        let report = run_async(&cfg).await.unwrap();
        assert!(report.stopped_early);
        assert!(report.events_sent < 3_000 && report.events_sent > 0);
        assert!(report.passed(), "{:#?}", report.failure_lines());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_service_that_disappears_mid_run_leaves_a_partial_report() {
        let mock = MockServer::start(Faults {
            vanish_after: Some(10),
            ..Faults::default()
        })
        .await;
        let mut cfg = config(mock.url(), Mode::Batch);
        cfg.max_attempts = 2;
        let report = run_async(&cfg)
            .await
            .expect("a run that started returns its report even when the service goes away");
        assert!(!report.passed());
        assert!(report.verification.is_none());
        let err = report.verification_error.as_deref().unwrap();
        assert!(err.contains("/stats"), "{err}");
        // What was measured before the service vanished is all there.
        assert_eq!(report.acknowledged.ok_200, 10);
        assert_eq!(report.acknowledged.events, 10 * 50);
        assert!(report.status_counts.contains_key("connect_error"));
        let lines = report.failure_lines().join("\n");
        assert!(lines.contains("verification could not run"), "{lines}");
        let human = report.render_human();
        assert!(human.contains("partial report"), "{human}");
        assert!(report.to_json().contains("\"verification_error\""));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_service_is_an_error_and_no_verify_skips_stats() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = config(format!("http://127.0.0.1:{port}"), Mode::Batch);
        assert!(run_async(&cfg).await.is_err());
        cfg.verify = false;
        cfg.events = 10;
        cfg.max_attempts = 2;
        let report = run_async(&cfg).await.unwrap();
        assert!(report.verification.is_none());
        assert!(!report.passed());
        assert!(report.status_counts.contains_key("connect_error"));
        assert_eq!(report.acknowledged.unknown_outcome_attempts, 0);
    }
}
