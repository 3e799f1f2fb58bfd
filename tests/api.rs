//! The aggregator's HTTP API, end to end: the real `edgelog.wasm` served by `edge-host` over real
//! HTTP, once on the embedded default (SQLite queue + SQLite store) and once on PostgreSQL +
//! Redis. One suite, parameterised by backend: every test below runs on both.

mod support;

use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::app::{App, Backend, counts, event};
use support::{Host, HostConfig, TestDatabase, TestRedis, client, temp_dir};

// ---------------------------------------------------------------------------------------------
// The suite. Each function takes the backend; the macro at the bottom runs it on both.
// ---------------------------------------------------------------------------------------------

fn publish_shapes_and_read_back(b: Backend) {
    let app = App::start(b);
    // One object, with an offset that must be normalised to UTC and no payload.
    let (s, body) = app.post(
        "/publish",
        &json!({"topic": "shapes", "event_id": "one", "timestamp": "2024-03-05T06:07:08.123456+01:00", "source": "s"}),
    );
    assert_eq!(
        (s, body.clone()),
        (200, json!({"received": 1, "processed": 1, "duplicates": 0}))
    );
    // A bare array and an {"events": [...]} object on /publish, and /publish/batch.
    let (s, body) = app.post(
        "/publish",
        &json!([event("shapes", "a1"), event("shapes", "a2")]),
    );
    assert_eq!((s, body["processed"].as_u64()), (200, Some(2)));
    let (s, body) = app.post("/publish", &json!({"events": [event("shapes", "e1")]}));
    assert_eq!((s, body["processed"].as_u64()), (200, Some(1)));
    let (s, body) = app.post(
        "/publish/batch",
        &json!({"events": [event("shapes", "b1")]}),
    );
    assert_eq!((s, body["received"].as_u64()), (200, Some(1)));
    let (s, body) = app.post("/publish/batch", &json!([event("shapes", "b2")]));
    assert_eq!((s, body["received"].as_u64()), (200, Some(1)));

    let events = app.all_events("shapes");
    assert_eq!(events.len(), 6);
    // Newest first.
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let one = events.iter().find(|e| e["event_id"] == "one").unwrap();
    assert_eq!(one["timestamp"], "2024-03-05T05:07:08.123456Z");
    assert_eq!(one["payload"], json!({}));
    assert_eq!(one["source"], "s");
    assert!(one["processed_at"].as_str().unwrap().ends_with('Z'));
    let a1 = events.iter().find(|e| e["event_id"] == "a1").unwrap();
    assert_eq!(a1["payload"], json!({"id": "a1", "n": [1, 2, 3]}));
    assert_eq!(a1["timestamp"], "2024-03-05T06:07:08.123456Z");
}

fn duplicates_are_dropped_and_counted(b: Backend) {
    let app = App::start(b);
    // Within one batch.
    let (s, body) = app.post(
        "/publish/batch",
        &json!({"events": [event("dup", "x"), event("dup", "x"), event("dup", "y")]}),
    );
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"received": 3, "processed": 2, "duplicates": 1})
    );
    // Across batches; the first stored copy wins even if later fields differ.
    let mut changed = event("dup", "x");
    changed["source"] = json!("other");
    let (s, body) = app.post("/publish", &changed);
    assert_eq!(
        (s, body),
        (200, json!({"received": 1, "processed": 0, "duplicates": 1}))
    );
    // Same event_id in another topic is a different event.
    let (s, body) = app.post("/publish", &event("dup2", "x"));
    assert_eq!((s, body["processed"].as_u64()), (200, Some(1)));

    let x = app.all_events("dup");
    assert_eq!(x.len(), 2);
    assert!(x.iter().all(|e| e["source"] == "test"));
    let stats = app.stats();
    assert_eq!(counts(&stats), (5, 3, 2, 0));
    let topics: Vec<&str> = stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(topics, vec!["dup", "dup2"]);
    // One summary line per request that dropped any (`duplicate_log = summary`), whole: the
    // component writes it to wasi:cli/stderr itself (src/log.rs).
    let line = "INFO 1 duplicate(s) dropped of 1 received (entry ";
    assert!(
        app.host
            .wait_for_log(line, std::time::Duration::from_secs(10)),
        "duplicates are logged as one line each:\n{}",
        app.host.logs()
    );
    assert!(
        app.host
            .logs()
            .lines()
            .any(|l| l.contains(line) && l.ends_with(r#"e.g. "dup"/"x")"#)),
        "the summary names a dropped duplicate:\n{}",
        app.host.logs()
    );
}

fn bad_input_is_rejected_and_changes_nothing(b: Backend) {
    let app = App::start_with(
        b,
        HostConfig::default()
            .env("SPIN_VARIABLE_MAX_BATCH_EVENTS", "3")
            .env("SPIN_VARIABLE_MAX_PAYLOAD_BYTES", "64")
            .env("SPIN_VARIABLE_MAX_BODY_BYTES", "4096"),
    );
    let before = app.stats();

    // 422: every bad field named, with its batch index; nothing queued.
    let mut bad = event("v", "2");
    bad["timestamp"] = json!("yesterday");
    let mut long = event("v", "3");
    long["topic"] = json!("t".repeat(256));
    let (s, body) = app.post(
        "/publish/batch",
        &json!({"events": [event("v", "1"), bad, long]}),
    );
    assert_eq!(s, 422, "{body}");
    let details = body["details"].as_array().unwrap();
    assert!(
        details
            .iter()
            .any(|d| d["index"] == 1 && d["field"] == "timestamp"),
        "{body}"
    );
    assert!(
        details
            .iter()
            .any(|d| d["index"] == 2 && d["field"] == "topic"),
        "{body}"
    );
    let (s, body) = app.post(
        "/publish",
        &json!({"topic": "v", "timestamp": "2024-01-01T00:00:00Z"}),
    );
    assert_eq!(s, 422);
    let fields: HashSet<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains("event_id") && fields.contains("source"),
        "{body}"
    );
    let (s, _) = app.post("/publish/batch", &json!({"events": []}));
    assert_eq!(s, 422);
    let (s, _) = app.post("/publish", &json!(42));
    assert!(s == 422 || s == 400, "{s}");

    // 400 malformed JSON, 415 wrong content type.
    let resp = client()
        .post(app.host.at("/publish"))
        .header("content-type", "application/json")
        .body("{\"topic\": ")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = client()
        .post(app.host.at("/publish"))
        .header("content-type", "text/plain")
        .body(event("v", "1").to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);

    // 413: batch length, payload size, body size.
    let four: Vec<Value> = (0..4).map(|i| event("v", &format!("b{i}"))).collect();
    let (s, body) = app.post("/publish/batch", &json!({"events": four}));
    assert_eq!(s, 413, "{body}");
    let mut big = event("v", "big");
    big["payload"] = json!({"blob": "x".repeat(100)});
    let (s, body) = app.post("/publish", &big);
    assert_eq!(s, 413, "{body}");
    assert!(body.to_string().contains("payload"), "{body}");
    let resp = client()
        .post(app.host.at("/publish"))
        .header("content-type", "application/json")
        .body(format!(
            "[{}]",
            vec![event("v", "z").to_string(); 40].join(",")
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);

    // 404, 405, bad query parameters.
    assert_eq!(app.get("/nope").0, 404);
    assert_eq!(
        client()
            .delete(app.host.at("/events"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        405
    );
    assert_eq!(app.get("/publish").0, 405);
    for q in [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "offset=-1",
        "before=x",
    ] {
        let (s, body) = app.get(&format!("/events?{q}"));
        assert_eq!(s, 422, "{q}: {body}");
    }
    // Hostile strings are data, not SQL.
    let (s, _) = app.post("/publish", &event("v'; DROP TABLE events; --", "1"));
    assert_eq!(s, 200);
    let (s, body) = app.get("/events?topic=v%27%3B%20DROP%20TABLE%20events%3B%20--");
    assert_eq!((s, body["count"].as_u64()), (200, Some(1)));

    let after = app.stats();
    assert_eq!(
        counts(&after).0,
        counts(&before).0 + 1,
        "only the one valid publish counted"
    );
}

/// Sends `pieces` as one chunked POST (no `Content-Length`), a pause between pieces so they
/// arrive separately; returns the status and the JSON answer.
fn post_chunked(app: &App, path: &str, pieces: &[&[u8]]) -> (u16, Value) {
    let addr = app.host.url.trim_start_matches("http://").to_string();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    // A server may answer (a 413) and close before the body is all sent, as Spin does: the
    // answer is then already waiting, and the rest of the body has nowhere to go.
    let sent = pieces.iter().try_for_each(|piece| {
        write!(conn, "{:x}\r\n", piece.len())?;
        conn.write_all(piece)?;
        conn.write_all(b"\r\n")?;
        conn.flush()?;
        std::thread::sleep(std::time::Duration::from_millis(30));
        Ok::<(), std::io::Error>(())
    });
    if sent.is_ok() {
        let _ = conn.write_all(b"0\r\n\r\n");
    }
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status: u16 = answer[9..12].parse().unwrap();
    // The answer itself may be chunked: its JSON runs from the first `{` to the last `}`.
    let json = &answer[answer.find('{').unwrap()..=answer.rfind('}').unwrap()];
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// A body without a declared length, arriving in pieces, is read to its end (the component
/// reads until the stream closes); past `max_body_bytes` it is a 413 and nothing is stored.
fn a_chunked_body_is_read_to_its_end(b: Backend) {
    let app = App::start_with(
        b,
        HostConfig::default().env("SPIN_VARIABLE_MAX_BODY_BYTES", "2048"),
    );
    let body = json!([
        event("chunked", "c1"),
        event("chunked", "c2"),
        event("chunked", "c3")
    ])
    .to_string();
    let pieces: Vec<&[u8]> = body.as_bytes().chunks(40).collect();
    assert!(pieces.len() > 3);
    let (s, answer) = post_chunked(&app, "/publish", &pieces);
    assert_eq!(
        (s, answer["processed"].as_u64()),
        (200, Some(3)),
        "{answer}"
    );
    assert_eq!(app.all_events("chunked").len(), 3);

    let big = json!([event("chunked", "c4"), {"pad": "x".repeat(3000)}]).to_string();
    let pieces: Vec<&[u8]> = big.as_bytes().chunks(1000).collect();
    let (s, answer) = post_chunked(&app, "/publish", &pieces);
    assert_eq!(s, 413, "{answer}");
    assert_eq!(answer["error"], "payload_too_large", "{answer}");
    assert_eq!(app.all_events("chunked").len(), 3);
}

fn events_paging_topic_filter_and_cursor(b: Backend) {
    let app = App::start(b);
    let batch: Vec<Value> = (0..25)
        .map(|i| event(if i % 2 == 0 { "even" } else { "odd" }, &format!("e{i:02}")))
        .collect();
    assert_eq!(app.post("/publish/batch", &json!({"events": batch})).0, 200);
    let (s, body) = app.get("/events?topic=even&limit=5");
    assert_eq!(s, 200);
    assert_eq!(body["count"], 5);
    assert_eq!(body["topic"], "even");
    let first: Vec<String> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(first, vec!["e24", "e22", "e20", "e18", "e16"]);
    let cursor = body["next_cursor"]
        .as_i64()
        .expect("full page has a cursor");
    let (_, next) = app.get(&format!("/events?topic=even&limit=5&before={cursor}"));
    assert_eq!(next["events"][0]["event_id"], "e14");
    let (_, off) = app.get("/events?topic=even&limit=5&offset=5");
    assert_eq!(off["events"], next["events"]);
    let (_, all) = app.get("/events?limit=1000");
    assert_eq!(all["count"], 25);
    assert!(all["next_cursor"].is_null());
    assert_eq!(app.all_events("odd").len(), 12);
}

fn health_and_metrics(b: Backend) {
    let app = App::start(b);
    // The first request, on a fresh store: counted like any other store (no dead letters, nothing
    // queued), and creating nothing.
    let (s, body) = app.get("/health");
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("healthy")),
        "{body}"
    );
    assert_eq!(
        (&body["dead_letters"], &body["queue_size"]),
        (&json!(0), &json!(0)),
        "a fresh store answers like any other: {body}"
    );
    if let Some(db) = &app.db {
        let row = db
            .connect()
            .query_one("SELECT to_regclass('dead_letters') IS NULL", &[])
            .unwrap();
        assert!(row.get::<_, bool>(0), "/health created the schema");
    }
    // Migrated by a publish: the same answer, now read from the table (lifecycle.rs counts real
    // dead letters).
    let (s, body) = app.post("/publish", &event("m", "0"));
    assert_eq!(s, 200, "{body}");
    assert_eq!(app.get("/health").1["dead_letters"], 0);
    app.post("/publish", &event("m", "1"));
    let text = client()
        .get(app.host.at("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("received"), "{text}");
}

fn concurrent_overlapping_batches_are_exact(b: Backend) {
    let app = Arc::new(App::start(b));
    let clients = 50;
    let per_batch = 40;
    let mut threads = Vec::new();
    for c in 0..clients {
        let app = app.clone();
        threads.push(std::thread::spawn(move || {
            // Ids overlap heavily between clients and arrive in different orders.
            let mut ids: Vec<usize> = (0..per_batch).map(|i| (c * 7 + i * 3) % 120).collect();
            if c % 2 == 1 {
                ids.reverse();
            }
            let events: Vec<Value> = ids
                .iter()
                .map(|i| event("conc", &format!("k{i}")))
                .collect();
            let (s, body) = app.post("/publish/batch", &json!({"events": events}));
            (s, body)
        }));
    }
    let mut processed = 0;
    let mut duplicates = 0;
    for t in threads {
        let (s, body) = t.join().unwrap();
        assert_eq!(s, 200, "every concurrent batch succeeds: {body}");
        processed += body["processed"].as_u64().unwrap();
        duplicates += body["duplicates"].as_u64().unwrap();
    }
    let sent = (clients * per_batch) as u64;
    let stored = app.all_events("conc");
    let keys: HashSet<String> = stored
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), stored.len(), "one row per key");
    assert_eq!(processed, stored.len() as u64);
    assert_eq!(processed + duplicates, sent);
    assert_eq!(counts(&app.stats()), (sent, processed, duplicates, 0));
    if let Some(db) = &app.db {
        let n: i64 = db
            .connect()
            .query_one("SELECT count(*) FROM events WHERE topic = 'conc'", &[])
            .unwrap()
            .get(0);
        assert_eq!(n as usize, keys.len());
    }
}

fn async_publish_is_queued_then_stored(b: Backend) {
    let app = App::start(b);
    let resp = client()
        .post(app.host.at("/publish/batch"))
        .header("content-type", "application/json")
        .header("prefer", "respond-async")
        .body(json!({"events": [event("async", "1"), event("async", "2")]}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let body: Value = resp.json().unwrap();
    assert_eq!((&body["received"], &body["queued"]), (&json!(2), &json!(2)));
    assert_eq!(body["accepted"], json!(2), "{body}");
    let (s, _) = app.post("/publish?async=true", &event("async", "2"));
    assert_eq!(s, 202);
    // Reads consume pending work first: the queued events are visible and counted once.
    assert_eq!(app.all_events("async").len(), 2);
    assert_eq!(counts(&app.stats()), (3, 2, 1, 0));
    let (s, body) = app.post("/drain", &json!({}));
    assert_eq!(s, 200, "{body}");
}

fn backlog_over_its_limit_answers_202_until_drained(b: Backend) {
    // `max_backlog_events` is off by default; once set, a publish that finds more queued events
    // than the limit (its own included) is acknowledged with 202 and left for a drain.
    let config = HostConfig::default().env("SPIN_VARIABLE_MAX_BACKLOG_EVENTS", "2");
    let app = App::start_with(b, config);
    let (s, _) = app.post(
        "/publish/batch?async=true",
        &json!([event("bk", "1"), event("bk", "2")]),
    );
    assert_eq!(s, 202);
    let (s, body) = app.post("/publish", &event("bk", "3"));
    assert_eq!(
        (s, body),
        (202, json!({"received": 1, "queued": 1})),
        "3 queued > 2"
    );
    let (s, body) = app.post("/drain", &json!({}));
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (
            &body["drained_batches"],
            &body["processed"],
            &body["queued"]
        ),
        (&json!(2), &json!(3), &json!(0))
    );
    let (s, body) = app.post("/publish", &event("bk", "1"));
    assert_eq!(
        (s, body),
        (200, json!({"received": 1, "processed": 0, "duplicates": 1})),
        "an empty queue is under the limit: consumed at once"
    );
    assert_eq!(counts(&app.stats()), (4, 3, 1, 0));
}

fn restart_keeps_events_counters_and_dedup(b: Backend) {
    let mut app = App::start(b);
    assert_eq!(
        app.post("/publish/batch", &json!([event("r", "1"), event("r", "2")]))
            .0,
        200
    );
    let status = app.host.stop();
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    app.host.spawn();
    assert_eq!(counts(&app.stats()), (2, 2, 0, 0));
    let (s, body) = app.post("/publish", &event("r", "1"));
    assert_eq!((s, body["duplicates"].as_u64()), (200, Some(1)));
    assert_eq!(app.all_events("r").len(), 2);
}

fn sigkill_after_ack_loses_nothing(b: Backend) {
    let mut app = App::start(b);
    let mut acked: Vec<String> = Vec::new();
    let mut received = 0;
    for round in 0..5 {
        // An acknowledged synchronous batch, an acknowledged queued one, then SIGKILL at once.
        let sync: Vec<Value> = (0..20)
            .map(|i| event("k", &format!("s{round}-{i}")))
            .collect();
        let (s, _) = app.post("/publish/batch", &json!(sync));
        assert_eq!(s, 200);
        let queued: Vec<Value> = (0..20)
            .map(|i| event("k", &format!("q{round}-{i}")))
            .collect();
        let (s, _) = app.post("/publish/batch?async=true", &json!(queued));
        assert_eq!(s, 202);
        // A replay of the synchronous batch, so duplicates are counted across the crash too.
        let (s, _) = app.post("/publish/batch?async=true", &json!(sync));
        assert_eq!(s, 202);
        received += 60;
        acked.extend((0..20).map(|i| format!("s{round}-{i}")));
        acked.extend((0..20).map(|i| format!("q{round}-{i}")));
        app.host.kill();
        app.host.spawn();
    }
    let stored: HashSet<String> = app
        .all_events("k")
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged event {id} lost");
    }
    assert_eq!(stored.len(), acked.len());
    assert_eq!(
        counts(&app.stats()),
        (
            received,
            acked.len() as u64,
            received - acked.len() as u64,
            0
        )
    );
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
        publish_shapes_and_read_back,
        duplicates_are_dropped_and_counted,
        bad_input_is_rejected_and_changes_nothing,
        a_chunked_body_is_read_to_its_end,
        events_paging_topic_filter_and_cursor,
        health_and_metrics,
        concurrent_overlapping_batches_are_exact,
        async_publish_is_queued_then_stored,
        backlog_over_its_limit_answers_202_until_drained,
        restart_keeps_events_counters_and_dedup,
        sigkill_after_ack_loses_nothing,
    );
}

mod postgres_redis {
    use super::Backend;
    suite!(Backend::PostgresRedis =>
        publish_shapes_and_read_back,
        duplicates_are_dropped_and_counted,
        bad_input_is_rejected_and_changes_nothing,
        a_chunked_body_is_read_to_its_end,
        events_paging_topic_filter_and_cursor,
        health_and_metrics,
        concurrent_overlapping_batches_are_exact,
        async_publish_is_queued_then_stored,
        backlog_over_its_limit_answers_202_until_drained,
        restart_keeps_events_counters_and_dedup,
        sigkill_after_ack_loses_nothing,
    );
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only: native types, and the database going away and coming back.
// ---------------------------------------------------------------------------------------------

#[test]
fn postgres_stores_timestamptz_and_payload_text_byte_for_byte() {
    let app = App::start(Backend::PostgresRedis);
    // jsonb would re-spell this (1e999999 is out of its range; 1.50 becomes 1.5; keys reorder).
    let payload_text = r#"{"z":1.50,"a":[1e999999,-0,"x",null,true],"unicode":"\u00e9t\u00e9 ✓"}"#;
    let body = format!(
        r#"{{"topic":"pg","event_id":"1","timestamp":"2024-03-05T06:07:08.123456-02:30","source":"s","payload": {payload_text} }}"#
    );
    let resp = client()
        .post(app.host.at("/publish"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let db = app.db.as_ref().unwrap();
    let row = db
        .connect()
        .query_one(
            "SELECT pg_typeof(\"timestamp\")::text, pg_typeof(payload)::text, \
             to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), payload::text \
             FROM events WHERE topic = 'pg'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "timestamp with time zone");
    assert_eq!(row.get::<_, String>(1), "text");
    assert_eq!(row.get::<_, String>(2), "2024-03-05T08:37:08.123456");
    assert_eq!(row.get::<_, String>(3), payload_text, "stored as sent");
    let raw = client()
        .get(app.host.at("/events?topic=pg"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(raw.contains(payload_text), "read back as sent: {raw}");
    assert!(raw.contains("\"timestamp\":\"2024-03-05T08:37:08.123456Z\""));
}

/// A TCP forwarder to PostgreSQL that the test can cut and restore, standing in for the
/// database going down and coming back without touching the shared server.
struct Switch {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Switch {
    fn start() -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<std::sync::Mutex<Vec<TcpStream>>> = Default::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect("127.0.0.1:5432") else {
                    continue;
                };
                conns2.lock().unwrap().push(client.try_clone().unwrap());
                conns2.lock().unwrap().push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Switch { port, up, conns }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn database_outage_queues_then_stores_exactly_once() {
    let switch = Switch::start();
    let db = TestDatabase::create("edgelog_outage");
    let redis = TestRedis::reserve();
    let url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", switch.port));
    let config = HostConfig {
        runtime_config: Some(redis.runtime_config(&temp_dir("edge-rc-"))),
        ..HostConfig::default()
    }
    .env("SPIN_VARIABLE_STORE", "postgres")
    .env("SPIN_VARIABLE_DATABASE_URL", &url)
    .env(
        "SPIN_VARIABLE_DB_HOST",
        &format!("127.0.0.1:{}", switch.port),
    );
    let app = App {
        host: Host::start(config),
        db: Some(db),
        redis: Some(redis),
    };
    assert_eq!(app.post("/publish", &event("out", "before")).0, 200);

    switch.down();
    let (s, body) = app.get("/health");
    assert_eq!(s, 503, "{body}");
    // Still ready: publishes are acknowledged from the queue while the store is down.
    let (s, ready) = app.get("/health?probe=ready");
    assert_eq!((s, &ready["status"]), (200, &json!("degraded")), "{ready}");
    assert!(
        body.to_string().contains("store"),
        "health names the failing part: {body}"
    );
    let mut queued = 0;
    for i in 0..5 {
        let (s, body) = app.post(
            "/publish/batch",
            &json!([event("out", &format!("d{i}")), event("out", "before")]),
        );
        assert_eq!(s, 202, "{body}");
        assert!(
            !body.to_string().contains("postgres://"),
            "no credentials leak: {body}"
        );
        queued += 2;
    }
    // Stats cannot be exact without the store: 503, but the backlog is still reported.
    let (s, body) = app.get("/stats");
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["queued"].as_u64(), Some(queued), "{body}");

    switch.restore();
    let (s, _) = app.post("/drain", &json!({}));
    assert_eq!(s, 200);
    assert_eq!(app.get("/health").0, 200);
    let stored = app.all_events("out");
    assert_eq!(stored.len(), 6, "host log:\n{}", app.host.logs());
    assert_eq!(counts(&app.stats()), (11, 6, 5, 0));
}

// ---------------------------------------------------------------------------------------------
// Scale-out: several edge-host processes over one Redis queue and one PostgreSQL database.
// ---------------------------------------------------------------------------------------------

#[test]
fn scale_out_three_hosts_with_one_killed_mid_run() {
    use std::sync::RwLock;
    let db = TestDatabase::create("edgelog_scale");
    let redis = TestRedis::reserve();
    let rc = redis.runtime_config(&temp_dir("edge-rc-"));
    let config = HostConfig {
        runtime_config: Some(rc),
        ..HostConfig::default()
    }
    .env("SPIN_VARIABLE_STORE", "postgres")
    .env("SPIN_VARIABLE_DATABASE_URL", &db.url);
    let mut hosts: Vec<Host> = (0..3).map(|_| Host::start(config.clone())).collect();
    let urls = Arc::new(RwLock::new(
        hosts.iter().map(|h| h.url.clone()).collect::<Vec<_>>(),
    ));

    let publishers = 32;
    let batches = 12;
    let per_batch = 20;
    let mut threads = Vec::new();
    for p in 0..publishers {
        let urls = urls.clone();
        threads.push(std::thread::spawn(move || {
            let mut acked_ids = HashSet::new();
            let (mut acked, mut unknown, mut unknown_ids) = (0u64, 0u64, HashSet::new());
            for b in 0..batches {
                // 40% of each batch comes from a pool shared by every publisher.
                let ids: Vec<String> = (0..per_batch)
                    .map(|i| {
                        if i % 5 < 2 {
                            format!("shared-{}", (p * 3 + b * 7 + i) % 200)
                        } else {
                            format!("p{p}-b{b}-{i}")
                        }
                    })
                    .collect();
                let body =
                    json!(ids.iter().map(|id| event("scale", id)).collect::<Vec<_>>()).to_string();
                let mut attempt = 0;
                loop {
                    let url = urls.read().unwrap()[(p + b + attempt) % 3].clone();
                    attempt += 1;
                    let sent = client()
                        .post(format!("{url}/publish/batch"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send();
                    match sent {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            assert!(
                                s == 200 || s == 202,
                                "publisher {p}: status {s}: {:?}",
                                r.text()
                            );
                            acked += per_batch as u64;
                            acked_ids.extend(ids.iter().cloned());
                            break;
                        }
                        Err(e) => {
                            // The host died under us: the batch may or may not have been queued.
                            // Retry elsewhere, as an at-least-once publisher does.
                            if !e.is_connect() {
                                unknown += per_batch as u64;
                                unknown_ids.extend(ids.iter().cloned());
                            }
                            assert!(attempt < 50, "publisher {p} could not publish: {e}");
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                    }
                }
            }
            (acked_ids, acked, unknown, unknown_ids)
        }));
    }
    // Kill one instance while the publishers run, then bring it back.
    std::thread::sleep(std::time::Duration::from_millis(400));
    hosts[1].kill();
    std::thread::sleep(std::time::Duration::from_millis(300));
    hosts[1].spawn();
    urls.write().unwrap()[1] = hosts[1].url.clone();

    let mut acked_ids = HashSet::new();
    let mut sent_ids = HashSet::new();
    let (mut acked, mut unknown) = (0, 0);
    for t in threads {
        let (ids, a, u, uids) = t.join().unwrap();
        sent_ids.extend(ids.iter().cloned());
        sent_ids.extend(uids);
        acked_ids.extend(ids);
        acked += a;
        unknown += u;
    }
    let app = App {
        host: hosts.remove(0),
        db: Some(db),
        redis: Some(redis),
    };
    assert_eq!(app.post("/drain", &json!({})).0, 200);
    let stored: Vec<String> = app
        .all_events("scale")
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let stored_set: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "exactly one row per key");
    assert!(
        acked_ids.is_subset(&stored_set),
        "an acknowledged event was lost"
    );
    assert!(
        stored_set.is_subset(&sent_ids),
        "a stored event was never sent"
    );
    let (received, unique, dups, queued) = counts(&app.stats());
    assert_eq!(queued, 0);
    assert_eq!(unique, stored.len() as u64);
    assert!(
        received >= acked && received <= acked + unknown,
        "received {received}, acked {acked}, unknown {unknown}"
    );
    assert_eq!(received, unique + dups);
}
