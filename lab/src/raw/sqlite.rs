//! `lab raw` on SQLite: rusqlite connections set up like edge-host's, the plain multi-row
//! insert and a copy of the service's apply transaction. As in edge-host, every writing
//! transaction runs on the file's one writer connection, the workers taking turns for it (SQLite
//! lets one writer in at a time anyway; one connection keeps its page cache warm).

use super::*;
use rusqlite::types::Value;
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

/// `plain`: the five columns of the limit; `service`: the service's seven (level,
/// message) and the inserted rows back.
fn insert_sql(rows: usize, service: bool) -> String {
    let (columns, row) = if service {
        (", level, message", "(?, ?, ?, ?, ?, ?, ?)")
    } else {
        ("", "(?, ?, ?, ?, ?)")
    };
    let mut s = format!(
        "INSERT INTO events (topic, event_id, \"timestamp\", source, payload{columns}) VALUES "
    );
    for i in 0..rows {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(row);
    }
    s.push_str(" ON CONFLICT (topic, event_id) DO NOTHING");
    if service {
        s.push_str(" RETURNING id, topic, event_id");
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
    if work.statement == Statement::Service
        && let [e] = tx.events[..]
    {
        let e = &work.events[e as usize];
        let (_fresh, inserted): (i64, i64) = conn.prepare_cached(SQLITE_APPLY_ONE)?.query_row(
            rusqlite::params![
                work.batch_key(i),
                e.topic,
                e.event_id,
                e.timestamp,
                SOURCE,
                e.payload,
                e.level,
                e.message,
                e.minute
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        return Ok(inserted as u64);
    }
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
            let params = tx.events.iter().flat_map(|&e| {
                let e = &work.events[e as usize];
                [
                    Value::from(e.topic.clone()),
                    Value::from(e.event_id.clone()),
                    Value::from(e.timestamp.clone()),
                    Value::from(SOURCE.to_owned()),
                    Value::from(e.payload.clone()),
                    e.level.map_or(Value::Null, Value::from),
                    e.message.clone().map_or(Value::Null, Value::from),
                ]
            });
            let mut stmt = conn.prepare_cached(&insert_sql(tx.events.len(), true))?;
            let inserted: Vec<(i64, String, String)> = stmt
                .query_map(params_from_iter(params), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            if let Some(first) = inserted.iter().map(|r| r.0).min() {
                conn.prepare_cached(SQLITE_INDEX_TEXT)?.execute([first])?;
            }
            // The counter rows per topic and level, and the volume rows, as the service
            // keeps them (from the events this transaction stored).
            let stored: std::collections::HashSet<(&str, &str)> = inserted
                .iter()
                .map(|(_, t, id)| (t.as_str(), id.as_str()))
                .collect();
            let mut per_topic: std::collections::BTreeMap<&str, (i64, i64, &str, [i64; 6])> =
                Default::default();
            let mut volume: std::collections::BTreeMap<(i64, i64, &str, i32), i64> =
                Default::default();
            for &e in &tx.events {
                let e = &work.events[e as usize];
                let entry = per_topic
                    .entry(e.topic.as_str())
                    .or_insert((0, 0, "", [0; 6]));
                entry.0 += 1;
                entry.2 = entry.2.max(e.timestamp.as_str());
                if stored.contains(&(e.topic.as_str(), e.event_id.as_str())) {
                    entry.1 += 1;
                    if let Some(l) = e.level {
                        entry.3[(l - 1) as usize] += 1;
                    }
                    for grain in [1, 60] {
                        let bucket = e.minute.div_euclid(grain) * grain;
                        *volume
                            .entry((grain, bucket, e.topic.as_str(), e.level.unwrap_or(0)))
                            .or_default() += 1;
                    }
                }
            }
            let mut count = conn.prepare_cached(SQLITE_COUNT)?;
            for (topic, (received, n, last, l)) in per_topic {
                count.execute(rusqlite::params![
                    topic, received, n, last, l[0], l[1], l[2], l[3], l[4], l[5]
                ])?;
            }
            let mut totals: std::collections::BTreeMap<(i64, i64, i32), i64> = Default::default();
            let mut upsert = conn.prepare_cached(SQLITE_VOLUME)?;
            for ((grain, bucket, topic, level), n) in volume {
                upsert.execute(rusqlite::params![grain, bucket, topic, level, n])?;
                *totals.entry((grain, bucket, level)).or_default() += n;
            }
            let mut upsert = conn.prepare_cached(SQLITE_TOTALS)?;
            for ((grain, bucket, level), n) in totals {
                upsert.execute(rusqlite::params![grain, bucket, level, n])?;
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

/// Applies the migrations the file lacks, recording them as the service does (SQLite's
/// `ALTER TABLE … ADD COLUMN` cannot be repeated).
fn migrate_sqlite(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
         applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')))",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for (i, script) in SQLITE_SCHEMA.iter().enumerate() {
        let version = i as i64 + 1;
        if version > current {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {script}; \
                 INSERT INTO schema_migrations (version) VALUES ({version}); COMMIT;"
            ))
            .with_context(|| format!("applying migrations/sqlite/ version {version}"))?;
        }
    }
    Ok(())
}

pub async fn run(
    path: &std::path::Path,
    config: &RawConfig,
    work: Arc<Work>,
) -> Result<(Tally, Duration, u64)> {
    let admin = open(path)?;
    if config.migrate {
        migrate_sqlite(&admin)?;
    }
    let writer = Arc::new(std::sync::Mutex::new(open(path)?));
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..config.shape.concurrency {
        let work = Arc::clone(&work);
        let next = Arc::clone(&next);
        let writer = Arc::clone(&writer);
        workers.push(tokio::task::spawn_blocking(move || {
            let mut tally = Tally::default();
            while let Some(i) = next_index(&next, &work) {
                let t0 = Instant::now();
                let conn = writer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let applied = apply(&conn, &work, i);
                drop(conn);
                match applied {
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
