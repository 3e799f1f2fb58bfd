//! `--protocol` and `--gzip` through loadgen's public API: every encoding carries each event of
//! the request once (OTLP grouped by topic with `log.record.uid`, Loki by stream with the id as
//! metadata, NDJSON one per line), the two OTLP encodings say the same thing, gzip is undone to
//! the same bytes, Loki's derived ids are stable for replays and distinct otherwise, and the
//! ledger reads OTLP's and Loki's answers (a refusing `partialSuccess` is an error).

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use loadgen::client::Answer;
use loadgen::events::Events;
use loadgen::ledger::Ledger;
use loadgen::plan::{PlannedRequest, Route};
use loadgen::protocol::{self, Protocol};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use serde_json::Value;

fn events() -> Events {
    let t = DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
        .unwrap()
        .with_timezone(&Utc);
    Events::new("proto", 3, 11, t)
}

/// Twelve events with a replay of event 2 in the same request.
fn batch() -> PlannedRequest {
    PlannedRequest {
        route: Route::Batch,
        events: (0..12).chain([2]).collect(),
        resend_of: None,
    }
}

fn string(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> &str {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s,
        other => panic!("not a string: {other:?}"),
    }
}

#[test]
fn otlp_groups_by_topic_and_carries_each_id_once() {
    let (e, req) = (events(), batch());
    let r = protocol::encode(&e, &req, Protocol::OtlpProto, false);
    assert_eq!(r.path, "/v1/logs");
    assert_eq!(r.headers, [("content-type", "application/x-protobuf")]);
    let export = ExportLogsServiceRequest::decode(r.body).unwrap();
    let mut sent = Vec::new();
    for rl in &export.resource_logs {
        let attrs = &rl.resource.as_ref().unwrap().attributes;
        let topic = string(&attrs[0].value);
        assert_eq!(attrs[0].key, "service.name");
        for record in &rl.scope_logs[0].log_records {
            assert_eq!(record.attributes[0].key, "log.record.uid");
            let id = string(&record.attributes[0].value);
            let i: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
            assert_eq!(topic, e.topic_of(i));
            assert_eq!(id, protocol::stored_id(&e, i, Protocol::OtlpProto));
            assert_eq!(
                record.time_unix_nano as i64,
                e.time(i).timestamp_nanos_opt().unwrap()
            );
            sent.push(i);
        }
    }
    assert_eq!(export.resource_logs.len(), 3, "one resource per topic");
    sent.sort_unstable();
    let mut want = req.events.clone();
    want.sort_unstable();
    assert_eq!(sent, want);

    // The JSON encoding is the same request, and gzip gives back the same bytes.
    let json = protocol::encode(&e, &req, Protocol::OtlpJson, true);
    assert_eq!(
        json.headers,
        [
            ("content-type", "application/json"),
            ("content-encoding", "gzip")
        ]
    );
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&json.body[..])
        .read_to_end(&mut text)
        .unwrap();
    let plain = protocol::encode(&e, &req, Protocol::OtlpJson, false);
    assert_eq!(text, plain.body);
    let from_json: ExportLogsServiceRequest = serde_json::from_slice(&text).unwrap();
    assert_eq!(from_json, export);
}

#[test]
fn loki_and_ndjson_carry_every_event_and_loki_ids_are_the_entries_digests() {
    let (e, req) = (events(), batch());
    let r = protocol::encode(&e, &req, Protocol::LokiJson, false);
    assert_eq!(r.path, "/loki/api/v1/push");
    let push: Value = serde_json::from_slice(&r.body).unwrap();
    let streams = push["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 3);
    let entries: usize = streams
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum();
    assert_eq!(entries, req.events.len());
    assert_eq!(streams[0]["stream"]["instance"], "loadgen");

    let id = |i| protocol::stored_id(&e, i, Protocol::Loki);
    assert_eq!(id(2), id(2), "a replay has the same id");
    assert_eq!(id(2), protocol::stored_id(&e, 2, Protocol::LokiJson));
    assert_ne!(id(2), id(3));
    assert!(id(2).len() == 64 && id(2).bytes().all(|b| b.is_ascii_hexdigit()));
    let payload = protocol::stored_payload(&e, 2, Protocol::Loki);
    assert_eq!(
        serde_json::from_str::<Value>(payload["line"].as_str().unwrap()).unwrap(),
        e.payload(2)
    );

    let snappy = protocol::encode(&e, &req, Protocol::Loki, false);
    assert_eq!(snappy.headers, [("content-type", "application/x-protobuf")]);
    assert!(
        snap::raw::Decoder::new()
            .decompress_vec(&snappy.body)
            .is_ok()
    );

    let nd = protocol::encode(&e, &req, Protocol::Ndjson, false);
    assert_eq!(nd.path, "/publish/batch");
    let lines: Vec<Value> = std::str::from_utf8(&nd.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), req.events.len());
    assert_eq!(lines[12]["event_id"], e.event_id(2));
}

fn answer(status: u16, body: Vec<u8>) -> loadgen::client::Attempt {
    Ok(Answer {
        status,
        body: Bytes::from(body),
        latency: Duration::from_millis(1),
        version: "HTTP/1.1",
    })
}

#[test]
fn the_ledger_reads_otlp_and_loki_answers() {
    let req = batch();
    let mut otlp = Ledger {
        protocol: Protocol::OtlpProto,
        ..Ledger::new()
    };
    otlp.record(0, &req, &[answer(503, vec![]), answer(200, vec![])], false);
    assert_eq!((otlp.acked_events, otlp.error_count), (13, 0));
    assert_eq!(
        otlp.expected().sums_of_200,
        None,
        "OTLP answers carry no counts"
    );
    let refused = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 2,
            error_message: "2 log record(s) refused".into(),
        }),
    };
    otlp.record(1, &req, &[answer(200, refused.encode_to_vec())], false);
    assert_eq!(otlp.error_count, 1);
    assert!(
        otlp.errors[0].contains("refused 2 records"),
        "{:?}",
        otlp.errors
    );

    let mut json = Ledger {
        protocol: Protocol::OtlpJson,
        ..Ledger::new()
    };
    json.record(0, &req, &[answer(200, b"{}".to_vec())], false);
    let partial = br#"{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"x"}}"#;
    json.record(1, &req, &[answer(200, partial.to_vec())], false);
    assert_eq!(json.error_count, 1, "{:?}", json.errors);

    let mut loki = Ledger {
        protocol: Protocol::Loki,
        ..Ledger::new()
    };
    loki.record(0, &req, &[answer(429, vec![]), answer(204, vec![])], false);
    assert_eq!((loki.acked_events, loki.ambiguous_events), (13, 0));
    loki.record(1, &req, &[answer(200, vec![])], false);
    assert_eq!(loki.error_count, 1, "Loki answers 204: {:?}", loki.errors);
    assert!(loki.errors[0].contains("/loki/api/v1/push"));
}
