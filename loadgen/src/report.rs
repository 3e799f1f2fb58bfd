//! The result of a run: counts, throughput, latency percentiles from the HDR histogram, status
//! codes, errors and the verification outcome, rendered for people or as one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::{Config, Mode};
use crate::measure::per_sec;
use crate::protocol::Protocol;
use crate::send::Sent;
use crate::verify::Verification;

/// Latency percentiles of all attempts that got an HTTP answer, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    /// Number of answers measured.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest answer.
    pub max: f64,
}

/// What the service acknowledged, as the client counted it.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Acknowledged {
    /// Events in every `200`/`202` answer (retries, replays and resends included).
    pub events: u64,
    /// Distinct `(topic, event_id)` among them.
    pub unique: u64,
    /// Attempts answered `200` (Loki: `204`).
    pub ok_200: u64,
    /// Attempts answered `202`.
    pub accepted_202: u64,
    /// Σ `processed` over `200` answers.
    pub processed: u64,
    /// Σ `duplicates` over `200` answers.
    pub duplicates: u64,
    /// Σ `queued` over `202` answers.
    pub queued: u64,
    /// Attempts with unknown outcome (timeout, broken connection, 5xx).
    pub unknown_outcome_attempts: u64,
    /// Events in those attempts.
    pub unknown_outcome_events: u64,
}

/// Everything a run produced; serialized as-is for `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Prefix of the run's topics (`<run_id>.t<k>`).
    pub run_id: String,
    /// Service base URL.
    pub url: String,
    /// Route selection.
    pub mode: Mode,
    /// Wire protocol of the requests.
    pub protocol: Protocol,
    /// Whether bodies were gzip-compressed.
    pub gzip: bool,
    /// Seed of the plan (pass it back with `--seed` to replay the same plan).
    pub seed: u64,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Events per batch request.
    pub batch_size: usize,
    /// Number of topics.
    pub topics: u32,
    /// Requested replay fraction.
    pub duplicate_rate: f64,
    /// Events the plan held (`None`: a run bounded by `--duration` only).
    pub planned_events: Option<u64>,
    /// Open-loop rate asked for, in events per second (`None`: closed loop).
    pub rate: Option<f64>,
    /// The `--duration` limit, in seconds.
    pub duration_secs: Option<f64>,
    /// Open loop: the longest a request started behind its intended send time, in ms.
    pub max_schedule_lag_ms: Option<f64>,
    /// Events in the requests actually issued (each request once, retries not included).
    pub events_sent: u64,
    /// Distinct `(topic, event_id)` among them.
    pub unique_ids: u64,
    /// `events_sent - unique_ids`: planned replays that were sent.
    pub replays: u64,
    /// Issued requests that resent a whole earlier batch.
    pub whole_batch_resends: u64,
    /// HTTP requests made: first attempts, retries and resends after a `202`.
    pub requests: u64,
    /// Attempts beyond the first of a request.
    pub retries: u64,
    /// Requests resent once after a `202`.
    pub queued_resends: u64,
    /// Requests that exhausted their attempts.
    pub failed_requests: u64,
    /// Whether `--duration` stopped the run before `--events` were sent.
    pub stopped_early: bool,
    /// Wall time of the sending phase.
    pub elapsed_secs: f64,
    /// `events_sent / elapsed_secs`.
    pub events_per_sec: f64,
    /// `requests / elapsed_secs`.
    pub requests_per_sec: f64,
    /// Latency percentiles.
    pub latency_ms: Latency,
    /// Count per HTTP status, plus `timeout`/`connect_error`/`transport_error`.
    pub status_counts: BTreeMap<String, u64>,
    /// Answers per HTTP version (HTTP/2 when the server offered it through ALPN).
    pub http_versions: BTreeMap<String, u64>,
    /// What the service acknowledged.
    pub acknowledged: Acknowledged,
    /// Total number of errors (only the first ones are listed).
    pub error_count: u64,
    /// The first error messages.
    pub errors: Vec<String>,
    /// Post-run checks, absent with `--no-verify` or when they could not run.
    pub verification: Option<Verification>,
    /// Why verification could not run (the service went away after the requests), so the
    /// partial report is still printed and the run still fails.
    pub verification_error: Option<String>,
    /// Whether the run counts as a success (no errors, every check passed).
    pub passed: bool,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Latency {
    /// Percentiles of a histogram of microseconds (all zero when it is empty).
    pub fn from_us(h: &hdrhistogram::Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

impl Report {
    /// Assembles the report from the run's pieces.
    pub fn build(
        config: &Config,
        run_id: &str,
        seed: u64,
        sent: &Sent,
        verification: Option<Verification>,
    ) -> Report {
        let ledger = &sent.ledger;
        let latency_ms = Latency::from_us(&ledger.latency_us);
        let mut status_counts: BTreeMap<String, u64> = ledger
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        for (k, v) in &ledger.failures {
            status_counts.insert((*k).to_string(), *v);
        }
        let secs = sent.elapsed.as_secs_f64();
        let unique_ids = ledger.issued_distinct;
        let passed =
            ledger.error_count == 0 && verification.as_ref().is_none_or(Verification::passed);
        Report {
            run_id: run_id.to_string(),
            url: config.url.clone(),
            mode: config.mode,
            protocol: config.protocol,
            gzip: config.gzip,
            seed,
            concurrency: config.concurrency,
            batch_size: config.batch_size,
            topics: config.topics,
            duplicate_rate: config.duplicate_rate,
            planned_events: config.events,
            rate: config.rate,
            duration_secs: config.duration.map(|d| d.as_secs_f64()),
            max_schedule_lag_ms: config
                .rate
                .map(|_| ledger.max_schedule_lag.as_secs_f64() * 1000.0),
            events_sent: ledger.issued_events,
            unique_ids,
            replays: ledger.issued_events - unique_ids,
            whole_batch_resends: ledger.issued_resends,
            requests: ledger.attempts,
            retries: ledger.retries,
            queued_resends: ledger.queued_resends,
            failed_requests: ledger.failed_requests,
            stopped_early: config.events.is_some() && !sent.exhausted,
            elapsed_secs: secs,
            events_per_sec: per_sec(ledger.issued_events, secs),
            requests_per_sec: per_sec(ledger.attempts, secs),
            latency_ms,
            status_counts,
            http_versions: ledger
                .versions
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            acknowledged: Acknowledged {
                events: ledger.acked_events,
                unique: ledger.acked.count(),
                ok_200: ledger.ok_responses,
                accepted_202: ledger.accepted_responses,
                processed: ledger.processed_sum,
                duplicates: ledger.duplicates_sum,
                queued: ledger.queued_sum,
                unknown_outcome_attempts: ledger.ambiguous_attempts,
                unknown_outcome_events: ledger.ambiguous_events,
            },
            error_count: ledger.error_count,
            errors: ledger.errors.clone(),
            verification,
            verification_error: None,
            passed,
        }
    }

    /// Marks the report as partial: verification could not run, so the run fails.
    pub fn set_verification_error(&mut self, error: String) {
        self.verification_error = Some(error);
        self.passed = false;
    }

    /// Whether the run counts as a success.
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report serializes")
    }

    /// Every reason the run failed, one line each (empty when it passed).
    pub fn failure_lines(&self) -> Vec<String> {
        let mut out = self.errors.clone();
        if self.error_count > self.errors.len() as u64 {
            out.push(format!(
                "… and {} more errors",
                self.error_count - self.errors.len() as u64
            ));
        }
        if let Some(v) = &self.verification {
            out.extend(v.mismatches.iter().cloned());
        }
        if let Some(e) = &self.verification_error {
            out.push(format!("verification could not run: {e}"));
        }
        out
    }

    /// The `verified: ...` line, when verification ran and everything matched.
    pub fn verified_line(&self) -> Option<String> {
        let v = self.verification.as_ref()?;
        if !self.passed {
            return None;
        }
        let d = &v.deltas;
        let e = &v.expected;
        let how = if v.exact {
            format!(
                "received +{} (= acknowledged events), unique_processed +{} (= distinct \
                 acknowledged ids), duplicate_dropped +{}",
                d.received, d.unique_processed, d.duplicate_dropped
            )
        } else {
            format!(
                "received +{} (within {}..={}), unique_processed +{} (within {}..={}), \
                 duplicate_dropped +{} (= received − unique); bounds allow for {} attempts with \
                 unknown outcome",
                d.received,
                e.acked_events,
                e.acked_events + e.ambiguous_events,
                d.unique_processed,
                e.acked_unique,
                e.acked_unique + e.ambiguous_only_unique,
                d.duplicate_dropped,
                self.acknowledged.unknown_outcome_attempts
            )
        };
        Some(format!(
            "verified: {how}; {}/{} sampled events read back identical",
            v.sample_ok, v.sampled
        ))
    }

    /// The human-readable report (without the final verdict line).
    pub fn render_human(&self) -> String {
        let mut s = String::new();
        let mode = match self.mode {
            Mode::Batch => "batch",
            Mode::Single => "single",
            Mode::Mixed => "mixed",
        };
        let _ = writeln!(
            s,
            "loadgen run {} -> {}  ({}{}, mode {mode}, batch {}, concurrency {}, topics {}, seed {})",
            self.run_id,
            self.url,
            clap::ValueEnum::to_possible_value(&self.protocol)
                .map_or_else(String::new, |v| v.get_name().to_owned()),
            if self.gzip { " gzip" } else { "" },
            self.batch_size,
            self.concurrency,
            self.topics,
            self.seed
        );
        let early = match self.planned_events {
            Some(planned) if self.stopped_early => {
                format!(" — stopped by --duration, {planned} planned")
            }
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "events sent      {}  ({} unique ids, {} replays, {} whole-batch resends){early}",
            self.events_sent, self.unique_ids, self.replays, self.whole_batch_resends
        );
        let _ = writeln!(
            s,
            "requests         {}  (retries {}, resends after 202: {}, gave up: {})",
            self.requests, self.retries, self.queued_resends, self.failed_requests
        );
        let _ = writeln!(s, "elapsed          {:.3} s", self.elapsed_secs);
        if let Some(rate) = self.rate {
            let _ = writeln!(
                s,
                "open loop        {rate} events/s scheduled; latency counted from each request's \
                 intended send time; longest behind schedule {:.3} ms",
                self.max_schedule_lag_ms.unwrap_or(0.0)
            );
        }
        let _ = writeln!(
            s,
            "throughput       {:.0} events/s, {:.1} requests/s",
            self.events_per_sec, self.requests_per_sec
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            s,
            "latency          p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({} answers)",
            l.p50, l.p90, l.p99, l.max, l.count
        );
        let codes: Vec<String> = self
            .status_counts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let versions: Vec<String> = self
            .http_versions
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        if !versions.is_empty() {
            let _ = writeln!(s, "protocol         {}", versions.join(", "));
        }
        let _ = writeln!(
            s,
            "status codes     {}",
            if codes.is_empty() {
                "none".into()
            } else {
                codes.join(", ")
            }
        );
        let a = &self.acknowledged;
        let _ = writeln!(
            s,
            "acknowledged     {} events, {} distinct  (200: {}, 202: {}; unknown outcome: {} \
             attempts, {} events)",
            a.events,
            a.unique,
            a.ok_200,
            a.accepted_202,
            a.unknown_outcome_attempts,
            a.unknown_outcome_events
        );
        let _ = writeln!(s, "errors           {}", self.error_count);
        for e in &self.errors {
            let _ = writeln!(s, "  - {e}");
        }
        if let Some(v) = &self.verification {
            let d = &v.deltas;
            let _ = writeln!(
                s,
                "stats deltas     received {:+}, unique_processed {:+}, duplicate_dropped {:+}  \
                 ({}, drained in {:.2} s)",
                d.received,
                d.unique_processed,
                d.duplicate_dropped,
                if v.exact {
                    "exact check"
                } else {
                    "bounded check"
                },
                v.drain_secs
            );
            let _ = writeln!(
                s,
                "read-back        {}/{} sampled events identical",
                v.sample_ok, v.sampled
            );
            for n in &v.notes {
                let _ = writeln!(s, "note             {n}");
            }
        } else if let Some(e) = &self.verification_error {
            let _ = writeln!(
                s,
                "verification     could not run ({e}); this is a partial report"
            );
        } else {
            let _ = writeln!(s, "verification     skipped (--no-verify)");
        }
        s
    }
}
