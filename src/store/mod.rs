//! The event store: one trait, two SQL dialects (SQLite and PostgreSQL).
//!
//! Schema (see `migrations/`): `events` with `UNIQUE (topic, event_id)` and an
//! index on `(topic, id)`; `consumed_batches`, one *marker* row per applied queue
//! entry holding its `received` and `inserted` counts; `meta` (`started_at`); and
//! `schema_migrations`.
//!
//! Exactly-once rests on the marker: [`EventStore::apply_batch`] inserts the marker
//! and the events in one transaction, and does nothing if the marker already
//! exists. A consumer that crashes before deleting the queue entry, or two
//! consumers racing on the same entry, therefore change the store once. Counters
//! are sums over the markers, never one hot row, so concurrent batches do not
//! serialise on a counter.
//!
//! SQL text shared by both dialects lives here. SQLite reads `$1`-style
//! placeholders as named parameters numbered in order of first appearance, so the
//! same text binds identically on both as long as `$n` first appear in order.

pub mod postgres;
pub mod sqlite;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::StoreChoice;
use crate::validate::Event;

/// How many duplicate keys a batch reports by name (the rest are only counted).
pub const DUPLICATE_SAMPLE: usize = 10;

/// The operations the service needs from a database; one implementation per dialect.
pub trait EventStore {
    /// Applies missing migrations; safe when many instances start at once.
    fn migrate(&self) -> Result<(), StoreError>;
    /// Stores a queue entry's events exactly once (keyed by the entry key) and reports the counts.
    fn apply_batch(&self, key: &str, events: &[Event]) -> Result<Applied, StoreError>;
    /// Reads the counters, topics and which `pending_keys` are already applied, in one snapshot.
    fn snapshot(&self, pending_keys: &[String]) -> Result<Snapshot, StoreError>;
    /// Pages through stored events, newest first.
    fn list(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;
    /// Proves the database answers, for `/health`.
    fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the configured store without touching the schema (what `/health` needs).
pub fn open(choice: &StoreChoice) -> Result<Box<dyn EventStore>, StoreError> {
    Ok(match choice {
        StoreChoice::Sqlite => Box::new(sqlite::SqliteStore::open()?),
        StoreChoice::Postgres(url) => Box::new(postgres::PostgresStore::open(url)?),
    })
}

/// Opens the configured store and makes sure its schema is current (what the read routes need).
pub fn connect(choice: &StoreChoice) -> Result<Box<dyn EventStore>, StoreError> {
    let store = open(choice)?;
    store.migrate()?;
    Ok(store)
}

/// Runs `op` without checking the schema first; if it fails, migrates and runs it once more.
///
/// The publish path's way to skip a schema round trip per request: the first
/// publish to a fresh database fails on the missing table, migrates, and retries;
/// so do publishes racing with another instance's migration. `op` must be safe to
/// repeat, which `apply_batch` is (its marker). Later, compatible migrations are
/// applied by the read routes, which still [`connect`].
pub fn with_schema<T>(
    store: &dyn EventStore,
    op: impl Fn(&dyn EventStore) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    op(store).or_else(|first| match store.migrate() {
        Ok(()) => op(store),
        Err(_) => Err(first),
    })
}

/// The outcome of applying one queue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `true` if this call applied the entry; `false` if an earlier consumer already had.
    pub fresh: bool,
    /// Events in the entry (duplicates included).
    pub received: u64,
    /// Events newly stored by the entry.
    pub inserted: u64,
    /// Up to [`DUPLICATE_SAMPLE`] dropped `(topic, event_id)` keys, for the log (fresh only).
    pub duplicate_sample: Vec<(String, String)>,
}

impl Applied {
    /// Events of the entry that were dropped as duplicates.
    pub fn duplicates(&self) -> u64 {
        self.received.saturating_sub(self.inserted)
    }

    /// The counts an earlier consumer recorded in the marker.
    pub(crate) fn already(received: u64, inserted: u64) -> Applied {
        Applied {
            fresh: false,
            received,
            inserted,
            duplicate_sample: Vec::new(),
        }
    }
}

/// Store-side counters read in one consistent snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Sum of `received` over all markers.
    pub received: u64,
    /// Sum of `inserted` over all markers (= rows in `events`).
    pub unique: u64,
    /// Distinct topics, sorted.
    pub topics: Vec<String>,
    /// Those of the given pending keys that already have a marker.
    pub consumed: Vec<String>,
    /// When the store was first initialised (`meta.started_at`), if recorded.
    pub started_at: Option<String>,
}

/// A page request for `GET /events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this topic, if given.
    pub topic: Option<String>,
    /// Page size (1–1000).
    pub limit: u32,
    /// Rows to skip after the cursor.
    pub offset: u64,
    /// Keyset cursor: only ids below this one.
    pub before: Option<u64>,
}

/// One stored event as `GET /events` returns it.
#[derive(Debug, Serialize)]
pub struct StoredEvent {
    /// Store-assigned, increasing id; the keyset cursor.
    pub id: i64,
    /// Event topic.
    pub topic: String,
    /// Publisher's event id.
    pub event_id: String,
    /// Event time, UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub timestamp: String,
    /// Event source.
    pub source: String,
    /// Payload JSON, passed through without re-parsing into a tree.
    pub payload: Box<RawValue>,
    /// When the store recorded it, same format as `timestamp`.
    pub processed_at: String,
}

/// A store failure: a short safe summary for clients and a detailed text for the log.
#[derive(Debug, Clone)]
pub struct StoreError {
    /// Short, credential-free description (e.g. `query failed (SQLSTATE 23505)`).
    pub summary: String,
    /// Full error text for stderr only.
    pub detail: String,
}

impl StoreError {
    /// Builds an error from a safe summary and a log-only detail.
    pub fn new(summary: impl Into<String>, detail: impl Into<String>) -> StoreError {
        StoreError {
            summary: summary.into(),
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.summary, self.detail)
    }
}

/// A batch made ready for insertion: deduplicated and sorted by `(topic, event_id)`.
///
/// Sorting gives every transaction the same lock order, so overlapping batches
/// cannot deadlock; deduplicating first means "first copy in the batch wins".
pub(crate) struct Prepared<'a> {
    /// Events in the entry, duplicates included.
    pub received: u64,
    /// First copy of each key, sorted by key.
    pub unique: Vec<&'a Event>,
    /// Keys repeated within the batch itself (a sample, for the log).
    pub repeated: Vec<(String, String)>,
}

impl<'a> Prepared<'a> {
    /// Sorts (stably, so the first copy stays first) and drops in-batch repeats.
    pub fn new(events: &'a [Event]) -> Prepared<'a> {
        let mut sorted: Vec<&Event> = events.iter().collect();
        sorted.sort_by(|a, b| a.key().cmp(&b.key()));
        let mut unique: Vec<&Event> = Vec::with_capacity(sorted.len());
        let mut repeated = Vec::new();
        for e in sorted {
            if unique.last().is_some_and(|last| last.key() == e.key()) {
                if repeated.len() < DUPLICATE_SAMPLE {
                    repeated.push(owned_key(e));
                }
            } else {
                unique.push(e);
            }
        }
        Prepared {
            received: events.len() as u64,
            unique,
            repeated,
        }
    }

    /// Names up to [`DUPLICATE_SAMPLE`] dropped keys, given the keys the store inserted (sorted).
    pub fn duplicate_sample(&self, inserted_sorted: &[(String, String)]) -> Vec<(String, String)> {
        let mut sample = self.repeated.clone();
        if inserted_sorted.len() < self.unique.len() {
            let was_inserted = |e: &&Event| {
                inserted_sorted
                    .binary_search_by(|(t, id)| (t.as_str(), id.as_str()).cmp(&e.key()))
                    .is_ok()
            };
            let missing = self.unique.iter().filter(|e| !was_inserted(e));
            sample.extend(missing.map(|e| owned_key(e)));
        }
        sample.truncate(DUPLICATE_SAMPLE);
        sample
    }
}

fn owned_key(e: &Event) -> (String, String) {
    (e.topic().to_owned(), e.event_id().to_owned())
}

/// Shared SQL text (both dialects).
pub(crate) mod sql {
    /// Cheapest round trip that proves the database answers.
    pub const PING: &str = "SELECT 1";

    /// Current schema version; fails if `schema_migrations` does not exist yet.
    pub const SCHEMA_VERSION: &str =
        "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations";

    /// The counts a marker recorded.
    pub const SELECT_MARKER: &str =
        "SELECT received, inserted FROM consumed_batches WHERE batch_key = $1";

    /// Column list of an event insert.
    pub const INSERT_EVENTS_INTO: &str =
        "INSERT INTO events (topic, event_id, \"timestamp\", source, payload)";

    /// Total counters as one derived row `c(received, inserted)`.
    pub const SUMS: &str = "(SELECT CAST(COALESCE(SUM(received), 0) AS BIGINT) AS received, \
         CAST(COALESCE(SUM(inserted), 0) AS BIGINT) AS inserted FROM consumed_batches) AS c";

    /// Distinct topics by skipping through the `(topic, ...)` index, instead of scanning all events.
    pub const DISTINCT_TOPICS: &str = "WITH RECURSIVE t(topic) AS (\
         SELECT MIN(topic) FROM events \
         UNION ALL \
         SELECT (SELECT MIN(e.topic) FROM events e WHERE e.topic > t.topic) FROM t \
         WHERE t.topic IS NOT NULL) \
         SELECT topic FROM t WHERE topic IS NOT NULL";

    /// When the store was first initialised.
    pub const STARTED_AT: &str = "(SELECT value FROM meta WHERE key = 'started_at')";

    /// A parameter of a listing query, mapped by each dialect to its own value type.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Param<'a> {
        /// A text value.
        Text(&'a str),
        /// An integer value.
        Int(i64),
    }

    /// Builds the `GET /events` query for a dialect's select list, newest first.
    ///
    /// Only the filters actually requested appear in the text, so each variant
    /// gets its own plan and the `(topic, id)` index serves `topic = ? AND id < ?`.
    pub fn list_events<'a>(
        select_list: &str,
        q: &'a super::EventQuery,
    ) -> (String, Vec<Param<'a>>) {
        let mut params = Vec::new();
        let mut filters = Vec::new();
        if let Some(topic) = &q.topic {
            params.push(Param::Text(topic));
            filters.push(format!("topic = ${}", params.len()));
        }
        if let Some(before) = q.before {
            params.push(Param::Int(i64::try_from(before).unwrap_or(i64::MAX)));
            filters.push(format!("id < ${}", params.len()));
        }
        let mut text = format!("SELECT {select_list} FROM events");
        if !filters.is_empty() {
            text.push_str(" WHERE ");
            text.push_str(&filters.join(" AND "));
        }
        params.push(Param::Int(i64::from(q.limit)));
        params.push(Param::Int(i64::try_from(q.offset).unwrap_or(i64::MAX)));
        text.push_str(&format!(
            " ORDER BY id DESC LIMIT ${} OFFSET ${}",
            params.len() - 1,
            params.len()
        ));
        (text, params)
    }
}

#[cfg(test)]
mod tests {
    use super::sql::{Param, list_events};
    use super::*;
    use crate::validate::{Limits, Shape, parse_batch};

    fn batch(keys: &[(&str, &str)]) -> Vec<Event> {
        let items: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, (t, id))| {
                serde_json::json!({"topic": t, "event_id": id, "timestamp": "2024-01-01T00:00:00Z",
                    "source": format!("copy{i}")})
            })
            .collect();
        let limits = Limits {
            max_batch_events: 100,
            max_payload_bytes: 100,
        };
        parse_batch(
            serde_json::json!(items).to_string().as_bytes(),
            Shape::Any,
            &limits,
        )
        .unwrap()
    }

    #[test]
    fn prepared_sorts_and_keeps_first_copy() {
        let events = batch(&[("b", "1"), ("a", "2"), ("b", "1"), ("a", "1"), ("a", "2")]);
        let p = Prepared::new(&events);
        assert_eq!(p.received, 5);
        let keys: Vec<_> = p.unique.iter().map(|e| e.key()).collect();
        assert_eq!(keys, vec![("a", "1"), ("a", "2"), ("b", "1")]);
        assert_eq!(
            p.unique[1].source(),
            "copy1",
            "first copy in the batch wins"
        );
        assert_eq!(p.unique[2].source(), "copy0");
        assert_eq!(p.repeated.len(), 2);
    }

    #[test]
    fn duplicate_sample_combines_repeats_and_store_conflicts() {
        let events = batch(&[("a", "1"), ("a", "1"), ("a", "2"), ("a", "3")]);
        let p = Prepared::new(&events);
        let inserted = vec![("a".to_string(), "2".to_string())];
        let sample = p.duplicate_sample(&inserted);
        let owned = |t: &str, id: &str| (t.to_string(), id.to_string());
        assert_eq!(
            sample,
            vec![owned("a", "1"), owned("a", "1"), owned("a", "3")]
        );
        let all: Vec<_> = p.unique.iter().map(|e| owned_key(e)).collect();
        assert_eq!(p.duplicate_sample(&all), vec![owned("a", "1")]);
    }

    #[test]
    fn duplicate_sample_is_capped() {
        let keys: Vec<(String, String)> =
            (0..30).map(|i| ("t".into(), format!("{i:02}"))).collect();
        let refs: Vec<(&str, &str)> = keys.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let events = batch(&refs);
        assert_eq!(
            Prepared::new(&events).duplicate_sample(&[]).len(),
            DUPLICATE_SAMPLE
        );
    }

    #[test]
    fn applied_duplicates() {
        let a = Applied::already(10, 7);
        assert_eq!((a.fresh, a.duplicates()), (false, 3));
    }

    #[test]
    fn listing_query_numbers_parameters_in_order() {
        let q = EventQuery {
            topic: Some("t".into()),
            limit: 10,
            offset: 5,
            before: Some(99),
        };
        let (text, params) = list_events("id", &q);
        assert_eq!(
            text,
            "SELECT id FROM events WHERE topic = $1 AND id < $2 ORDER BY id DESC LIMIT $3 OFFSET $4"
        );
        assert_eq!(
            params,
            vec![
                Param::Text("t"),
                Param::Int(99),
                Param::Int(10),
                Param::Int(5)
            ]
        );
        let q = EventQuery {
            topic: None,
            limit: 100,
            offset: 0,
            before: Some(7),
        };
        let (text, params) = list_events("id", &q);
        assert_eq!(
            text,
            "SELECT id FROM events WHERE id < $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
        );
        assert_eq!(params.len(), 3);
        let q = EventQuery {
            topic: None,
            limit: 1,
            offset: 0,
            before: None,
        };
        assert_eq!(
            list_events("id", &q).0,
            "SELECT id FROM events ORDER BY id DESC LIMIT $1 OFFSET $2"
        );
    }
}
