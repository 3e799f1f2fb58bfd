//! SQLite dialect of the event store, on Spin's `spin:sqlite` database `default`.
//!
//! Writes run inside `BEGIN IMMEDIATE` … `COMMIT` on one connection, so the write
//! lock is taken up front (no lock upgrade deadlocks) and a crash rolls back. Reads
//! that must be consistent are single statements, which SQLite runs in one
//! implicit read transaction.
//!
//! Beside this file: `sqlite_sql.rs` (fixed statement text), `sqlite_write.rs` (the write steps
//! `apply` and `expire` run), `sqlite_value.rs` (values in and out), `sqlite_error.rs` (failures).

use spin_sdk::sqlite3::{Connection, QueryResult, Value};

#[path = "sqlite_error.rs"]
mod errors;
#[path = "sqlite_sql.rs"]
mod statements;
#[path = "sqlite_value.rs"]
mod values;
#[path = "sqlite_write.rs"]
mod writes;

use errors::sqlite_error;
use statements::*;
use values::{bind, count, int, json_list, letter, n, stored_event, t, text};

use super::query::{self, Dialect};
use super::sql;
use super::{
    Applied, DeadLetter, EventQuery, EventStore, Folded, Group, LevelCounts, NewDeadLetter,
    Prepared, Snapshot, StoreError, StoredEvent, TailCursor, TailPage, TopicFilter, TopicStats,
    VolumeCell, VolumeDelta, VolumeQuery,
};

/// Embedded migrations, applied in order; the version is the file's number.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_counters_dead_letters.sql"),
    ),
    (3, include_str!("../../migrations/sqlite/0003_search.sql")),
    (
        4,
        include_str!("../../migrations/sqlite/0004_volume_totals.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_apply_one.sql"),
    ),
];

/// SQLite's default bound-parameter limit (`SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_PARAMS: usize = 32_766;
/// Values bound per event row.
const PARAMS_PER_EVENT: usize = 7;
/// Event rows per `INSERT`, as many as the parameter limit allows.
const ROWS_PER_INSERT: usize = MAX_PARAMS / PARAMS_PER_EVENT;
const _: () = assert!(ROWS_PER_INSERT * PARAMS_PER_EVENT <= MAX_PARAMS);

/// The event store on SQLite.
pub struct SqliteStore {
    db: Connection,
}

impl SqliteStore {
    /// Opens the `default` database.
    ///
    /// No `PRAGMA busy_timeout`: Spin's host (rusqlite) waits 5 s for a busy database by
    /// default and edge-host 30 s, and the pragma would cost every request a host call.
    pub fn open() -> Result<SqliteStore, StoreError> {
        let db = Connection::open("default").map_err(sqlite_error)?;
        Ok(SqliteStore { db })
    }

    fn run(&self, statement: &str, params: &[Value]) -> Result<QueryResult, StoreError> {
        self.db.execute(statement, params).map_err(sqlite_error)
    }

    /// Runs `body` in `BEGIN IMMEDIATE` … `COMMIT`, rolling back on any error.
    fn write_tx<T>(&self, body: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.run("BEGIN IMMEDIATE", &[])?;
        let result = body().and_then(|value| self.run("COMMIT", &[]).map(|_| value));
        if result.is_err() {
            let _ = self.run("ROLLBACK", &[]);
        }
        result
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        let rows = self.run(sql::SCHEMA_VERSION, &[])?;
        int(rows.rows.first().and_then(|r| r.values.first()))
    }

    fn scalar(&self, statement: &str, params: &[Value]) -> Result<i64, StoreError> {
        let rows = self.run(statement, params)?;
        int(rows.rows.first().and_then(|r| r.values.first()))
    }
}

impl EventStore for SqliteStore {
    fn migrate(&self) -> Result<(), StoreError> {
        let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if self.schema_version().is_ok_and(|v| v >= latest) {
            return Ok(());
        }
        // Write-ahead logging persists in the file: one fsync per commit instead of the
        // rollback journal's several, on hosts that open files with SQLite's defaults
        // (Spin). Not possible inside a transaction; harmless if another instance did it.
        let _ = self.run("PRAGMA journal_mode=WAL", &[]);
        self.write_tx(|| {
            self.run(CREATE_SCHEMA_MIGRATIONS, &[])?;
            let current = self.schema_version()?;
            for (version, script) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                for statement in split_statements(script) {
                    self.run(&statement, &[])?;
                }
                self.run(RECORD_MIGRATION, &[Value::Integer(*version)])?;
            }
            Ok(())
        })
    }

    fn apply(&self, group: &Group<'_>) -> Result<Applied, StoreError> {
        if let (None, [batch]) = (group.settles, &group.batches[..])
            && let [event] = batch.events
        {
            return self.apply_one(batch.key, event);
        }
        self.write_tx(|| {
            if let Some(id) = group.settles
                && self.run(SETTLE, &[t(id)])?.rows.is_empty()
            {
                return Ok(Applied::default());
            }
            let fresh = self.mark(group)?;
            let batches = group
                .batches
                .iter()
                .filter(|b| fresh.iter().any(|k| k == b.key));
            let prepared = Prepared::new(batches);
            let mut inserted = Vec::with_capacity(prepared.unique.len());
            let mut first_id: Option<i64> = None;
            for chunk in prepared.unique.chunks(ROWS_PER_INSERT) {
                let (keys, first) = self.insert_chunk(chunk)?;
                inserted.extend(keys);
                first_id = match (first_id, first) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            if let Some(first) = first_id {
                self.run(INDEX_TEXT, &[Value::Integer(first)])?;
            }
            inserted.sort_unstable();
            let stored = prepared.inserted(&inserted);
            let per_topic_inserted = prepared.inserted_per_topic(&inserted);
            let mut levels: std::collections::HashMap<&str, [u64; 6]> = Default::default();
            for e in &stored {
                if let Some(l) = e.level() {
                    levels.entry(e.topic()).or_default()[(l.rank() - 1) as usize] += 1;
                }
            }
            for ((topic, received, last), count) in
                prepared.per_topic.iter().zip(per_topic_inserted)
            {
                let mut params = vec![t(topic), n(*received), n(count), t(last)];
                let of_topic = levels.get(topic).copied().unwrap_or_default();
                params.extend(of_topic.iter().map(|c| n(*c)));
                self.run(COUNT, &params)?;
            }
            self.count_volume(&super::volume_rows(&stored))?;
            Ok(Applied {
                settled: true,
                received: prepared.received,
                inserted: inserted.len() as u64,
                duplicate_sample: prepared.duplicate_sample(&inserted),
                fresh,
            })
        })
    }

    fn snapshot(&self, pending: &[String], topics: &TopicFilter) -> Result<Snapshot, StoreError> {
        // Placeholders must first appear in order (see `store`): topic, limit, keys.
        let statement = SNAPSHOT;
        let keys = serde_json::to_string(pending).unwrap_or_else(|_| "[]".into());
        let topic = topics.topic.as_deref().map_or(Value::Null, t);
        let rows = self.run(
            statement,
            &[topic, n(u64::from(topics.limit)), Value::Text(keys)],
        )?;
        let row = rows
            .rows
            .first()
            .ok_or_else(|| StoreError::new("empty snapshot", "snapshot returned no row"))?;
        let v = |i| row.values.get(i);
        let per_topic: Vec<TopicStats> = serde_json::from_str(&text(v(6))?)
            .map_err(|e| StoreError::new("unexpected sqlite value", e.to_string()))?;
        Ok(Snapshot {
            received: count(int(v(0))?),
            unique: count(int(v(1))?),
            expired: count(int(v(2))?),
            dead_lettered: count(int(v(3))?),
            dead_letters_pending: count(int(v(4))?),
            topic_count: count(int(v(5))?),
            topics: per_topic,
            consumed: json_list(v(7))?,
            started_at: text(v(8)).ok(),
            levels: serde_json::from_str::<LevelCounts>(&text(v(9))?)
                .map_err(|e| StoreError::new("unexpected sqlite value", e.to_string()))?,
        })
    }

    fn list(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let (statement, params) = query::list_events(LIST_COLUMNS, query, Dialect::Sqlite);
        let params: Vec<Value> = params.iter().map(bind).collect();
        let rows = self.run(&statement, &params)?;
        rows.rows.iter().map(|r| stored_event(&r.values)).collect()
    }

    fn tail(&self, query: &EventQuery, after: TailCursor) -> Result<TailPage, StoreError> {
        let (statement, params) = query::tail_events(LIST_COLUMNS, query, after, Dialect::Sqlite);
        let params: Vec<Value> = params.iter().map(bind).collect();
        let rows = self.run(&statement, &params)?;
        let first = rows
            .rows
            .first()
            .ok_or_else(|| StoreError::new("empty result", "tail returned no row"))?;
        let scanned = int(first.values.first())?;
        let last_scanned = match first.values.get(3) {
            Some(Value::Integer(id)) => Some(TailCursor { tx: 0, id: *id }),
            _ => None,
        };
        let events: Vec<StoredEvent> = rows
            .rows
            .iter()
            .filter(|r| matches!(r.values.get(4), Some(Value::Integer(_))))
            .map(|r| stored_event(&r.values[4..]))
            .collect::<Result<_, _>>()?;
        let next = super::next_tail_cursor(super::TailScan {
            after,
            hits: events.len(),
            last_hit: events.last().map(|e| TailCursor { tx: 0, id: e.id }),
            limit: query.limit,
            scanned,
            last_scanned,
            horizon: last_scanned.unwrap_or(after),
        });
        Ok(TailPage { events, next })
    }

    fn tail_moved(&self, after: TailCursor) -> Result<bool, StoreError> {
        let moved = self.scalar(
            query::tail_moved(Dialect::Sqlite),
            &[Value::Integer(after.id)],
        )?;
        Ok(moved != 0)
    }

    fn tail_position(&self) -> Result<TailCursor, StoreError> {
        let id = self.scalar(query::tail_position(Dialect::Sqlite), &[])?;
        Ok(TailCursor { tx: 0, id })
    }

    fn volume(&self, v: &VolumeQuery) -> Result<Vec<VolumeCell>, StoreError> {
        let (statement, params) = query::volume(v, Dialect::Sqlite);
        let params: Vec<Value> = params.iter().map(bind).collect();
        let rows = self.run(&statement, &params)?;
        rows.rows
            .iter()
            .map(|r| {
                let v = |i| r.values.get(i);
                Ok((int(v(0))?, int(v(1))?, count(int(v(2))?)))
            })
            .collect()
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.run(sql::PING, &[]).map(|_| ())
    }

    fn has_dead_letter_table(&self) -> Result<bool, StoreError> {
        let statement =
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'dead_letters'";
        let rows = self.run(statement, &[])?;
        Ok(int(rows.rows.first().and_then(|r| r.values.first()))? > 0)
    }

    fn bury(&self, letter: &NewDeadLetter<'_>) -> Result<(), StoreError> {
        self.write_tx(|| {
            let marked = self.run(BURY_MARKER, &[t(letter.key), n(letter.received)])?;
            if !marked.rows.is_empty() {
                let params = [
                    t(letter.id),
                    n(letter.received),
                    t(letter.reason),
                    t(letter.batch),
                    n(u64::from(letter.attempts)),
                ];
                self.run(BURY_LETTER, &params)?;
            }
            Ok(())
        })
    }

    fn record_failure(&self, key: &str, error: &str) -> Result<u32, StoreError> {
        let attempts = self.scalar(RECORD_FAILURE, &[t(key), t(error)])?;
        Ok(u32::try_from(attempts).unwrap_or(0))
    }

    fn dead_letters(&self, after: i64, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let statement = format!(
            "SELECT {LETTER_COLUMNS} FROM dead_letters WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows = self.run(&statement, &[Value::Integer(after), n(u64::from(limit))])?;
        rows.rows.iter().map(|r| letter(&r.values, false)).collect()
    }

    fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let statement = format!("SELECT {LETTER_COLUMNS}, batch FROM dead_letters WHERE id = $1");
        let rows = self.run(&statement, &[t(id)])?;
        rows.rows
            .first()
            .map(|r| letter(&r.values, true))
            .transpose()
    }

    fn discard(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.run(
            "UPDATE dead_letters SET status = 'discarded' WHERE id = $1 AND status = 'pending'",
            &[t(id)],
        )?;
        let rows = self.run("SELECT status FROM dead_letters WHERE id = $1", &[t(id)])?;
        rows.rows
            .first()
            .map(|r| text(r.values.first()))
            .transpose()
    }

    fn expire(&self, cutoff: &str, chunk: u32) -> Result<u64, StoreError> {
        self.write_tx(|| {
            let head = self.run(EXPIRED_HEAD, &[n(u64::from(chunk)), t(cutoff)])?;
            if head.rows.is_empty() {
                return Ok(0);
            }
            let mut per_topic: std::collections::BTreeMap<String, u64> = Default::default();
            let mut volume: std::collections::BTreeMap<(i64, i64, String, i64), i64> =
                Default::default();
            let mut ids = Vec::with_capacity(head.rows.len());
            for row in &head.rows {
                ids.push(Value::Integer(int(row.values.first())?));
                let topic = text(row.values.get(1))?;
                let minute = super::epoch_minute(&text(row.values.get(2))?);
                let level = int(row.values.get(3))?; // NULL reads as 0: no level
                for grain in [1, 60] {
                    let key = (
                        grain,
                        minute.div_euclid(grain) * grain,
                        topic.clone(),
                        level,
                    );
                    *volume.entry(key).or_default() -= 1;
                }
                *per_topic.entry(topic).or_default() += 1;
            }
            for chunk in ids.chunks(MAX_PARAMS) {
                let marks = vec!["?"; chunk.len()].join(", ");
                self.run(&format!("DELETE FROM events WHERE id IN ({marks})"), chunk)?;
                self.run(
                    &format!("DELETE FROM events_fts WHERE rowid IN ({marks})"),
                    chunk,
                )?;
            }
            for (topic, gone) in &per_topic {
                self.run(COUNT_EXPIRED, &[t(topic), n(*gone)])?;
            }
            let rows: Vec<VolumeDelta<'_>> = volume
                .iter()
                .map(|((g, b, topic, l), d)| ((*g, *b, topic.as_str(), *l), *d))
                .collect();
            self.count_volume(&rows)?;
            Ok(ids.len() as u64)
        })
    }

    fn compact_markers(
        &self,
        cutoff: &str,
        queued: &[String],
        chunk: u32,
    ) -> Result<u64, StoreError> {
        let keys = serde_json::to_string(queued).unwrap_or_else(|_| "[]".into());
        self.write_tx(|| {
            let statement = "DELETE FROM consumed_batches WHERE batch_key IN (\
                 SELECT batch_key FROM consumed_batches WHERE consumed_at < $1 \
                 AND batch_key NOT IN (SELECT value FROM json_each($2)) \
                 ORDER BY consumed_at LIMIT $3) RETURNING batch_key";
            let gone = self.run(statement, &[t(cutoff), t(&keys), n(u64::from(chunk))])?;
            let names: Vec<String> = gone
                .rows
                .iter()
                .map(|r| text(r.values.first()))
                .collect::<Result<_, _>>()?;
            let names = serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
            self.run(
                "DELETE FROM entry_failures WHERE batch_key IN (SELECT value FROM json_each($1))",
                &[t(&names)],
            )?;
            Ok(gone.rows.len() as u64)
        })
    }

    fn fold_counters(&self, _chunk: u32) -> Result<Folded, StoreError> {
        Ok(Folded::default()) // one writer, one shard: nothing to fold
    }

    fn touch_markers(&self, keys: &[String]) -> Result<Vec<String>, StoreError> {
        self.write_tx(|| self.touch(keys))
    }
}
