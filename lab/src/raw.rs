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
//! - `service`: what the service's store runs per queue entry, marker row included (copies of
//!   `src/store/postgres.rs`'s `APPLY_BATCH` and of `src/store/sqlite.rs`'s transaction), so the
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
/// limit pays for the same columns and indexes as the service.
pub const PG_SCHEMA: [&str; 2] = [
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_counters_dead_letters.sql"),
];
/// The service's SQLite schema.
pub const SQLITE_SCHEMA: [&str; 2] = [
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_counters_dead_letters.sql"),
];

/// `plain` on PostgreSQL: the bare event insert, one statement (one transaction) per batch.
const PG_PLAIN: &str = "\
INSERT INTO events (topic, event_id, \"timestamp\", source, payload)
SELECT topic, event_id, ts::timestamptz, source, payload
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
    WITH ORDINALITY AS u(topic, event_id, ts, source, payload, ord)
ORDER BY ord
ON CONFLICT (topic, event_id) DO NOTHING";

/// `service` on PostgreSQL: the service's own apply statement (marker and counters included),
/// shared by file, for a group of one batch.
const PG_SERVICE: &str = include_str!("../../src/store/postgres_apply.sql");

/// SQLite `service` statements: copies of those in `src/store/sqlite.rs`.
const SQLITE_INSERT_MARKER: &str = "INSERT INTO consumed_batches (batch_key, received, inserted) \
     VALUES (?1, ?2, 0) ON CONFLICT (batch_key) DO NOTHING RETURNING batch_key";
const SQLITE_COUNT: &str = "INSERT INTO topic_counters (topic, shard, received, inserted, \
     last_event_at) VALUES (?1, 0, ?2, ?3, ?4) ON CONFLICT (topic, shard) DO UPDATE SET \
     received = received + excluded.received, inserted = inserted + excluded.inserted, \
     last_event_at = max(coalesce(last_event_at, ''), excluded.last_event_at)";

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

/// One distinct event, ready to bind.
struct Ev {
    topic: String,
    event_id: String,
    timestamp: String,
    payload: String,
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
                Ok(Ev {
                    topic: plan.topics[e.topic as usize].clone(),
                    event_id: e.event_id.clone(),
                    timestamp: e.timestamp.clone(),
                    payload: serde_json::to_string(&e.payload)?,
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

mod pg {
    use super::*;
    use tokio_postgres::{Client, NoTls};

    async fn connect(url: &str) -> Result<Client> {
        let (client, conn) = tokio_postgres::connect(url, NoTls)
            .await
            .with_context(|| "connecting to PostgreSQL".to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    pub async fn run(
        url: &str,
        config: &RawConfig,
        work: Arc<Work>,
    ) -> Result<(Tally, Duration, u64)> {
        let admin = connect(url).await?;
        if config.migrate {
            for script in PG_SCHEMA {
                admin
                    .batch_execute(script)
                    .await
                    .context("applying migrations/postgres/")?;
            }
        }
        let mut clients = Vec::with_capacity(config.shape.concurrency);
        for _ in 0..config.shape.concurrency {
            clients.push(connect(url).await?);
        }
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let mut workers = Vec::new();
        for client in clients {
            let work = Arc::clone(&work);
            let next = Arc::clone(&next);
            workers.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                let text = match work.statement {
                    Statement::Plain => PG_PLAIN,
                    Statement::Service => {
                        &PG_SERVICE.replace("{SETTLE}", "").replace("{SETTLED}", "")
                    }
                };
                let stmt = match client.prepare(text).await {
                    Ok(s) => s,
                    Err(e) => {
                        tally.error(format!("prepare: {e:?}"));
                        return tally;
                    }
                };
                while let Some(i) = next_index(&next, &work) {
                    let tx = &work.txs[i];
                    let topics = work.column(tx, |e| &e.topic);
                    let ids = work.column(tx, |e| &e.event_id);
                    let ts = work.column(tx, |e| &e.timestamp);
                    let sources = vec![SOURCE; tx.events.len()];
                    let payloads = work.column(tx, |e| &e.payload);
                    let t0 = Instant::now();
                    let result = match work.statement {
                        Statement::Plain => {
                            client
                                .execute(&stmt, &[&topics, &ids, &ts, &sources, &payloads])
                                .await
                        }
                        Statement::Service => {
                            let keys = vec![work.batch_key(i)];
                            let received = vec![tx.received as i64];
                            let batch = vec![1i64; tx.events.len()];
                            let shard = (i % 16) as i16;
                            client
                                .query_one(
                                    &stmt,
                                    &[
                                        &keys, &received, &batch, &topics, &ids, &ts, &sources,
                                        &payloads, &shard,
                                    ],
                                )
                                .await
                                .and_then(|row| row.try_get::<_, i64>(2))
                                .map(|n| n as u64)
                        }
                    };
                    match result {
                        Ok(n) => {
                            tally.done(tx.received, t0.elapsed());
                            tally.inserted += n;
                        }
                        Err(e) => tally.error(format!("transaction {i}: {e:?}")),
                    }
                }
                tally
            }));
        }
        let tally = Tally::join(workers).await;
        let elapsed = start.elapsed();
        let row = admin
            .query_one(
                "SELECT count(*) FROM events WHERE topic LIKE $1",
                &[&format!("{}.%", work.run_id)],
            )
            .await
            .context("counting stored rows")?;
        let stored: i64 = row.get(0);
        Ok((tally, elapsed, stored as u64))
    }
}

mod sqlite {
    use super::*;
    use rusqlite::{Connection, params_from_iter};

    /// Opens a connection the way edge-host's pool does.
    pub fn open(path: &std::path::Path) -> Result<Connection> {
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn insert_sql(rows: usize, returning: bool) -> String {
        let mut s = String::from(
            "INSERT INTO events (topic, event_id, \"timestamp\", source, payload) VALUES ",
        );
        for i in 0..rows {
            s.push_str(if i == 0 {
                "(?, ?, ?, ?, ?)"
            } else {
                ", (?, ?, ?, ?, ?)"
            });
        }
        s.push_str(" ON CONFLICT (topic, event_id) DO NOTHING");
        if returning {
            s.push_str(" RETURNING topic, event_id");
        }
        s
    }

    /// One transaction; returns the rows inserted.
    fn apply(conn: &Connection, work: &Work, i: usize) -> rusqlite::Result<u64> {
        let tx = &work.txs[i];
        let params = tx.events.iter().flat_map(|&e| {
            let e = &work.events[e as usize];
            [
                e.topic.as_str(),
                e.event_id.as_str(),
                e.timestamp.as_str(),
                SOURCE,
                e.payload.as_str(),
            ]
        });
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| match work.statement {
            Statement::Plain => {
                let mut stmt = conn.prepare_cached(&insert_sql(tx.events.len(), false))?;
                Ok(stmt.execute(params_from_iter(params))? as u64)
            }
            Statement::Service => {
                let key = work.batch_key(i);
                let fresh = conn
                    .prepare_cached(SQLITE_INSERT_MARKER)?
                    .query_map(rusqlite::params![key, tx.received as i64], |_| Ok(()))?
                    .count();
                if fresh == 0 {
                    return Ok(0);
                }
                let mut stmt = conn.prepare_cached(&insert_sql(tx.events.len(), true))?;
                let inserted: Vec<(String, String)> = stmt
                    .query_map(params_from_iter(params), |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                // The counter rows, per topic, as the service keeps them.
                let mut per_topic: std::collections::BTreeMap<&str, (i64, i64, &str)> =
                    Default::default();
                for &e in &tx.events {
                    let e = &work.events[e as usize];
                    let entry = per_topic.entry(e.topic.as_str()).or_insert((0, 0, ""));
                    entry.0 += 1;
                    entry.2 = entry.2.max(e.timestamp.as_str());
                }
                for (topic, _) in &inserted {
                    if let Some(entry) = per_topic.get_mut(topic.as_str()) {
                        entry.1 += 1;
                    }
                }
                let mut count = conn.prepare_cached(SQLITE_COUNT)?;
                for (topic, (received, stored, last)) in per_topic {
                    count.execute(rusqlite::params![topic, received, stored, last])?;
                }
                Ok(inserted.len() as u64)
            }
        })();
        match result {
            Ok(n) => {
                conn.execute_batch("COMMIT")?;
                Ok(n)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    pub async fn run(
        path: &std::path::Path,
        config: &RawConfig,
        work: Arc<Work>,
    ) -> Result<(Tally, Duration, u64)> {
        let admin = open(path)?;
        if config.migrate {
            for script in SQLITE_SCHEMA {
                admin
                    .execute_batch(script)
                    .context("applying migrations/sqlite/")?;
            }
        }
        let mut conns = Vec::with_capacity(config.shape.concurrency);
        for _ in 0..config.shape.concurrency {
            conns.push(open(path)?);
        }
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let mut workers = Vec::new();
        for conn in conns {
            let work = Arc::clone(&work);
            let next = Arc::clone(&next);
            workers.push(tokio::task::spawn_blocking(move || {
                let mut tally = Tally::default();
                while let Some(i) = next_index(&next, &work) {
                    let t0 = Instant::now();
                    match apply(&conn, &work, i) {
                        Ok(n) => {
                            tally.done(work.txs[i].received, t0.elapsed());
                            tally.inserted += n;
                        }
                        Err(e) => tally.error(format!("transaction {i}: {e}")),
                    }
                }
                tally
            }));
        }
        let tally = Tally::join(workers).await;
        let elapsed = start.elapsed();
        let stored: i64 = admin
            .query_row(
                "SELECT count(*) FROM events WHERE topic LIKE ?1",
                [format!("{}.%", work.run_id)],
                |r| r.get(0),
            )
            .context("counting stored rows")?;
        Ok((tally, elapsed, stored as u64))
    }
}

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
}
