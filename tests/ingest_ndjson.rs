//! Newline-delimited JSON and compressed bodies on `/publish` and `/publish/batch`, end to end
//! on both backends: what Vector's and Fluent Bit's HTTP outputs send (one event per line,
//! usually gzip-compressed). A resend is stored once; a bad line is a `422` naming its line and
//! stores nothing; compression limits count decompressed bytes.

#[path = "ingest/common.rs"]
mod common;
mod support;

use std::io::Write;

use common::{gzip, gzip_bomb, post_raw, topic_counts};
use serde_json::{Value, json};
use support::app::{App, Backend, event};

fn ndjson(topic: &str, ids: std::ops::Range<usize>) -> Vec<u8> {
    ids.map(|i| event(topic, &format!("e{i}")).to_string() + "\n")
        .collect::<String>()
        .into_bytes()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn ndjson_lines_are_stored_once_in_every_encoding(b: Backend) {
    let app = App::start(b);
    let url = app.host.at("/publish/batch");
    let body = ndjson("lines", 0..50);
    let sends: Vec<(&str, Vec<u8>, &str)> = vec![
        ("identity", body.clone(), "application/x-ndjson"),
        ("gzip", gzip(&body), "application/x-ndjson"),
        ("deflate", deflate(&body), "application/jsonl"),
        ("zstd", zstd(&body), "application/x-ndjson; charset=utf-8"),
    ];
    for (i, (encoding, bytes, content_type)) in sends.into_iter().enumerate() {
        let (s, _, answer) = post_raw(
            &url,
            &[
                ("content-type", content_type),
                ("content-encoding", encoding),
            ],
            bytes,
        );
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(s, 200, "{encoding}: {answer}");
        let stored = if i == 0 { 50 } else { 0 };
        assert_eq!(
            (
                &answer["received"],
                &answer["processed"],
                &answer["duplicates"]
            ),
            (&json!(50), &json!(stored), &json!(50 - stored)),
            "{encoding}: {answer}"
        );
    }
    assert_eq!(topic_counts(&app, "lines"), (200, 50, 150));
    let events = app.all_events("lines");
    assert_eq!(events.len(), 50);
    let e7 = events.iter().find(|e| e["event_id"] == "e7").unwrap();
    assert_eq!(e7["payload"], json!({"id": "e7", "n": [1, 2, 3]}));
    // /publish takes the same lines; gzip on plain JSON too.
    let (s, _, _) = post_raw(
        &app.host.at("/publish"),
        &[
            ("content-type", "application/x-ndjson"),
            ("content-encoding", "gzip"),
        ],
        gzip(&ndjson("lines", 50..52)),
    );
    assert_eq!(s, 200);
    let (s, _, answer) = post_raw(
        &app.host.at("/publish"),
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gzip(event("lines", "json-gz").to_string().as_bytes()),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(topic_counts(&app, "lines"), (203, 53, 150));
}

fn bad_lines_and_bodies_change_nothing(b: Backend) {
    let app = App::start(b);
    let url = app.host.at("/publish/batch");
    let ndjson_ct = ("content-type", "application/x-ndjson");
    // Line 3 (0-based, blank line 1 counted) breaks a rule: 422 naming that line.
    let mut bad = event("bad", "x");
    bad["timestamp"] = json!("yesterday");
    let body = format!("{}\n\n{}\n{}\n", event("bad", "a"), event("bad", "b"), bad);
    let (s, _, answer) = post_raw(&url, &[ndjson_ct], body.into_bytes());
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(s, 422, "{answer}");
    assert_eq!(
        answer["details"],
        json!([{"index": 3, "field": "timestamp", "message": answer["details"][0]["message"]}])
    );
    // A line that is not JSON: 400, also naming its line.
    let body = format!("{}\n{{\"topic\": \n", event("bad", "a"));
    let (s, _, answer) = post_raw(&url, &[ndjson_ct], body.into_bytes());
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        (s, &answer["details"][0]["index"]),
        (400, &json!(1)),
        "{answer}"
    );
    // Compression gone wrong: a bomb, a corrupt stream, an unknown coding, a wrong type.
    for (what, headers, body, want) in [
        (
            "gzip bomb",
            vec![ndjson_ct, ("content-encoding", "gzip, gzip")],
            gzip_bomb(),
            413,
        ),
        (
            "not gzip",
            vec![ndjson_ct, ("content-encoding", "gzip")],
            ndjson("bad", 0..2),
            400,
        ),
        (
            "truncated gzip",
            vec![ndjson_ct, ("content-encoding", "gzip")],
            gzip(&ndjson("bad", 0..20))[..40].to_vec(),
            400,
        ),
        (
            "brotli",
            vec![ndjson_ct, ("content-encoding", "br")],
            ndjson("bad", 0..2),
            415,
        ),
        (
            "a text content type",
            vec![("content-type", "text/plain")],
            ndjson("bad", 0..2),
            415,
        ),
    ] {
        let (s, content_type, answer) = post_raw(&url, &headers, body);
        assert_eq!(s, want, "{what}: {}", String::from_utf8_lossy(&answer));
        assert_eq!(content_type, "application/json", "{what}");
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert!(
            answer["message"].as_str().unwrap().len() > 10,
            "{what}: {answer}"
        );
    }
    assert_eq!(app.get("/health").0, 200);
    let stats = app.stats();
    assert_eq!(stats["received"], 0, "nothing was stored: {stats}");
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
        ndjson_lines_are_stored_once_in_every_encoding,
        bad_lines_and_bodies_change_nothing,
    );
}

mod postgres_redis {
    use super::Backend;
    suite!(Backend::PostgresRedis =>
        ndjson_lines_are_stored_once_in_every_encoding,
        bad_lines_and_bodies_change_nothing,
    );
}
