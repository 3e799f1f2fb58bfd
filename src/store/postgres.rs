//! PostgreSQL dialect of the event store, over Spin's `spin:postgres@4.0.0`.
//!
//! Spin gives no multi-statement transactions across calls (a connection may come
//! from a pool), so every write is ONE statement, which Postgres runs as one
//! transaction: `apply_batch` is a single data-modifying CTE and migrations are a
//! single `DO` block. Timestamps travel as text and are cast to `timestamptz` on
//! the way in and rendered with `to_char` on the way out, because Spin's Postgres
//! host maps `timestamptz` to a naive date-time.

use spin_sdk::pg4::{Connection, DbValue, Decode, ParameterValue, PgError, QueryError, RowSet};

use super::sql::{self, Param};
use super::{Applied, EventQuery, EventStore, Prepared, Snapshot, StoreError, StoredEvent};
use crate::validate::Event;

/// Embedded migrations, applied in order; the version is the file's number.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/postgres/0001_init.sql"))];

/// Advisory lock key that serialises migrations across all instances ("edgelog" in ASCII).
const MIGRATION_LOCK: i64 = 0x0065_6467_656c_6f67;

/// Dollar-quote tag of the migration `DO` block; no migration may contain it.
const DO_TAG: &str = "$edgelog_migrate$";

/// Renders a `timestamptz` column in the service's one timestamp format.
macro_rules! utc_text {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

const LIST_COLUMNS: &str = concat!(
    "id, topic, event_id, ",
    utc_text!("\"timestamp\""),
    ", source, payload::text, ",
    utc_text!("processed_at")
);

/// Applies one queue entry in one statement (one transaction).
///
/// `ins` stores the events unless the entry's marker is already visible; `marker`
/// records the entry with the number of rows `ins` stored, or does nothing if
/// another consumer's marker got there first (it waits for that transaction, so the
/// events it would have stored were stored by the other one). `inserted` is NULL
/// exactly when this call did not apply the entry. `dups` names a few dropped keys.
const APPLY_BATCH: &str = include_str!("postgres_apply_batch.sql");

/// The event store on PostgreSQL.
pub struct PostgresStore {
    db: Connection,
}

fn pg_error(e: PgError) -> StoreError {
    match e {
        PgError::ConnectionFailed(m) => StoreError::new("connection failed", m),
        PgError::QueryFailed(QueryError::DbError(db)) => StoreError::new(
            format!("query failed (SQLSTATE {})", db.code),
            format!("SQLSTATE {} {}: {}", db.code, db.severity, db.message),
        ),
        PgError::QueryFailed(QueryError::Text(t)) => StoreError::new("query failed", t),
        PgError::BadParameter(m) => StoreError::new("bad parameter", m),
        PgError::ValueConversionFailed(m) => StoreError::new("value conversion failed", m),
        PgError::Other(m) => StoreError::new("postgres error", m),
    }
}

fn decode<T: Decode>(row: &[DbValue], i: usize) -> Result<T, StoreError> {
    let value = row.get(i).unwrap_or(&DbValue::DbNull);
    T::decode(value).map_err(|e| StoreError::new("unexpected postgres value", e.to_string()))
}

fn bind(p: &Param<'_>) -> ParameterValue {
    match p {
        Param::Text(s) => ParameterValue::Str((*s).to_owned()),
        Param::Int(n) => ParameterValue::Int64(*n),
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn text_array<'a>(values: impl Iterator<Item = &'a str>) -> ParameterValue {
    ParameterValue::ArrayStr(values.map(|s| Some(s.to_owned())).collect())
}

/// One `DO` block that takes the migration lock, then applies every migration not yet recorded.
fn migration_block() -> String {
    let mut block = format!(
        "DO {DO_TAG}\nBEGIN\n\
         PERFORM pg_advisory_xact_lock({MIGRATION_LOCK});\n\
         CREATE TABLE IF NOT EXISTS schema_migrations (\
         version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());\n"
    );
    for (version, script) in MIGRATIONS {
        block.push_str(&format!(
            "IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = {version}) THEN\n\
             {script}\n\
             INSERT INTO schema_migrations (version) VALUES ({version});\n\
             END IF;\n"
        ));
    }
    block.push_str(&format!("END\n{DO_TAG}"));
    block
}

impl PostgresStore {
    /// Connects to `database_url`; failure means "store unavailable".
    pub fn open(database_url: &str) -> Result<PostgresStore, StoreError> {
        Connection::open(database_url)
            .map(|db| PostgresStore { db })
            .map_err(pg_error)
    }

    fn query(&self, statement: &str, params: &[ParameterValue]) -> Result<RowSet, StoreError> {
        self.db.query(statement, params).map_err(pg_error)
    }

    fn stored_marker(&self, key: &str) -> Result<Applied, StoreError> {
        let rows = self.query(sql::SELECT_MARKER, &[ParameterValue::Str(key.to_owned())])?;
        let row = rows
            .rows
            .first()
            .ok_or_else(|| StoreError::new("marker vanished", format!("no marker for {key}")))?;
        Ok(Applied::already(
            count(decode(row, 0)?),
            count(decode(row, 1)?),
        ))
    }
}

impl EventStore for PostgresStore {
    fn migrate(&self) -> Result<(), StoreError> {
        let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        let current =
            self.query(sql::SCHEMA_VERSION, &[])
                .and_then(|rows| match rows.rows.first() {
                    Some(row) => decode::<i64>(row, 0),
                    None => Ok(0),
                });
        if current.is_ok_and(|v| v >= latest) {
            return Ok(());
        }
        self.db
            .execute(&migration_block(), &[])
            .map(|_| ())
            .map_err(pg_error)
    }

    fn apply_batch(&self, key: &str, events: &[Event]) -> Result<Applied, StoreError> {
        let batch = Prepared::new(events);
        let unique = || batch.unique.iter();
        let params = [
            ParameterValue::Str(key.to_owned()),
            text_array(unique().map(|e| e.topic())),
            text_array(unique().map(|e| e.event_id())),
            text_array(unique().map(|e| e.timestamp())),
            text_array(unique().map(|e| e.source())),
            text_array(unique().map(|e| e.payload().get())),
            ParameterValue::Int64(i64::try_from(batch.received).unwrap_or(i64::MAX)),
        ];
        let rows = self.query(APPLY_BATCH, &params)?;
        let row = rows
            .rows
            .first()
            .ok_or_else(|| StoreError::new("empty result", "apply_batch returned no row"))?;
        let Some(inserted) = decode::<Option<i64>>(row, 0)? else {
            // Another consumer applied this entry first; report what it recorded.
            return self.stored_marker(key);
        };
        let topics: Vec<Option<String>> = decode(row, 1)?;
        let ids: Vec<Option<String>> = decode(row, 2)?;
        let mut sample = batch.repeated.clone();
        sample.extend(
            topics
                .into_iter()
                .zip(ids)
                .filter_map(|(t, id)| Some((t?, id?))),
        );
        sample.truncate(super::DUPLICATE_SAMPLE);
        Ok(Applied {
            fresh: true,
            received: batch.received,
            inserted: count(inserted),
            duplicate_sample: sample,
        })
    }

    fn snapshot(&self, pending_keys: &[String]) -> Result<Snapshot, StoreError> {
        let statement = format!(
            "SELECT c.received, c.inserted, ARRAY({topics}), \
             ARRAY(SELECT batch_key FROM consumed_batches WHERE batch_key = ANY($1::text[])), \
             {started} FROM {sums}",
            topics = sql::DISTINCT_TOPICS,
            started = sql::STARTED_AT,
            sums = sql::SUMS,
        );
        let rows = self.query(
            &statement,
            &[text_array(pending_keys.iter().map(String::as_str))],
        )?;
        let row = rows
            .rows
            .first()
            .ok_or_else(|| StoreError::new("empty snapshot", "snapshot returned no row"))?;
        let strings = |i| -> Result<Vec<String>, StoreError> {
            Ok(decode::<Vec<Option<String>>>(row, i)?
                .into_iter()
                .flatten()
                .collect())
        };
        let mut topics = strings(2)?;
        topics.sort();
        Ok(Snapshot {
            received: count(decode(row, 0)?),
            unique: count(decode(row, 1)?),
            topics,
            consumed: strings(3)?,
            started_at: decode(row, 4)?,
        })
    }

    fn list(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let (statement, params) = sql::list_events(LIST_COLUMNS, query);
        let params: Vec<ParameterValue> = params.iter().map(bind).collect();
        let rows = self.query(&statement, &params)?;
        rows.rows
            .iter()
            .map(|r| {
                let payload = serde_json::value::RawValue::from_string(decode(r, 5)?)
                    .map_err(|e| StoreError::new("stored payload is not JSON", e.to_string()))?;
                Ok(StoredEvent {
                    id: decode(r, 0)?,
                    topic: decode(r, 1)?,
                    event_id: decode(r, 2)?,
                    timestamp: decode(r, 3)?,
                    source: decode(r, 4)?,
                    payload,
                    processed_at: decode(r, 6)?,
                })
            })
            .collect()
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.query(sql::PING, &[]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_block_guards_every_version_under_the_lock() {
        let block = migration_block();
        assert!(block.starts_with("DO $edgelog_migrate$\nBEGIN\nPERFORM pg_advisory_xact_lock("));
        assert!(block.ends_with("END\n$edgelog_migrate$"));
        assert!(block.contains("WHERE version = 1) THEN"));
        assert!(block.contains("INSERT INTO schema_migrations (version) VALUES (1);"));
        for (_, script) in MIGRATIONS {
            assert!(
                !script.contains(DO_TAG),
                "a migration must not close the DO block"
            );
        }
        assert_eq!(block.matches(DO_TAG).count(), 2);
    }

    #[test]
    fn timestamps_are_rendered_as_utc_text() {
        assert!(LIST_COLUMNS.contains(
            "to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        ));
        assert!(LIST_COLUMNS.contains("payload::text"));
    }

    #[test]
    fn apply_statement_uses_seven_parameters() {
        for n in 1..=7 {
            assert!(APPLY_BATCH.contains(&format!("${n}")), "${n}");
        }
        assert!(!APPLY_BATCH.contains("$8"));
        assert!(APPLY_BATCH.contains(&format!("LIMIT {}", super::super::DUPLICATE_SAMPLE)));
    }
}
