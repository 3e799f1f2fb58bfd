//! The result of a measurement that is not a full verified service run: the raw database
//! baseline (`loadgen raw`) and the HTTP floor against a trivial component (`loadgen ping`).
//! Field names match [`crate::Report`]'s where they mean the same thing, so one table can show
//! both.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::Mode;
use crate::report::Latency;

/// How many error messages a measurement keeps (the count is always exact).
const MAX_ERRORS: usize = 10;

/// Throughput, latency and outcome of one measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// `raw` (native client straight into the database) or `ping` (HTTP to a trivial handler).
    pub kind: String,
    /// What was measured: `postgres`, `sqlite` or a URL.
    pub target: String,
    /// For `raw`: `plain` (the bare insert) or `service` (the service's own statements).
    pub statement: Option<String>,
    /// Request shape: batch (one statement/request per batch) or single (one event each).
    pub mode: Mode,
    /// Seed of the plan the events came from.
    pub seed: u64,
    /// Prefix of the topics.
    pub run_id: String,
    /// Concurrent workers (connections).
    pub concurrency: usize,
    /// Events per batch.
    pub batch_size: usize,
    /// Events carried, replays included.
    pub events_sent: u64,
    /// Distinct `(topic, event_id)` among them.
    pub unique_ids: u64,
    /// Transactions (raw) or HTTP requests (ping) completed.
    pub requests: u64,
    /// Wall time of the sending phase.
    pub elapsed_secs: f64,
    /// `events_sent / elapsed_secs`.
    pub events_per_sec: f64,
    /// `requests / elapsed_secs`.
    pub requests_per_sec: f64,
    /// Latency of one transaction (raw) or one HTTP exchange (ping).
    pub latency_ms: Latency,
    /// What was checked after the run, in words.
    pub checked: String,
    /// Number of errors (only the first few are listed).
    pub error_count: u64,
    /// The first error messages.
    pub errors: Vec<String>,
    /// No errors and the check held.
    pub passed: bool,
}

/// Per-worker tally, merged at the end.
#[derive(Clone, Debug)]
pub struct Tally {
    /// Latency in microseconds.
    pub latency_us: Histogram<u64>,
    /// Completed transactions / requests.
    pub requests: u64,
    /// Events in them.
    pub events: u64,
    /// Rows the database reported inserted (raw only).
    pub inserted: u64,
    /// Error count and first messages.
    pub error_count: u64,
    /// The first error messages.
    pub errors: Vec<String>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds are valid"),
            requests: 0,
            events: 0,
            inserted: 0,
            error_count: 0,
            errors: Vec::new(),
        }
    }
}

impl Tally {
    /// Records one completed transaction or request.
    pub fn done(&mut self, events: usize, latency: std::time::Duration) {
        self.requests += 1;
        self.events += events as u64;
        let us = (latency.as_micros() as u64).max(1);
        let _ = self.latency_us.record(us);
    }

    /// Records an error.
    pub fn error(&mut self, msg: String) {
        self.error_count += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(msg);
        }
    }

    /// Awaits every worker and merges their tallies (a worker that panicked is an error).
    pub async fn join(workers: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
        let mut tally = Tally::default();
        for w in workers {
            match w.await {
                Ok(t) => tally.merge(t),
                Err(e) => tally.error(format!("a worker died: {e}")),
            }
        }
        tally
    }

    /// Adds another worker's tally.
    pub fn merge(&mut self, o: Tally) {
        let _ = self.latency_us.add(&o.latency_us);
        self.requests += o.requests;
        self.events += o.events;
        self.inserted += o.inserted;
        self.error_count += o.error_count;
        for e in o.errors {
            if self.errors.len() < MAX_ERRORS {
                self.errors.push(e);
            }
        }
    }
}

impl Measurement {
    /// One line for people.
    pub fn render_human(&self) -> String {
        let l = &self.latency_ms;
        let what = match &self.statement {
            Some(s) => format!("{} {} ({s} SQL)", self.kind, self.target),
            None => format!("{} {}", self.kind, self.target),
        };
        let mut s = format!(
            "{what}, mode {:?}, batch {}, concurrency {}: {} events in {} requests, {:.3} s\n\
             throughput       {:.0} events/s, {:.1} requests/s\n\
             latency          p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms\n\
             check            {}\n",
            self.mode,
            self.batch_size,
            self.concurrency,
            self.events_sent,
            self.requests,
            self.elapsed_secs,
            self.events_per_sec,
            self.requests_per_sec,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            self.checked
        );
        for e in &self.errors {
            s.push_str(&format!("  error: {e}\n"));
        }
        s
    }

    /// The measurement as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("measurement serializes")
    }
}

/// `n / secs`, 0 for an empty interval.
pub fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}
