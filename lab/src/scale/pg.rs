//! PostgreSQL side of `lab scale`: creates/drops the run's database, bulk-loads events,
//! counters and markers into the service's schema with a few `INSERT … SELECT … FROM
//! generate_series` statements, reports storage, and profiles the component's statements
//! with `EXPLAIN (ANALYZE, BUFFERS)`.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, Result};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use super::{DUP_RATE, LOREM, Param, Plan, RARE, listing_sql, say, utc};

async fn connect(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Runs one administrative statement (CREATE/DROP DATABASE) on the server's `postgres` db.
pub(super) async fn admin(server: &str, sql: &str) -> Result<()> {
    let c = connect(&format!("{server}/postgres")).await?;
    c.batch_execute(sql)
        .await
        .with_context(|| format!("PostgreSQL: {sql}"))?;
    Ok(())
}

/// One chunk of events: ids `$1..=$2` of `$3`, event time from `$4` over 30 days (jitter
/// ±1 min, so event time follows storage order as in a live log), UUIDv7-shaped event ids
/// (time-ordered, as most log shippers send), payloads of compact JSON text with a level and
/// a message (stored in the `level` and `message` columns as the component would); one event
/// in 2,000 carries the rare term `$6` (the selective search's matches).
const EVENTS: &str = "INSERT INTO events (topic, event_id, \"timestamp\", source, payload, processed_at, level, message)
SELECT format('svc-%s.log', lpad(k::text, 4, '0')),
       format('%s-%s-7%s-8%s-%s', substr(h, 1, 8), substr(h, 9, 4), substr(m, 1, 3), substr(m, 4, 3), substr(m, 7, 12)),
       ts,
       format('host-%s', lpad(s::text, 2, '0')),
       format('{\"level\":\"%s\",\"msg\":\"%s\",\"request_id\":\"%s\",\"status\":%s,\"duration_ms\":%s,\"user\":\"u%s\"}',
              (ARRAY['info','info','info','info','warn','error','debug'])[li],
              msg,
              substr(m, 13, 20),
              (ARRAY[200,200,200,201,204,304,400,404,500])[1 + floor(r4 * 9)::int],
              floor(r5 * 900)::int, floor(r6 * 100000)::int),
       ts + (0.02 + r3 * 2) * interval '1 second',
       (ARRAY[3,3,3,3,4,5,2])[li]::smallint,
       msg
FROM (SELECT b.*, 1 + floor(r4 * 7)::int AS li,
             substr($5, 1 + floor(r5 * 40)::int, 20 + floor(r6 * 180)::int)
               || CASE WHEN g % 2000 = 0 THEN format(' %s on req-%s', $6::text, substr(m, 1, 8)) ELSE '' END AS msg
      FROM (SELECT g, k, s, ts, r3, r4, r5, r6, md5(g::text || 'e') AS m,
                   lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') AS h
            FROM (SELECT g,
                         least(1000, floor(exp(random() * ln(1001.0))))::int AS k,
                         floor(random() ^ 2 * 50)::int AS s,
                         $4::text::timestamptz
                           + ((g::float8 / $3::float8) * 30 * 86400 + (random() - 0.5) * 120) * interval '1 second' AS ts,
                         random() AS r3, random() AS r4, random() AS r5, random() AS r6
                  FROM generate_series($1::bigint, $2::bigint) AS g) AS a) AS b) AS c";

/// The volume rows those publishes would have left (per minute and hour, topic and level),
/// then the all-topic rows recomputed from them (the seed's included, all in shard 0).
const VOLUME: &str = "INSERT INTO volume_counters (grain, bucket, topic, level, shard, n)
SELECT g.grain, (floor(extract(epoch FROM e.\"timestamp\") / (60 * g.grain)) * g.grain)::bigint,
       e.topic, COALESCE(e.level, 0), 0, count(*)
FROM events AS e CROSS JOIN (VALUES (1), (60)) AS g(grain)
WHERE e.id > $1::bigint
GROUP BY 1, 2, 3, 4
ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET n = volume_counters.n + EXCLUDED.n";
const TOTALS: &str = "DELETE FROM volume_totals;
INSERT INTO volume_totals (grain, bucket, level, shard, n)
SELECT grain, bucket, level, 0, SUM(n) FROM volume_counters GROUP BY 1, 2, 3";

/// The component's trigram index (migration 3), dropped for the load and built after it.
const TRGM_INDEX: &str = "CREATE INDEX IF NOT EXISTS events_search_trgm \
     ON events USING gin ((COALESCE(message, payload)) gin_trgm_ops)";

/// The counters those publishes would have left: per topic, spread over the 16 shards,
/// received = inserted × (1 + duplicates / stored).
const COUNTERS: &str = "INSERT INTO topic_counters (topic, shard, received, inserted, last_event_at)
SELECT topic, s, ins + round(ins * $1::float8)::bigint, ins, last
FROM (SELECT topic, s::smallint AS s, n / 16 + CASE WHEN s < n % 16 THEN 1 ELSE 0 END AS ins, last
      FROM (SELECT topic, count(*) AS n, max(\"timestamp\") AS last FROM events WHERE id > $2::bigint GROUP BY topic) AS per
      CROSS JOIN generate_series(0, 15) AS s) AS x
WHERE ins > 0
ORDER BY topic, s
ON CONFLICT (topic, shard) DO UPDATE SET
    received = topic_counters.received + EXCLUDED.received,
    inserted = topic_counters.inserted + EXCLUDED.inserted,
    last_event_at = GREATEST(topic_counters.last_event_at, EXCLUDED.last_event_at)";

/// `$4` markers consumed between `$1` and `$1 + $2` seconds ago, keys shaped like queue
/// entry keys (`q/<millis>-<nonce>-<count>`), 70 % single publishes and 30 % batches of 100.
const MARKERS: &str = "INSERT INTO consumed_batches (batch_key, received, inserted, consumed_at)
SELECT format('q/%s-%s-%s', lpad(((extract(epoch FROM at) * 1000)::bigint)::text, 13, '0'),
              substr(md5(g::text || $3::text), 1, 16), c), c, 0, at
FROM (SELECT g, now() - ($1::float8 + random() * $2::float8) * interval '1 second' AS at,
             CASE WHEN random() < 0.7 THEN 1 ELSE 100 END AS c
      FROM generate_series(1, $4::bigint) AS g) AS x";

/// The component's `/stats` statement as it was until the scale run (five passes over
/// `topic_counters`), timed beside the one it runs now to show the gain.
const SNAPSHOT: &str = "SELECT (SELECT COALESCE(SUM(received), 0)::bigint FROM topic_counters), \
     (SELECT COALESCE(SUM(inserted), 0)::bigint FROM topic_counters), \
     (SELECT COALESCE(SUM(expired), 0)::bigint FROM topic_counters), \
     (SELECT COALESCE(SUM(received) FILTER (WHERE status <> 'applied'), 0)::bigint FROM dead_letters), \
     (SELECT count(*) FILTER (WHERE status = 'pending') FROM dead_letters), \
     (SELECT count(DISTINCT topic) FROM topic_counters WHERE topic <> ''), \
     (SELECT COALESCE(json_agg(t ORDER BY t.topic), '[]')::text FROM (\
       SELECT topic, SUM(received)::bigint AS received, SUM(inserted)::bigint AS unique_processed, \
       (SUM(received) - SUM(inserted))::bigint AS duplicate_dropped, SUM(expired)::bigint AS expired, \
       to_char(MAX(last_event_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
       AS last_event_at FROM topic_counters WHERE topic <> '' AND ($2::text IS NULL OR topic = $2) \
       GROUP BY topic ORDER BY topic LIMIT $3) AS t), \
     ARRAY(SELECT batch_key FROM consumed_batches WHERE batch_key = ANY($1::text[])), \
     (SELECT value FROM meta WHERE key = 'started_at')";

/// The component's `/stats` statement now (src/store/postgres.rs `SNAPSHOT`): one pass over
/// `topic_counters` (a CTE read by every total) instead of five, same result columns.
const SNAPSHOT_ONE_PASS: &str = "WITH per AS (SELECT topic, SUM(received)::bigint AS received, \
     SUM(inserted)::bigint AS unique_processed, SUM(expired)::bigint AS expired, \
     MAX(last_event_at) AS last FROM topic_counters GROUP BY topic) \
     SELECT (SELECT COALESCE(SUM(received), 0)::bigint FROM per), \
     (SELECT COALESCE(SUM(unique_processed), 0)::bigint FROM per), \
     (SELECT COALESCE(SUM(expired), 0)::bigint FROM per), \
     (SELECT COALESCE(SUM(received) FILTER (WHERE status <> 'applied'), 0)::bigint FROM dead_letters), \
     (SELECT count(*) FILTER (WHERE status = 'pending') FROM dead_letters), \
     (SELECT count(*) FROM per WHERE topic <> ''), \
     (SELECT COALESCE(json_agg(t ORDER BY t.topic), '[]')::text FROM (\
       SELECT topic, received, unique_processed, received - unique_processed AS duplicate_dropped, expired, \
       to_char(last AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS last_event_at \
       FROM per WHERE topic <> '' AND ($2::text IS NULL OR topic = $2) ORDER BY topic LIMIT $3) AS t), \
     ARRAY(SELECT batch_key FROM consumed_batches WHERE batch_key = ANY($1::text[])), \
     (SELECT value FROM meta WHERE key = 'started_at')";

/// Loads `n` events, their counters and the markers; returns notes on how.
pub(super) async fn load(
    url: &str,
    n: u64,
    recent: u64,
    old: u64,
    plan: &Plan,
    seed: u64,
) -> Result<Vec<String>> {
    let c = connect(url).await?;
    c.batch_execute("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
        .await?;
    c.execute("SELECT setseed($1)", &[&((seed % 1000) as f64 / 1000.0)])
        .await?;
    let before: i64 = c
        .query_one("SELECT COALESCE(max(id), 0) FROM events", &[])
        .await?
        .get(0);
    let chunks = n.div_ceil(1_000_000).max(1);
    let per = n.div_ceil(chunks);
    let t0 = utc(plan.t0);
    c.batch_execute("DROP INDEX IF EXISTS events_search_trgm")
        .await?;
    let started = Instant::now();
    let mut from = 1u64;
    while from <= n {
        let to = (from + per - 1).min(n);
        let (a, b, total) = (from as i64, to as i64, n as f64);
        c.execute(EVENTS, &[&a, &b, &total, &t0, &LOREM, &RARE])
            .await
            .context("loading events")?;
        say(&format!(
            "  PostgreSQL: {to} / {n} events ({:.0} s)",
            started.elapsed().as_secs_f64()
        ));
        from = to + 1;
    }
    let events_secs = started.elapsed().as_secs_f64();
    let t = Instant::now();
    c.batch_execute("SET maintenance_work_mem = '1GB'").await?;
    c.batch_execute(TRGM_INDEX)
        .await
        .context("building the trigram index")?;
    let index_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    c.execute(VOLUME, &[&before])
        .await
        .context("loading volume rows")?;
    c.batch_execute(TOTALS)
        .await
        .context("loading all-topic volume rows")?;
    let volume_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let dup = DUP_RATE / (1.0 - DUP_RATE);
    let rows = c
        .execute(COUNTERS, &[&dup, &before])
        .await
        .context("loading counters")?;
    let counters_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    c.execute(MARKERS, &[&0.0f64, &1800.0f64, &"r", &(recent as i64)])
        .await
        .context("recent markers")?;
    c.execute(
        MARKERS,
        &[&3900.0f64, &(86_400.0f64 - 3900.0), &"o", &(old as i64)],
    )
    .await
    .context("old markers")?;
    let markers_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    c.batch_execute("VACUUM (ANALYZE) events").await?;
    c.batch_execute("VACUUM (ANALYZE) topic_counters").await?;
    c.batch_execute("VACUUM (ANALYZE) consumed_batches").await?;
    c.batch_execute("VACUUM (ANALYZE) volume_counters").await?;
    c.batch_execute("VACUUM (ANALYZE) volume_totals").await?;
    let vacuum_secs = t.elapsed().as_secs_f64();
    Ok(vec![format!(
        "load (PostgreSQL): events by {chunks} `INSERT … SELECT … FROM generate_series` statement(s) in \
         {events_secs:.0} s (trigram index dropped), the trigram index built in {index_secs:.0} s, \
         volume rows in {volume_secs:.0} s, {rows} `topic_counters` rows (16 shards per topic) in {counters_secs:.0} s, \
         {recent} + {old} markers in {markers_secs:.0} s, `VACUUM (ANALYZE)` in {vacuum_secs:.0} s"
    )])
}

/// Markers in `consumed_batches`.
pub(super) async fn markers(url: &str) -> Result<u64> {
    let c = connect(url).await?;
    let n: i64 = c
        .query_one("SELECT count(*) FROM consumed_batches", &[])
        .await?
        .get(0);
    Ok(n as u64)
}

/// Bytes per stored event: events heap + TOAST + indexes over rows, with the index split.
pub(super) async fn storage(url: &str) -> Result<String> {
    let c = connect(url).await?;
    let r = c
        .query_one(
            "SELECT pg_total_relation_size('events'), pg_relation_size('events'), \
             pg_indexes_size('events'), (SELECT count(*) FROM events), \
             pg_total_relation_size('consumed_batches'), pg_total_relation_size('topic_counters')",
            &[],
        )
        .await?;
    let (total, heap, idx, rows): (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
    let per = |b: i64| b as f64 / rows.max(1) as f64;
    let mut s = format!(
        "{:.0} bytes per stored event ({rows} rows, {:.2} GB: table {:.0} B/event, indexes {:.0} B/event — ",
        per(total),
        total as f64 / 1e9,
        per(total - idx),
        per(idx)
    );
    let _ = heap;
    let idx_rows = c
        .query(
            "SELECT indexrelname::text, pg_relation_size(indexrelid) FROM pg_stat_user_indexes \
             WHERE relname = 'events' ORDER BY indexrelname",
            &[],
        )
        .await?;
    let parts: Vec<String> = idx_rows
        .iter()
        .map(|r| format!("{} {:.0}", r.get::<_, String>(0), per(r.get(1))))
        .collect();
    let _ = write!(
        s,
        "{}); markers table {:.0} MB, counters table {:.1} MB",
        parts.join(", "),
        r.get::<_, i64>(4) as f64 / 1e6,
        r.get::<_, i64>(5) as f64 / 1e6
    );
    Ok(s)
}

async fn explain(c: &Client, sql: &str, params: &[Param]) -> Result<String> {
    let owned: Vec<Box<dyn ToSql + Sync + Send>> = params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::T(s) => Box::new(s.clone()),
                Param::I(n) => Box::new(*n),
            }
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = owned
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = match c
        .query(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"), &refs)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            // Too slow to finish under statement_timeout: show the plan it chose instead.
            let plain = c.query(&format!("EXPLAIN {sql}"), &refs).await?;
            let mut lines = vec![format!(
                "EXPLAIN ANALYZE did not finish ({e}); the plan chosen:"
            )];
            lines.extend(plain.iter().map(|r| r.get::<_, String>(0)));
            return Ok(lines.join("\n"));
        }
    };
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the component's `/stats` and listing statements.
pub(super) async fn plans(url: &str, plan: &Plan, cursor: u64) -> Result<String> {
    let c = connect(url).await?;
    c.batch_execute("SET statement_timeout = '60s'").await?;
    let mut out = String::new();
    let empty: Vec<String> = vec![];
    for (label, sql) in [
        ("SNAPSHOT", SNAPSHOT),
        ("candidate fix: SNAPSHOT in one pass", SNAPSHOT_ONE_PASS),
    ] {
        let rows = c
            .query(
                &format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"),
                &[&empty, &None::<String>, &1000i64],
            )
            .await?;
        let text: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        let _ = writeln!(
            out,
            "`GET /stats` ({label}, limit 1000):\n\n```\n{}\n```\n",
            text.join("\n")
        );
    }
    for k in 2..=4 {
        let (sql, params) = listing_sql(true, k, plan, cursor).expect("listing kind");
        let _ = writeln!(
            out,
            "{} — `{sql}` with {params:?}:\n\n```\n{}\n```\n",
            super::KINDS[k],
            explain(&c, &sql, &params).await?
        );
        if k == 4 {
            let alt = sql.replace("ORDER BY id DESC", "ORDER BY \"timestamp\" DESC, id DESC");
            let _ = writeln!(
                out,
                "candidate fix for the time range — `{alt}`:\n\n```\n{}\n```\n",
                explain(&c, &alt, &params).await?
            );
        }
    }
    Ok(out)
}
