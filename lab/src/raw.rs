//! `lab raw`: the limit to approach. It inserts the rows a load run would send (the same
//! seeded plan: same batches, same replays) straight into the database from a native client —
//! no HTTP, no Wasm, no queue — into the service's own schema (`migrations/`), with the service's
//! statement shape `INSERT … ON CONFLICT (topic, event_id) DO NOTHING`, one transaction per
//! batch (or per event in single mode), `concurrency` connections at once.
//!
//! Two statement sets:
//! - `plain`: only the event insert. PostgreSQL: one `INSERT … SELECT FROM unnest($1..$5)`
//!   statement (its own transaction). SQLite: `BEGIN IMMEDIATE`, one multi-row
//!   `INSERT … VALUES (…), (…)`, `COMMIT`, on connections configured like edge-host's (WAL,
//!   `synchronous = NORMAL`, 30 s busy timeout).
//! - `service`: what the service's store runs per queue entry, marker row included (on
//!   PostgreSQL the call of the service's own apply function, `edgelog_apply_v7` of
//!   `migrations/postgres/0007_packed_apply.sql` with the text columns packed as the service
//!   packs them; on SQLite a copy of `src/store/sqlite.rs`'s
//!   transaction: level, message, search index, counters per level, volume rows), so the
//!   gap between `plain` and `service` is the cost of the exactly-once marker, and the gap
//!   between `service` and the HTTP service is the host, Wasm, and key-value queue.
//!
//! Like the service, each batch is sorted by `(topic, event_id)` and deduplicated before it is
//! inserted (a consistent lock order, so overlapping batches cannot deadlock).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::plan::Plan;
use loadgen::measure::{Measurement, Tally, per_sec};
use loadgen::plan::{SOURCE, Shape};
use loadgen::report::Latency;

/// The service's PostgreSQL schema (every migration, in order; each is idempotent), so the raw
/// limit pays for the same columns and indexes as the service. The scripts are bodies of the
/// service's `DO` block (version 3 catches a missing `pg_trgm`): see [`pg_schema`].
pub const PG_SCHEMA: [&str; 7] = [
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_counters_dead_letters.sql"),
    include_str!("../../migrations/postgres/0003_search.sql"),
    include_str!("../../migrations/postgres/0004_volume_totals.sql"),
    include_str!("../../migrations/postgres/0005_apply_function.sql"),
    include_str!("../../migrations/postgres/0006_unfolded_indexes.sql"),
    include_str!("../../migrations/postgres/0007_packed_apply.sql"),
];
/// The service's SQLite schema.
pub const SQLITE_SCHEMA: [&str; 5] = [
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_counters_dead_letters.sql"),
    include_str!("../../migrations/sqlite/0003_search.sql"),
    include_str!("../../migrations/sqlite/0004_volume_totals.sql"),
    include_str!("../../migrations/sqlite/0005_apply_one.sql"),
];

/// Every PostgreSQL migration in one `DO` block under the service's advisory lock, as the
/// service applies them (so a raw run and a service start never race on the schema).
pub fn pg_schema() -> String {
    format!(
        "DO $raw_migrate$\nBEGIN\nPERFORM pg_advisory_xact_lock({});\n{}\nEND\n$raw_migrate$",
        0x0065_6467_656c_6f67_i64, // the service's MIGRATION_LOCK
        PG_SCHEMA.join("\n")
    )
}

/// `plain` on PostgreSQL: the bare event insert, one statement (one transaction) per batch.
const PG_PLAIN: &str = "\
INSERT INTO events (topic, event_id, \"timestamp\", source, payload)
SELECT topic, event_id, ts::timestamptz, source, payload
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
    WITH ORDINALITY AS u(topic, event_id, ts, source, payload, ord)
ORDER BY ord
ON CONFLICT (topic, event_id) DO NOTHING";

/// `service` on PostgreSQL: the call the service's store sends (`src/store/postgres_sql.rs`
/// `APPLY`) of its apply function (marker, counters and volume rows included; created by
/// [`pg_schema`] from the service's own migrations), for a group of one batch and no dead
/// letter, its text columns packed as `src/store/postgres_pack.rs` packs them.
const PG_SERVICE: &str = "SELECT * FROM edgelog_apply_v7($1, $2, $3, $4, $5, $6, $7, $8, $9, \
     $10, $11, $12)";

/// SQLite `service` statements: copies of those in `src/store/sqlite_write.rs` and
/// `src/store/sqlite_sql.rs` (marker, events with level and message, the search index, counters
/// per level, volume rows per topic and over all topics).
const SQLITE_INSERT_MARKER: &str = "INSERT INTO consumed_batches (batch_key, received, inserted) \
     VALUES (?1, ?2, 0) ON CONFLICT (batch_key) DO NOTHING RETURNING batch_key";
/// A transaction of one event: the one statement the service sends for it (`APPLY_ONE` in
/// `src/store/sqlite_sql.rs`, migration 5's trigger).
const SQLITE_APPLY_ONE: &str = "INSERT INTO apply_one (batch_key, topic, event_id, \
     \"timestamp\", source, payload, level, message, minute) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
     RETURNING (SELECT fresh FROM apply_one_result), (SELECT inserted FROM apply_one_result)";
const SQLITE_COUNT: &str = "INSERT INTO topic_counters (topic, shard, received, inserted, \
     last_event_at, n_trace, n_debug, n_info, n_warn, n_error, n_fatal) \
     VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (topic, shard) DO UPDATE SET \
     received = received + excluded.received, inserted = inserted + excluded.inserted, \
     last_event_at = max(coalesce(last_event_at, ''), excluded.last_event_at), \
     n_trace = n_trace + excluded.n_trace, n_debug = n_debug + excluded.n_debug, \
     n_info = n_info + excluded.n_info, n_warn = n_warn + excluded.n_warn, \
     n_error = n_error + excluded.n_error, n_fatal = n_fatal + excluded.n_fatal";
const SQLITE_INDEX_TEXT: &str = "INSERT INTO events_fts (rowid, text) \
     SELECT id, COALESCE(message, payload) FROM events WHERE id >= ?1";
const SQLITE_VOLUME: &str = "INSERT INTO volume_counters (grain, bucket, topic, level, shard, n) \
     VALUES (?1, ?2, ?3, ?4, 0, ?5) ON CONFLICT (grain, bucket, topic, level, shard) \
     DO UPDATE SET n = n + excluded.n";
const SQLITE_TOTALS: &str = "INSERT INTO volume_totals (grain, bucket, level, shard, n) \
     VALUES (?1, ?2, ?3, 0, ?4) ON CONFLICT (grain, bucket, level, shard) \
     DO UPDATE SET n = n + excluded.n";

/// Busy timeout of edge-host's SQLite connections.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which statements a raw run executes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Statement {
    /// Only `INSERT … ON CONFLICT (topic, event_id) DO NOTHING`.
    Plain,
    /// The service's per-entry transaction, exactly-once marker included.
    Service,
}

/// The database a raw run writes to.
#[derive(Clone, Debug)]
pub enum Database {
    /// A `postgres://` URL (the database must exist).
    Postgres(String),
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
}

impl Database {
    /// `postgres://…` / `postgresql://…` or `sqlite:PATH` (also `sqlite://PATH`).
    pub fn parse(s: &str) -> Result<Database> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Database::Postgres(s.to_string()))
        } else if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                bail!("--database-url sqlite:PATH needs a path");
            }
            Ok(Database::Sqlite(PathBuf::from(path)))
        } else {
            bail!("--database-url must be postgres://… or sqlite:PATH, got {s:?}")
        }
    }

    /// `postgres` or `sqlite`.
    pub fn name(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::Sqlite(_) => "sqlite",
        }
    }
}

/// Settings of one raw run.
#[derive(Clone, Debug)]
pub struct RawConfig {
    /// Where to insert.
    pub database: Database,
    /// Events, batches (one transaction each in batch mode), connections, topics, seed.
    pub shape: Shape,
    /// Statement set.
    pub statement: Statement,
    /// Topic prefix; random when absent.
    pub run_id: Option<String>,
    /// Apply the service's schema first (idempotent).
    pub migrate: bool,
}

/// One distinct event, ready to bind, with what the service derives from it.
struct Ev {
    topic: String,
    event_id: String,
    timestamp: String,
    payload: String,
    /// Severity rank 1-6 from the payload's `level`, as the service stores it.
    level: Option<i32>,
    /// The payload's `message` / `msg` / `body`: the service's searchable text.
    message: Option<String>,
    /// Minutes since the Unix epoch of `timestamp` (the volume buckets).
    minute: i64,
}

/// Severity rank of a level name (the service's `Level::rank`; loadgen sends plain names).
fn level_rank(name: &str) -> Option<i32> {
    let rank = match name.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 2,
        "info" => 3,
        "warn" | "warning" => 4,
        "error" | "err" => 5,
        "fatal" | "critical" => 6,
        _ => return None,
    };
    Some(rank)
}

/// One transaction: sorted, deduplicated events and the number sent.
struct Tx {
    received: usize,
    events: Vec<u64>,
}

struct Work {
    events: Vec<Ev>,
    txs: Vec<Tx>,
    run_id: String,
    statement: Statement,
}

impl Work {
    fn build(plan: &Plan, statement: Statement) -> Result<Work> {
        let events = plan
            .events
            .iter()
            .map(|e| {
                let text = |k: &str| e.payload.get(k).and_then(|v| v.as_str());
                let minute = chrono::DateTime::parse_from_rfc3339(&e.timestamp)
                    .with_context(|| format!("timestamp {:?}", e.timestamp))?
                    .timestamp()
                    .div_euclid(60);
                Ok(Ev {
                    topic: plan.topics[e.topic as usize].clone(),
                    event_id: e.event_id.clone(),
                    timestamp: e.timestamp.clone(),
                    payload: serde_json::to_string(&e.payload)?,
                    level: text("level").or(text("severity")).and_then(level_rank),
                    message: ["message", "msg", "body"]
                        .into_iter()
                        .find_map(text)
                        .map(str::to_owned),
                    minute,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let txs = plan
            .requests
            .iter()
            .map(|r| {
                let mut ids = r.events.clone();
                ids.sort_by(|&a, &b| {
                    let (a, b) = (&events[a as usize], &events[b as usize]);
                    (&a.topic, &a.event_id).cmp(&(&b.topic, &b.event_id))
                });
                ids.dedup();
                Tx {
                    received: r.events.len(),
                    events: ids,
                }
            })
            .collect();
        Ok(Work {
            events,
            txs,
            run_id: plan.run_id.clone(),
            statement,
        })
    }

    fn column<'a>(&'a self, tx: &Tx, f: impl Fn(&'a Ev) -> &'a str) -> Vec<&'a str> {
        tx.events
            .iter()
            .map(|&i| f(&self.events[i as usize]))
            .collect()
    }

    fn batch_key(&self, i: usize) -> String {
        format!("raw/{}/{i:08}", self.run_id)
    }
}

/// Runs a raw measurement on a fresh tokio runtime.
pub fn raw(config: &RawConfig) -> Result<Measurement> {
    loadgen::run::block_on(raw_async(config))
}

/// Runs a raw measurement: builds the plan, inserts it, checks the row count.
pub async fn raw_async(config: &RawConfig) -> Result<Measurement> {
    let run_id = config
        .run_id
        .clone()
        .unwrap_or_else(|| format!("raw{}", loadgen::run::random_run_id()));
    let (plan, seed) = Plan::of_shape(&config.shape, &run_id)?;
    let work = Arc::new(Work::build(&plan, config.statement)?);
    let (tally, elapsed, stored) = match &config.database {
        Database::Postgres(url) => pg::run(url, config, Arc::clone(&work)).await?,
        Database::Sqlite(path) => sqlite::run(path, config, Arc::clone(&work)).await?,
    };
    let unique = plan.events.len() as u64;
    let mut errors = tally.errors.clone();
    let mut error_count = tally.error_count;
    if stored != unique {
        error_count += 1;
        errors.push(format!(
            "{stored} rows stored for run {run_id}, expected {unique} distinct events"
        ));
    }
    if tally.error_count == 0 && tally.inserted != unique {
        error_count += 1;
        errors.push(format!(
            "statements reported {} rows inserted, expected {unique}",
            tally.inserted
        ));
    }
    let secs = elapsed.as_secs_f64();
    Ok(Measurement {
        kind: "raw".into(),
        target: config.database.name().into(),
        statement: Some(
            match config.statement {
                Statement::Plain => "plain",
                Statement::Service => "service",
            }
            .into(),
        ),
        mode: config.shape.mode,
        seed,
        run_id,
        concurrency: config.shape.concurrency,
        batch_size: config.shape.batch_size,
        events_sent: tally.events,
        unique_ids: unique,
        requests: tally.requests,
        elapsed_secs: secs,
        events_per_sec: per_sec(tally.events, secs),
        requests_per_sec: per_sec(tally.requests, secs),
        latency_ms: Latency::from_us(&tally.latency_us),
        checked: format!(
            "{stored} rows stored = {unique} distinct events; {} reported inserted",
            tally.inserted
        ),
        error_count,
        passed: error_count == 0,
        errors,
    })
}

/// Hands out transaction indices to workers.
fn next_index(next: &AtomicUsize, work: &Work) -> Option<usize> {
    let i = next.fetch_add(1, Ordering::Relaxed);
    (i < work.txs.len()).then_some(i)
}

mod pg;

mod sqlite;

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen::config::Mode;

    #[test]
    fn parses_database_urls() {
        assert!(matches!(
            Database::parse("postgres://postgres@127.0.0.1:5432/x").unwrap(),
            Database::Postgres(_)
        ));
        match Database::parse("sqlite:/tmp/a.db").unwrap() {
            Database::Sqlite(p) => assert_eq!(p, PathBuf::from("/tmp/a.db")),
            other => panic!("{other:?}"),
        }
        assert!(Database::parse("sqlite:").is_err());
        assert!(Database::parse("mysql://x").is_err());
    }

    #[test]
    fn sqlite_raw_run_stores_each_distinct_event_once() {
        let dir = std::env::temp_dir().join(format!("loadgen-raw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("raw.db");
        for (statement, mode) in [
            (Statement::Plain, Mode::Batch),
            (Statement::Service, Mode::Batch),
            (Statement::Plain, Mode::Single),
            // One event per transaction: migration 5's one-statement apply.
            (Statement::Service, Mode::Single),
        ] {
            let m = raw(&RawConfig {
                database: Database::Sqlite(db.clone()),
                shape: Shape {
                    events: 1_000,
                    duplicate_rate: 0.35,
                    batch_size: 50,
                    concurrency: 4,
                    topics: 3,
                    mode,
                    seed: Some(7),
                },
                statement,
                run_id: None,
                migrate: true,
            })
            .unwrap();
            assert!(m.passed, "{statement:?} {mode:?}: {:?}", m.errors);
            assert_eq!(m.events_sent, 1_000);
            assert_eq!(m.unique_ids, 650);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The `service` statement on PostgreSQL is the service's own: the schema (migration 7's
    /// apply function included) applied by [`pg_schema`], then one call per batch or event.
    #[test]
    fn postgres_raw_service_run_calls_the_apply_function() {
        use crate::bench::services::pg_admin;
        let user = std::env::var("EDGE_TEST_PG_USER").unwrap_or_else(|_| "postgres".into());
        let server = format!("postgres://{user}@127.0.0.1:5432");
        let db = format!("lab_raw_test_{}", std::process::id());
        let admin = |sql: String| loadgen::run::block_on(pg_admin(&server, &sql)).unwrap();
        admin(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        admin(format!("CREATE DATABASE {db}"));
        assert!(PG_SCHEMA[6].contains(&format!(
            "CREATE OR REPLACE FUNCTION {}(",
            PG_SERVICE
                .trim_start_matches("SELECT * FROM ")
                .split('(')
                .next()
                .unwrap()
        )));
        let mut outcome = Vec::new();
        for mode in [Mode::Batch, Mode::Single] {
            outcome.push(raw(&RawConfig {
                database: Database::Postgres(format!("{server}/{db}")),
                shape: Shape {
                    events: 400,
                    duplicate_rate: 0.25,
                    batch_size: 20,
                    concurrency: 4,
                    topics: 3,
                    mode,
                    seed: Some(11),
                },
                statement: Statement::Service,
                run_id: None,
                migrate: true,
            }));
        }
        admin(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        for m in outcome {
            let m = m.unwrap();
            assert!(m.passed, "{:?} {:?}", m.mode, m.errors);
            assert_eq!((m.events_sent, m.unique_ids), (400, 300));
        }
    }
}
