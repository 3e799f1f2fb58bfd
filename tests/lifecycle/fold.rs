//! PostgreSQL only: maintenance folds counter shards in bounded chunks. A store that missed
//! maintenance holds many volume rows outside shard 0 (2.3 M at 10 M events); one call must
//! move at most a chunk of them per statement, never all rows of a `(topic, shard)` pair at
//! once, which ran past the statement limit on every call. Publishers writing the same rows
//! meanwhile must neither deadlock nor change a count.

use std::collections::BTreeMap;
use std::thread;

use super::ev;
use super::support::HostConfig;
use super::support::app::{App, Backend};
use serde_json::{Value, json};

/// Minute rows seeded outside shard 0: more than two chunks of 5,000.
const MINUTES: i64 = 12_000;

/// Per `(grain, bucket)` of topic `fold`, the count summed over levels and shards.
fn sums(app: &App) -> BTreeMap<(i16, i64), i64> {
    let mut conn = app.db.as_ref().unwrap().connect();
    conn.query(
        "SELECT grain, bucket, SUM(n)::bigint FROM volume_counters WHERE topic = 'fold' \
         GROUP BY 1, 2",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| ((r.get(0), r.get(1)), r.get(2)))
    .collect()
}

/// Volume rows of topic `fold` not in shard 0.
fn unfolded(app: &App) -> i64 {
    let mut conn = app.db.as_ref().unwrap().connect();
    conn.query_one(
        "SELECT count(*) FROM volume_counters WHERE topic = 'fold' AND shard <> 0",
        &[],
    )
    .unwrap()
    .get(0)
}

/// The minute of 1970-01-01 an event at `m` minutes past midnight falls in, as a timestamp.
fn minute(m: i64) -> String {
    format!("1970-01-01T{:02}:{:02}:30Z", m / 60, m % 60)
}

#[test]
fn maintenance_folds_volume_rows_a_chunk_at_a_time_beside_publishers() {
    // The smallest budget: every call does one round of chunks, then answers `more`.
    let app = App::start_with(
        Backend::PostgresRedis,
        HostConfig::default().env("SPIN_VARIABLE_WORK_BUDGET_MS", "1"),
    );
    assert_eq!(
        app.post("/publish", &ev("fold", "first", "s", &minute(0)))
            .0,
        200
    );
    while app.post("/maintenance", &json!({})).1["more"] == true {}
    // A store that missed maintenance: every minute of 1970-01-01 … 09 in shard 3, and its hours.
    app.db
        .as_ref()
        .unwrap()
        .connect()
        .batch_execute(&format!(
            "INSERT INTO volume_counters (grain, bucket, topic, level, shard, n) \
             SELECT 1, m, 'fold', 0, 3, 1 FROM generate_series(0, {last}) AS m \
             ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET \
             n = volume_counters.n + 1; \
             INSERT INTO volume_counters (grain, bucket, topic, level, shard, n) \
             SELECT 60, h * 60, 'fold', 0, 3, 60 FROM generate_series(0, {hours}) AS h \
             ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET \
             n = volume_counters.n + 60",
            last = MINUTES - 1,
            hours = MINUTES / 60 - 1,
        ))
        .unwrap();
    let seeded = sums(&app);
    assert!(unfolded(&app) >= MINUTES, "seeded outside shard 0");

    // One call with the least budget moves one chunk of volume rows, not the pair's 12,200.
    let (s, report) = app.post("/maintenance", &json!({}));
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["more"], true, "{report}");
    let left = unfolded(&app);
    assert!(
        (MINUTES - 5_000..MINUTES).contains(&left),
        "one chunk folded, {left} rows left: {report}"
    );

    // Publishers write the same minute rows (in random shards) while maintenance folds them.
    let publisher = {
        let url = app.host.at("/publish");
        thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut sent = Vec::new();
            for i in 0..300_i64 {
                let m = (i * 37) % 600;
                let body = ev("fold", &format!("p{i}"), "s", &minute(m));
                let resp = client.post(&url).json(&body).send().unwrap();
                assert_eq!(resp.status().as_u16(), 200, "publish {i}");
                sent.push(m);
            }
            sent
        })
    };
    let mut calls = 1;
    loop {
        let (s, report): (u16, Value) = app.post("/maintenance", &json!({}));
        assert_eq!(s, 200, "{report}");
        calls += 1;
        if report["more"] == false && publisher.is_finished() {
            break;
        }
        assert!(calls < 1_000, "maintenance never finishes: {report}");
    }
    let sent = publisher.join().unwrap();
    // A last call folds what the publishers wrote after the previous one.
    while app.post("/maintenance", &json!({})).1["more"] == true {}

    assert_eq!(unfolded(&app), 0, "everything folded into shard 0");
    let mut expected = seeded;
    for m in sent {
        *expected.entry((1, m)).or_default() += 1;
        *expected.entry((60, m / 60 * 60)).or_default() += 1;
    }
    assert_eq!(sums(&app), expected, "no count moved by folding");
    // And /volume reads the folded counts: the first hour by minute.
    let (s, body) =
        app.get("/volume?topic=fold&since=1970-01-01T00:00:00Z&until=1970-01-01T01:00:00Z&step=1m");
    assert_eq!(s, 200, "{body}");
    let buckets = body["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 60, "{body}");
    for (m, bucket) in buckets.iter().enumerate() {
        assert_eq!(
            bucket["count"].as_i64(),
            Some(expected[&(1, m as i64)]),
            "minute {m}: {bucket}"
        );
    }
}
