//! The event store: one trait, two SQL dialects (SQLite and PostgreSQL).
//!
//! Schema (see `migrations/`): `events` with `UNIQUE (topic, event_id)` and indexes
//! on `(topic, id)`, `(source, id)`, `("timestamp", id)`; `topic_counters`, the
//! counters per topic (in shards on PostgreSQL); `consumed_batches`, one *marker*
//! per applied batch key; `dead_letters`; `entry_failures`; `meta`.
//!
//! Exactly-once rests on the marker: [`EventStore::apply`] inserts the markers of a
//! group of batches, the events of the batches whose marker is new, and their counts,
//! in ONE transaction. A consumer that crashes before deleting a queue entry, or two
//! consumers racing on one entry, therefore change the store once. Counters are
//! maintained in that same transaction, per topic, so `/stats` reads a bounded number
//! of rows whatever the history; markers are only flags and are compacted (see
//! `maintenance` and docs/DESIGN.md for the horizon that makes that safe).
//!
//! SQL text shared by both dialects lives here (`sql`). SQLite reads `$1`-style
//! placeholders as named parameters numbered in order of first appearance, so the
//! same text binds identically on both as long as `$n` first appear in order.
//!
//! Beside the trait: `error` (a [`StoreError`]: safe summary, log detail, whether a retry can
//! help), `prepare` (what the SQLite apply works out in Rust before it writes), `find` and
//! `query` (what a reader asks for, and its SQL).

mod error;
pub mod find;
pub mod postgres;
mod prepare;
pub mod query;
pub mod sqlite;

pub use error::{ErrorKind, StoreError};
pub use find::{LevelCounts, TailCursor, TailPage, VolumeCell, VolumeQuery};
pub(crate) use prepare::Prepared;
pub use prepare::{VolumeDelta, epoch_minute, volume_rows};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::StoreChoice;
use crate::validate::{Event, Level};

/// How many duplicate keys a group reports by name (the rest are only counted).
pub const DUPLICATE_SAMPLE: usize = 10;

/// The operations the service needs from a database; one implementation per dialect.
pub trait EventStore {
    /// Applies missing migrations; safe when many instances start at once.
    fn migrate(&self) -> Result<(), StoreError>;
    /// Applies a group of batches exactly once each (keyed by their marker keys), in one transaction.
    fn apply(&self, group: &Group<'_>) -> Result<Applied, StoreError>;
    /// Reads counters, topics and which `pending_keys` are already applied, in one snapshot.
    fn snapshot(
        &self,
        pending_keys: &[String],
        topics: &TopicFilter,
    ) -> Result<Snapshot, StoreError>;
    /// Pages through stored events, newest first.
    fn list(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;
    /// Events committed after a tail position that match the query's filters, oldest first.
    fn tail(&self, query: &EventQuery, after: TailCursor) -> Result<TailPage, StoreError>;
    /// The current tail position: a tail from it returns only what is committed later.
    fn tail_position(&self) -> Result<TailCursor, StoreError>;
    /// Whether anything was committed after a tail position: the cheap check a waiting tail
    /// makes before it reads.
    fn tail_moved(&self, after: TailCursor) -> Result<bool, StoreError>;
    /// Events per (bucket, level) of a `/volume` request.
    fn volume(&self, query: &VolumeQuery) -> Result<Vec<VolumeCell>, StoreError>;
    /// Proves the database answers, for `/health`.
    fn ping(&self) -> Result<(), StoreError>;
    /// Whether the dead-letter table exists: a store no request has migrated yet has none, so
    /// `/health` can say `0` rather than "unknown" without creating the schema.
    fn has_dead_letter_table(&self) -> Result<bool, StoreError>;
    /// Moves an entry aside: a dead letter plus its marker, atomically (a repeat changes nothing).
    fn bury(&self, letter: &NewDeadLetter<'_>) -> Result<(), StoreError>;
    /// Counts one more failed attempt of an entry; returns the attempts so far.
    fn record_failure(&self, key: &str, error: &str) -> Result<u32, StoreError>;
    /// Lists dead letters after a cursor (`seq`), oldest first, without their batches.
    fn dead_letters(&self, after: i64, limit: u32) -> Result<Vec<DeadLetter>, StoreError>;
    /// One dead letter with its batch text.
    fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError>;
    /// Marks a pending dead letter discarded; returns its status afterwards (None: no such letter).
    fn discard(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Deletes up to `chunk` stored events older than `cutoff` (storage time), counting them per topic.
    fn expire(&self, cutoff: &str, chunk: u32) -> Result<u64, StoreError>;
    /// Deletes up to `chunk` markers older than `cutoff` whose keys are not in `queued`.
    fn compact_markers(
        &self,
        cutoff: &str,
        queued: &[String],
        chunk: u32,
    ) -> Result<u64, StoreError>;
    /// Folds up to `chunk` rows of each sharded counter table into shard 0.
    fn fold_counters(&self, chunk: u32) -> Result<Folded, StoreError>;
    /// Of `keys`, those with a marker; their markers' age restarts now (see the horizon).
    fn touch_markers(&self, keys: &[String]) -> Result<Vec<String>, StoreError>;
}

/// What one round of counter folding did, so maintenance knows whether to call again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Rows moved into shard 0, all tables together.
    pub rows: u64,
    /// Whether some table filled its chunk (more may be left).
    pub more: bool,
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
/// repeat, which `apply` is (its markers).
pub fn with_schema<T>(
    store: &dyn EventStore,
    op: impl Fn(&dyn EventStore) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    op(store).or_else(|first| match store.migrate() {
        Ok(()) => op(store),
        Err(_) => Err(first),
    })
}

/// One batch to apply: its marker key (a queue entry key, or a fresh key for a direct publish).
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The marker key; applying the same key twice changes nothing the second time.
    pub key: &'a str,
    /// The events, in request order.
    pub events: &'a [Event],
}

/// Batches applied in one transaction (group commit), optionally settling a dead letter.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// The batches; keys must be distinct.
    pub batches: Vec<Batch<'a>>,
    /// A pending dead letter this group re-applies: marked `applied` in the same transaction,
    /// and nothing happens unless it was still pending.
    pub settles: Option<&'a str>,
    /// Counter shard for this transaction (spreads concurrent writers of one topic).
    pub shard: i16,
}

/// The outcome of one `apply`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Keys of the batches this call applied (the others had been applied before).
    pub fresh: Vec<String>,
    /// Events in the fresh batches (duplicates included).
    pub received: u64,
    /// Events newly stored.
    pub inserted: u64,
    /// Up to [`DUPLICATE_SAMPLE`] dropped `(topic, event_id)` keys, for the log.
    pub duplicate_sample: Vec<(String, String)>,
    /// With `settles`: false when the dead letter was no longer pending (nothing applied).
    pub settled: bool,
}

impl Applied {
    /// Events of the fresh batches that were dropped as duplicates.
    pub fn duplicates(&self) -> u64 {
        self.received.saturating_sub(self.inserted)
    }
}

/// Which topics a snapshot details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    /// Only this topic.
    pub topic: Option<String>,
    /// At most this many topics, by name.
    pub limit: u32,
}

/// Counters of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicStats {
    /// The topic.
    pub topic: String,
    /// Events of this topic applied to the store (stored or dropped).
    pub received: u64,
    /// Events of this topic stored.
    pub unique_processed: u64,
    /// Events of this topic dropped as duplicates.
    pub duplicate_dropped: u64,
    /// Stored events of this topic removed by retention.
    pub expired: u64,
    /// Latest event timestamp seen in this topic.
    pub last_event_at: Option<String>,
    /// Events of this topic stored, per level.
    #[serde(default)]
    pub levels: LevelCounts,
}

/// Store-side counters read in one consistent snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Events applied to the store (stored + dropped).
    pub received: u64,
    /// Events stored, ever (retention does not lower it).
    pub unique: u64,
    /// Stored events removed by retention.
    pub expired: u64,
    /// Events in dead letters not re-applied (pending or discarded).
    pub dead_lettered: u64,
    /// Dead letters waiting for an operator.
    pub dead_letters_pending: u64,
    /// Number of distinct topics.
    pub topic_count: u64,
    /// Events stored, per level.
    pub levels: LevelCounts,
    /// Per-topic counters (filtered and capped by [`TopicFilter`]), sorted by topic.
    pub topics: Vec<TopicStats>,
    /// Those of the given pending keys that already have a marker.
    pub consumed: Vec<String>,
    /// When the store was first initialised (`meta.started_at`), if recorded.
    pub started_at: Option<String>,
}

/// A dead letter being created.
#[derive(Debug, Clone)]
pub struct NewDeadLetter<'a> {
    /// The queue entry key (also its marker).
    pub key: &'a str,
    /// Its id in the API (the key without `q/`).
    pub id: &'a str,
    /// Events it holds.
    pub received: u64,
    /// Why it was moved aside (no credentials, no SQL).
    pub reason: &'a str,
    /// The entry's value as text.
    pub batch: &'a str,
    /// Attempts made.
    pub attempts: u32,
}

/// A dead letter as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Cursor position.
    #[serde(skip)]
    pub seq: i64,
    /// Id in the API.
    pub id: String,
    /// Events it holds.
    pub received: u64,
    /// Why it was moved aside.
    pub reason: String,
    /// Attempts made before it was moved aside (and retries since).
    pub attempts: u32,
    /// When it was moved aside.
    pub failed_at: String,
    /// `pending`, `discarded` or `applied`.
    pub status: String,
    /// The entry's value (only when one letter is read).
    #[serde(skip)]
    pub batch: Option<String>,
}

/// A page request for `GET /events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this topic, if given.
    pub topic: Option<String>,
    /// Only this source, if given.
    pub source: Option<String>,
    /// Only events at or after this time (normalised UTC text).
    pub since: Option<String>,
    /// Only events before this time (normalised UTC text).
    pub until: Option<String>,
    /// Page size (1–1000).
    pub limit: u32,
    /// Rows to skip after the cursor.
    pub offset: u64,
    /// Keyset cursor: only ids below this one.
    pub before: Option<u64>,
    /// Level, text search and order.
    pub find: find::Find,
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
    /// Severity, if the event has one.
    pub level: Option<Level>,
    /// Payload JSON, passed through without re-parsing into a tree.
    pub payload: Box<RawValue>,
    /// When the store recorded it, same format as `timestamp`.
    pub processed_at: String,
}

/// What one tail read saw, from which the next position follows.
pub(crate) struct TailScan {
    /// The position the read started from.
    pub after: TailCursor,
    /// Matching events returned.
    pub hits: usize,
    /// Position of the last one returned.
    pub last_hit: Option<TailCursor>,
    /// The page size asked for.
    pub limit: u32,
    /// Rows looked at (at most `query::TAIL_SCAN`).
    pub scanned: i64,
    /// Position of the last row looked at.
    pub last_scanned: Option<TailCursor>,
    /// Where everything before has been looked at when the scan was not cut short
    /// (PostgreSQL: `(xmin, 0)`; SQLite: the last row looked at).
    pub horizon: TailCursor,
}

/// The next tail position: after the last event returned if the page is full, after the last
/// row looked at if the scan was cut short, else the horizon; never behind `after`.
pub(crate) fn next_tail_cursor(s: TailScan) -> TailCursor {
    let next = if s.hits >= s.limit as usize {
        s.last_hit
    } else if s.scanned >= i64::from(query::TAIL_SCAN) {
        s.last_scanned
    } else {
        Some(s.horizon)
    };
    next.map_or(s.after, |n| n.max(s.after))
}

/// Shared SQL text (both dialects).
pub(crate) mod sql {
    /// Cheapest round trip that proves the database answers.
    pub const PING: &str = "SELECT 1";

    /// Current schema version; fails if `schema_migrations` does not exist yet.
    pub const SCHEMA_VERSION: &str =
        "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations";

    /// Column list of an event insert.
    pub const INSERT_EVENTS_INTO: &str =
        "INSERT INTO events (topic, event_id, \"timestamp\", source, payload, level, message)";

    /// A parameter of a listing query, mapped by each dialect to its own value type.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Param<'a> {
        /// A text value.
        Text(&'a str),
        /// An integer value.
        Int(i64),
        /// A text value built for the statement (a `LIKE` pattern, an FTS expression).
        Owned(String),
    }
}
