//! Loki push (`POST /loki/api/v1/push`) end to end: winston with winston-loki pushes to the real
//! `edgelog.wasm` on edge-host, in Loki's default encoding (snappy-compressed protobuf) and in
//! JSON, on both backends; the same records pushed again are stored once. Also hostile bodies,
//! which get Loki's plain-text errors and store nothing.

#[path = "ingest/common.rs"]
mod common;
mod support;

use common::{gzip, gzip_bomb, node, post_raw, topic_counts};
use serde_json::{Value, json};
use support::app::{App, Backend};

const RECORDS: usize = 24;

fn winston_pushes_are_stored_exactly_once(b: Backend) {
    let app = App::start(b);
    for encoding in ["proto", "json"] {
        let service = format!("winston-{encoding}");
        let lines = node(
            "loki.mjs",
            &[&app.host.url, encoding, &RECORDS.to_string(), &service, "2"],
        );
        assert!(lines.iter().all(|l| l.get("error").is_none()), "{lines:#?}");
        let n = RECORDS as u64;
        assert_eq!(topic_counts(&app, &service), (2 * n, n, n), "{service}");
        let events = app.all_events(&service);
        assert_eq!(events.len(), RECORDS);
        for event in &events {
            let p = &event["payload"];
            let line = p["line"].as_str().unwrap();
            let i: usize = line
                .strip_prefix("line ")
                .and_then(|r| r.split(' ').next())
                .and_then(|i| i.parse().ok())
                .unwrap_or_else(|| panic!("{event}"));
            assert!(
                line.starts_with(&format!("line {i} from {service}")),
                "{line}"
            );
            let level = ["info", "warn", "error"][i % 3];
            assert_eq!(
                p["labels"],
                json!({"level": level, "service_name": service, "instance": "web-1"}),
                "{event}"
            );
            assert_eq!(event["source"], "web-1");
            assert_eq!(
                event["timestamp"],
                format!("2024-05-01T12:00:00.{i:03}000Z"),
                "{event}"
            );
            assert_eq!(
                p["timestamp_ns"],
                ((1_714_564_800_000u64 + i as u64) * 1_000_000).to_string()
            );
            if encoding == "json" {
                // winston-loki sends the record's other fields as structured metadata in JSON.
                assert_eq!(
                    p["structured_metadata"]["request_id"],
                    format!("req-{i}"),
                    "{event}"
                );
            }
        }
    }
}

fn hostile_pushes_get_loki_errors_and_store_nothing(b: Backend) {
    let app = App::start(b);
    let url = app.host.at("/loki/api/v1/push");
    let entry = json!({"streams": [{"stream": {"job": "hostile"}, "values": [["1700000000000000000", "ok"]]}]});
    let good_json = entry.to_string().into_bytes();
    // The control: a valid JSON push is stored.
    let (s, _, _) = post_raw(
        &url,
        &[("content-type", "application/json")],
        good_json.clone(),
    );
    assert_eq!(s, 204);
    /// What is sent, its body, its headers, the status it must get.
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        (
            "protobuf that is not snappy",
            b"\x0a\x05hello".to_vec(),
            vec![("content-type", "application/x-protobuf")],
            400,
        ),
        (
            "snappy announcing 4 GiB",
            vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00],
            vec![("content-type", "application/x-protobuf")],
            413,
        ),
        (
            "JSON values of the wrong shape",
            br#"{"streams":[{"stream":{"job":"hostile"},"values":[["1"]]}]}"#.to_vec(),
            vec![("content-type", "application/json")],
            400,
        ),
        (
            "labels that are not strings",
            br#"{"streams":[{"stream":{"job":5},"values":[["1","x"]]}]}"#.to_vec(),
            vec![("content-type", "application/json")],
            400,
        ),
        (
            "JSON sent as protobuf",
            good_json.clone(),
            vec![("content-type", "application/x-protobuf")],
            400,
        ),
        (
            "a text content type",
            good_json.clone(),
            vec![("content-type", "text/plain")],
            415,
        ),
        (
            "a gzip bomb",
            gzip_bomb(),
            vec![
                ("content-type", "application/json"),
                ("content-encoding", "gzip, gzip"),
            ],
            413,
        ),
        (
            "an unknown encoding",
            gzip(&good_json),
            vec![
                ("content-type", "application/json"),
                ("content-encoding", "lz4"),
            ],
            415,
        ),
    ];
    for (what, body, headers, want) in cases {
        let (s, content_type, text) = post_raw(&url, &headers, body);
        let text = String::from_utf8_lossy(&text);
        assert_eq!(s, want, "{what}: {text}");
        assert!(
            content_type.starts_with("text/plain"),
            "{what}: {content_type}"
        );
        assert!(text.len() > 10, "{what}: the body says why: {text}");
    }
    // Gzip on the JSON push is fine; the same entry again is a duplicate.
    let (s, _, _) = post_raw(
        &url,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gzip(&good_json),
    );
    assert_eq!(s, 204);
    assert_eq!(topic_counts(&app, "hostile"), (2, 1, 1));
    // A bad entry among good ones: the good ones are stored, the answer names the bad one.
    let mixed = json!({"streams": [{"stream": {"job": "mixed"}, "values": [
        ["1700000000000000000", "fine"], ["1700000000000000001", "nul \u{0}"]
    ]}]});
    let (s, _, text) = post_raw(
        &url,
        &[("content-type", "application/json")],
        mixed.to_string().into_bytes(),
    );
    let text = String::from_utf8_lossy(&text);
    assert_eq!(s, 400, "{text}");
    assert!(text.contains("stream 0 entry 1"), "{text}");
    assert_eq!(topic_counts(&app, "mixed"), (1, 1, 0));
    let stats: Value = app.stats();
    assert_eq!(stats["received"], 3, "{stats}");
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
        winston_pushes_are_stored_exactly_once,
        hostile_pushes_get_loki_errors_and_store_nothing,
    );
}

mod postgres_redis {
    use super::Backend;
    suite!(Backend::PostgresRedis =>
        winston_pushes_are_stored_exactly_once,
        hostile_pushes_get_loki_errors_and_store_nothing,
    );
}
