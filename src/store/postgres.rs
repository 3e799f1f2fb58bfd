//! PostgreSQL dialect of the event store, over Spin's `spin:postgres@4.0.0`.
//!
//! Every write is ONE statement, which Postgres runs as one transaction (a guest that
//! dies mid-transaction must not hand a pooled connection back inside one): `apply`
//! is a single data-modifying CTE over arrays, and migrations are a single `DO` block. Timestamps travel as text and are cast to `timestamptz` on
//! the way in and rendered with `to_char` on the way out, because Spin's Postgres
//! host maps `timestamptz` to a naive date-time.

use spin_sdk::pg4::{Connection, DbValue, Decode, ParameterValue, PgError, QueryError, RowSet};

use super::query::{self, Dialect};
use super::sql::{self, Param};
use super::{
    Applied, DeadLetter, ErrorKind, EventQuery, EventStore, Group, LevelCounts, NewDeadLetter,
    Snapshot, StoreError, StoredEvent, TailCursor, TailPage, TopicFilter, TopicStats, VolumeCell,
    VolumeQuery,
};
use crate::validate::Level;

/// Embedded migrations, applied in order; the version is the file's number.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_counters_dead_letters.sql"),
    ),
    (3, include_str!("../../migrations/postgres/0003_search.sql")),
];

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

/// A JSON object of per-level counts from six level sums and the stored total (`none` is the rest).
macro_rules! level_json {
    ($t:literal, $d:literal, $i:literal, $w:literal, $e:literal, $f:literal, $all:literal) => {
        concat!(
            "json_build_object('trace', ",
            $t,
            ", 'debug', ",
            $d,
            ", 'info', ",
            $i,
            ", 'warn', ",
            $w,
            ", 'error', ",
            $e,
            ", 'fatal', ",
            $f,
            ", 'none', ",
            $all,
            " - ",
            $t,
            " - ",
            $d,
            " - ",
            $i,
            " - ",
            $w,
            " - ",
            $e,
            " - ",
            $f,
            ")"
        )
    };
}

const LIST_COLUMNS: &str = concat!(
    "id, topic, event_id, ",
    utc_text!("\"timestamp\""),
    ", source, payload, ",
    utc_text!("processed_at"),
    ", level"
);

/// Applies a group of batches in ONE statement (one transaction): markers first
/// (a marker that already existed means that batch was applied before: its events are
/// skipped and the marker's age restarts), then the events of the fresh batches in
/// `(topic, event_id)` order, then their counts per topic into one counter shard.
/// `{SETTLE}` / `{SETTLED}` are filled in when the group re-applies a dead letter.
const APPLY: &str = include_str!("postgres_apply.sql");

/// The dead-letter guard of a retry: nothing is applied unless the letter was still pending.
const SETTLE: &str = " settle AS (UPDATE dead_letters SET status = 'applied', \
     attempts = attempts + 1 WHERE id = $12 AND status = 'pending' RETURNING id),";

/// Moves an entry aside: its marker and its dead letter, or nothing if it was applied meanwhile.
const BURY: &str = "WITH m AS (INSERT INTO consumed_batches (batch_key, received, inserted) \
     VALUES ($1, $2, 0) ON CONFLICT (batch_key) DO NOTHING RETURNING batch_key) \
     INSERT INTO dead_letters (id, received, reason, batch, attempts) \
     SELECT $3, $2, $4, $5, $6 FROM m ON CONFLICT (id) DO NOTHING";

const RECORD_FAILURE: &str = "INSERT INTO entry_failures (batch_key, attempts, last_error) \
     VALUES ($1, 1, $2) ON CONFLICT (batch_key) DO UPDATE SET \
     attempts = entry_failures.attempts + 1, last_error = EXCLUDED.last_error, updated_at = now() \
     RETURNING attempts";

const LETTER_COLUMNS: &str = concat!(
    "seq, id, received, reason, attempts, ",
    utc_text!("failed_at"),
    ", status"
);

const DISCARD: &str = "WITH u AS (UPDATE dead_letters SET status = 'discarded' \
     WHERE id = $1 AND status = 'pending' RETURNING status) \
     SELECT COALESCE((SELECT status FROM u), (SELECT status FROM dead_letters WHERE id = $1))";

/// Deletes the oldest `$2` events (by id) if stored before `$1`, counting them per topic.
/// The events leave `/volume` too: their volume rows of shard 0 go down, after the counter
/// rows (the sorted join), like a publisher's.
const EXPIRE: &str = "WITH gone AS (DELETE FROM events WHERE id IN (\
     SELECT id FROM (SELECT id, processed_at FROM events ORDER BY id LIMIT $2) AS head \
     WHERE processed_at < $1::text::timestamptz) RETURNING topic, \"timestamp\", level), \
     per_topic AS (SELECT topic, count(*) AS n FROM gone GROUP BY topic), \
     counted AS (INSERT INTO topic_counters (topic, shard, expired) \
     SELECT topic, 0, n FROM per_topic ORDER BY topic \
     ON CONFLICT (topic, shard) DO UPDATE SET expired = topic_counters.expired + EXCLUDED.expired \
     RETURNING topic), \
     volume AS (INSERT INTO volume_counters (grain, bucket, topic, level, shard, n) \
     SELECT g.grain, (floor(extract(epoch FROM gone.\"timestamp\") / (60 * g.grain)) * g.grain)::bigint, \
     gone.topic, COALESCE(gone.level, 0), 0, -count(*) \
     FROM gone CROSS JOIN (VALUES (1), (60)) AS g(grain) \
     JOIN (SELECT topic FROM counted ORDER BY topic) AS c ON c.topic = gone.topic \
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 \
     ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET n = volume_counters.n + EXCLUDED.n \
     RETURNING 1) \
     SELECT count(*) + 0 * (SELECT count(*) FROM volume) FROM gone";

const COMPACT: &str = "WITH old AS (SELECT batch_key FROM consumed_batches \
     WHERE consumed_at < $1::text::timestamptz AND NOT (batch_key = ANY($2::text[])) \
     ORDER BY consumed_at LIMIT $3), \
     gone AS (DELETE FROM consumed_batches WHERE batch_key IN (SELECT batch_key FROM old) \
     RETURNING batch_key), \
     failures AS (DELETE FROM entry_failures WHERE batch_key IN (SELECT batch_key FROM gone)) \
     SELECT count(*) FROM gone";

/// Folds counter shards into shard 0, locking rows in `(topic, shard)` order like publishers do,
/// in one statement: a snapshot sees the counters before or after, never half-way. The volume
/// rows of the folded `(topic, shard)` pairs move with them, after the counter rows (a pair's
/// volume rows are only written under its counter row's lock).
const FOLD: &str = "WITH picked AS (SELECT topic, shard FROM topic_counters WHERE shard <> 0 \
     ORDER BY topic, shard LIMIT $1 FOR UPDATE), \
     moved AS (DELETE FROM topic_counters c USING picked p \
     WHERE c.topic = p.topic AND c.shard = p.shard \
     RETURNING c.topic, c.received, c.inserted, c.expired, c.last_event_at, \
     c.n_trace, c.n_debug, c.n_info, c.n_warn, c.n_error, c.n_fatal), \
     folded AS (INSERT INTO topic_counters (topic, shard, received, inserted, expired, last_event_at, \
     n_trace, n_debug, n_info, n_warn, n_error, n_fatal) \
     SELECT topic, 0, SUM(received), SUM(inserted), SUM(expired), MAX(last_event_at), \
     SUM(n_trace), SUM(n_debug), SUM(n_info), SUM(n_warn), SUM(n_error), SUM(n_fatal) \
     FROM moved GROUP BY topic ORDER BY topic \
     ON CONFLICT (topic, shard) DO UPDATE SET \
     received = topic_counters.received + EXCLUDED.received, \
     inserted = topic_counters.inserted + EXCLUDED.inserted, \
     expired = topic_counters.expired + EXCLUDED.expired, \
     last_event_at = GREATEST(topic_counters.last_event_at, EXCLUDED.last_event_at), \
     n_trace = topic_counters.n_trace + EXCLUDED.n_trace, \
     n_debug = topic_counters.n_debug + EXCLUDED.n_debug, \
     n_info = topic_counters.n_info + EXCLUDED.n_info, \
     n_warn = topic_counters.n_warn + EXCLUDED.n_warn, \
     n_error = topic_counters.n_error + EXCLUDED.n_error, \
     n_fatal = topic_counters.n_fatal + EXCLUDED.n_fatal RETURNING topic), \
     vmoved AS (DELETE FROM volume_counters v USING \
     (SELECT p.topic, p.shard FROM picked p JOIN (SELECT topic FROM folded ORDER BY topic) AS f \
      ON f.topic = p.topic) AS q \
     WHERE v.topic = q.topic AND v.shard = q.shard \
     RETURNING v.grain, v.bucket, v.topic, v.level, v.n), \
     vfolded AS (INSERT INTO volume_counters (grain, bucket, topic, level, shard, n) \
     SELECT grain, bucket, topic, level, 0, SUM(n) FROM vmoved \
     GROUP BY grain, bucket, topic, level ORDER BY grain, bucket, topic, level \
     ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET \
     n = volume_counters.n + EXCLUDED.n RETURNING 1) \
     SELECT count(*) + 0 * (SELECT count(*) FROM vfolded) FROM moved";

const TOUCH: &str = "UPDATE consumed_batches SET consumed_at = now() \
     WHERE batch_key = ANY($1::text[]) RETURNING batch_key";

/// Counters in one grouped pass over the counter rows (topics x shards), then the totals,
/// the per-topic page and the markers of the listed keys, all in one statement (one snapshot).
const SNAPSHOT: &str = concat!(
    "WITH per AS (SELECT topic, SUM(received) AS r, SUM(inserted) AS i, SUM(expired) AS x, \
       MAX(last_event_at) AS l, SUM(n_trace) AS l1, SUM(n_debug) AS l2, SUM(n_info) AS l3, \
       SUM(n_warn) AS l4, SUM(n_error) AS l5, SUM(n_fatal) AS l6 \
       FROM topic_counters GROUP BY topic), \
     dl AS (SELECT COALESCE(SUM(received) FILTER (WHERE status <> 'applied'), 0)::bigint AS dead, \
       count(*) FILTER (WHERE status = 'pending') AS pending FROM dead_letters) \
     SELECT (SELECT COALESCE(SUM(r), 0)::bigint FROM per), \
     (SELECT COALESCE(SUM(i), 0)::bigint FROM per), \
     (SELECT COALESCE(SUM(x), 0)::bigint FROM per), \
     (SELECT dead FROM dl), (SELECT pending FROM dl), \
     (SELECT count(*) FROM per WHERE topic <> ''), \
     (SELECT COALESCE(json_agg(t ORDER BY t.topic), '[]')::text FROM (\
       SELECT topic, r::bigint AS received, i::bigint AS unique_processed, \
       (r - i)::bigint AS duplicate_dropped, x::bigint AS expired, ",
    utc_text!("l"),
    " AS last_event_at, ",
    level_json!("l1", "l2", "l3", "l4", "l5", "l6", "i"),
    " AS levels FROM per WHERE topic <> '' AND ($2::text IS NULL OR topic = $2) \
       ORDER BY topic LIMIT $3) AS t), \
     ARRAY(SELECT batch_key FROM consumed_batches WHERE batch_key = ANY($1::text[])), ",
    "(SELECT value FROM meta WHERE key = 'started_at'), (SELECT ",
    level_json!(
        "COALESCE(SUM(l1), 0)",
        "COALESCE(SUM(l2), 0)",
        "COALESCE(SUM(l3), 0)",
        "COALESCE(SUM(l4), 0)",
        "COALESCE(SUM(l5), 0)",
        "COALESCE(SUM(l6), 0)",
        "COALESCE(SUM(i), 0)"
    ),
    "::text FROM per)"
);

/// The event store on PostgreSQL.
pub struct PostgresStore {
    db: Connection,
}

/// Retrying helps for these SQLSTATE classes: connection (08), rollback such as
/// deadlock or serialization (40), resources (53), lock/state (55), operator
/// intervention (57), system (58). Data (22) and integrity (23) errors are the data's.
fn kind_of(code: &str) -> ErrorKind {
    match code.get(..2) {
        Some("08" | "40" | "53" | "55" | "57" | "58") => ErrorKind::Transient,
        Some("22" | "23") => ErrorKind::Permanent,
        _ => ErrorKind::Unknown,
    }
}

fn pg_error(e: PgError) -> StoreError {
    match e {
        PgError::ConnectionFailed(m) => {
            StoreError::new(connection_summary(&m), m).kind(ErrorKind::Transient)
        }
        PgError::QueryFailed(QueryError::DbError(db)) => StoreError::new(
            format!("query failed (SQLSTATE {})", db.code),
            format!("SQLSTATE {} {}: {}", db.code, db.severity, db.message),
        )
        .kind(kind_of(&db.code)),
        PgError::QueryFailed(QueryError::Text(t)) => {
            let kind = if lost_connection(&t) {
                ErrorKind::Transient
            } else {
                ErrorKind::Unknown
            };
            StoreError::new("query failed", t).kind(kind)
        }
        PgError::BadParameter(m) => StoreError::new("bad parameter", m),
        PgError::ValueConversionFailed(m) => StoreError::new("value conversion failed", m),
        PgError::Other(m) => StoreError::new("postgres error", m),
    }
}

/// Whether a host's error text says the connection, not the statement, failed.
fn lost_connection(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "timed out",
        "no answer",
        "closed",
        "broke",
        "communicating",
        "eof",
        "reset",
        "refused",
        "connection",
        "pool",
    ]
    .iter()
    .any(|s| t.contains(s))
}

/// Names the cause of a failed connection in words safe to show (no address, no credentials).
pub fn connection_summary(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    let cause = if m.contains("timed out") || m.contains("timeout") || m.contains("unreachable") {
        "the server is unreachable or too slow"
    } else if m.contains("does not exist") && m.contains("database") {
        "the database does not exist"
    } else if m.contains("password") || m.contains("authentication") {
        "authentication failed"
    } else if m.contains("pg_hba") {
        "the server refuses this client (pg_hba.conf; it may require TLS)"
    } else if m.contains("certificate") || m.contains("tls") || m.contains("ssl") {
        "TLS negotiation failed (check sslmode and the server certificate)"
    } else if m.contains("refused") {
        "connection refused"
    } else if m.contains("not allowed") || m.contains("allowed_outbound_hosts") {
        "address not allowed by allowed_outbound_hosts"
    } else if m.contains("resolve") || m.contains("lookup") || m.contains("dns") {
        "host name could not be resolved"
    } else {
        return "connection failed".to_owned();
    };
    format!("connection failed: {cause}")
}

fn decode<T: Decode>(row: &[DbValue], i: usize) -> Result<T, StoreError> {
    let value = row.get(i).unwrap_or(&DbValue::DbNull);
    T::decode(value).map_err(|e| StoreError::new("unexpected postgres value", e.to_string()))
}

fn bind(p: &Param<'_>) -> ParameterValue {
    match p {
        Param::Text(s) => ParameterValue::Str((*s).to_owned()),
        Param::Int(n) => ParameterValue::Int64(*n),
        Param::Owned(s) => ParameterValue::Str(s.clone()),
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn text(s: &str) -> ParameterValue {
    ParameterValue::Str(s.to_owned())
}

fn int(n: u64) -> ParameterValue {
    ParameterValue::Int64(i64::try_from(n).unwrap_or(i64::MAX))
}

fn text_array<'a>(values: impl Iterator<Item = &'a str>) -> ParameterValue {
    ParameterValue::ArrayStr(values.map(|s| Some(s.to_owned())).collect())
}

fn strings(row: &[DbValue], i: usize) -> Result<Vec<String>, StoreError> {
    Ok(decode::<Vec<Option<String>>>(row, i)?
        .into_iter()
        .flatten()
        .collect())
}

fn first_row(rows: &RowSet, what: &str) -> Result<Vec<DbValue>, StoreError> {
    rows.rows
        .first()
        .cloned()
        .ok_or_else(|| StoreError::new("empty result", format!("{what} returned no row")))
}

fn letter(r: &[DbValue], with_batch: bool) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        seq: decode(r, 0)?,
        id: decode(r, 1)?,
        received: count(decode(r, 2)?),
        reason: decode(r, 3)?,
        attempts: u32::try_from(decode::<i32>(r, 4)?).unwrap_or(0),
        failed_at: decode(r, 5)?,
        status: decode(r, 6)?,
        batch: if with_batch { decode(r, 7)? } else { None },
    })
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

/// The apply statement, with the dead-letter guard when the group settles one.
fn apply_statement(settles: bool) -> String {
    if settles {
        APPLY
            .replace("{SETTLE}", SETTLE)
            .replace("{SETTLED}", " WHERE EXISTS (SELECT 1 FROM settle)")
    } else {
        APPLY.replace("{SETTLE}", "").replace("{SETTLED}", "")
    }
}

/// A transaction id (`xid8`) read back as text.
fn parse_xid(text: &str) -> Result<u64, StoreError> {
    text.trim()
        .parse()
        .map_err(|_| StoreError::new("unexpected postgres value", format!("xid8 {text:?}")))
}

/// An event row in `LIST_COLUMNS` order.
fn stored_event(r: &[DbValue]) -> Result<StoredEvent, StoreError> {
    let payload = serde_json::value::RawValue::from_string(decode(r, 5)?)
        .map_err(|e| StoreError::new("stored payload is not JSON", e.to_string()))?;
    let level = match r.get(7) {
        Some(DbValue::Int16(n)) => Level::from_rank(i64::from(*n)),
        _ => None,
    };
    Ok(StoredEvent {
        id: decode(r, 0)?,
        topic: decode(r, 1)?,
        event_id: decode(r, 2)?,
        timestamp: decode(r, 3)?,
        source: decode(r, 4)?,
        level,
        payload,
        processed_at: decode(r, 6)?,
    })
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

    fn scalar(&self, statement: &str, params: &[ParameterValue]) -> Result<i64, StoreError> {
        let rows = self.query(statement, params)?;
        decode(&first_row(&rows, "scalar")?, 0)
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

    fn apply(&self, group: &Group<'_>) -> Result<Applied, StoreError> {
        let batches = &group.batches;
        let events = || batches.iter().flat_map(|b| b.events.iter());
        let batch_index: Vec<Option<i64>> = batches
            .iter()
            .enumerate()
            .flat_map(|(i, b)| std::iter::repeat_n(Some(i as i64 + 1), b.events.len()))
            .collect();
        let mut params = vec![
            text_array(batches.iter().map(|b| b.key)),
            ParameterValue::ArrayInt64(
                batches
                    .iter()
                    .map(|b| Some(b.events.len() as i64))
                    .collect(),
            ),
            ParameterValue::ArrayInt64(batch_index),
            text_array(events().map(|e| e.topic())),
            text_array(events().map(|e| e.event_id())),
            text_array(events().map(|e| e.timestamp())),
            text_array(events().map(|e| e.source())),
            text_array(events().map(|e| e.payload().get())),
            ParameterValue::Int16(group.shard),
            ParameterValue::ArrayInt32(
                events()
                    .map(|e| e.level().map(|l| l.rank() as i32))
                    .collect(),
            ),
            ParameterValue::ArrayStr(
                events()
                    .map(|e| e.message().map(|m| m.replace('\0', "")))
                    .collect(),
            ),
        ];
        if let Some(id) = group.settles {
            params.push(text(id));
        }
        let rows = self.query(&apply_statement(group.settles.is_some()), &params)?;
        let row = first_row(&rows, "apply")?;
        let fresh = strings(&row, 0)?;
        let topics = strings(&row, 3)?;
        let ids = strings(&row, 4)?;
        Ok(Applied {
            settled: group.settles.is_none() || !fresh.is_empty(),
            fresh,
            received: count(decode(&row, 1)?),
            inserted: count(decode(&row, 2)?),
            duplicate_sample: topics.into_iter().zip(ids).collect(),
        })
    }

    fn snapshot(&self, pending: &[String], topics: &TopicFilter) -> Result<Snapshot, StoreError> {
        let topic = match &topics.topic {
            Some(t) => text(t),
            None => ParameterValue::DbNull,
        };
        let rows = self.query(
            SNAPSHOT,
            &[
                text_array(pending.iter().map(String::as_str)),
                topic,
                int(u64::from(topics.limit)),
            ],
        )?;
        let row = first_row(&rows, "snapshot")?;
        let per_topic: Vec<TopicStats> = serde_json::from_str(&decode::<String>(&row, 6)?)
            .map_err(|e| StoreError::new("unexpected postgres value", e.to_string()))?;
        Ok(Snapshot {
            received: count(decode(&row, 0)?),
            unique: count(decode(&row, 1)?),
            expired: count(decode(&row, 2)?),
            dead_lettered: count(decode(&row, 3)?),
            dead_letters_pending: count(decode(&row, 4)?),
            topic_count: count(decode(&row, 5)?),
            topics: per_topic,
            consumed: strings(&row, 7)?,
            started_at: decode(&row, 8)?,
            levels: serde_json::from_str::<LevelCounts>(&decode::<String>(&row, 9)?)
                .map_err(|e| StoreError::new("unexpected postgres value", e.to_string()))?,
        })
    }

    fn list(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let (statement, params) = query::list_events(LIST_COLUMNS, query, Dialect::Postgres);
        let params: Vec<ParameterValue> = params.iter().map(bind).collect();
        let rows = self.query(&statement, &params)?;
        rows.rows.iter().map(|r| stored_event(r)).collect()
    }

    fn tail(&self, query: &EventQuery, after: TailCursor) -> Result<TailPage, StoreError> {
        let columns = format!("{LIST_COLUMNS}, tx::text");
        let (statement, params) = query::tail_events(&columns, query, after, Dialect::Postgres);
        let params: Vec<ParameterValue> = params.iter().map(bind).collect();
        let rows = self.query(&statement, &params)?;
        let first = first_row(&rows, "tail")?;
        let scanned: i64 = decode(&first, 0)?;
        let horizon = TailCursor {
            tx: parse_xid(&decode::<String>(&first, 1)?)?,
            id: 0,
        };
        let last_scanned = match (
            decode::<Option<String>>(&first, 2)?,
            decode::<Option<i64>>(&first, 3)?,
        ) {
            (Some(tx), Some(id)) => Some(TailCursor {
                tx: parse_xid(&tx)?,
                id,
            }),
            _ => None,
        };
        let mut events = Vec::new();
        let mut last_hit = None;
        for r in rows
            .rows
            .iter()
            .filter(|r| !matches!(r.get(4), None | Some(DbValue::DbNull)))
        {
            let event = stored_event(&r[4..])?;
            last_hit = Some(TailCursor {
                tx: parse_xid(&decode::<String>(r, 12)?)?,
                id: event.id,
            });
            events.push(event);
        }
        let next = super::next_tail_cursor(super::TailScan {
            after,
            hits: events.len(),
            last_hit,
            limit: query.limit,
            scanned,
            last_scanned,
            horizon,
        });
        Ok(TailPage { events, next })
    }

    fn tail_position(&self) -> Result<TailCursor, StoreError> {
        let rows = self.query(query::tail_position(Dialect::Postgres), &[])?;
        let xmin: String = decode(&first_row(&rows, "tail position")?, 0)?;
        Ok(TailCursor {
            tx: parse_xid(&xmin)?,
            id: 0,
        })
    }

    fn volume(&self, v: &VolumeQuery) -> Result<Vec<VolumeCell>, StoreError> {
        let (statement, params) = query::volume(v, Dialect::Postgres);
        let params: Vec<ParameterValue> = params.iter().map(bind).collect();
        let rows = self.query(&statement, &params)?;
        rows.rows
            .iter()
            .map(|r| {
                let level = match r.get(1) {
                    Some(DbValue::Int16(n)) => i64::from(*n),
                    Some(DbValue::Int32(n)) => i64::from(*n),
                    _ => decode::<i64>(r, 1)?,
                };
                Ok((decode(r, 0)?, level, count(decode(r, 2)?)))
            })
            .collect()
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.query(sql::PING, &[]).map(|_| ())
    }

    fn bury(&self, letter: &NewDeadLetter<'_>) -> Result<(), StoreError> {
        let params = [
            text(letter.key),
            int(letter.received),
            text(letter.id),
            text(letter.reason),
            text(&letter.batch.replace('\0', "")),
            ParameterValue::Int32(i32::try_from(letter.attempts).unwrap_or(i32::MAX)),
        ];
        self.db.execute(BURY, &params).map(|_| ()).map_err(pg_error)
    }

    fn record_failure(&self, key: &str, error: &str) -> Result<u32, StoreError> {
        let rows = self.query(RECORD_FAILURE, &[text(key), text(error)])?;
        let attempts: i32 = decode(&first_row(&rows, "record_failure")?, 0)?;
        Ok(u32::try_from(attempts).unwrap_or(0))
    }

    fn dead_letters(&self, after: i64, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let statement = format!(
            "SELECT {LETTER_COLUMNS} FROM dead_letters WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows = self.query(
            &statement,
            &[ParameterValue::Int64(after), int(u64::from(limit))],
        )?;
        rows.rows.iter().map(|r| letter(r, false)).collect()
    }

    fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let statement = format!("SELECT {LETTER_COLUMNS}, batch FROM dead_letters WHERE id = $1");
        let rows = self.query(&statement, &[text(id)])?;
        rows.rows.first().map(|r| letter(r, true)).transpose()
    }

    fn discard(&self, id: &str) -> Result<Option<String>, StoreError> {
        let rows = self.query(DISCARD, &[text(id)])?;
        decode(&first_row(&rows, "discard")?, 0)
    }

    fn expire(&self, cutoff: &str, chunk: u32) -> Result<u64, StoreError> {
        self.scalar(EXPIRE, &[text(cutoff), int(u64::from(chunk))])
            .map(count)
    }

    fn compact_markers(
        &self,
        cutoff: &str,
        queued: &[String],
        chunk: u32,
    ) -> Result<u64, StoreError> {
        let params = [
            text(cutoff),
            text_array(queued.iter().map(String::as_str)),
            int(u64::from(chunk)),
        ];
        self.scalar(COMPACT, &params).map(count)
    }

    fn fold_counters(&self, chunk: u32) -> Result<u64, StoreError> {
        self.scalar(FOLD, &[int(u64::from(chunk))]).map(count)
    }

    fn touch_markers(&self, keys: &[String]) -> Result<Vec<String>, StoreError> {
        let rows = self.query(TOUCH, &[text_array(keys.iter().map(String::as_str))])?;
        rows.rows.iter().map(|r| decode(r, 0)).collect()
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
        assert!(block.contains("INSERT INTO schema_migrations (version) VALUES (2);"));
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
    }

    #[test]
    fn apply_statement_variants() {
        let plain = apply_statement(false);
        for n in 1..=11 {
            assert!(plain.contains(&format!("${n}")), "${n}");
        }
        assert!(!plain.contains("$12") && !plain.contains('{'));
        let settling = apply_statement(true);
        assert!(settling.contains("WHERE id = $12 AND status = 'pending'"));
        assert!(settling.contains("FROM batch WHERE EXISTS (SELECT 1 FROM settle)"));
    }

    #[test]
    fn sqlstate_classes() {
        assert_eq!(kind_of("08006"), ErrorKind::Transient);
        assert_eq!(kind_of("40P01"), ErrorKind::Transient);
        assert_eq!(kind_of("57P01"), ErrorKind::Transient);
        assert_eq!(kind_of("22003"), ErrorKind::Permanent);
        assert_eq!(kind_of("23514"), ErrorKind::Permanent);
        assert_eq!(kind_of("42P01"), ErrorKind::Unknown);
        assert_eq!(kind_of(""), ErrorKind::Unknown);
    }

    #[test]
    fn lost_connections_are_transient() {
        for text in [
            "the connection to PostgreSQL broke: early eof",
            "no answer from PostgreSQL within 10 s; the statement was cancelled",
            "error communicating with the server: Connection reset by peer",
            "no pooled connection became free within 5 s",
        ] {
            assert!(lost_connection(text), "{text}");
        }
        assert!(!lost_connection(
            "value too long for type character varying(3)"
        ));
    }

    #[test]
    fn connection_causes_are_named_without_secrets() {
        let s = connection_summary("db error: FATAL: database \"edgelog\" does not exist");
        assert_eq!(s, "connection failed: the database does not exist");
        let s = connection_summary("FATAL: password authentication failed for user \"bob\"");
        assert_eq!(s, "connection failed: authentication failed");
        assert!(!s.contains("bob"));
        assert_eq!(
            connection_summary("Connection refused (os error 111)"),
            "connection failed: connection refused"
        );
        assert_eq!(connection_summary("weird"), "connection failed");
        assert_eq!(
            connection_summary(
                "no connection within 5 s (TCP connect, TLS and authentication): the server is unreachable or too slow"
            ),
            "connection failed: the server is unreachable or too slow"
        );
        assert!(connection_summary("no pg_hba.conf entry for host").contains("pg_hba.conf"));
    }
}
