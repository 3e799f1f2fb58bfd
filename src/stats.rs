//! Statistics: the counters of `/stats` and `/metrics`, exact at every observation.
//!
//! The queue is listed FIRST, then the store is read in one snapshot. Each listed
//! entry is then either already applied (its marker is in the snapshot, so it is
//! counted in the store's sums) or not (counted as `queued`), never both. Entries
//! created after the listing are either invisible or fully in the store sums.
//! Hence `received = unique_processed + duplicate_dropped + queued` holds by
//! construction, whatever consumers are doing concurrently.
//!
//! `uptime_seconds`: a Spin component lives for one request, so uptime is measured
//! from when the store was first initialised (`meta.started_at`, written by the
//! first migration) — i.e. the age of this deployment's data, not of a process.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime};
use serde::Serialize;

use crate::queue::{Pending, Queue, QueueError};
use crate::store::{EventStore, Snapshot, StoreError};
use crate::validate::parse_timestamp;

/// The `/stats` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events accepted by publishes: stored, dropped as duplicates, or still queued.
    pub received: u64,
    /// Events stored (distinct `(topic, event_id)`).
    pub unique_processed: u64,
    /// Events dropped because their key was already stored.
    pub duplicate_dropped: u64,
    /// Distinct topics, sorted.
    pub topics: Vec<String>,
    /// Seconds since the store was first initialised.
    pub uptime_seconds: u64,
    /// Events acknowledged but not yet applied to the store.
    pub queued: u64,
    /// Which store is configured.
    pub store: &'static str,
    /// When the store was first initialised (origin of `uptime_seconds`).
    pub started_at: Option<String>,
}

/// Why statistics could not be read.
#[derive(Debug)]
pub enum StatsError {
    /// The queue could not be listed.
    Queue(QueueError),
    /// The store could not be read; `queued` is what the queue alone could tell.
    Store(StoreError, u64),
}

/// Lists the queue, then snapshots the store, and combines them.
pub fn collect(
    queue: &Queue,
    store: &dyn EventStore,
    store_name: &'static str,
) -> Result<Stats, StatsError> {
    let pending = queue.pending().map_err(StatsError::Queue)?;
    let keys: Vec<String> = pending.iter().map(|p| p.key.clone()).collect();
    let snapshot = store
        .snapshot(&keys)
        .map_err(|e| StatsError::Store(e, crate::queue::total(&pending)))?;
    Ok(combine(&pending, snapshot, store_name, now_utc()))
}

/// The arithmetic of `collect`, kept pure so the invariant can be tested.
pub fn combine(
    pending: &[Pending],
    snapshot: Snapshot,
    store_name: &'static str,
    now: NaiveDateTime,
) -> Stats {
    let consumed: HashSet<&str> = snapshot.consumed.iter().map(String::as_str).collect();
    let queued = pending
        .iter()
        .filter(|p| !consumed.contains(p.key.as_str()))
        .map(|p| p.count)
        .sum::<u64>();
    let unique = snapshot.unique.min(snapshot.received);
    let uptime_seconds = snapshot
        .started_at
        .as_deref()
        .and_then(|s| parse_timestamp(s).ok())
        .map_or(0, |start| {
            u64::try_from((now - start).num_seconds()).unwrap_or(0)
        });
    Stats {
        received: snapshot.received + queued,
        unique_processed: unique,
        duplicate_dropped: snapshot.received - unique,
        topics: snapshot.topics,
        uptime_seconds,
        queued,
        store: store_name,
        started_at: snapshot.started_at,
    }
}

fn now_utc() -> NaiveDateTime {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    DateTime::from_timestamp(since_epoch.as_secs() as i64, since_epoch.subsec_nanos())
        .unwrap_or_default()
        .naive_utc()
}

/// Renders the same counters in Prometheus text exposition format 0.0.4.
pub fn prometheus(stats: &Stats) -> String {
    let metrics: [(&str, &str, &str, u64); 6] = [
        (
            "edgelog_events_received_total",
            "counter",
            "Events accepted by publish requests (stored, dropped or queued).",
            stats.received,
        ),
        (
            "edgelog_events_unique_processed_total",
            "counter",
            "Events stored once per (topic, event_id).",
            stats.unique_processed,
        ),
        (
            "edgelog_events_duplicate_dropped_total",
            "counter",
            "Events dropped because their (topic, event_id) was already stored.",
            stats.duplicate_dropped,
        ),
        (
            "edgelog_events_queued",
            "gauge",
            "Events acknowledged but not yet stored.",
            stats.queued,
        ),
        (
            "edgelog_topics",
            "gauge",
            "Distinct topics stored.",
            stats.topics.len() as u64,
        ),
        (
            "edgelog_uptime_seconds",
            "gauge",
            "Seconds since the store was first initialised.",
            stats.uptime_seconds,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in metrics {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP edgelog_store_info The configured event store.\n\
         # TYPE edgelog_store_info gauge\n\
         edgelog_store_info{{store=\"{}\"}} 1\n",
        stats.store
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(key: &str, count: u64) -> Pending {
        Pending {
            key: key.into(),
            count,
        }
    }

    fn snapshot(received: u64, unique: u64, consumed: &[&str]) -> Snapshot {
        Snapshot {
            received,
            unique,
            topics: vec!["a".into(), "b".into()],
            consumed: consumed.iter().map(|s| s.to_string()).collect(),
            started_at: Some("2024-05-01T12:00:00.000000Z".into()),
        }
    }

    fn at(s: &str) -> NaiveDateTime {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn applied_pending_entries_are_not_counted_twice() {
        let p = [pending("q/1", 3), pending("q/2", 5)];
        // q/1 was applied between the listing and the snapshot: it is in the sums.
        let s = combine(
            &p,
            snapshot(13, 9, &["q/1"]),
            "sqlite",
            at("2024-05-01T12:01:40Z"),
        );
        assert_eq!(s.queued, 5);
        assert_eq!(s.received, 18);
        assert_eq!((s.unique_processed, s.duplicate_dropped), (9, 4));
        assert_eq!(
            s.received,
            s.unique_processed + s.duplicate_dropped + s.queued
        );
        assert_eq!(s.uptime_seconds, 100);
    }

    #[test]
    fn empty_everything() {
        let mut snap = snapshot(0, 0, &[]);
        snap.started_at = None;
        let s = combine(&[], snap, "postgres", at("2024-05-01T12:00:00Z"));
        assert_eq!((s.received, s.queued, s.uptime_seconds), (0, 0, 0));
    }

    #[test]
    fn clock_behind_start_gives_zero_uptime() {
        let s = combine(
            &[],
            snapshot(0, 0, &[]),
            "sqlite",
            at("2024-05-01T11:00:00Z"),
        );
        assert_eq!(s.uptime_seconds, 0);
    }

    #[test]
    fn prometheus_text() {
        let s = combine(
            &[pending("q/9", 2)],
            snapshot(10, 7, &[]),
            "sqlite",
            at("2024-05-01T12:00:05Z"),
        );
        let text = prometheus(&s);
        assert!(text.contains(
            "# TYPE edgelog_events_received_total counter\nedgelog_events_received_total 12\n"
        ));
        assert!(text.contains("\nedgelog_events_unique_processed_total 7\n"));
        assert!(text.contains("\nedgelog_events_duplicate_dropped_total 3\n"));
        assert!(text.contains("\nedgelog_events_queued 2\n"));
        assert!(text.contains("\nedgelog_topics 2\n"));
        assert!(text.contains("\nedgelog_uptime_seconds 5\n"));
        assert!(text.ends_with("edgelog_store_info{store=\"sqlite\"} 1\n"));
    }

    #[test]
    fn stats_json_field_names() {
        let s = combine(
            &[],
            snapshot(1, 1, &[]),
            "sqlite",
            at("2024-05-01T12:00:00Z"),
        );
        let v = serde_json::to_value(&s).unwrap();
        for field in [
            "received",
            "unique_processed",
            "duplicate_dropped",
            "topics",
            "uptime_seconds",
            "queued",
            "store",
            "started_at",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
    }
}
