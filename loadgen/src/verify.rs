//! The post-run checks on the counters: `/stats` before and after the run (after draining the
//! queue) must move by exactly what the service acknowledged (the read-back of a sample of
//! events is [`crate::readback`]).
//!
//! The checks use deltas, so data already in the service does not matter, but they are exact:
//! any *concurrent* unrelated traffic to the same service during the run also moves the
//! counters and makes the delta checks fail. Run verification against a service nobody else is
//! writing to (the read-back check is unaffected, since topics are scoped to the run id).
//!
//! When some attempts ended with an unknown outcome (timeout, broken connection, 5xx), the
//! service may or may not have counted them, so `received` and `unique_processed` are checked
//! against a range instead of a single value; the report says which.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper::Method;
use serde::{Deserialize, Serialize};

use crate::auth;
use crate::client::{Client, snippet};
use crate::ledger::Expected;

/// The counters of `GET /stats` that the checks use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Events received, duplicates and queued ones included.
    pub received: u64,
    /// Distinct events stored.
    pub unique_processed: u64,
    /// Events dropped as duplicates.
    pub duplicate_dropped: u64,
    /// Events accepted but not yet stored (absent in older services: taken as 0).
    #[serde(default)]
    pub queued: Option<u64>,
}

/// Signed change of each counter between two snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Deltas {
    /// Change of `received`.
    pub received: i128,
    /// Change of `unique_processed`.
    pub unique_processed: i128,
    /// Change of `duplicate_dropped`.
    pub duplicate_dropped: i128,
    /// Change of `queued`.
    pub queued: i128,
}

impl Deltas {
    /// `after - before`, counter by counter.
    pub fn between(before: &Stats, after: &Stats) -> Deltas {
        let d = |a: u64, b: u64| a as i128 - b as i128;
        Deltas {
            received: d(after.received, before.received),
            unique_processed: d(after.unique_processed, before.unique_processed),
            duplicate_dropped: d(after.duplicate_dropped, before.duplicate_dropped),
            queued: d(after.queued.unwrap_or(0), before.queued.unwrap_or(0)),
        }
    }
}

/// The outcome of verification, kept in the report.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// `/stats` counters before the run (after draining what was queued).
    pub before: Stats,
    /// `/stats` counters after the run and the drain.
    pub after: Stats,
    /// `after - before`.
    pub deltas: Deltas,
    /// What the deltas were checked against.
    pub expected: Expected,
    /// True when no attempt had an unknown outcome, so every check was an equality.
    pub exact: bool,
    /// Whether `queued` reached 0 after the run.
    pub drained: bool,
    /// Seconds spent draining after the run.
    pub drain_secs: f64,
    /// Acknowledged events looked up through `GET /events`.
    pub sampled: usize,
    /// Of those, how many read back identical.
    pub sample_ok: usize,
    /// Observations that did not cause a failure (e.g. no `/drain` route).
    pub notes: Vec<String>,
    /// Every failed check, one line each; empty means verified.
    pub mismatches: Vec<String>,
}

impl Verification {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Reads `/stats`.
pub async fn stats(client: &Client) -> Result<Stats> {
    let v = client.get_json("/stats").await?;
    serde_json::from_value(v.clone()).with_context(|| {
        format!(
            "GET /stats lacks received/unique_processed/duplicate_dropped: {}",
            snippet(v.to_string().as_bytes())
        )
    })
}

/// Drains the queue (`POST /drain`, repeated) until `/stats` shows `queued == 0` or `timeout`
/// passes; returns the last stats and whether the queue was empty.
pub async fn settle(
    client: &Client,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Result<(Stats, bool)> {
    let start = Instant::now();
    let mut drain_route = true;
    loop {
        if drain_route {
            match client
                .attempt(
                    Method::POST,
                    "/drain",
                    Some(bytes::Bytes::from_static(b"{}")),
                )
                .await
            {
                Ok(a) if (200..300).contains(&a.status) => {}
                Ok(a) if auth::is_refusal(a.status) => {
                    drain_route = false;
                    note_once(
                        notes,
                        format!(
                            "POST /drain answered {} (it needs an admin token); GET /stats \
                             consumes the queue instead",
                            a.status
                        ),
                    );
                }
                Ok(a) if a.status == 404 || a.status == 405 => {
                    drain_route = false;
                    note_once(
                        notes,
                        format!(
                            "POST /drain answered {}; waiting for the queue to empty by itself",
                            a.status
                        ),
                    );
                }
                Ok(a) => note_once(
                    notes,
                    format!("POST /drain answered {}: {}", a.status, snippet(&a.body)),
                ),
                Err(f) => note_once(notes, format!("POST /drain failed: {f}")),
            }
        }
        let s = stats(client).await?;
        if s.queued.is_none() {
            note_once(notes, "GET /stats has no `queued` field; taken as 0".into());
        }
        if s.queued.unwrap_or(0) == 0 {
            return Ok((s, true));
        }
        if start.elapsed() >= timeout {
            return Ok((s, false));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn note_once(notes: &mut Vec<String>, note: String) {
    if !notes.contains(&note) {
        notes.push(note);
    }
}

/// Checks the `/stats` deltas against the ledger's expectations; one message per mismatch.
///
/// Rules (`Δ` = after − before, `A` = acknowledged events, `U` = distinct acknowledged ids,
/// `M` = events in attempts with unknown outcome, `V` = distinct ids sent only in those):
/// - `queued` after the drain is 0;
/// - `Δreceived == A` (exact) or `A ≤ Δreceived ≤ A + M` (bounded);
/// - `Δunique_processed == U` (exact) or `U ≤ Δunique_processed ≤ U + V` (bounded);
/// - `Δduplicate_dropped == Δreceived − Δunique_processed` (and `== A − U` when exact);
/// - when exact and every acknowledgement was a `200`: `Σprocessed == Δunique_processed` and
///   `Σduplicates == Δduplicate_dropped`.
pub fn check_deltas(expected: &Expected, before: &Stats, after: &Stats) -> Vec<String> {
    let d = Deltas::between(before, after);
    let e = expected;
    let exact = e.ambiguous_events == 0;
    let mut out = Vec::new();

    if let Some(q) = after.queued
        && q != 0
    {
        out.push(format!(
            "queue not drained: /stats still shows queued={q} after the run"
        ));
    }
    let (a, m) = (e.acked_events as i128, e.ambiguous_events as i128);
    if exact && d.received != a {
        out.push(format!(
            "received delta is {} but the service acknowledged {a} events (off by {:+})",
            d.received,
            d.received - a
        ));
    } else if !exact && !(a..=a + m).contains(&d.received) {
        out.push(format!(
            "received delta is {} but should be between {a} (acknowledged) and {} \
             (+{m} events in attempts with unknown outcome)",
            d.received,
            a + m
        ));
    }
    let (u, v) = (e.acked_unique as i128, e.ambiguous_only_unique as i128);
    if exact && d.unique_processed != u {
        out.push(format!(
            "unique_processed delta is {} but {u} distinct (topic, event_id) were acknowledged \
             (off by {:+})",
            d.unique_processed,
            d.unique_processed - u
        ));
    } else if !exact && !(u..=u + v).contains(&d.unique_processed) {
        out.push(format!(
            "unique_processed delta is {} but should be between {u} (distinct acknowledged) and \
             {} (+{v} distinct ids sent only in attempts with unknown outcome)",
            d.unique_processed,
            u + v
        ));
    }
    if d.duplicate_dropped != d.received - d.unique_processed {
        out.push(format!(
            "duplicate_dropped delta is {} but received delta − unique_processed delta is {}",
            d.duplicate_dropped,
            d.received - d.unique_processed
        ));
    } else if exact && d.duplicate_dropped != a - u {
        out.push(format!(
            "duplicate_dropped delta is {} but {} acknowledged copies were duplicates",
            d.duplicate_dropped,
            a - u
        ));
    }
    if exact && let Some((processed, duplicates)) = e.sums_of_200 {
        if processed as i128 != d.unique_processed {
            out.push(format!(
                "the 200 answers reported {processed} processed in total, but unique_processed \
                 moved by {}",
                d.unique_processed
            ));
        }
        if duplicates as i128 != d.duplicate_dropped {
            out.push(format!(
                "the 200 answers reported {duplicates} duplicates in total, but \
                 duplicate_dropped moved by {}",
                d.duplicate_dropped
            ));
        }
    }
    out
}
