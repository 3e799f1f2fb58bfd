//! At-least-once load across several hosts while things break: loadgen's seeded plan (replays,
//! whole-batch resends), each request retried with backoff on the next host until it gets an
//! answer that ends it, and a cautious resend after a `202`. Every attempt goes into the
//! ordinary [`Ledger`], so the acknowledged keys are exact; a `5xx` is counted as excused when it
//! falls inside a window where the harness itself broke something (see [`Windows`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

use crate::plan::Plan;
use loadgen::client::{Attempt, Client, Failure, RetryPolicy, is_retryable};
use loadgen::ledger::Ledger;

/// Time windows in which the harness had something down (a host being restarted, Redis
/// killed), so `5xx` answered then are expected and not counted against the service.
#[derive(Default)]
pub(super) struct Windows {
    spans: Mutex<Vec<(Instant, Option<Instant>)>>,
}

impl Windows {
    /// Opens a window now; returns its index for [`Windows::close`].
    pub fn open(&self) -> usize {
        let mut s = self.spans.lock().expect("windows lock");
        s.push((Instant::now(), None));
        s.len() - 1
    }

    /// Closes window `i` `grace` from now (the time a dependency needs to be noticed back).
    pub fn close(&self, i: usize, grace: Duration) {
        self.spans.lock().expect("windows lock")[i].1 = Some(Instant::now() + grace);
    }

    /// Whether `t` falls in any window (an open one extends to now).
    pub fn contains(&self, t: Instant) -> bool {
        self.spans
            .lock()
            .expect("windows lock")
            .iter()
            .any(|&(a, b)| t >= a && b.is_none_or(|b| t <= b))
    }
}

/// How the load is sent.
#[derive(Clone)]
pub(super) struct LoadSpec {
    /// One client per host; a worker starts on host `w % n` and moves on after a failure.
    pub clients: Vec<Client>,
    /// Concurrent workers.
    pub concurrency: usize,
    /// No new request starts after this instant; requests are paced so that the plan lasts
    /// until then (a scenario's load spans its whole budget, kills included).
    pub deadline: Instant,
    /// Send `Prefer: respond-async` on every n-th request (0: never, 1: always), so the queue
    /// is in the path even where synchronous publishes apply straight to the store.
    pub async_every: usize,
    /// Resend a request once after a `202`, as a cautious publisher does.
    pub resend_queued: bool,
    /// Seed of the workers' backoff jitter.
    pub seed: u64,
}

/// What the load saw.
pub(super) struct LoadOutcome {
    /// Every attempt, merged over the workers.
    pub ledger: Ledger,
    /// `5xx` answers outside every window.
    pub server_errors: u64,
    /// `5xx` answers inside a window (expected: a dependency was down).
    pub excused_server_errors: u64,
    /// Longest attempt that got an answer or timed out.
    pub longest: Duration,
}

/// Attempts per request: enough to outlast a restart (backoff up to 1 s, ~60 s in all).
const MAX_ATTEMPTS: u32 = 60;

/// Sends `plan`'s requests until it runs out or the deadline passes.
pub(super) async fn send(plan: &Arc<Plan>, spec: &LoadSpec, windows: &Arc<Windows>) -> LoadOutcome {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let pace = spec.deadline.saturating_duration_since(start).as_secs_f64()
        / plan.requests.len().max(1) as f64;
    let mut workers = Vec::with_capacity(spec.concurrency);
    for w in 0..spec.concurrency {
        let plan = Arc::clone(plan);
        let spec = spec.clone();
        let windows = Arc::clone(windows);
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            let mut out = LoadOutcome {
                ledger: Ledger::new(),
                server_errors: 0,
                excused_server_errors: 0,
                longest: Duration::ZERO,
            };
            let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ (w as u64 + 1) << 32);
            let mut host = w % spec.clients.len();
            while Instant::now() < spec.deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = plan.requests.get(i) else {
                    break;
                };
                tokio::time::sleep_until((start + Duration::from_secs_f64(pace * i as f64)).into())
                    .await;
                out.ledger.issue(req);
                let body = plan.body(req);
                let path = req.route.path();
                let how = (
                    path,
                    &body,
                    spec.async_every > 0 && i.is_multiple_of(spec.async_every),
                );
                let attempts = send_one(&spec, &mut host, how, &mut rng, &windows, &mut out).await;
                if out.ledger.record(i as u64, req, &attempts, false) && spec.resend_queued {
                    let again = send_one(&spec, &mut host, how, &mut rng, &windows, &mut out).await;
                    out.ledger.record(i as u64, req, &again, true);
                }
            }
            out
        }));
    }
    let mut total = LoadOutcome {
        ledger: Ledger::new(),
        server_errors: 0,
        excused_server_errors: 0,
        longest: Duration::ZERO,
    };
    for w in workers {
        match w.await {
            Ok(o) => {
                total.ledger.merge(o.ledger);
                total.server_errors += o.server_errors;
                total.excused_server_errors += o.excused_server_errors;
                total.longest = total.longest.max(o.longest);
            }
            Err(e) => total.ledger.error(format!("a worker died: {e}")),
        }
    }
    total
}

/// One request with retries, moving to the next host after every failed attempt.
async fn send_one(
    spec: &LoadSpec,
    host: &mut usize,
    (path, body, respond_async): (&str, &Bytes, bool),
    rng: &mut ChaCha8Rng,
    windows: &Windows,
    out: &mut LoadOutcome,
) -> Vec<Attempt> {
    let policy = RetryPolicy {
        max_attempts: MAX_ATTEMPTS,
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
    };
    let mut headers = vec![("content-type", "application/json")];
    if respond_async {
        headers.push(("prefer", "respond-async"));
    }
    let mut attempts = Vec::with_capacity(1);
    loop {
        let client = &spec.clients[*host];
        let started = Instant::now();
        let a = client
            .attempt_with(Method::POST, path, &headers, Some(body.clone()))
            .await;
        match &a {
            Ok(ans) => {
                out.longest = out.longest.max(ans.latency);
                if ans.status >= 500 {
                    if windows.contains(started) || windows.contains(Instant::now()) {
                        out.excused_server_errors += 1;
                    } else {
                        out.server_errors += 1;
                    }
                }
            }
            Err(Failure::Timeout) => out.longest = out.longest.max(started.elapsed()),
            Err(_) => {}
        }
        let retry = is_retryable(&a);
        attempts.push(a);
        if !retry || attempts.len() as u32 >= policy.max_attempts {
            return attempts;
        }
        *host = (*host + 1) % spec.clients.len();
        tokio::time::sleep(policy.backoff(attempts.len() as u32, rng)).await;
    }
}
