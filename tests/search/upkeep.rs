//! What happens to search and volume over a store's life: retention and maintenance (shard
//! folding) keep `/volume` exact, and upgrading a version-2 store backfills it.

use std::time::Duration;

use serde_json::{Value, json};

use super::support::HostConfig;
use super::support::app::{App, Backend};
use super::support::client;
use super::{event, get, ids, publish};

/// Retention takes expired events out of `/volume` too, and (PostgreSQL) maintenance folds
/// the volume rows of all shards into shard 0 without changing an answer.
pub fn retention_and_maintenance_keep_volume_exact(b: Backend) {
    let config = HostConfig::default().env("SPIN_VARIABLE_RETENTION", "3s");
    let app = App::start_with(b, config);
    let ts = |m: u32| format!("2024-05-01T10:{m:02}:00Z");
    let old: Vec<Value> = (0..10)
        .map(|i| event("ret", &format!("o{i}"), Some("error"), "old", &ts(i)))
        .collect();
    assert_eq!(publish(&app, &json!(old), false), 200);
    std::thread::sleep(Duration::from_millis(3500));
    // Several concurrent publishes: on PostgreSQL they land in several counter shards.
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let url = app.host.at("/publish");
            let e = event("ret", &format!("n{i}"), Some("warn"), "new", &ts(i));
            std::thread::spawn(move || {
                client()
                    .post(url)
                    .json(&e)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    // By topic (the topic's rows) and over all topics (the all-topic rows): the app holds
    // only this topic, so both must agree.
    let volume_of = |step: &str, topic: bool| {
        let mut query = vec![
            ("since", "2024-05-01T10:00:00Z".to_string()),
            ("until", "2024-05-01T11:00:00Z".into()),
            ("step", step.into()),
        ];
        if topic {
            query.push(("topic", "ret".into()));
        }
        let (s, v) = get(&app, "/volume", &query);
        assert_eq!(s, 200, "{v}");
        v
    };
    let volume = |step: &str| {
        let v = volume_of(step, true);
        let mut all = volume_of(step, false);
        all["topic"] = v["topic"].clone();
        assert_eq!(v, all, "all-topic rows disagree with the topic's");
        v
    };
    assert_eq!(volume("1h")["levels"]["error"], 10);
    let (s, report) = app.post("/maintenance", &json!({}));
    assert_eq!(s, 200, "{report}");
    for step in ["1m", "1h"] {
        let v = volume(step);
        assert_eq!(
            (v["total"].as_u64(), &v["levels"]["warn"]),
            (Some(6), &json!(6)),
            "{v}"
        );
        assert_eq!(v["counted_from"], "counters");
    }
    let minutes = volume("1m");
    let counts: Vec<u64> = minutes["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .collect();
    assert_eq!(&counts[..7], &[1, 1, 1, 1, 1, 1, 0]);
    let stats = app.stats();
    assert_eq!(stats["levels"]["error"], 10, "stored ever: {stats}");
    if let Some(db) = &app.db {
        let mut conn = db.connect();
        let other: i64 = conn
            .query_one(
                "SELECT (SELECT count(*) FROM volume_counters WHERE shard <> 0) \
                 + (SELECT count(*) FROM volume_totals WHERE shard <> 0)",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(other, 0, "maintenance folded every shard");
    }
}

/// A store at schema version 2 with events: version 3 backfills the volume rows and the
/// search index, so old events are found and counted.
pub fn upgrade_from_version_2_backfills_search_and_volume(b: Backend) {
    let mut app = App::start(b);
    let batch: Vec<Value> = (0..5)
        .map(|i| {
            event(
                "up",
                &format!("u{i}"),
                None,
                &format!("legacy line {i}"),
                "2024-05-01T10:00:00Z",
            )
        })
        .collect();
    assert_eq!(publish(&app, &json!(batch), false), 200);
    app.host.kill();
    // Take the store back to version 2 (what the previous release left).
    match &app.db {
        Some(db) => db
            .connect()
            .batch_execute(
                "DROP INDEX events_search_trgm; DROP INDEX events_tx_id; \
                 DROP INDEX events_topic_timestamp_id; DROP TABLE volume_counters; \
                 DROP TABLE volume_totals; \
                 ALTER TABLE events DROP COLUMN level, DROP COLUMN message, DROP COLUMN tx; \
                 ALTER TABLE topic_counters DROP COLUMN n_trace, DROP COLUMN n_debug, \
                 DROP COLUMN n_info, DROP COLUMN n_warn, DROP COLUMN n_error, DROP COLUMN n_fatal; \
                 DELETE FROM schema_migrations WHERE version >= 3",
            )
            .unwrap(),
        None => {
            let conn =
                rusqlite::Connection::open(app.host.state_dir().join("sqlite_db.db")).unwrap();
            conn.execute_batch(
                "DROP TRIGGER apply_one_insert; DROP VIEW apply_one; DROP TABLE apply_one_result; \
                 DROP INDEX events_topic_timestamp_id; DROP TABLE volume_counters; \
                 DROP TABLE volume_totals; DROP TABLE events_fts; \
                 ALTER TABLE events DROP COLUMN level; ALTER TABLE events DROP COLUMN message; \
                 ALTER TABLE topic_counters DROP COLUMN n_trace; ALTER TABLE topic_counters DROP COLUMN n_debug; \
                 ALTER TABLE topic_counters DROP COLUMN n_info; ALTER TABLE topic_counters DROP COLUMN n_warn; \
                 ALTER TABLE topic_counters DROP COLUMN n_error; ALTER TABLE topic_counters DROP COLUMN n_fatal; \
                 DELETE FROM schema_migrations WHERE version >= 3",
            )
            .unwrap();
        }
    }
    app.host.spawn();
    let (s, page) = get(&app, "/events", &[("q", "LEGACY line 3".into())]);
    assert_eq!(s, 200, "{page}");
    assert_eq!(ids(&page), ["u3"]);
    let (_, v) = get(
        &app,
        "/volume",
        &[
            ("since", "2024-05-01T10:00:00Z".to_string()),
            ("until", "2024-05-01T11:00:00Z".into()),
            ("step", "1h".into()),
        ],
    );
    assert_eq!(
        (v["total"].as_u64(), &v["levels"]["none"]),
        (Some(5), &json!(5)),
        "{v}"
    );
    assert_eq!(app.stats()["levels"]["none"], 5);
}
