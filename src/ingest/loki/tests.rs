//! Unit tests of the Loki adapter: both encodings give the same events, label text parsing,
//! refusals and hostile bodies. `tests/ingest_loki.rs` drives a real Loki client.

use super::*;
use crate::ingest::proto::logproto::{EntryAdapter, LabelPairAdapter, StreamAdapter};
use serde_json::{Value as Json, json};

const LIMITS: Limits = Limits {
    max_batch_events: 10,
    max_payload_bytes: 2048,
};

fn topics() -> Vec<String> {
    ["service_name", "job", "app"].map(String::from).to_vec()
}

fn json_push() -> Json {
    json!({"streams": [{
        "stream": {"job": "api", "instance": "web-1", "level": "info"},
        "values": [
            ["1700000000123456789", "GET /health 200"],
            ["1700000000123456790", "slow request", {"trace_id": "abc", "user": "u1"}]
        ]
    }]})
}

fn proto_push() -> Vec<u8> {
    let entry = |ns: i64, line: &str, md: &[(&str, &str)]| EntryAdapter {
        timestamp: Some(prost_types::Timestamp {
            seconds: ns / 1_000_000_000,
            nanos: (ns % 1_000_000_000) as i32,
        }),
        line: line.into(),
        structured_metadata: md
            .iter()
            .map(|(n, v)| LabelPairAdapter {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
    };
    let request = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{level="info", instance="web-1", job="api"}"#.into(),
            entries: vec![
                entry(1_700_000_000_123_456_789, "GET /health 200", &[]),
                entry(
                    1_700_000_000_123_456_790,
                    "slow request",
                    &[("trace_id", "abc"), ("user", "u1")],
                ),
            ],
            hash: 0,
        }],
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

fn run(body: &[u8], format: Option<Format>) -> Result<Decoded, ApiError> {
    decode(body, format, &topics(), &LIMITS, 1 << 20)
}

#[test]
fn both_encodings_give_the_same_events() {
    let from_json = run(json_push().to_string().as_bytes(), Some(Format::Json)).unwrap();
    let from_proto = run(&proto_push(), Some(Format::Protobuf)).unwrap();
    assert_eq!(from_json.rejected, 0);
    assert_eq!(from_json.events, from_proto.events);
    let e = &from_json.events[1];
    assert_eq!((e.topic(), e.source()), ("api", "web-1"));
    assert_eq!(e.timestamp(), "2023-11-14T22:13:20.123456Z");
    let p: Json = serde_json::from_str(e.payload()).unwrap();
    assert_eq!(
        p,
        json!({"line": "slow request",
               "labels": {"instance": "web-1", "job": "api", "level": "info"},
               "structured_metadata": {"trace_id": "abc", "user": "u1"},
               "timestamp_ns": "1700000000123456790"})
    );
    assert_ne!(from_json.events[0].event_id(), e.event_id());
    // Sniffed without a Content-Type.
    assert_eq!(run(&proto_push(), None).unwrap().events, from_proto.events);
}

#[test]
fn topic_falls_back_through_the_labels() {
    let push = |labels: Json| {
        let body = json!({"streams": [{"stream": labels, "values": [["1", "x"]]}]});
        run(body.to_string().as_bytes(), None).unwrap().events[0]
            .topic()
            .to_owned()
    };
    assert_eq!(push(json!({"service_name": "svc", "job": "j"})), "svc");
    assert_eq!(push(json!({"service_name": "", "app": "a"})), "a");
    assert_eq!(push(json!({"other": "x"})), "unknown_service");
}

#[test]
fn an_unusable_source_label_is_passed_over() {
    let source = |labels: Json| {
        let body = json!({"streams": [{"stream": labels, "values": [["1", "x"]]}]});
        let d = run(body.to_string().as_bytes(), None).unwrap();
        assert_eq!(d.rejected, 0, "{:?}", d.reasons);
        d.events[0].source().to_owned()
    };
    let long = "i".repeat(256);
    assert_eq!(source(json!({"instance": long, "host": "h"})), "h");
    assert_eq!(source(json!({"instance": "", "hostname": long})), "loki");
    assert_eq!(source(json!({"instance": "web-1", "host": "h"})), "web-1");
}

#[test]
fn label_text() {
    let l = parse_labels(r#"{ job="a\"b\\c\n", app = "x\u00e9" ,}"#).unwrap();
    assert_eq!(l["job"], "a\"b\\c\n");
    assert_eq!(l["app"], "xé");
    assert_eq!(parse_labels("{}").unwrap().len(), 0);
    for bad in [
        "job=\"a\"",
        "{job=a}",
        "{job=\"a\" app=\"b\"}",
        "{job=\"a\",job=\"b\"}",
        "{9x=\"a\"}",
        "{job=\"a}",
        "{job=\"\\q\"}",
    ] {
        assert!(parse_labels(bad).is_err(), "{bad}");
    }
}

#[test]
fn bad_entries_are_refused_alone() {
    let body = json!({"streams": [{"stream": {"job": "j"}, "values": [
        ["1", "fine"],
        ["2", "x".repeat(3000)],
        ["3", "nul \u{0} here"],
        ["-99999999999999999999999", "year -1000"]
    ]}]});
    let d = run(body.to_string().as_bytes(), None).unwrap();
    assert_eq!((d.events.len(), d.rejected), (1, 3));
    assert!(
        d.summary().contains("entry stream 0 entry 1: payload is"),
        "{}",
        d.summary()
    );
}

#[test]
fn hostile_bodies() {
    let status = |body: &[u8], format| run(body, format).unwrap_err().status;
    // Not snappy, truncated snappy, snappy claiming a huge length.
    assert_eq!(status(b"\x0a\x05hello", Some(Format::Protobuf)), 400);
    let good = proto_push();
    assert_eq!(status(&good[..good.len() - 4], Some(Format::Protobuf)), 400);
    let huge = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    assert_eq!(status(&huge, Some(Format::Protobuf)), 413);
    // Snappy around something that is not a PushRequest (wrong wire type for field 1).
    let wrong = snap::raw::Encoder::new()
        .compress_vec(&[0x08, 0x01])
        .unwrap();
    assert_eq!(status(&wrong, Some(Format::Protobuf)), 400);
    // JSON shapes.
    for body in [
        r#"{"streams": [{"stream": {}, "values": [["1"]]}]}"#,
        r#"{"streams": [{"stream": {}, "values": [[1, "x"]]}]}"#,
        r#"{"streams": [{"stream": {}, "values": [["x1", "x"]]}]}"#,
        r#"{"streams": [{"stream": {}, "values": [["1", "x", {"k": 1}]]}]}"#,
        r#"{"streams": [{"stream": {"a": 1}, "values": []}]}"#,
        r#"{"nope": 1}"#,
        r#"[[]]"#,
    ] {
        assert_eq!(status(body.as_bytes(), Some(Format::Json)), 400, "{body}");
    }
    let many: Vec<Json> = (0..11).map(|i| json!([i.to_string(), "x"])).collect();
    let body = json!({"streams": [{"stream": {}, "values": many}]}).to_string();
    assert_eq!(status(body.as_bytes(), None), 413);
}

#[test]
fn errors_are_plain_text() {
    let e = error(ApiError::queue_unavailable());
    assert_eq!(e.status(), &503);
    assert!(
        std::str::from_utf8(e.body())
            .unwrap()
            .starts_with("the queue is unavailable")
    );
    assert_eq!(error(ApiError::invalid("x")).status(), &400);
}
