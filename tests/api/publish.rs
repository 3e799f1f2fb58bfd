//! Publishing, on both backends: the body shapes `/publish` and `/publish/batch` accept and what
//! is read back, duplicates dropped and counted (and logged as one summary line), bad input
//! rejected without changing anything, and a chunked body read to its end or refused past
//! `max_body_bytes`.
//!
//! Suite functions take the backend and are `pub` so that `api.rs` can run each of them as a
//! test on both backends (its `sqlite` and `postgres_redis` modules).

use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;

use crate::support::app::{App, Backend, counts, event};
use crate::support::{HostConfig, client};

pub fn publish_shapes_and_read_back(b: Backend) {
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

pub fn duplicates_are_dropped_and_counted(b: Backend) {
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

pub fn bad_input_is_rejected_and_changes_nothing(b: Backend) {
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
pub fn a_chunked_body_is_read_to_its_end(b: Backend) {
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
