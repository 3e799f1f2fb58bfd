//! Statistics: the counters of `/stats` and `/metrics`, exact at every observation.
//!
//! The queue is listed FIRST, then the store is read in one snapshot. Each listed
//! entry is then either already applied or dead-lettered (its marker is in the
//! snapshot, so it is counted in the store's counters) or not (counted as `queued`),
//! never both. Entries created after the listing are either invisible or fully in the
//! store's counters. Hence `received = unique_processed + duplicate_dropped + queued +
//! dead_lettered` holds by construction, whatever consumers are doing concurrently.
//! The store's counters are maintained rows (per topic), so a read costs the same
//! at ten events as at ten million.
//!
//! `uptime_seconds`: a Spin component lives for one request, so uptime is measured
//! from when the store was first initialised (`meta.started_at`, written by the
//! first migration) — i.e. the age of this deployment's data, not of a process.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime};
use serde::Serialize;

use crate::queue::{Pending, Queue, QueueError};
use crate::store::query::minute_text;
use crate::store::{
    EventStore, LevelCounts, Snapshot, StoreError, TopicFilter, TopicStats, VolumeCell, VolumeQuery,
};
use crate::validate::parse_timestamp;

/// Most topics `/stats` details (the rest are counted in the totals only).
pub const MAX_TOPICS: u32 = 1000;

/// The `/stats` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events accepted by publishes: stored, dropped as duplicates, queued or dead-lettered.
    pub received: u64,
    /// Events stored (distinct `(topic, event_id)`), ever; retention does not lower it.
    pub unique_processed: u64,
    /// Events dropped because their key was already stored.
    pub duplicate_dropped: u64,
    /// Events acknowledged but not yet applied to the store.
    pub queued: u64,
    /// Events in dead letters that were not re-applied (pending or discarded).
    pub dead_lettered: u64,
    /// Stored events removed by retention.
    pub expired: u64,
    /// Distinct topics, sorted (at most [`MAX_TOPICS`]).
    pub topics: Vec<String>,
    /// Number of distinct topics.
    pub topic_count: u64,
    /// Counters per topic, sorted by topic (one topic with `?topic=`).
    pub topic_stats: Vec<TopicStats>,
    /// Whether `topics` / `topic_stats` were cut at [`MAX_TOPICS`].
    pub topic_stats_truncated: bool,
    /// Dead letters waiting for an operator.
    pub dead_letters_pending: u64,
    /// Seconds since the store was first initialised.
    pub uptime_seconds: u64,
    /// The same, for people: `1h 2m 3s` (field of the FastAPI + SQLite predecessor).
    pub uptime_human: String,
    /// Which store is configured.
    pub store: &'static str,
    /// When the store was first initialised (origin of `uptime_seconds`).
    pub started_at: Option<String>,
    /// Events stored, ever, per level (`none`: without a level).
    pub levels: LevelCounts,
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
    topic: Option<String>,
) -> Result<Stats, StatsError> {
    let pending = queue.pending().map_err(StatsError::Queue)?;
    let keys: Vec<String> = pending.iter().map(|p| p.key.clone()).collect();
    let filter = TopicFilter {
        topic,
        limit: MAX_TOPICS,
    };
    let snapshot = store
        .snapshot(&keys, &filter)
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
        received: snapshot.received + queued + snapshot.dead_lettered,
        unique_processed: unique,
        duplicate_dropped: snapshot.received - unique,
        queued,
        dead_lettered: snapshot.dead_lettered,
        expired: snapshot.expired,
        topics: snapshot.topics.iter().map(|t| t.topic.clone()).collect(),
        topic_count: snapshot.topic_count,
        topic_stats_truncated: snapshot.topic_count > snapshot.topics.len() as u64
            && snapshot.topics.len() as u32 >= MAX_TOPICS,
        topic_stats: snapshot.topics,
        dead_letters_pending: snapshot.dead_letters_pending,
        uptime_seconds,
        uptime_human: human(uptime_seconds),
        store: store_name,
        started_at: snapshot.started_at,
        levels: snapshot.levels,
    }
}

/// `93784` → `1d 2h 3m 4s`; leading zero units are left out.
pub fn human(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    let parts = [(d, "d"), (h, "h"), (m, "m")];
    let mut out: Vec<String> = parts
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    out.push(format!("{s}s"));
    out.join(" ")
}

/// The current UTC time.
pub fn now_utc() -> NaiveDateTime {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    DateTime::from_timestamp(since_epoch.as_secs() as i64, since_epoch.subsec_nanos())
        .unwrap_or_default()
        .naive_utc()
}

/// One bucket of `/volume`.
#[derive(Debug, Serialize)]
pub struct VolumeBucket {
    /// Its first instant (UTC); the bucket ends where the next begins.
    pub start: String,
    /// Events in it (matching the filters).
    pub count: u64,
    /// The same, per level.
    pub levels: LevelCounts,
}

/// The `/volume` body.
#[derive(Debug, Serialize)]
pub struct VolumePage<'a> {
    /// Start of the first bucket (the asked `since`, rounded down to a whole step).
    pub since: String,
    /// End of the last bucket (the asked `until`, rounded up to a whole step).
    pub until: String,
    /// Bucket width in seconds (a whole number of minutes).
    pub step_seconds: i64,
    /// The `topic` filter, if any.
    pub topic: Option<&'a str>,
    /// The `source` filter, if any.
    pub source: Option<&'a str>,
    /// `counters` (maintained per-minute/hour rows: cost O(buckets)) or `events` (a source
    /// or text filter: the matching events of the range were counted).
    pub counted_from: &'static str,
    /// Events over the whole range.
    pub total: u64,
    /// The same, per level.
    pub levels: LevelCounts,
    /// Every bucket of the range, oldest first (empty ones too).
    pub buckets: Vec<VolumeBucket>,
    /// Present when queued entries could not all be consumed first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<&'a str>,
}

/// Lays the store's (bucket, level, count) cells out as every bucket of the range.
pub fn volume_page<'a>(
    v: &'a VolumeQuery,
    cells: &[VolumeCell],
    warning: Option<&'a str>,
) -> VolumePage<'a> {
    let n = usize::try_from((v.until_minute - v.since_minute) / v.step_minutes).unwrap_or(0);
    let mut buckets: Vec<VolumeBucket> = (0..n)
        .map(|i| VolumeBucket {
            start: minute_text(v.since_minute + i as i64 * v.step_minutes),
            count: 0,
            levels: LevelCounts::default(),
        })
        .collect();
    let mut levels = LevelCounts::default();
    for &(bucket, level, count) in cells {
        if let Some(b) = usize::try_from(bucket)
            .ok()
            .and_then(|i| buckets.get_mut(i))
        {
            b.count += count;
            b.levels.add(level, count);
            levels.add(level, count);
        }
    }
    VolumePage {
        since: minute_text(v.since_minute),
        until: minute_text(v.until_minute),
        step_seconds: v.step_minutes * 60,
        topic: v.topic.as_deref(),
        source: v.source.as_deref(),
        counted_from: if v.uses_counters() {
            "counters"
        } else {
            "events"
        },
        total: levels.total(),
        levels,
        buckets,
        warning,
    }
}

/// Escapes a label value for the Prometheus text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One per-topic metric: name, help, the value of a topic, the `_other` sum.
type Series = (&'static str, &'static str, fn(&TopicStats) -> u64, u64);

/// Renders the same counters in Prometheus text exposition format 0.0.4.
///
/// Per-topic series carry a `topic` label for at most `max_topic_labels` topics (the
/// busiest by received); the others are summed under `topic="_other"`, so a flood of
/// topics cannot flood the scraper.
pub fn prometheus(stats: &Stats, max_topic_labels: usize) -> String {
    let metrics: [(&str, &str, &str, u64); 9] = [
        (
            "edgelog_events_received_total",
            "counter",
            "Events accepted by publish requests (stored, dropped, queued or dead-lettered).",
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
            "edgelog_events_dead_lettered_total",
            "counter",
            "Events in dead letters (entries the store refused), not re-applied.",
            stats.dead_lettered,
        ),
        (
            "edgelog_events_expired_total",
            "counter",
            "Stored events removed by retention.",
            stats.expired,
        ),
        (
            "edgelog_events_queued",
            "gauge",
            "Events acknowledged but not yet stored.",
            stats.queued,
        ),
        (
            "edgelog_dead_letters_pending",
            "gauge",
            "Dead letters waiting for an operator to retry or discard them.",
            stats.dead_letters_pending,
        ),
        (
            "edgelog_topics",
            "gauge",
            "Distinct topics.",
            stats.topic_count,
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
    out.push_str(
        "# HELP edgelog_events_stored_by_level_total Events stored, per level (none: without one).\n\
         # TYPE edgelog_events_stored_by_level_total counter\n",
    );
    for (name, value) in stats.levels.named() {
        out.push_str(&format!(
            "edgelog_events_stored_by_level_total{{level=\"{name}\"}} {value}\n"
        ));
    }
    let mut topics: Vec<&TopicStats> = stats.topic_stats.iter().collect();
    topics.sort_by(|a, b| b.received.cmp(&a.received).then(a.topic.cmp(&b.topic)));
    let (named, rest) = topics.split_at(topics.len().min(max_topic_labels));
    let other = rest.iter().fold([0u64; 3], |acc, t| {
        [
            acc[0] + t.received,
            acc[1] + t.unique_processed,
            acc[2] + t.duplicate_dropped,
        ]
    });
    let series: [Series; 3] = [
        (
            "edgelog_topic_events_received_total",
            "Events applied to the store, per topic.",
            |t| t.received,
            other[0],
        ),
        (
            "edgelog_topic_events_unique_processed_total",
            "Events stored, per topic.",
            |t| t.unique_processed,
            other[1],
        ),
        (
            "edgelog_topic_events_duplicate_dropped_total",
            "Duplicates dropped, per topic.",
            |t| t.duplicate_dropped,
            other[2],
        ),
    ];
    for (name, help, value, other_value) in series {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for t in named {
            out.push_str(&format!(
                "{name}{{topic=\"{}\"}} {}\n",
                label(&t.topic),
                value(t)
            ));
        }
        if !rest.is_empty() {
            out.push_str(&format!("{name}{{topic=\"_other\"}} {other_value}\n"));
        }
    }
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

    fn topic(name: &str, received: u64, stored: u64) -> TopicStats {
        TopicStats {
            topic: name.into(),
            received,
            unique_processed: stored,
            duplicate_dropped: received - stored,
            expired: 0,
            last_event_at: None,
            levels: LevelCounts::default(),
        }
    }

    fn snapshot(received: u64, unique: u64, consumed: &[&str]) -> Snapshot {
        Snapshot {
            received,
            unique,
            topic_count: 2,
            topics: vec![topic("a", received, unique), topic("b", 0, 0)],
            consumed: consumed.iter().map(|s| s.to_string()).collect(),
            started_at: Some("2024-05-01T12:00:00.000000Z".into()),
            ..Snapshot::default()
        }
    }

    fn at(s: &str) -> NaiveDateTime {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn applied_pending_entries_are_not_counted_twice() {
        let p = [pending("q/1", 3), pending("q/2", 5), pending("q/3", 2)];
        // q/1 was applied and q/3 dead-lettered between the listing and the snapshot.
        let mut snap = snapshot(13, 9, &["q/1", "q/3"]);
        snap.dead_lettered = 2;
        let s = combine(&p, snap, "sqlite", at("2024-05-01T12:01:40Z"));
        assert_eq!(s.queued, 5);
        assert_eq!(s.received, 20);
        assert_eq!((s.unique_processed, s.duplicate_dropped), (9, 4));
        assert_eq!(
            s.received,
            s.unique_processed + s.duplicate_dropped + s.queued + s.dead_lettered
        );
        assert_eq!(s.uptime_seconds, 100);
        assert_eq!(s.uptime_human, "1m 40s");
        assert_eq!(s.topics, vec!["a", "b"]);
    }

    #[test]
    fn empty_everything() {
        let mut snap = snapshot(0, 0, &[]);
        snap.started_at = None;
        let s = combine(&[], snap, "postgres", at("2024-05-01T12:00:00Z"));
        assert_eq!((s.received, s.queued, s.uptime_seconds), (0, 0, 0));
        assert_eq!(s.uptime_human, "0s");
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
    fn human_uptime() {
        assert_eq!(human(3723), "1h 2m 3s");
        assert_eq!(human(93_784), "1d 2h 3m 4s");
        assert_eq!(human(86_400), "1d 0h 0m 0s");
        assert_eq!(human(59), "59s");
    }

    #[test]
    fn prometheus_text() {
        let s = combine(
            &[pending("q/9", 2)],
            snapshot(10, 7, &[]),
            "sqlite",
            at("2024-05-01T12:00:05Z"),
        );
        let text = prometheus(&s, 100);
        assert!(text.contains(
            "# TYPE edgelog_events_received_total counter\nedgelog_events_received_total 12\n"
        ));
        assert!(text.contains("\nedgelog_events_unique_processed_total 7\n"));
        assert!(text.contains("\nedgelog_events_duplicate_dropped_total 3\n"));
        assert!(text.contains("\nedgelog_events_queued 2\n"));
        assert!(text.contains("\nedgelog_events_dead_lettered_total 0\n"));
        assert!(text.contains("\nedgelog_topics 2\n"));
        assert!(text.contains("\nedgelog_uptime_seconds 5\n"));
        assert!(text.contains("edgelog_store_info{store=\"sqlite\"} 1\n"));
        assert!(text.contains("edgelog_topic_events_received_total{topic=\"a\"} 10\n"));
        assert!(!text.contains("_other"));
    }

    #[test]
    fn topic_labels_are_capped_and_escaped() {
        let mut snap = snapshot(10, 7, &[]);
        snap.topics = vec![
            topic("busy", 50, 40),
            topic("quiet", 1, 1),
            topic("a\"b", 3, 3),
        ];
        let s = combine(&[], snap, "sqlite", at("2024-05-01T12:00:05Z"));
        let text = prometheus(&s, 2);
        assert!(text.contains("edgelog_topic_events_received_total{topic=\"busy\"} 50\n"));
        assert!(text.contains("edgelog_topic_events_received_total{topic=\"a\\\"b\"} 3\n"));
        assert!(text.contains("edgelog_topic_events_received_total{topic=\"_other\"} 1\n"));
        assert!(!text.contains("topic=\"quiet\""));
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
            "topic_stats",
            "dead_lettered",
            "expired",
            "uptime_seconds",
            "uptime_human",
            "queued",
            "store",
            "started_at",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
    }
}
