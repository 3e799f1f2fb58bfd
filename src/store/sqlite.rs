//! SQLite dialect of the event store, on Spin's `spin:sqlite` database `default`.
//!
//! Writes run inside `BEGIN IMMEDIATE` … `COMMIT` on one connection, so the write
//! lock is taken up front (no lock upgrade deadlocks) and a crash rolls back. Reads
//! that must be consistent are single statements, which SQLite runs in one
//! implicit read transaction.

use spin_sdk::sqlite3::{Connection, Error, QueryResult, Value};

use super::sql::{self, Param};
use super::{Applied, EventQuery, EventStore, Prepared, Snapshot, StoreError, StoredEvent};
use crate::validate::Event;

/// Embedded migrations, applied in order; the version is the file's number.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/sqlite/0001_init.sql"))];

/// SQLite's default bound-parameter limit (`SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_PARAMS: usize = 32_766;
/// Values bound per event row.
const PARAMS_PER_EVENT: usize = 5;
/// Event rows per `INSERT`, as many as the parameter limit allows.
const ROWS_PER_INSERT: usize = MAX_PARAMS / PARAMS_PER_EVENT;
const _: () = assert!(ROWS_PER_INSERT * PARAMS_PER_EVENT <= MAX_PARAMS);

const CREATE_SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version INTEGER PRIMARY KEY, \
     applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')))";

const RECORD_MIGRATION: &str = "INSERT INTO schema_migrations (version) VALUES ($1)";

const INSERT_MARKER: &str = "INSERT INTO consumed_batches (batch_key, received, inserted) \
     VALUES ($1, $2, 0) ON CONFLICT (batch_key) DO NOTHING RETURNING batch_key";

const UPDATE_MARKER: &str = "UPDATE consumed_batches SET inserted = $1 WHERE batch_key = $2";

const LIST_COLUMNS: &str = "id, topic, event_id, \"timestamp\", source, payload, processed_at";

/// The event store on SQLite.
pub struct SqliteStore {
    db: Connection,
}

fn sqlite_error(e: Error) -> StoreError {
    let summary = match &e {
        Error::NoSuchDatabase => "sqlite database \"default\" is not configured",
        Error::AccessDenied => "access to the sqlite database was denied",
        Error::InvalidConnection => "invalid sqlite connection",
        Error::DatabaseFull => "the sqlite database is full",
        Error::Io(_) => "sqlite query failed",
    };
    StoreError::new(summary, format!("sqlite: {e:?}"))
}

fn bind(p: &Param<'_>) -> Value {
    match p {
        Param::Text(s) => Value::Text((*s).to_owned()),
        Param::Int(n) => Value::Integer(*n),
    }
}

fn int(v: Option<&Value>) -> Result<i64, StoreError> {
    match v {
        Some(Value::Integer(n)) => Ok(*n),
        Some(Value::Null) => Ok(0),
        other => Err(StoreError::new(
            "unexpected sqlite value",
            format!("expected integer, got {other:?}"),
        )),
    }
}

fn text(v: Option<&Value>) -> Result<String, StoreError> {
    match v {
        Some(Value::Text(s)) => Ok(s.clone()),
        other => Err(StoreError::new(
            "unexpected sqlite value",
            format!("expected text, got {other:?}"),
        )),
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
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

    fn stored_marker(&self, key: &str) -> Result<Applied, StoreError> {
        let rows = self.run(sql::SELECT_MARKER, &[Value::Text(key.to_owned())])?;
        let row = rows
            .rows
            .first()
            .ok_or_else(|| StoreError::new("marker vanished", format!("no marker for {key}")))?;
        Ok(Applied::already(
            count(int(row.values.first())?),
            count(int(row.values.get(1))?),
        ))
    }

    /// Inserts one chunk of events, returning the keys actually inserted.
    fn insert_chunk(&self, chunk: &[&Event]) -> Result<Vec<(String, String)>, StoreError> {
        let mut params = Vec::with_capacity(chunk.len() * PARAMS_PER_EVENT);
        for e in chunk {
            params.push(Value::Text(e.topic().to_owned()));
            params.push(Value::Text(e.event_id().to_owned()));
            params.push(Value::Text(e.timestamp().to_owned()));
            params.push(Value::Text(e.source().to_owned()));
            params.push(Value::Text(e.payload().get().to_owned()));
        }
        let rows = self.run(&insert_events_sql(chunk.len()), &params)?;
        rows.rows
            .iter()
            .map(|r| Ok((text(r.values.first())?, text(r.values.get(1))?)))
            .collect()
    }
}

/// `INSERT … VALUES (?, ?, ?, ?, ?), … ON CONFLICT DO NOTHING RETURNING topic, event_id`.
fn insert_events_sql(rows: usize) -> String {
    let mut text = String::with_capacity(200 + rows * 18);
    text.push_str(sql::INSERT_EVENTS_INTO);
    text.push_str(" VALUES ");
    for i in 0..rows {
        text.push_str(if i == 0 {
            "(?, ?, ?, ?, ?)"
        } else {
            ", (?, ?, ?, ?, ?)"
        });
    }
    text.push_str(" ON CONFLICT (topic, event_id) DO NOTHING RETURNING topic, event_id");
    text
}

/// Splits a migration script into statements: drops `--` comment lines, splits on `;`.
fn split_statements(script: &str) -> Vec<String> {
    let without_comments: String = script
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl EventStore for SqliteStore {
    fn migrate(&self) -> Result<(), StoreError> {
        let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if self.schema_version().is_ok_and(|v| v >= latest) {
            return Ok(());
        }
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

    fn apply_batch(&self, key: &str, events: &[Event]) -> Result<Applied, StoreError> {
        let batch = Prepared::new(events);
        self.write_tx(|| {
            let received = i64::try_from(batch.received).unwrap_or(i64::MAX);
            let params = [Value::Text(key.to_owned()), Value::Integer(received)];
            if self.run(INSERT_MARKER, &params)?.rows.is_empty() {
                return self.stored_marker(key);
            }
            let mut inserted = Vec::with_capacity(batch.unique.len());
            for chunk in batch.unique.chunks(ROWS_PER_INSERT) {
                inserted.extend(self.insert_chunk(chunk)?);
            }
            let n = inserted.len() as i64;
            self.run(
                UPDATE_MARKER,
                &[Value::Integer(n), Value::Text(key.to_owned())],
            )?;
            inserted.sort_unstable();
            Ok(Applied {
                fresh: true,
                received: batch.received,
                inserted: inserted.len() as u64,
                duplicate_sample: batch.duplicate_sample(&inserted),
            })
        })
    }

    fn snapshot(&self, pending_keys: &[String]) -> Result<Snapshot, StoreError> {
        let statement = format!(
            "SELECT c.received, c.inserted, \
             (SELECT json_group_array(topic) FROM ({topics})), \
             (SELECT json_group_array(batch_key) FROM consumed_batches \
              WHERE batch_key IN (SELECT value FROM json_each($1))), \
             {started} FROM {sums}",
            topics = sql::DISTINCT_TOPICS,
            started = sql::STARTED_AT,
            sums = sql::SUMS,
        );
        let keys = serde_json::to_string(pending_keys).unwrap_or_else(|_| "[]".into());
        let rows = self.run(&statement, &[Value::Text(keys)])?;
        let row = rows
            .rows
            .first()
            .ok_or_else(|| StoreError::new("empty snapshot", "snapshot returned no row"))?;
        let json_list = |v: Option<&Value>| -> Result<Vec<String>, StoreError> {
            serde_json::from_str(&text(v)?)
                .map_err(|e| StoreError::new("unexpected sqlite value", e.to_string()))
        };
        let mut topics = json_list(row.values.get(2))?;
        topics.sort();
        Ok(Snapshot {
            received: count(int(row.values.first())?),
            unique: count(int(row.values.get(1))?),
            topics,
            consumed: json_list(row.values.get(3))?,
            started_at: text(row.values.get(4)).ok(),
        })
    }

    fn list(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let (statement, params) = sql::list_events(LIST_COLUMNS, query);
        let params: Vec<Value> = params.iter().map(bind).collect();
        let rows = self.run(&statement, &params)?;
        rows.rows
            .iter()
            .map(|r| {
                let v = |i| r.values.get(i);
                let payload = serde_json::value::RawValue::from_string(text(v(5))?)
                    .map_err(|e| StoreError::new("stored payload is not JSON", e.to_string()))?;
                Ok(StoredEvent {
                    id: int(v(0))?,
                    topic: text(v(1))?,
                    event_id: text(v(2))?,
                    timestamp: text(v(3))?,
                    source: text(v(4))?,
                    payload,
                    processed_at: text(v(6))?,
                })
            })
            .collect()
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.run(sql::PING, &[]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_splits_into_whole_statements() {
        let statements = split_statements(MIGRATIONS[0].1);
        assert_eq!(statements.len(), 5);
        assert!(statements[0].starts_with("CREATE TABLE IF NOT EXISTS events"));
        assert!(statements[4].starts_with("INSERT INTO meta"));
        assert!(statements.iter().all(|s| !s.contains("--")));
    }

    #[test]
    fn split_ignores_semicolons_in_comment_lines() {
        let got = split_statements("-- a; b\nSELECT 1;\n\n  -- c;\nSELECT 2");
        assert_eq!(got, vec!["SELECT 1", "SELECT 2"]);
    }

    #[test]
    fn insert_statement_has_five_placeholders_per_row() {
        let text = insert_events_sql(3);
        assert_eq!(text.matches('?').count(), 15);
        assert!(text.ends_with("DO NOTHING RETURNING topic, event_id"));
    }
}
