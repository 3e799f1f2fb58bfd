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

use super::{DUP_RATE, LOREM, Param, Plan, listing_sql, say, utc};

/// Rows per transaction while loading.
const TX_ROWS: u64 = 250_000;

fn open(file: &Path) -> Result<Connection> {
    let c = Connection::open(file).with_context(|| format!("opening {}", file.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(c)
}

/// One generated event: topic, event id, timestamp, source, payload, processed_at.
fn event(rng: &mut ChaCha8Rng, g: u64, n: u64, plan: &Plan) -> [String; 6] {
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
    let level = ["info", "info", "info", "info", "warn", "error", "debug"][rng.random_range(0..7)];
    let status = [200, 200, 200, 201, 204, 304, 400, 404, 500][rng.random_range(0..9)];
    let off = rng.random_range(0..40);
    let len = rng.random_range(20..200).min(LOREM.len() - off);
    let payload = format!(
        "{{\"level\":\"{level}\",\"msg\":\"{}\",\"request_id\":\"{:020x}\",\"status\":{status},\"duration_ms\":{},\"user\":\"u{}\"}}",
        &LOREM[off..off + len],
        b >> 8,
        rng.random_range(0..900),
        rng.random_range(0..100_000)
    );
    [
        super::topic_name(k),
        event_id,
        utc(ts),
        format!("host-{s:02}"),
        payload,
        utc(processed),
    ]
}

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
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    let mut per_topic: HashMap<String, (u64, String)> = HashMap::new();
    let mut g = 1u64;
    while g <= n {
        let tx = c.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO events (topic, event_id, \"timestamp\", source, payload, processed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let end = (g + TX_ROWS - 1).min(n);
            for i in g..=end {
                let e = event(&mut rng, i, n, plan);
                ins.execute(params![e[0], e[1], e[2], e[3], e[4], e[5]])?;
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
         transactions of {TX_ROWS} rows from rusqlite in {events_secs:.0} s; {} `topic_counters` \
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
