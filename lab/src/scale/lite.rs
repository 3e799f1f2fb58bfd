//! SQLite side of `lab scale`: bulk-loads events, counters and markers into the
//! component's database file (edge-host stopped) with prepared inserts in big transactions,
//! reports storage, and shows `EXPLAIN QUERY PLAN` (plus the statement's own time) of the
//! component's listing statements.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{TimeDelta, Utc};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rusqlite::{Connection, params};

use super::{DUP_RATE, LOREM, Param, Plan, RARE, listing_sql, say, utc};

/// Rows per transaction while loading.
const TX_ROWS: u64 = 250_000;

fn open(file: &Path) -> Result<Connection> {
    let c = Connection::open(file).with_context(|| format!("opening {}", file.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(c)
}

/// One generated event: topic, event id, timestamp, source, payload, processed_at, and the
/// level rank and message the component would store (one in 2,000 carries the rare term).
fn event(rng: &mut ChaCha8Rng, g: u64, n: u64, plan: &Plan) -> ([String; 6], i64, String) {
    let k = ((rng.random::<f64>() * 1001f64.ln()).exp().floor() as u32).clamp(1, 1000);
    let s = (rng.random::<f64>().powi(2) * 50.0).floor() as u32;
    let secs = g as f64 / n as f64 * 30.0 * 86_400.0 + (rng.random::<f64>() - 0.5) * 120.0;
    let ts = plan.t0 + TimeDelta::microseconds((secs * 1e6) as i64);
    let processed = ts + TimeDelta::microseconds(((0.02 + rng.random::<f64>() * 2.0) * 1e6) as i64);
    let ms = ts.timestamp_millis() as u64;
    let (a, b): (u64, u64) = (rng.random(), rng.random());
    let h = format!("{ms:012x}");
    let event_id = format!(
        "{}-{}-7{:03x}-8{:03x}-{:012x}",
        &h[..8],
        &h[8..],
        a & 0xfff,
        (a >> 12) & 0xfff,
        b & 0xffff_ffff_ffff
    );
    let li = rng.random_range(0..7);
    let level = ["info", "info", "info", "info", "warn", "error", "debug"][li];
    let rank = [3, 3, 3, 3, 4, 5, 2][li];
    let status = [200, 200, 200, 201, 204, 304, 400, 404, 500][rng.random_range(0..9)];
    let off = rng.random_range(0..40);
    let len = rng.random_range(20..200).min(LOREM.len() - off);
    let mut msg = LOREM[off..off + len].to_string();
    if g.is_multiple_of(2000) {
        msg.push_str(&format!(" {RARE} on req-{:08x}", a >> 32));
    }
    let payload = format!(
        "{{\"level\":\"{level}\",\"msg\":\"{msg}\",\"request_id\":\"{:020x}\",\"status\":{status},\"duration_ms\":{},\"user\":\"u{}\"}}",
        b >> 8,
        rng.random_range(0..900),
        rng.random_range(0..100_000)
    );
    (
        [
            super::topic_name(k),
            event_id,
            utc(ts),
            format!("host-{s:02}"),
            payload,
            utc(processed),
        ],
        rank,
        msg,
    )
}

/// The volume rows those publishes would have left (per minute and hour, topic and level).
const VOLUME: &str = "INSERT INTO volume_counters (grain, bucket, topic, level, shard, n) \
     SELECT g.grain, (s - ((s % (60 * g.grain)) + 60 * g.grain) % (60 * g.grain)) / 60, topic, level, 0, count(*) \
     FROM (SELECT topic, COALESCE(level, 0) AS level, \
           CAST(strftime('%s', substr(\"timestamp\", 1, 19)) AS INTEGER) AS s FROM events WHERE id > ?1) AS e \
     CROSS JOIN (SELECT 1 AS grain UNION ALL SELECT 60) AS g WHERE true GROUP BY 1, 2, 3, 4 \
     ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET n = n + excluded.n";

/// The all-topic rows, recomputed from the topic rows (the seed's included).
const TOTALS: &str = "DELETE FROM volume_totals; \
     INSERT INTO volume_totals (grain, bucket, level, shard, n) \
     SELECT grain, bucket, level, 0, SUM(n) FROM volume_counters WHERE true GROUP BY 1, 2, 3";

/// Loads `n` events, their counters and the markers into the file; returns notes on how.
pub(super) fn load(
    file: &Path,
    n: u64,
    recent: u64,
    old: u64,
    plan: &Plan,
    seed: u64,
) -> Result<Vec<String>> {
    let mut c = open(file)?;
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    c.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; PRAGMA temp_store = MEMORY",
    )?;
    let before: i64 = c.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    let mut per_topic: HashMap<String, (u64, String)> = HashMap::new();
    let mut g = 1u64;
    while g <= n {
        let tx = c.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO events (topic, event_id, \"timestamp\", source, payload, processed_at, \
                 level, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let end = (g + TX_ROWS - 1).min(n);
            for i in g..=end {
                let (e, rank, msg) = event(&mut rng, i, n, plan);
                ins.execute(params![e[0], e[1], e[2], e[3], e[4], e[5], rank, msg])?;
                let slot = per_topic.entry(e[0].clone()).or_insert((0, String::new()));
                slot.0 += 1;
                if e[2] > slot.1 {
                    slot.1 = e[2].clone();
                }
            }
            g = end + 1;
        }
        tx.commit()?;
        if (g - 1).is_multiple_of(1_000_000) || g > n {
            say(&format!(
                "  SQLite: {} / {n} events ({:.0} s)",
                g - 1,
                started.elapsed().as_secs_f64()
            ));
        }
    }
    let events_secs = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let last: i64 = c.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?;
    let mut from = before;
    while from < last {
        let to = (from + 1_000_000).min(last);
        c.execute(
            "INSERT INTO events_fts (rowid, text) SELECT id, COALESCE(message, payload) \
             FROM events WHERE id > ?1 AND id <= ?2",
            params![from, to],
        )?;
        from = to;
        say(&format!(
            "  SQLite: search index up to id {to} ({:.0} s)",
            t.elapsed().as_secs_f64()
        ));
    }
    let index_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    c.execute(VOLUME, params![before])?;
    c.execute_batch(TOTALS)?;
    let volume_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let tx = c.transaction()?;
    for (topic, (stored, last)) in &per_topic {
        let received = stored + (*stored as f64 * DUP_RATE / (1.0 - DUP_RATE)).round() as u64;
        tx.execute(
            "INSERT INTO topic_counters (topic, shard, received, inserted, last_event_at) \
             VALUES (?1, 0, ?2, ?3, ?4) ON CONFLICT (topic, shard) DO UPDATE SET \
             received = received + excluded.received, inserted = inserted + excluded.inserted, \
             last_event_at = max(coalesce(last_event_at, ''), excluded.last_event_at)",
            params![topic, received as i64, *stored as i64, last],
        )?;
    }
    let now = Utc::now();
    {
        let mut ins = tx.prepare("INSERT INTO consumed_batches (batch_key, received, inserted, consumed_at) VALUES (?1, ?2, 0, ?3)")?;
        for (count, from, spread) in [(recent, 0.0, 1800.0), (old, 3900.0, 86_400.0 - 3900.0)] {
            for _ in 0..count {
                let at = now
                    - TimeDelta::microseconds(((from + rng.random::<f64>() * spread) * 1e6) as i64);
                let events = if rng.random::<f64>() < 0.7 { 1 } else { 100 };
                let key = format!(
                    "q/{:013}-{:016x}-{events}",
                    at.timestamp_millis(),
                    rng.random::<u64>()
                );
                ins.execute(params![key, events, utc(at)])?;
            }
        }
    }
    tx.commit()?;
    let rest_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    c.execute_batch("ANALYZE")?;
    let analyze_secs = t.elapsed().as_secs_f64();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(vec![format!(
        "load (SQLite, journal_mode {mode}, edge-host stopped): events by prepared inserts in \
         transactions of {TX_ROWS} rows from rusqlite in {events_secs:.0} s; the FTS5 trigram \
         index in {index_secs:.0} s; volume rows in {volume_secs:.0} s; {} `topic_counters` \
         rows (1 shard) and {recent} + {old} markers in {rest_secs:.0} s; `ANALYZE` in {analyze_secs:.0} s",
        per_topic.len()
    )])
}

/// Markers in `consumed_batches`.
pub(super) fn markers(file: &Path) -> Result<u64> {
    let n: i64 =
        open(file)?.query_row("SELECT count(*) FROM consumed_batches", [], |r| r.get(0))?;
    Ok(n as u64)
}

/// Bytes per stored event: the database file (and its WAL) over the stored rows.
pub(super) fn storage(file: &Path) -> Result<String> {
    let c = open(file)?;
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let rows: i64 = c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    let mut bytes = std::fs::metadata(file)?.len();
    if let Ok(m) = std::fs::metadata(format!("{}-wal", file.display())) {
        bytes += m.len();
    }
    Ok(format!(
        "{:.0} bytes per stored event (file {:.2} GB over {rows} rows; markers and counters included)",
        bytes as f64 / rows.max(1) as f64,
        bytes as f64 / 1e9
    ))
}

/// `EXPLAIN QUERY PLAN` and the statement's own median time (20 runs) for each listing kind.
pub(super) fn plans(file: &Path, plan: &Plan, cursor: u64) -> Result<String> {
    let c = open(file)?;
    let mut out = String::new();
    let mut statements: Vec<(String, String, Vec<Param>)> = (2..=4)
        .map(|k| {
            let (sql, params) = listing_sql(false, k, plan, cursor).expect("listing kind");
            (super::KINDS[k].to_string(), sql, params)
        })
        .collect();
    let (_, sql, params) = statements[2].clone();
    let alt = sql.replace("ORDER BY id DESC", "ORDER BY \"timestamp\" DESC, id DESC");
    statements.push(("candidate fix for the time range".into(), alt, params));
    for (label, sql, params) in statements {
        let values: Vec<rusqlite::types::Value> = params
            .iter()
            .map(|p| match p {
                Param::T(s) => rusqlite::types::Value::Text(s.clone()),
                Param::I(n) => rusqlite::types::Value::Integer(*n),
            })
            .collect();
        let mut eqp = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let detail: Vec<String> = eqp
            .query_map(rusqlite::params_from_iter(values.iter()), |r| {
                r.get::<_, String>(3)
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = c.prepare(&sql)?;
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..20 {
            let t = Instant::now();
            rows = stmt
                .query_map(rusqlite::params_from_iter(values.iter()), |_| Ok(()))?
                .count();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let _ = writeln!(
            out,
            "{} — `{sql}` with {params:?}: {rows} rows, statement alone {:.2} ms (median of 20)\n\n```\n{}\n```\n",
            label,
            times[10],
            detail.join("\n")
        );
    }
    Ok(out)
}
