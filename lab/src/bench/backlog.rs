//! The backlog phase of the benchmark (issue 9's target): many asynchronous 20-event publishes
//! (`Prefer: respond-async`, answered `202` once queued), then `POST /drain` in a loop until the
//! queue is empty; twice: once with one caller, once with [`DRAIN_LANES`] callers in parallel,
//! one per lane (`POST /drain?lane=I&lanes=N`, issue 17). The drain rate (events/s) lands in the
//! same table as the raw batched insert rate of the same database, measured in the same run, and
//! the longest `/drain` request is kept beside it: a drain must run at batch speed without any
//! request outliving its budget. Each row is verified: the answers' `drained_batches` add up to
//! the entries queued (a surplus would be entries applied twice), and `/stats` moved by exactly
//! the events published, with nothing left queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use hyper::Method;

use super::cpu::measure;
use super::report::{Kind, Row};
use super::services::HostProc;
use super::{BenchConfig, say};
use crate::drain::drain_lanes;
use loadgen::client::{Client, snippet};
use loadgen::config::Mode;
use loadgen::measure::Tally;

/// Events per asynchronous publish.
pub(super) const BACKLOG_BATCH: usize = 20;
/// Parallel drain callers of the second backlog row, one per lane.
pub(super) const DRAIN_LANES: u64 = 4;

/// One 20-event body, all ids distinct across the phase (no plan kept in memory).
fn body(run: &str, i: u64, timestamp: &str) -> Bytes {
    let mut s = String::with_capacity(BACKLOG_BATCH * 140 + 16);
    s.push_str(r#"{"events":["#);
    for j in 0..BACKLOG_BATCH {
        if j > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"topic":"{run}.backlog{}","event_id":"b{i}-{j}","timestamp":"{timestamp}","source":"loadgen","payload":{{"i":{i},"j":{j}}}}}"#,
            i % 4
        ));
    }
    s.push_str("]}");
    Bytes::from(s)
}

/// The backlog rows of one store: drained by one caller, then by [`DRAIN_LANES`] in parallel.
pub(super) fn backlog_runs(
    rt: &tokio::runtime::Runtime,
    cfg: &BenchConfig,
    host: &HostProc,
    store: &'static str,
) -> Result<Vec<Row>> {
    [1, DRAIN_LANES]
        .into_iter()
        .map(|lanes| backlog_run(rt, cfg, host, store, lanes))
        .collect()
}

/// Fills the queue with `cfg.backlog_publishes` async publishes, then drains it with `lanes`
/// parallel callers (1: the plain loop); one row.
fn backlog_run(
    rt: &tokio::runtime::Runtime,
    cfg: &BenchConfig,
    host: &HostProc,
    store: &'static str,
    lanes: u64,
) -> Result<Row> {
    let publishes = cfg.backlog_publishes;
    let callers = if lanes > 1 {
        format!("{lanes} lanes in parallel")
    } else {
        "1 caller".to_string()
    };
    say(&format!(
        "backlog on {store}: {publishes} async {BACKLOG_BATCH}-event publishes, then /drain \
         ({callers}) ..."
    ));
    let client = Client::new(&host.url, cfg.request_timeout, cfg.concurrency)?;
    // Reading /stats consumes what is pending first, so the baseline starts from an empty queue.
    let before = rt
        .block_on(loadgen::verify::stats(&client))
        .context("reading /stats before the backlog")?;
    let run = loadgen::run::random_run_id();
    let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let next = Arc::new(AtomicU64::new(0));
    let queued_events = Arc::new(AtomicU64::new(0));
    let acked_events = Arc::new(AtomicU64::new(0));
    let fill_start = Instant::now();
    let tally = rt.block_on(async {
        let mut workers = Vec::with_capacity(cfg.concurrency);
        for _ in 0..cfg.concurrency {
            let (client, run, timestamp) = (client.clone(), run.clone(), timestamp.clone());
            let (next, queued_events) = (Arc::clone(&next), Arc::clone(&queued_events));
            let acked_events = Arc::clone(&acked_events);
            workers.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= publishes {
                        return tally;
                    }
                    let headers = [
                        ("content-type", "application/json"),
                        ("prefer", "respond-async"),
                    ];
                    let a = client
                        .attempt_with(
                            Method::POST,
                            "/publish/batch",
                            &headers,
                            Some(body(&run, i, &timestamp)),
                        )
                        .await;
                    match a {
                        Ok(a) if a.status == 202 || a.status == 200 => {
                            if a.status == 202 {
                                queued_events.fetch_add(BACKLOG_BATCH as u64, Ordering::Relaxed);
                            }
                            acked_events.fetch_add(BACKLOG_BATCH as u64, Ordering::Relaxed);
                            tally.done(BACKLOG_BATCH, a.latency);
                        }
                        Ok(a) => tally.error(format!(
                            "async publish #{i} answered {}: {}",
                            a.status,
                            snippet(&a.body)
                        )),
                        Err(f) => tally.error(format!("async publish #{i}: {f}")),
                    }
                }
            }));
        }
        Tally::join(workers).await
    });
    let fill_secs = fill_start.elapsed().as_secs_f64();
    let queued = queued_events.load(Ordering::Relaxed);
    say(&format!(
        "  filled: {queued} events queued in {fill_secs:.1} s ({} errors); draining ...",
        tally.error_count
    ));
    // The backlog is what is still queued now (`/health` counts it without consuming any).
    let backlog = rt
        .block_on(crate::drain::queue_size(&client))
        .context("reading /health before the drain")?;
    let (d, usage) = measure(Some(host.pid()), || {
        let t0 = Instant::now();
        let d = rt.block_on(drain_lanes(&client, lanes, Duration::from_secs(1_800)));
        Ok((d, t0.elapsed()))
    })
    .context("draining the backlog")?;
    let (d, drain_time) = d;
    let secs = drain_time.as_secs_f64();
    let after = rt
        .block_on(loadgen::verify::stats(&client))
        .context("reading /stats after the drain")?;
    // Every entry holds BACKLOG_BATCH events; each is counted by the one call that applied it.
    let entries = backlog / BACKLOG_BATCH as u64;
    let double_applied = d.batches as i128 - entries as i128;
    let published = acked_events.load(Ordering::Relaxed) as i128;
    let moved = (
        after.received as i128 - before.received as i128,
        after.unique_processed as i128 - before.unique_processed as i128,
        after.duplicate_dropped as i128 - before.duplicate_dropped as i128,
    );
    let exact =
        double_applied == 0 && after.queued == Some(0) && moved == (published, published, 0);
    let ok = d.emptied && tally.error_count == 0 && d.server_errors == 0 && exact;
    let kind = if lanes > 1 {
        Kind::BacklogDrainLanes
    } else {
        Kind::BacklogDrain
    };
    let mut row = Row::empty(
        &format!(
            "backlog drain ({publishes} async {BACKLOG_BATCH}-event publishes, then POST /drain, \
             {callers})"
        ),
        store,
        kind,
        Mode::Batch,
        if ok { "ok" } else { "FAILED" },
    );
    row.events_per_sec = Some(if secs > 0.0 {
        backlog as f64 / secs
    } else {
        0.0
    });
    row.requests_per_sec = Some(if secs > 0.0 {
        d.requests as f64 / secs
    } else {
        0.0
    });
    row.requests = d.requests;
    // A handful of /drain requests: CPU per 1,000 requests means nothing here, so the CPU of
    // the drain goes in the note instead of the "where the time goes" table.
    row.longest_drain_ms = Some(d.longest.as_secs_f64() * 1000.0);
    let mut note = format!(
        "{queued} events queued by {} publishes in {fill_secs:.1} s ({:.0} events/s); backlog of \
         {backlog} ({entries} entries) at the first /drain, drained by {} POST /drain ({callers}) \
         in {secs:.1} s; longest /drain {:.0} ms; queue {}; drained_batches {} = {entries} \
         entries, double-applied {double_applied}; /stats moved by +{} received, +{} unique, +{} \
         duplicates for {published} published, queued {} ({})",
        tally.requests,
        queued as f64 / fill_secs.max(1e-9),
        d.requests,
        d.longest.as_secs_f64() * 1000.0,
        if d.emptied { "empty" } else { "NOT empty" },
        d.batches,
        moved.0,
        moved.1,
        moved.2,
        after.queued.map_or("?".into(), |q| q.to_string()),
        if exact { "exact" } else { "NOT exact" }
    );
    note.push_str(&format!(
        "; CPU during the drain: edge-host {:.1} s, PostgreSQL {:.1} s, Redis {:.1} s in {:.1} s \
         ({:.0}% of the machine busy)",
        usage.host_cpu_secs,
        usage.postgres_cpu_secs,
        usage.redis_cpu_secs,
        usage.wall_secs,
        usage.machine_busy_pct
    ));
    for e in tally.errors.iter().take(3) {
        note.push_str(&format!("; {e}"));
    }
    row.note = Some(note);
    say(&format!(
        "  drained at {:.0} events/s ({callers}), longest /drain {:.0} ms, double-applied \
         {double_applied}, stats {}{}",
        row.events_per_sec.unwrap_or(0.0),
        d.longest.as_secs_f64() * 1000.0,
        if exact { "exact" } else { "NOT exact" },
        if ok { "" } else { " FAILED" }
    ));
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_batches_with_distinct_ids() {
        let a: serde_json::Value =
            serde_json::from_slice(&body("r", 7, "2024-05-01T12:00:00Z")).unwrap();
        let events = a["events"].as_array().unwrap();
        assert_eq!(events.len(), BACKLOG_BATCH);
        assert_eq!(events[0]["event_id"], "b7-0");
        assert_eq!(events[19]["event_id"], "b7-19");
        assert_eq!(events[0]["topic"], "r.backlog3");
    }
}
