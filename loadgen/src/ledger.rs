//! The client-side ledger: per attempt, what the service acknowledged (`200`/`202`), what it may
//! or may not have seen (timeouts, broken connections, 5xx), and what went wrong; the `/stats`
//! deltas are checked against it. Counts are exact at any length; the only part that grows is
//! two bits per distinct event sent (acknowledged, maybe received), e.g. about 1.2 MB for an
//! hour at 2,000 events/s. Ledgers of several workers merge.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Deserialize;

use crate::client::{Attempt, snippet};
use crate::plan::PlannedRequest;
use crate::protocol::{self, Protocol};

/// Error messages kept verbatim; past this only the count grows.
const MAX_ERROR_MESSAGES: usize = 50;

/// A bit set over event indices that grows as they come (one bit per distinct event).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// Adds `i`.
    pub fn insert(&mut self, i: u64) {
        let w = (i / 64) as usize;
        if w >= self.words.len() {
            // Double, so the copies of a growing run cost O(1) per event.
            self.words.resize((w + 1).max(self.words.len() * 2), 0);
        }
        self.words[w] |= 1 << (i % 64);
    }

    /// Whether `i` is in the set.
    pub fn contains(&self, i: u64) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Number of members.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// Members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            (0..64u64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| wi as u64 * 64 + b)
        })
    }

    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &BitSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }

    /// Number of members of `self` not in `other`.
    pub fn count_without(&self, other: &BitSet) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(k, a)| (a & !other.words.get(k).copied().unwrap_or(0)).count_ones() as u64)
            .sum()
    }

    /// Bytes held, for the report's memory line.
    pub fn bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

/// Body of a `200` from a publish route.
#[derive(Debug, Deserialize)]
struct Processed {
    received: u64,
    processed: u64,
    duplicates: u64,
}

/// Body of a `202` from a publish route.
#[derive(Debug, Deserialize)]
struct Queued {
    received: u64,
    queued: u64,
}

/// Everything one worker (or, merged, the whole run) observed.
#[derive(Clone, Debug)]
pub struct Ledger {
    /// The protocol the requests were sent in, which decides how answers read.
    pub protocol: Protocol,
    /// Latency of every attempt that got an HTTP answer, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Count per HTTP status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Count per failure kind (`timeout`, `connect_error`, `transport_error`).
    pub failures: BTreeMap<&'static str, u64>,
    /// Answers per HTTP version (`HTTP/1.1`, `HTTP/2`).
    pub versions: BTreeMap<&'static str, u64>,
    /// Planned requests picked up by a worker.
    pub issued_requests: u64,
    /// Events in those planned requests (each counted once).
    pub issued_events: u64,
    /// Whole-batch resends among the issued requests.
    pub issued_resends: u64,
    /// HTTP attempts made (first tries, retries and cautious resends).
    pub attempts: u64,
    /// Attempts beyond the first of a request.
    pub retries: u64,
    /// Requests resent once after a `202`.
    pub queued_resends: u64,
    /// Events in every attempt answered `200` or `202` (the expected `received` delta).
    pub acked_events: u64,
    /// Attempts answered `200` (Loki: `204`).
    pub ok_responses: u64,
    /// Attempts answered `202`.
    pub accepted_responses: u64,
    /// Sum of `processed` over `200` answers.
    pub processed_sum: u64,
    /// Sum of `duplicates` over `200` answers.
    pub duplicates_sum: u64,
    /// Sum of `queued` over `202` answers.
    pub queued_sum: u64,
    /// Attempts whose outcome is unknown (timeout, broken connection, 5xx, odd 2xx).
    pub ambiguous_attempts: u64,
    /// Events in those attempts.
    pub ambiguous_events: u64,
    /// Requests that ran out of attempts without an answer that ends them.
    pub failed_requests: u64,
    /// Distinct events acknowledged at least once.
    pub acked: BitSet,
    /// Distinct events sent in an attempt with unknown outcome.
    pub maybe: BitSet,
    /// One more than the highest event index issued: fresh events are numbered in order and
    /// requests are issued in plan order, so this is the number of distinct events issued.
    pub issued_distinct: u64,
    /// Longest delay of a request behind its intended send time (open-loop runs).
    pub max_schedule_lag: std::time::Duration,
    /// The first error messages (see `error_count` for the total).
    pub errors: Vec<String>,
    /// Number of errors, i.e. things that make the run fail.
    pub error_count: u64,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger {
            protocol: Protocol::Native,
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds are valid"),
            statuses: BTreeMap::new(),
            failures: BTreeMap::new(),
            versions: BTreeMap::new(),
            issued_requests: 0,
            issued_events: 0,
            issued_resends: 0,
            attempts: 0,
            retries: 0,
            queued_resends: 0,
            acked_events: 0,
            ok_responses: 0,
            accepted_responses: 0,
            processed_sum: 0,
            duplicates_sum: 0,
            queued_sum: 0,
            ambiguous_attempts: 0,
            ambiguous_events: 0,
            failed_requests: 0,
            acked: BitSet::default(),
            maybe: BitSet::default(),
            issued_distinct: 0,
            max_schedule_lag: std::time::Duration::ZERO,
            errors: Vec::new(),
            error_count: 0,
        }
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

impl Ledger {
    /// Records an error that makes the run fail.
    pub fn error(&mut self, msg: String) {
        self.error_count += 1;
        if self.errors.len() < MAX_ERROR_MESSAGES {
            self.errors.push(msg);
        }
    }

    /// Notes that a planned request was picked up.
    pub fn issue(&mut self, req: &PlannedRequest) {
        self.issued_requests += 1;
        self.issued_events += req.events.len() as u64;
        if req.resend_of.is_some() {
            self.issued_resends += 1;
        }
        if let Some(&max) = req.events.iter().max() {
            self.issued_distinct = self.issued_distinct.max(max + 1);
        }
    }

    /// Records all attempts of one send of `req` (request number `idx`); returns whether the
    /// final answer was a `202` (so the caller may resend once).
    pub fn record(
        &mut self,
        idx: u64,
        req: &PlannedRequest,
        attempts: &[Attempt],
        resend: bool,
    ) -> bool {
        let n = req.events.len() as u64;
        let path = self.protocol.path(req.route);
        if resend {
            self.queued_resends += 1;
        }
        let mut final_202 = false;
        for (k, attempt) in attempts.iter().enumerate() {
            self.attempts += 1;
            if k > 0 {
                self.retries += 1;
            }
            match attempt {
                Ok(a) => {
                    self.latency_us
                        .saturating_record(a.latency.as_micros().clamp(1, u64::MAX as u128) as u64);
                    *self.statuses.entry(a.status).or_default() += 1;
                    *self.versions.entry(a.version).or_default() += 1;
                    match a.status {
                        s if !self.protocol.counted() && s == self.protocol.success() => {
                            // OTLP's 200, Loki's 204: all stored, no counts.
                            self.acknowledge(req);
                            self.ok_responses += 1;
                            if let Err(e) = protocol::check_answer(self.protocol, &a.body) {
                                self.error(format!("request #{idx} {path}: {e}"));
                            }
                        }
                        200 if self.protocol.counted() => {
                            self.acknowledge(req);
                            self.ok_responses += 1;
                            match serde_json::from_slice::<Processed>(&a.body) {
                                Ok(p) => {
                                    self.processed_sum += p.processed;
                                    self.duplicates_sum += p.duplicates;
                                    if p.received != n || p.processed + p.duplicates != p.received {
                                        self.error(format!(
                                            "request #{idx} {path}: sent {n} events, 200 answered \
                                             received={} processed={} duplicates={}",
                                            p.received, p.processed, p.duplicates
                                        ));
                                    }
                                }
                                Err(e) => self.error(format!(
                                    "request #{idx} {path}: 200 body is not \
                                     {{received,processed,duplicates}} ({e}): {}",
                                    snippet(&a.body)
                                )),
                            }
                        }
                        202 => {
                            self.acknowledge(req);
                            self.accepted_responses += 1;
                            final_202 = true;
                            match serde_json::from_slice::<Queued>(&a.body) {
                                Ok(q) => {
                                    self.queued_sum += q.queued;
                                    if q.received != n || q.queued > q.received {
                                        self.error(format!(
                                            "request #{idx} {path}: sent {n} events, 202 answered \
                                             received={} queued={}",
                                            q.received, q.queued
                                        ));
                                    }
                                }
                                Err(e) => self.error(format!(
                                    "request #{idx} {path}: 202 body is not {{received,queued}} \
                                     ({e}): {}",
                                    snippet(&a.body)
                                )),
                            }
                        }
                        429 => {} // refused, not stored: retried
                        s if s >= 500 => self.ambiguous(req),
                        s => {
                            // 4xx (or an unexpected 1xx/2xx/3xx): not retried, fails the run.
                            if (200..300).contains(&s) {
                                self.ambiguous(req);
                            }
                            self.error(format!(
                                "request #{idx} {path}: unexpected status {s}: {}",
                                snippet(&a.body)
                            ));
                        }
                    }
                }
                Err(f) => {
                    *self.failures.entry(f.label()).or_default() += 1;
                    if f.maybe_received() {
                        self.ambiguous(req);
                    }
                }
            }
        }
        if let Some(last) = attempts.last()
            && crate::client::is_retryable(last)
        {
            self.failed_requests += 1;
            let what = match last {
                Ok(a) => format!("status {}: {}", a.status, snippet(&a.body)),
                Err(f) => f.to_string(),
            };
            let kind = if resend { "cautious resend of " } else { "" };
            self.error(format!(
                "{kind}request #{idx} {path} gave up after {} attempts; last: {what}",
                attempts.len()
            ));
        }
        final_202
    }

    fn acknowledge(&mut self, req: &PlannedRequest) {
        self.acked_events += req.events.len() as u64;
        for &i in &req.events {
            self.acked.insert(i);
        }
    }

    fn ambiguous(&mut self, req: &PlannedRequest) {
        self.ambiguous_attempts += 1;
        self.ambiguous_events += req.events.len() as u64;
        for &i in &req.events {
            self.maybe.insert(i);
        }
    }

    /// Folds another worker's ledger into this one.
    pub fn merge(&mut self, o: Ledger) {
        self.latency_us
            .add(&o.latency_us)
            .expect("histograms share bounds");
        for (k, v) in o.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in o.failures {
            *self.failures.entry(k).or_default() += v;
        }
        for (k, v) in o.versions {
            *self.versions.entry(k).or_default() += v;
        }
        self.issued_requests += o.issued_requests;
        self.issued_events += o.issued_events;
        self.issued_resends += o.issued_resends;
        self.attempts += o.attempts;
        self.retries += o.retries;
        self.queued_resends += o.queued_resends;
        self.acked_events += o.acked_events;
        self.ok_responses += o.ok_responses;
        self.accepted_responses += o.accepted_responses;
        self.processed_sum += o.processed_sum;
        self.duplicates_sum += o.duplicates_sum;
        self.queued_sum += o.queued_sum;
        self.ambiguous_attempts += o.ambiguous_attempts;
        self.ambiguous_events += o.ambiguous_events;
        self.failed_requests += o.failed_requests;
        self.acked.union_with(&o.acked);
        self.maybe.union_with(&o.maybe);
        self.issued_distinct = self.issued_distinct.max(o.issued_distinct);
        self.max_schedule_lag = self.max_schedule_lag.max(o.max_schedule_lag);
        self.error_count += o.error_count;
        for e in o.errors {
            if self.errors.len() < MAX_ERROR_MESSAGES {
                self.errors.push(e);
            }
        }
    }

    /// What the `/stats` deltas should be, given this ledger.
    pub fn expected(&self) -> Expected {
        Expected {
            acked_events: self.acked_events,
            acked_unique: self.acked.count(),
            ambiguous_events: self.ambiguous_events,
            ambiguous_only_unique: self.maybe.count_without(&self.acked),
            sums_of_200: (self.accepted_responses == 0 && self.protocol.counted())
                .then_some((self.processed_sum, self.duplicates_sum)),
        }
    }
}

/// What the service should report, derived from the acknowledgements (see `verify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Expected {
    /// Events in every `200`/`202` answer, retries and replays included.
    pub acked_events: u64,
    /// Distinct `(topic, event_id)` acknowledged at least once.
    pub acked_unique: u64,
    /// Events in attempts whose outcome is unknown; each may or may not be counted.
    pub ambiguous_events: u64,
    /// Distinct events sent only in attempts with unknown outcome (never acknowledged).
    pub ambiguous_only_unique: u64,
    /// `(Σ processed, Σ duplicates)` over `200` answers, when no `202` was seen (then every
    /// stored event was reported as processed by exactly one answer).
    pub sums_of_200: Option<(u64, u64)>,
}
