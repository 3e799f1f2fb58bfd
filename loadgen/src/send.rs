//! The sending phase: `concurrency` workers take requests from the lazy plan one at a time,
//! encode them in the run's protocol and send them with retries and cautious resends,
//! recording every attempt in one shared ledger.
//!
//! Closed loop (no `--rate`): a worker sends its next request as soon as the previous one is
//! answered, until the plan ends or `--duration` passes. Open loop (`--rate`): request `k` has an
//! intended send time, `start + (events before k) / rate`, fixed by the schedule and not by the
//! service's answers; a worker waits for it, and the first attempt's latency is counted from
//! it, so a slow service shows up as latency instead of silently lowering the rate (no
//! coordinated omission). No request is scheduled at or after `--duration`, so the number of
//! events of a rate run is known in advance. A `401`/`403` stops every worker: it is a
//! configuration error, not load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

use crate::auth;
use crate::client::{Client, RetryPolicy};
use crate::config::Config;
use crate::ledger::Ledger;
use crate::plan::{Generator, PlannedRequest};
use crate::protocol;

/// What the sending phase produced.
pub struct Sent {
    /// Every attempt, accounted.
    pub ledger: Ledger,
    /// Wall time of the phase.
    pub elapsed: Duration,
    /// Whether the plan ran out (rather than `--duration` or a refusal ending the run).
    pub exhausted: bool,
    /// The message of the first `401`/`403`, which stopped the run.
    pub refusal: Option<String>,
}

/// The plan and the schedule, shared by the workers.
struct Source {
    plan: Generator,
    /// Index of the next request.
    next: u64,
    /// Events in the requests handed out so far (the open-loop clock).
    events_before: u64,
}

struct Shared {
    source: Mutex<Source>,
    ledger: Mutex<Ledger>,
    stop: AtomicBool,
    refusal: Mutex<Option<String>>,
    start: Instant,
    rate: Option<f64>,
    deadline: Option<Instant>,
}

impl Shared {
    /// The next request with its index and intended send time, or `None` when the run is over.
    fn take(&self) -> Option<(u64, PlannedRequest, Option<Instant>)> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let mut s = self.source.lock().expect("plan lock");
        let intended = self
            .rate
            .map(|r| self.start + Duration::from_secs_f64(s.events_before as f64 / r));
        let due = intended.unwrap_or_else(Instant::now);
        if self.deadline.is_some_and(|d| due >= d) {
            return None;
        }
        let req = s.plan.next()?;
        let idx = s.next;
        s.next += 1;
        s.events_before += req.events.len() as u64;
        Some((idx, req, intended))
    }
}

fn progress_bar(config: &Config) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let (bar, template) = match config.events {
        Some(n) => (
            ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            "{elapsed_precise} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{elapsed_precise} {spinner} {pos} events ({per_sec})",
        ),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("static template is valid")
            .progress_chars("=> "),
    );
    bar
}

/// Sends the plan with `config.concurrency` workers through `client` (which carries the
/// publish token).
pub async fn send_all(plan: Generator, client: &Client, config: &Config, seed: u64) -> Sent {
    let progress = progress_bar(config);
    let policy = RetryPolicy {
        max_attempts: config.max_attempts,
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
    };
    let events = Arc::clone(plan.events());
    let start = Instant::now();
    let shared = Arc::new(Shared {
        source: Mutex::new(Source {
            plan,
            next: 0,
            events_before: 0,
        }),
        ledger: Mutex::new(Ledger {
            protocol: config.protocol,
            ..Ledger::new()
        }),
        stop: AtomicBool::new(false),
        refusal: Mutex::new(None),
        start,
        rate: config.rate,
        deadline: config.duration.map(|d| start + d),
    });
    let mut workers = Vec::with_capacity(config.concurrency);
    for w in 0..config.concurrency {
        let shared = Arc::clone(&shared);
        let events = Arc::clone(&events);
        let client = client.clone();
        let progress = progress.clone();
        let resend_queued = config.resend_queued;
        let (protocol, gzip) = (config.protocol, config.gzip);
        workers.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(
                seed ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            while let Some((idx, req, intended)) = shared.take() {
                if let Some(t) = intended {
                    tokio::time::sleep_until(t.into()).await;
                }
                let lag = intended.map(|t| Instant::now().saturating_duration_since(t));
                let request = protocol::encode(&events, &req, protocol, gzip);
                let (path, headers) = (request.path, &request.headers);
                let mut attempts = client
                    .post_with_retries(path, headers, request.body.clone(), &policy, &mut rng)
                    .await;
                if let (Some(lag), Some(Ok(first))) = (lag, attempts.first_mut()) {
                    first.latency += lag;
                }
                let refused = match attempts.last() {
                    Some(Ok(a)) if auth::is_refusal(a.status) => {
                        Some(client.refusal(&Method::POST, path, a.status))
                    }
                    _ => None,
                };
                let queued = {
                    let mut l = shared.ledger.lock().expect("ledger lock");
                    l.issue(&req);
                    if let Some(lag) = lag {
                        l.max_schedule_lag = l.max_schedule_lag.max(lag);
                    }
                    l.record(idx, &req, &attempts, false)
                };
                if let Some(msg) = refused {
                    shared.stop.store(true, Ordering::Relaxed);
                    shared
                        .refusal
                        .lock()
                        .expect("refusal lock")
                        .get_or_insert(msg);
                    break;
                }
                if queued && resend_queued {
                    let again = client
                        .post_with_retries(path, headers, request.body, &policy, &mut rng)
                        .await;
                    shared
                        .ledger
                        .lock()
                        .expect("ledger lock")
                        .record(idx, &req, &again, true);
                }
                progress.inc(req.events.len() as u64);
            }
        }));
    }
    let mut died = Vec::new();
    for w in workers {
        if let Err(e) = w.await {
            died.push(format!("a worker died: {e}"));
        }
    }
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    let mut ledger = std::mem::take(&mut *shared.ledger.lock().expect("ledger lock"));
    for e in died {
        ledger.error(e);
    }
    let exhausted = shared.source.lock().expect("plan lock").plan.exhausted();
    let refusal = shared.refusal.lock().expect("refusal lock").take();
    Sent {
        ledger,
        elapsed,
        exhausted,
        refusal,
    }
}
