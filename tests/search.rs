//! Finding things (issue 16), end to end on both backends: severity (`level`), text search
//! (`q`), event-time order with keyset paging, the live tail (`after` + `wait`) and `/volume`.
//!
//! The property test publishes generated events — words from a small vocabulary (identifiers,
//! mixed case, a phrase, LIKE wildcards, words shorter than a trigram), levels spelled with
//! aliases in the event or in its payload, times with ties, five payload shapes — through the
//! real component to SQLite and to PostgreSQL + Redis (one third of them queued with
//! `Prefer: respond-async`), then checks that generated `/events` questions (q, level, topic,
//! source, `order=time` or stored, paged through the cursor with small pages) and `/volume`
//! questions (steps of 1, 5 and 60 minutes) return exactly what a naive filter of the same
//! events says (`search/model.rs`). `PROPTEST_CASES` sets the number of cases (default 10),
//! `PROPTEST_RNG_SEED` replays one.

mod support;

#[path = "search/model.rs"]
mod model;
#[path = "search/naive.rs"]
mod naive;
#[path = "search/upkeep.rs"]
mod upkeep;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use serde_json::{Value, json};
use support::app::{App, Backend};
use support::client;

/// GET with query parameters (encoded by the client).
fn get(app: &App, path: &str, params: &[(&str, String)]) -> (u16, Value) {
    let resp = client()
        .get(app.host.at(path))
        .query(params)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// POST /publish/batch, synchronously or queued (`Prefer: respond-async`).
fn publish(app: &App, events: &Value, queued: bool) -> u16 {
    let mut req = client()
        .post(app.host.at("/publish/batch"))
        .header("content-type", "application/json")
        .body(events.to_string());
    if queued {
        req = req.header("prefer", "respond-async");
    }
    req.send().unwrap().status().as_u16()
}

fn ids(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The property test.
// ---------------------------------------------------------------------------------------------

#[test]
fn search_level_time_order_and_volume_match_a_naive_filter_on_both_backends() {
    let apps = [
        App::start(Backend::Sqlite),
        App::start(Backend::PostgresRedis),
    ];
    let mut config = Config {
        failure_persistence: None,
        max_shrink_iters: 16,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 10;
    }
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    config.rng_seed = RngSeed::Fixed(seed);
    let cases = config.cases;
    let strategy = (
        proptest::collection::vec(model::ev(), 1..40),
        proptest::collection::vec(model::ask(), 6),
    );
    let result = TestRunner::new(config).run(&strategy, |(events, asks)| {
        let case = naive::next_case();
        for (app, name) in apps.iter().zip(["sqlite", "postgres+redis"]) {
            naive::check_case(app, name, &events, &asks, case).map_err(|e| {
                eprintln!("search failure: {e}");
                TestCaseError::fail(e)
            })?;
        }
        Ok(())
    });
    match result {
        Ok(()) => eprintln!("{cases} cases matched the naive filter (seed {seed})"),
        Err(TestError::Fail(reason, (events, asks))) => panic!(
            "{reason}\n(replay with PROPTEST_RNG_SEED={seed}; smallest case: {events:?}\n{asks:?})"
        ),
        Err(TestError::Abort(reason)) => panic!("proptest aborted: {reason} (seed {seed})"),
    }
}

// ---------------------------------------------------------------------------------------------
// Level, search and the live tail, each on both backends.
// ---------------------------------------------------------------------------------------------

fn event(topic: &str, id: &str, level: Option<&str>, message: &str, ts: &str) -> Value {
    let mut v = json!({"topic": topic, "event_id": id, "timestamp": ts, "source": "svc",
                       "payload": {"message": message}});
    if let Some(l) = level {
        v["level"] = json!(l);
    }
    v
}

fn levels_are_stored_filtered_and_counted(b: Backend) {
    let app = App::start(b);
    let ts = "2024-05-01T12:00:00Z";
    let batch = json!([
        event("lv", "1", Some("TRACE"), "a", ts),
        event("lv", "2", Some("dbg"), "b", ts),
        event("lv", "3", Some("info"), "c", ts),
        event("lv", "4", Some("Warning"), "d", ts),
        event("lv", "5", Some("err"), "e", ts),
        event("lv", "6", Some("CRITICAL"), "f", ts),
        event("lv", "7", None, "g", ts),
        {"topic": "lv", "event_id": "8", "timestamp": ts, "source": "svc",
         "payload": {"msg": "h", "level": "warn"}},
        event("other", "9", Some("error"), "i", ts),
    ]);
    assert_eq!(publish(&app, &batch, false), 200);
    let levels_of = |query: &[(&str, String)]| -> Vec<(String, Value)> {
        let (s, page) = get(&app, "/events", query);
        assert_eq!(s, 200, "{page}");
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["event_id"].as_str().unwrap().to_owned(),
                    e["level"].clone(),
                )
            })
            .collect()
    };
    let all = levels_of(&[("topic", "lv".into())]);
    let stored: BTreeMap<String, Value> = all.into_iter().collect();
    assert_eq!(stored["1"], "trace");
    assert_eq!(stored["2"], "debug");
    assert_eq!(stored["4"], "warn");
    assert_eq!(stored["6"], "fatal");
    assert_eq!(stored["7"], Value::Null);
    assert_eq!(stored["8"], "warn", "taken from the payload");
    let warn_up: Vec<String> = levels_of(&[("topic", "lv".into()), ("level", "WARN".into())])
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(warn_up, ["8", "6", "5", "4"]);
    let set: Vec<String> = levels_of(&[("level", "warning,debug".into())])
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(set, ["8", "4", "2"]);
    // Counted per level, per topic and in total, and in /metrics.
    let stats = app.stats();
    assert_eq!(
        stats["levels"],
        json!({"trace": 1, "debug": 1, "info": 1, "warn": 2, "error": 2, "fatal": 1, "none": 1})
    );
    let lv = stats["topic_stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "lv")
        .unwrap();
    assert_eq!(lv["levels"]["error"], 1);
    assert_eq!(lv["levels"]["none"], 1);
    let metrics = client()
        .get(app.host.at("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("edgelog_events_stored_by_level_total{level=\"warn\"} 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("edgelog_events_stored_by_level_total{level=\"none\"} 1\n"));
    // A level that is not one: 422 naming it, nothing stored or counted.
    let (s, body) = app.post("/publish", &event("lv", "10", Some("loud"), "x", ts));
    assert_eq!(
        (s, body["details"][0]["field"].as_str()),
        (422, Some("level")),
        "{body}"
    );
    let (s, body) = get(&app, "/events", &[("level", "loud".into())]);
    assert_eq!(
        (s, body["details"][0]["field"].as_str()),
        (422, Some("level")),
        "{body}"
    );
    assert_eq!(app.stats()["levels"]["none"], 1);
}

fn search_finds_substrings_phrases_and_excludes(b: Backend) {
    let app = App::start(b);
    let ts = "2024-05-01T12:00:00Z";
    let batch = json!([
        event("s", "1", Some("error"), "checkout failed: ERR_CONN_RESET on req-7f3a9c", ts),
        event("s", "2", Some("warn"), "checkout slow, retry ok", ts),
        event("s", "3", None, "db timeout after 30s", ts),
        {"topic": "s", "event_id": "4", "timestamp": ts, "source": "svc",
         "payload": {"note": "no message member: the whole payload is searched", "code": "E_DB_TIMEOUT"}},
        {"topic": "s", "event_id": "5", "timestamp": ts, "source": "svc",
         "payload": {"body": {"stringValue": "otlp body conn_reset"}}},
    ]);
    assert_eq!(publish(&app, &batch, false), 200);
    let find = |q: &str| -> Vec<String> {
        let (s, page) = get(&app, "/events", &[("q", q.into()), ("topic", "s".into())]);
        assert_eq!(s, 200, "{q}: {page}");
        let mut got = ids(&page);
        got.sort();
        got
    };
    assert_eq!(find("err_conn_reset"), ["1"], "case-insensitive");
    assert_eq!(find("7F3A"), ["1"], "substring of an identifier");
    assert_eq!(find("conn_reset"), ["1", "5"]);
    assert_eq!(find("checkout -failed"), ["2"]);
    assert_eq!(find("\"retry ok\""), ["2"]);
    assert_eq!(find("\"ok retry\""), Vec::<String>::new());
    assert_eq!(
        find("timeout"),
        ["3", "4"],
        "message, then the whole payload"
    );
    assert_eq!(
        find("note"),
        ["4"],
        "keys of a payload without a message are searched"
    );
    assert_eq!(
        find("db"),
        ["3", "4"],
        "two characters: below a trigram, still found"
    );
    assert_eq!(find("-checkout -db"), ["5"], "only exclusions");
    assert_eq!(
        find("stringValue"),
        ["5"],
        "a non-string body is searched as JSON"
    );
    let (s, body) = get(&app, "/events", &[("q", "  ".into())]);
    assert_eq!((s, body["details"][0]["field"].as_str()), (422, Some("q")));
}

fn event_time_order_pages_by_cursor(b: Backend) {
    let app = App::start(b);
    // Published out of time order, with ties.
    let times = [
        "2024-05-01T10:14:00Z",
        "2024-05-01T10:13:00Z",
        "2024-05-01T10:09:00Z",
        "2024-05-01T10:12:00Z",
        "2024-05-01T10:12:00Z",
        "2024-05-01T10:15:00Z",
    ];
    for (i, ts) in times.iter().enumerate() {
        assert_eq!(
            publish(
                &app,
                &json!([event("o", &i.to_string(), None, "m", ts)]),
                false
            ),
            200
        );
    }
    let mut got = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut p = vec![
            ("order", "time".to_string()),
            ("limit", "2".into()),
            ("topic", "o".into()),
        ];
        if let Some(b) = before {
            p.push(("before", b.to_string()));
        }
        let (s, page) = get(&app, "/events", &p);
        assert_eq!((s, page["order"].as_str()), (200, Some("time")), "{page}");
        got.extend(ids(&page));
        match page["next_cursor"].as_i64() {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(
        got,
        ["5", "0", "1", "4", "3", "2"],
        "newest event time first, ties by id"
    );
    let (_, page) = get(&app, "/events", &[("topic", "o".into())]);
    assert_eq!(page["order"], "stored", "the default stays stored order");
    assert_eq!(ids(&page), ["5", "4", "3", "2", "1", "0"]);
    let (s, body) = get(&app, "/events", &[("order", "newest".into())]);
    assert_eq!(
        (s, body["details"][0]["field"].as_str()),
        (422, Some("order"))
    );
}

fn tail_returns_new_events_or_nothing_when_wait_expires(b: Backend) {
    let app = App::start(b);
    let ts = "2024-05-01T12:00:00Z";
    assert_eq!(
        publish(
            &app,
            &json!([event("tail", "old", None, "before", ts)]),
            false
        ),
        200
    );
    let (_, page) = get(&app, "/events", &[("limit", "1".into())]);
    let cursor = page["tail_cursor"].as_str().unwrap().to_owned();
    // Nothing new: the wait expires with an empty page and a cursor to go on from.
    let (s, empty) = get(
        &app,
        "/events",
        &[("after", cursor.clone()), ("wait", "1".into())],
    );
    assert_eq!(s, 200, "{empty}");
    assert_eq!(
        (empty["count"].as_u64(), empty["order"].as_str()),
        (Some(0), Some("tail"))
    );
    let cursor = empty["tail_cursor"].as_str().unwrap().to_owned();
    // A waiting client (filtered by topic and level) gets the event published while it waits.
    let url = app.host.at("/events");
    let waiting = {
        let cursor = cursor.clone();
        std::thread::spawn(move || {
            let resp = client()
                .get(url)
                .query(&[
                    ("after", cursor.as_str()),
                    ("wait", "20"),
                    ("topic", "tail"),
                    ("level", "warn"),
                ])
                .send()
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().unwrap())
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        publish(
            &app,
            &json!([event("other", "x", Some("error"), "no", ts)]),
            false
        ),
        200
    );
    assert_eq!(
        publish(
            &app,
            &json!([event("tail", "quiet", Some("info"), "no", ts)]),
            false
        ),
        200
    );
    assert_eq!(
        publish(
            &app,
            &json!([event("tail", "new", Some("error"), "yes", ts)]),
            false
        ),
        200
    );
    let (s, page) = waiting.join().unwrap();
    assert_eq!(s, 200, "{page}");
    assert_eq!(ids(&page), ["new"]);
    // From its cursor: nothing more (the events it skipped are behind it).
    let next = page["tail_cursor"].as_str().unwrap().to_owned();
    let (_, again) = get(
        &app,
        "/events",
        &[("after", next), ("topic", "tail".into())],
    );
    assert_eq!(again["count"], 0, "{again}");
    // The whole history in stored order, oldest first, from the start.
    let (_, all) = get(&app, "/events", &[("after", "0-0".into())]);
    assert_eq!(ids(&all), ["old", "x", "quiet", "new"]);
    // A wait without a cursor is a listing, answered at once.
    let (s, listing) = get(&app, "/events", &[("wait", "3".into())]);
    assert_eq!((s, listing["count"].as_u64()), (200, Some(4)), "{listing}");
    // A listing's paging parameters mean nothing to a tail: ignored, not refused.
    let (s, same) = get(
        &app,
        "/events",
        &[
            ("after", "0-0".into()),
            ("before", "3".into()),
            ("order", "time".into()),
        ],
    );
    assert_eq!((s, ids(&same)), (200, ids(&all)));
    for (query, name) in [
        (vec![("after", "nope".to_string())], "after"),
        (vec![("after", "0-0".into()), ("wait", "26".into())], "wait"),
    ] {
        let (s, body) = get(&app, "/events", &query);
        assert_eq!(
            (s, body["details"][0]["field"].as_str()),
            (422, Some(name)),
            "{query:?}"
        );
    }
}

/// Concurrent publishers and one client following with `after` + `wait`: it must see every
/// event exactly once. On PostgreSQL ids are taken before commit, so this is what the
/// `(tx, id)` walk is for.
fn tail_under_concurrent_publishes_sees_each_event_once(b: Backend) {
    let app = App::start(b);
    let (_, page) = get(&app, "/events", &[("limit", "1".into())]);
    let mut cursor = page["tail_cursor"].as_str().unwrap().to_owned();
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let url = app.host.at("/publish");
            std::thread::spawn(move || {
                for i in 0..40 {
                    let e = event(
                        "cc",
                        &format!("p{p}-{i}"),
                        None,
                        "m",
                        "2024-05-01T12:00:00Z",
                    );
                    let s = client()
                        .post(&url)
                        .json(&e)
                        .send()
                        .unwrap()
                        .status()
                        .as_u16();
                    assert_eq!(s, 200);
                }
            })
        })
        .collect();
    let mut seen: Vec<String> = Vec::new();
    loop {
        // Once every publisher is done, one more empty read proves nothing is left behind.
        let done = publishers.iter().all(|p| p.is_finished());
        let (s, page) = get(
            &app,
            "/events",
            &[
                ("after", cursor.clone()),
                ("wait", "1".into()),
                ("limit", "7".into()),
            ],
        );
        assert_eq!(s, 200, "{page}");
        seen.extend(ids(&page));
        cursor = page["tail_cursor"].as_str().unwrap().to_owned();
        if done && page["count"] == 0 {
            break;
        }
    }
    for p in publishers {
        p.join().unwrap();
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "an event came twice");
    assert_eq!(seen.len(), 160, "missed events: saw {seen:?}");
}

use upkeep::{
    retention_and_maintenance_keep_volume_exact, upgrade_from_version_2_backfills_search_and_volume,
};

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

mod sqlite {
    use super::Backend;
    suite!(Backend::Sqlite =>
        levels_are_stored_filtered_and_counted,
        search_finds_substrings_phrases_and_excludes,
        event_time_order_pages_by_cursor,
        tail_returns_new_events_or_nothing_when_wait_expires,
        tail_under_concurrent_publishes_sees_each_event_once,
        retention_and_maintenance_keep_volume_exact,
        upgrade_from_version_2_backfills_search_and_volume,
    );
}

mod postgres_redis {
    use super::Backend;
    suite!(Backend::PostgresRedis =>
        levels_are_stored_filtered_and_counted,
        search_finds_substrings_phrases_and_excludes,
        event_time_order_pages_by_cursor,
        tail_returns_new_events_or_nothing_when_wait_expires,
        tail_under_concurrent_publishes_sees_each_event_once,
        retention_and_maintenance_keep_volume_exact,
        upgrade_from_version_2_backfills_search_and_volume,
    );
}
