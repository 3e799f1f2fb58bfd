//! The service left running: dead letters (`lifecycle/dead_letters.rs`), budgeted drains
//! (parallel ones in `lifecycle/lanes.rs`), marker compaction, retention, per-topic counters and
//! the log queries — through the real `.wasm` on edge-host, on both backends (SQLite defaults;
//! PostgreSQL + Redis). PostgreSQL's apply function (migration 5, Spin-like statements):
//! `lifecycle/apply_function.rs`; SQLite's one-statement single publish (migration 5):
//! `lifecycle/apply_one.rs`; counter folding in bounded chunks beside publishers:
//! `lifecycle/fold.rs`.

mod support;

#[path = "lifecycle/apply_function.rs"]
mod apply_function;

#[path = "lifecycle/apply_one.rs"]
mod apply_one;

#[path = "lifecycle/dead_letters.rs"]
mod dead_letters;

#[path = "lifecycle/fold.rs"]
mod fold;

#[path = "lifecycle/lanes.rs"]
mod lanes;

use dead_letters::dead_letters_are_moved_aside_listed_retried_and_discarded;
use lanes::{
    parallel_lane_drains_apply_every_entry_once, parallel_plain_drains_apply_every_entry_once,
};

use serde_json::{Value, json};
use std::time::Duration;
use support::app::{App, Backend, event};
use support::{HostConfig, client};

fn ev(topic: &str, id: &str, source: &str, ts: &str) -> Value {
    json!({"topic": topic, "event_id": id, "timestamp": ts, "source": source, "payload": {"id": id}})
}

/// Makes the store refuse events whose source is `poison` (a permanent, data-caused error).
fn poison_the_store(app: &App) {
    match &app.db {
        Some(db) => {
            db.connect()
                .batch_execute(
                    "ALTER TABLE events ADD CONSTRAINT no_poison CHECK (source <> 'poison')",
                )
                .unwrap();
        }
        None => sqlite_file(app)
            .execute_batch(
                "CREATE TRIGGER no_poison BEFORE INSERT ON events WHEN NEW.source = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: no_poison'); END",
            )
            .unwrap(),
    }
}

fn cure_the_store(app: &App) {
    match &app.db {
        Some(db) => db
            .connect()
            .batch_execute("ALTER TABLE events DROP CONSTRAINT no_poison")
            .unwrap(),
        None => sqlite_file(app)
            .execute_batch("DROP TRIGGER no_poison")
            .unwrap(),
    }
}

/// The app's SQLite event database, opened beside the host (WAL allows it).
fn sqlite_file(app: &App) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(app.host.state_dir().join("sqlite_db.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

fn drain_until_done(app: &App) -> Vec<Value> {
    let mut answers = Vec::new();
    for _ in 0..1000 {
        let (s, body) = app.post("/drain", &json!({}));
        assert_eq!(s, 200, "{body}");
        let more = body["more"].as_bool().unwrap();
        answers.push(body);
        if !more {
            return answers;
        }
    }
    panic!("drain never finished");
}

/// One counter summed over a series of `/drain` answers.
fn sum(answers: &[Value], field: &str) -> u64 {
    answers.iter().map(|a| a[field].as_u64().unwrap()).sum()
}

fn drains_are_bounded_and_group_committed(b: Backend) {
    let config = HostConfig::default().env("SPIN_VARIABLE_WORK_BUDGET_MS", "1");
    let app = App::start_with(b, config);
    // More entries than one group takes (256), so a 1 ms budget must stop after the first.
    let batch = |i: usize| -> Value {
        (0..5)
            .map(|j| event("bulk", &format!("{}", (i * 5 + j) % 1000)))
            .collect::<Vec<_>>()
            .into()
    };
    for i in 0..300 {
        let (s, _) = app.post("/publish/batch?async=true", &batch(i));
        assert_eq!(s, 202);
    }
    let answers = drain_until_done(&app);
    assert!(
        answers.len() > 1,
        "a 1 ms budget leaves work for the next call"
    );
    assert!(answers[0]["more"].as_bool().unwrap());
    let drained = sum(&answers, "drained_batches");
    let stored = sum(&answers, "processed");
    assert_eq!((drained, stored), (300, 1000));
    let stats = app.stats();
    assert_eq!(
        (
            &stats["received"],
            &stats["unique_processed"],
            &stats["duplicate_dropped"]
        ),
        (&json!(1500), &json!(1000), &json!(500))
    );
    assert_eq!(answers.last().unwrap()["queued"], 0);
}

fn per_topic_stats_and_metrics(b: Backend) {
    let config = HostConfig::default().env("SPIN_VARIABLE_MAX_TOPIC_LABELS", "1");
    let app = App::start_with(b, config);
    let (s, _) = app.post(
        "/publish",
        &json!([
            ev("alpha", "1", "s", "2024-05-01T12:00:00Z"),
            ev("alpha", "1", "s", "2024-05-01T12:00:00Z"),
            ev("alpha", "2", "s", "2024-05-02T08:00:00+02:00"),
            ev("beta", "1", "s", "2024-04-01T00:00:00Z"),
        ]),
    );
    assert_eq!(s, 200);
    let stats = app.stats();
    assert_eq!(stats["topics"], json!(["alpha", "beta"]));
    assert_eq!(
        stats["topic_stats"][0],
        json!({"topic": "alpha", "received": 3, "unique_processed": 2, "duplicate_dropped": 1,
               "expired": 0, "last_event_at": "2024-05-02T06:00:00.000000Z",
               "levels": {"trace": 0, "debug": 0, "info": 0, "warn": 0, "error": 0, "fatal": 0,
                          "none": 2}})
    );
    let (_, one) = app.get("/stats?topic=beta");
    assert_eq!(one["topic_stats"].as_array().unwrap().len(), 1);
    assert_eq!(one["topic_stats"][0]["topic"], "beta");
    assert_eq!(one["received"], 4, "totals stay global");
    assert_eq!(app.get("/stats?topic=").0, 422);
    let metrics = metrics(&app);
    assert!(
        metrics.contains("edgelog_topic_events_received_total{topic=\"alpha\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgelog_topic_events_received_total{topic=\"_other\"} 1\n"),
        "{metrics}"
    );
    // Maintenance folds the counter shards (PostgreSQL): the figures do not move.
    for i in 0..12 {
        let e = ev("alpha", &format!("f{i}"), "s", "2024-05-01T12:00:00Z");
        assert_eq!(app.post("/publish", &e).0, 200);
    }
    let before = app.stats();
    let (s, report) = app.post("/maintenance", &json!({}));
    assert_eq!(s, 200, "{report}");
    let after = app.stats();
    for field in [
        "received",
        "unique_processed",
        "duplicate_dropped",
        "topic_stats",
    ] {
        assert_eq!(
            before[field], after[field],
            "{field} across a fold: {report}"
        );
    }
    if let Some(db) = &app.db {
        assert!(report["folded_counters"].as_u64().unwrap() > 0, "{report}");
        let rows: i64 = db
            .connect()
            .query_one(
                "SELECT count(*) FROM topic_counters WHERE topic = 'alpha'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(rows, 1, "one row per topic after a fold");
    }
}

fn queries_filter_by_source_and_time_with_bounded_offsets(b: Backend) {
    let app = App::start(b);
    let events: Vec<Value> = (0..6)
        .map(|i| {
            let source = if i % 2 == 0 { "api" } else { "worker" };
            ev(
                "q",
                &format!("e{i}"),
                source,
                &format!("2024-05-0{}T00:00:00Z", i + 1),
            )
        })
        .collect();
    assert_eq!(app.post("/publish", &json!(events)).0, 200);
    let ids = |path: &str| -> Vec<String> {
        let (s, body) = app.get(path);
        assert_eq!(s, 200, "{path}: {body}");
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut api = ids("/events?source=api");
    api.sort();
    assert_eq!(api, ["e0", "e2", "e4"]);
    let mut window = ids("/events?topic=q&since=2024-05-02T00:00:00Z&until=2024-05-04T00:00:00Z");
    window.sort();
    assert_eq!(window, ["e1", "e2"], "since inclusive, until exclusive");
    // An inverted or empty range is valid and matches nothing, though events lie between its ends.
    for path in [
        "/events?since=2024-05-04T00:00:00Z&until=2024-05-02T00:00:00Z",
        "/events?topic=q&since=2024-05-02T00:00:00Z&until=2024-05-02T00:00:00Z",
    ] {
        let (s, body) = app.get(path);
        assert_eq!(
            (s, &body["events"], &body["count"], &body["next_cursor"]),
            (200, &json!([]), &json!(0), &Value::Null),
            "{path}: {body}"
        );
    }
    let mut both = ids("/events?source=worker&since=2024-05-03T00:00:00%2B00:00");
    both.sort();
    assert_eq!(both, ["e3", "e5"]);
    // Paging through a filtered query with the cursor.
    let (_, page) = app.get("/events?source=api&limit=2");
    let cursor = page["next_cursor"].as_i64().unwrap();
    let (_, rest) = app.get(&format!("/events?source=api&limit=2&before={cursor}"));
    assert_eq!(rest["count"], 1);
    // A time range pages newest event time first, through the same id cursor: a late event
    // with an old timestamp (the highest id) comes where its time puts it.
    let late = ev("q", "e6", "late", "2024-05-01T12:00:00Z");
    assert_eq!(app.post("/publish", &late).0, 200);
    let mut seen = Vec::new();
    let mut path = "/events?since=2024-05-01T00:00:00Z&limit=2".to_owned();
    loop {
        let (s, page) = app.get(&path);
        assert_eq!(s, 200, "{page}");
        for e in page["events"].as_array().unwrap() {
            seen.push(e["event_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_i64() {
            Some(c) => path = format!("/events?since=2024-05-01T00:00:00Z&limit=2&before={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["e5", "e4", "e3", "e2", "e1", "e6", "e0"]);
    // Deep offsets point at the cursor instead of scanning.
    let (s, body) = app.get("/events?offset=10001");
    assert_eq!(s, 422);
    assert_eq!(body["details"][0]["field"], "offset");
    assert!(
        body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("before")
    );
    for (bad, field) in [
        ("/events?topic=%00", "topic"),
        ("/events?since=yesterday", "since"),
    ] {
        let (s, body) = app.get(bad);
        assert_eq!(
            (s, &body["details"][0]["field"]),
            (422, &json!(field)),
            "{bad}: {body}"
        );
    }
    // Probes: liveness touches nothing, readiness and the full check answer while all is up.
    assert_eq!(
        app.get("/health?probe=live"),
        (200, json!({"status": "alive"}))
    );
    assert_eq!(app.get("/health?probe=ready").1["status"], "healthy");
    assert_eq!(app.get("/health?probe=maybe").0, 422);
    // HEAD wherever GET.
    for path in [
        "/events",
        "/stats",
        "/health",
        "/metrics",
        "/",
        "/openapi.json",
        "/dead-letters",
    ] {
        let resp = client().head(app.host.at(path)).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "HEAD {path}");
    }
}

fn markers_are_compacted_without_ever_applying_twice(b: Backend) {
    let config = HostConfig::default().env("SPIN_VARIABLE_MARKER_HORIZON", "1s");
    let app = App::start_with(b, config);
    let (s, _) = app.post(
        "/publish?async=true",
        &json!([event("m", "1"), event("m", "2")]),
    );
    assert_eq!(s, 202);
    // Keep a copy of the queued entry, then let a consumer apply and delete it.
    let (key, value) = queue_entries(&app).pop().expect("one entry");
    drain_until_done(&app);
    for i in 0..5 {
        assert_eq!(app.post("/publish", &event("m", &format!("s{i}"))).0, 200);
    }
    // A consumer that crashed between its commit and its delete leaves the entry behind.
    put_queue_entry(&app, &key, &value);
    std::thread::sleep(Duration::from_millis(1500));
    let (s, report) = app.post("/maintenance", &json!({}));
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["released_entries"], 1, "{report}");
    assert!(
        report["compacted_markers"].as_u64().unwrap() >= 5,
        "{report}"
    );
    assert_eq!(
        markers(&app),
        1,
        "the released entry's marker was kept (its age restarted)"
    );
    assert!(queue_entries(&app).is_empty());
    let stats = app.stats();
    assert_eq!(
        (
            &stats["received"],
            &stats["unique_processed"],
            &stats["queued"]
        ),
        (&json!(7), &json!(7), &json!(0)),
        "applied once: {stats}"
    );
    // The same left-behind entry, found by a consumer instead: still applied once.
    put_queue_entry(&app, &key, &value);
    let stats = app.stats();
    assert_eq!(
        (&stats["received"], &stats["queued"]),
        (&json!(7), &json!(0)),
        "{stats}"
    );
    assert!(queue_entries(&app).is_empty());
}

fn retention_expires_old_events_in_chunks(b: Backend) {
    let config = HostConfig::default().env("SPIN_VARIABLE_RETENTION", "1s");
    let mut app = App::start_with(b, config);
    let old: Vec<Value> = (0..30).map(|i| event("ret", &format!("o{i}"))).collect();
    assert_eq!(app.post("/publish", &json!(old)).0, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(app.post("/publish", &event("ret", "new")).0, 200);
    // A crash in the middle of maintenance leaves whole chunks: run one and kill the host.
    let url = app.host.at("/maintenance");
    let racer = std::thread::spawn(move || client().post(url).send().map(|r| r.status()));
    std::thread::sleep(Duration::from_millis(5));
    app.host.kill();
    let _ = racer.join();
    app.host.spawn();
    let (s, report) = app.post("/maintenance", &json!({}));
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["retention"], "1s");
    let stats = app.stats();
    assert_eq!(stats["expired"], 30, "{stats}");
    assert_eq!(stats["unique_processed"], 31, "stored ever: {stats}");
    assert_eq!(stats["topic_stats"][0]["expired"], 30);
    let left: Vec<String> = app
        .all_events("ret")
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["new"]);
    // Past retention a key is new again (a deduplication window, as in JetStream / SQS FIFO).
    let (s, body) = app.post("/publish", &event("ret", "o1"));
    assert_eq!((s, &body["processed"]), (200, &json!(1)));
}

/// The Prometheus text of `/metrics`.
fn metrics(app: &App) -> String {
    client()
        .get(app.host.at("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// Queue entries (key, value) straight from the key-value store.
fn queue_entries(app: &App) -> Vec<(String, Vec<u8>)> {
    match &app.redis {
        Some(r) => {
            let mut conn = redis::Client::open(r.url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let keys: Vec<String> = redis::cmd("KEYS").arg("q/*").query(&mut conn).unwrap();
            keys.into_iter()
                .map(|k| {
                    let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut conn).unwrap();
                    (k, v)
                })
                .collect()
        }
        None => {
            let conn = kv_file(app);
            let mut stmt = conn
                .prepare("SELECT key, value FROM spin_key_value WHERE key LIKE 'q/%'")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
    }
}

fn put_queue_entry(app: &App, key: &str, value: &[u8]) {
    match &app.redis {
        Some(r) => {
            let mut conn = redis::Client::open(r.url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: () = redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query(&mut conn)
                .unwrap();
        }
        None => {
            kv_file(app)
                .execute(
                    "INSERT INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
                    rusqlite::params![key, value],
                )
                .unwrap();
        }
    }
}

fn kv_file(app: &App) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open(app.host.state_dir().join("sqlite_key_value.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

fn markers(app: &App) -> i64 {
    match &app.db {
        Some(db) => db
            .connect()
            .query_one("SELECT count(*) FROM consumed_batches", &[])
            .unwrap()
            .get(0),
        None => sqlite_file(app)
            .query_row("SELECT count(*) FROM consumed_batches", [], |r| r.get(0))
            .unwrap(),
    }
}

macro_rules! suite {
    ($backend:expr => $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::$name($backend);
            }
        )*
    };
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::support::app::Backend;
            suite!(Backend::Sqlite => $($name),*);
        }
        mod postgres_redis {
            use super::support::app::Backend;
            suite!(Backend::PostgresRedis => $($name),*);
        }
    };
}

both!(
    dead_letters_are_moved_aside_listed_retried_and_discarded,
    drains_are_bounded_and_group_committed,
    parallel_lane_drains_apply_every_entry_once,
    parallel_plain_drains_apply_every_entry_once,
    per_topic_stats_and_metrics,
    queries_filter_by_source_and_time_with_bounded_offsets,
    markers_are_compacted_without_ever_applying_twice,
    retention_expires_old_events_in_chunks,
);
