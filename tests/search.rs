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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use model::{Ask, Ev, LEVELS};
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use serde_json::{Value, json};
use support::app::{App, Backend};
use support::{HostConfig, client};

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

/// A fresh case number: each case gets its own day, so cases never see each other's events.
fn next_case() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `(day, next day)` of a case, `YYYY-MM-DD`.
fn day_of(case: u64) -> (String, String) {
    let base = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let d = base + chrono::Days::new(case);
    (d.to_string(), (d + chrono::Days::new(1)).to_string())
}

/// Publishes the case's events, then checks every question against the naive filter.
fn check_case(app: &App, name: &str, events: &[Ev], asks: &[Ask], case: u64) -> Result<(), String> {
    let (day, next_day) = day_of(case);
    let published: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| e.to_json(&day, &format!("c{case}-{i}")))
        .collect();
    let third = published.len() / 3;
    for (i, chunk) in [
        &published[..third],
        &published[third..2 * third],
        &published[2 * third..],
    ]
    .into_iter()
    .enumerate()
    {
        if chunk.is_empty() {
            continue;
        }
        let status = publish(app, &json!(chunk), i == 1);
        if status != 200 && status != 202 {
            return Err(format!("{name}: publish answered {status}"));
        }
    }
    let range = [
        ("since", format!("{day}T00:00:00Z")),
        ("until", format!("{next_day}T00:00:00Z")),
    ];
    // Ids and levels as stored (the stored-order listing of the whole day; drains the queue).
    let mut all = range.to_vec();
    all.extend([("limit", "1000".into()), ("order", "stored".into())]);
    let (status, page) = get(app, "/events", &all);
    if status != 200 {
        return Err(format!("{name}: listing answered {status} {page}"));
    }
    let mut id_of: HashMap<String, i64> = HashMap::new();
    for e in page["events"].as_array().unwrap() {
        let event_id = e["event_id"].as_str().unwrap().to_owned();
        let i: usize = event_id.rsplit('-').next().unwrap().parse().unwrap();
        let want = events[i].level_name();
        if e["level"].as_str() != want {
            return Err(format!(
                "{name}: {event_id} stored with level {} instead of {want:?} (sent {})",
                e["level"], published[i]
            ));
        }
        id_of.insert(event_id, e["id"].as_i64().unwrap());
    }
    if id_of.len() != events.len() {
        return Err(format!(
            "{name}: {} of {} events stored",
            id_of.len(),
            events.len()
        ));
    }
    let key = |i: usize| (events[i].timestamp(&day), id_of[&format!("c{case}-{i}")]);
    for ask in asks {
        // /events, paged through the cursor.
        let mut expected: Vec<usize> = (0..events.len())
            .filter(|i| ask.accepts(&events[*i]))
            .collect();
        if ask.time_order {
            expected.sort_by_key(|i| std::cmp::Reverse(key(*i)));
        } else {
            expected.sort_by_key(|i| std::cmp::Reverse(key(*i).1));
        }
        let expected: Vec<String> = expected.iter().map(|i| format!("c{case}-{i}")).collect();
        let mut params = ask.params();
        params.extend(range.iter().cloned());
        params.push(("limit", ask.limit.to_string()));
        params.push((
            "order",
            if ask.time_order { "time" } else { "stored" }.into(),
        ));
        let mut got = Vec::new();
        let mut before: Option<i64> = None;
        for _ in 0..200 {
            let mut p = params.clone();
            if let Some(b) = before {
                p.push(("before", b.to_string()));
            }
            let (status, page) = get(app, "/events", &p);
            if status != 200 {
                return Err(format!("{name}: /events {p:?} answered {status} {page}"));
            }
            got.extend(ids(&page));
            match page["next_cursor"].as_i64() {
                Some(c) => before = Some(c),
                None => break,
            }
        }
        if got != expected {
            return Err(format!(
                "{name}: /events {params:?}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
        // /volume over the day.
        let mut params = ask.params();
        params.extend(range.iter().cloned());
        params.push(("step", format!("{}m", ask.step)));
        let (status, body) = get(app, "/volume", &params);
        if status != 200 {
            return Err(format!(
                "{name}: /volume {params:?} answered {status} {body}"
            ));
        }
        let mut want: BTreeMap<(i64, &str), u64> = BTreeMap::new();
        for e in events.iter().filter(|e| ask.accepts(e)) {
            let level = e.level_name().unwrap_or("none");
            *want.entry((e.minute / ask.step, level)).or_default() += 1;
        }
        let mut have: BTreeMap<(i64, &str), u64> = BTreeMap::new();
        let buckets = body["buckets"].as_array().unwrap();
        for (i, b) in buckets.iter().enumerate() {
            for level in LEVELS.iter().chain(&["none"]) {
                let n = b["levels"][*level].as_u64().unwrap();
                if n > 0 {
                    have.insert((i as i64, level), n);
                }
            }
            let sum: u64 = b["levels"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum();
            if b["count"].as_u64() != Some(sum) {
                return Err(format!(
                    "{name}: bucket {i} count is not the sum of its levels: {b}"
                ));
            }
        }
        let direct = ask.source.is_none() && ask.q.is_empty();
        let from = if direct { "counters" } else { "events" };
        if have != want
            || buckets.len() as i64 != 1440 / ask.step
            || body["counted_from"] != from
            || body["total"].as_u64() != Some(want.values().sum())
        {
            return Err(format!(
                "{name}: /volume {params:?} ({} buckets, from {})\n  expected {want:?}\n  got      {have:?}",
                buckets.len(),
                body["counted_from"]
            ));
        }
    }
    Ok(())
}

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
        let case = next_case();
        for (app, name) in apps.iter().zip(["sqlite", "postgres+redis"]) {
            check_case(app, name, &events, &asks, case).map_err(|e| {
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
    for (query, name) in [
        (vec![("after", "nope".to_string())], "after"),
        (vec![("after", "0-0".into()), ("wait", "26".into())], "wait"),
        (vec![("wait", "3".into())], "wait"),
        (
            vec![("after", "0-0".into()), ("before", "3".into())],
            "before",
        ),
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

/// Retention takes expired events out of `/volume` too, and (PostgreSQL) maintenance folds
/// the volume rows of all shards into shard 0 without changing an answer.
fn retention_and_maintenance_keep_volume_exact(b: Backend) {
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
    let volume = |step: &str| {
        let (s, v) = get(
            &app,
            "/volume",
            &[
                ("since", "2024-05-01T10:00:00Z".to_string()),
                ("until", "2024-05-01T11:00:00Z".into()),
                ("step", step.into()),
                ("topic", "ret".into()),
            ],
        );
        assert_eq!(s, 200, "{v}");
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
            .query_one("SELECT count(*) FROM volume_counters WHERE shard <> 0", &[])
            .unwrap()
            .get(0);
        assert_eq!(other, 0, "maintenance folded every shard");
    }
}

/// A store at schema version 2 with events: version 3 backfills the volume rows and the
/// search index, so old events are found and counted.
fn upgrade_from_version_2_backfills_search_and_volume(b: Backend) {
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
                 ALTER TABLE events DROP COLUMN level, DROP COLUMN message, DROP COLUMN tx; \
                 ALTER TABLE topic_counters DROP COLUMN n_trace, DROP COLUMN n_debug, \
                 DROP COLUMN n_info, DROP COLUMN n_warn, DROP COLUMN n_error, DROP COLUMN n_fatal; \
                 DELETE FROM schema_migrations WHERE version = 3",
            )
            .unwrap(),
        None => {
            let conn =
                rusqlite::Connection::open(app.host.state_dir().join("sqlite_db.db")).unwrap();
            conn.execute_batch(
                "DROP INDEX events_topic_timestamp_id; DROP TABLE volume_counters; \
                 DROP TABLE events_fts; \
                 ALTER TABLE events DROP COLUMN level; ALTER TABLE events DROP COLUMN message; \
                 ALTER TABLE topic_counters DROP COLUMN n_trace; ALTER TABLE topic_counters DROP COLUMN n_debug; \
                 ALTER TABLE topic_counters DROP COLUMN n_info; ALTER TABLE topic_counters DROP COLUMN n_warn; \
                 ALTER TABLE topic_counters DROP COLUMN n_error; ALTER TABLE topic_counters DROP COLUMN n_fatal; \
                 DELETE FROM schema_migrations WHERE version = 3",
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
