//! The wire protocols a run speaks (`--protocol`, `--gzip`): edgelog's JSON, OTLP/HTTP logs,
//! Loki push and NDJSON. Every request of the plan is encoded here, and so is what keeps the
//! checks exact whatever the protocol: the `event_id` and the payload the service stores for
//! event `i`, and whether an answer acknowledged everything.
//!
//! - OTLP: one `ResourceLogs` per topic (`service.name` = topic, `service.instance.id` =
//!   `loadgen`, which becomes the source), scope `loadgen`, one `LogRecord` per event, as an
//!   OTel SDK writes a log call: the payload's message as the body, its level as the severity,
//!   its other members as attributes after `log.record.uid` = event id (so a replay is a
//!   duplicate), and `timeUnixNano`.
//! - Loki: one stream per topic, `{instance="loadgen", service_name="<topic>"}`, one entry per
//!   event: the payload's JSON as the line, `event_id` as structured metadata. Loki has no id
//!   field; the service's id is a SHA-256 digest of labels, timestamp, line and metadata, which
//!   [`stored_id`] computes the same way, so the read-back still finds each event by id.
//! - NDJSON: the native events, one per line.

use std::io::Write as _;

use bytes::Bytes;
use flate2::{Compression, write::GzEncoder};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::events::{Events, SOURCE};
use crate::plan::{PlannedRequest, Route};

/// Loki's push messages, generated from `proto/loki/push.proto` by `build.rs`.
#[allow(clippy::all, missing_docs)]
mod logproto {
    include!(concat!(env!("OUT_DIR"), "/logproto.rs"));
}

/// How events travel to the service, so a run can load any ingest route and verify it alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// edgelog's JSON events on /publish/batch (and /publish).
    #[default]
    Native,
    /// OTLP/HTTP logs on /v1/logs, protobuf.
    OtlpProto,
    /// OTLP/HTTP logs on /v1/logs, JSON.
    OtlpJson,
    /// Loki push on /loki/api/v1/push, snappy protobuf.
    Loki,
    /// Loki push on /loki/api/v1/push, JSON.
    LokiJson,
    /// edgelog's events one per line (application/x-ndjson) on /publish/batch.
    Ndjson,
}

impl Protocol {
    /// The route a request of `route`'s size goes to.
    pub fn path(self, route: Route) -> &'static str {
        match self {
            Protocol::Native | Protocol::Ndjson => route.path(),
            Protocol::OtlpProto | Protocol::OtlpJson => "/v1/logs",
            Protocol::Loki | Protocol::LokiJson => "/loki/api/v1/push",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Protocol::Native | Protocol::OtlpJson | Protocol::LokiJson => "application/json",
            Protocol::OtlpProto | Protocol::Loki => "application/x-protobuf",
            Protocol::Ndjson => "application/x-ndjson",
        }
    }

    /// Whether `200` answers count `received`, `processed` and `duplicates` (edgelog's routes);
    /// OTLP's `200` and Loki's `204` only say "all stored".
    pub fn counted(self) -> bool {
        matches!(self, Protocol::Native | Protocol::Ndjson)
    }

    /// The status that acknowledges a whole request on an uncounted route.
    pub fn success(self) -> u16 {
        match self {
            Protocol::Loki | Protocol::LokiJson => 204,
            _ => 200,
        }
    }
}

/// One request as it goes on the wire; its retries resend the same bytes.
#[derive(Clone, Debug)]
pub struct Request {
    /// The route.
    pub path: &'static str,
    /// `content-type`, and `content-encoding` with `--gzip`.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The body, compressed with `--gzip`.
    pub body: Bytes,
}

/// Encodes `req` in `protocol`, gzip-compressed when `gzip`.
pub fn encode(events: &Events, req: &PlannedRequest, protocol: Protocol, gzip: bool) -> Request {
    let body: Bytes = match protocol {
        Protocol::Native => events.body(req),
        Protocol::Ndjson => {
            let mut s = String::with_capacity(req.events.len() * 220);
            for &i in &req.events {
                events.write_json(i, &mut s);
                s.push('\n');
            }
            s.into()
        }
        Protocol::OtlpProto => otlp(events, req).encode_to_vec().into(),
        Protocol::OtlpJson => serde_json::to_vec(&otlp(events, req))
            .expect("an OTLP request serializes")
            .into(),
        Protocol::Loki => snap::raw::Encoder::new()
            .compress_vec(&loki(events, req).encode_to_vec())
            .expect("snappy compresses any push")
            .into(),
        Protocol::LokiJson => {
            let streams: Vec<Value> = by_topic(events, req, |i| {
                let metadata = json!({ "event_id": events.event_id(i) });
                json!([nanos(events, i).to_string(), line(events, i), metadata])
            })
            .map(|(topic, values)| {
                json!({"stream": {"service_name": topic, "instance": SOURCE}, "values": values})
            })
            .collect();
            serde_json::to_vec(&json!({ "streams": streams }))
                .expect("JSON serializes")
                .into()
        }
    };
    let mut headers = vec![("content-type", protocol.content_type())];
    let body = if gzip {
        headers.push(("content-encoding", "gzip"));
        let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
        gz.write_all(&body).expect("writing to memory");
        gz.finish().expect("writing to memory").into()
    } else {
        body
    };
    Request {
        path: protocol.path(req.route),
        headers,
        body,
    }
}

/// The request's events grouped by topic (in order of first appearance), each mapped by `f`.
fn by_topic<'a, T>(
    events: &'a Events,
    req: &PlannedRequest,
    f: impl Fn(u64) -> T,
) -> impl Iterator<Item = (&'a str, Vec<T>)> {
    let mut groups: Vec<(u32, Vec<T>)> = Vec::new();
    for &i in &req.events {
        let t = events.topic(i);
        match groups.iter_mut().find(|(k, _)| *k == t) {
            Some((_, items)) => items.push(f(i)),
            None => groups.push((t, vec![f(i)])),
        }
    }
    groups
        .into_iter()
        .map(|(t, items)| (events.topics()[t as usize].as_str(), items))
}

/// Event `i`'s time in nanoseconds since the epoch.
fn nanos(events: &Events, i: u64) -> i64 {
    events.time(i).timestamp_nanos_opt().unwrap_or(0)
}

/// Event `i`'s payload as JSON text: the Loki line.
fn line(events: &Events, i: u64) -> String {
    let mut s = String::with_capacity(128);
    events.write_payload(i, &mut s);
    s
}

/// OTLP's severity number of a level (DEBUG, INFO, WARN, ERROR).
fn severity(level: &str) -> i32 {
    match level {
        "debug" => 5,
        "info" => 9,
        "warn" => 13,
        _ => 17,
    }
}

fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn otlp(events: &Events, req: &PlannedRequest) -> ExportLogsServiceRequest {
    let record = |i: u64| {
        let (level, n) = events.level_and_n(i);
        LogRecord {
            time_unix_nano: nanos(events, i) as u64,
            severity_number: severity(level),
            severity_text: level.into(),
            body: Some(AnyValue {
                value: Some(Any::StringValue(format!("loadgen event {i}"))),
            }),
            attributes: vec![
                kv("log.record.uid", Any::StringValue(events.event_id(i))),
                kv("seq", Any::IntValue(i as i64)),
                kv("run", Any::StringValue(events.run_id().into())),
                kv("n", Any::IntValue(n as i64)),
            ],
            ..LogRecord::default()
        }
    };
    let resource_logs = by_topic(events, req, record)
        .map(|(topic, log_records)| ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", Any::StringValue(topic.into())),
                    kv("service.instance.id", Any::StringValue(SOURCE.into())),
                ],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SOURCE.into(),
                    ..InstrumentationScope::default()
                }),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

fn loki(events: &Events, req: &PlannedRequest) -> logproto::PushRequest {
    let entry = |i: u64| {
        let ns = nanos(events, i);
        logproto::EntryAdapter {
            timestamp: Some(prost_types::Timestamp {
                seconds: ns.div_euclid(1_000_000_000),
                nanos: ns.rem_euclid(1_000_000_000) as i32,
            }),
            line: line(events, i),
            structured_metadata: vec![logproto::LabelPairAdapter {
                name: "event_id".into(),
                value: events.event_id(i),
            }],
        }
    };
    let quote = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let streams = by_topic(events, req, entry)
        .map(|(topic, entries)| logproto::StreamAdapter {
            labels: format!(
                "{{instance={}, service_name={}}}",
                quote(SOURCE),
                quote(topic)
            ),
            entries,
            hash: 0,
        })
        .collect();
    logproto::PushRequest { streams }
}

/// The `event_id` the service stores for event `i` sent in `protocol`: the id sent, except on
/// Loki, where it is the service's digest of the entry (`src/ingest/loki.rs`).
pub fn stored_id(events: &Events, i: u64, protocol: Protocol) -> String {
    if !matches!(protocol, Protocol::Loki | Protocol::LokiJson) {
        return events.event_id(i);
    }
    // Labels sorted by name, then metadata, each as name NUL value NUL.
    let labels = format!("instance\0{SOURCE}\0service_name\0{}\0", events.topic_of(i));
    let metadata = format!("event_id\0{}\0", events.event_id(i));
    let ns = nanos(events, i).to_string();
    let mut sha = Sha256::new();
    for part in [
        labels.as_bytes(),
        ns.as_bytes(),
        line(events, i).as_bytes(),
        metadata.as_bytes(),
    ] {
        sha.update((part.len() as u64).to_le_bytes());
        sha.update(part);
    }
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The payload the service stores for event `i` sent in `protocol` (see `docs/INGEST.md`).
pub fn stored_payload(events: &Events, i: u64, protocol: Protocol) -> Value {
    let topic = events.topic_of(i);
    let ns = nanos(events, i).to_string();
    match protocol {
        Protocol::Native | Protocol::Ndjson => events.payload(i),
        Protocol::OtlpProto | Protocol::OtlpJson => {
            let (level, n) = events.level_and_n(i);
            json!({
                "severity_text": level,
                "severity_number": severity(level),
                "body": format!("loadgen event {i}"),
                "attributes": {
                    "log.record.uid": events.event_id(i), "seq": i, "run": events.run_id(), "n": n
                },
                "time_unix_nano": ns,
                "resource": {"attributes": {"service.name": topic, "service.instance.id": SOURCE}},
                "scope": {"name": SOURCE},
            })
        }
        Protocol::Loki | Protocol::LokiJson => json!({
            "line": line(events, i),
            "labels": {"instance": SOURCE, "service_name": topic},
            "structured_metadata": {"event_id": events.event_id(i)},
            "timestamp_ns": ns,
        }),
    }
}

/// Checks the body of an uncounted acknowledgement: an OTLP `partialSuccess` must refuse
/// nothing, since every record loadgen sends is valid.
pub fn check_answer(protocol: Protocol, body: &[u8]) -> Result<(), String> {
    let (rejected, message) = match protocol {
        Protocol::OtlpProto => {
            let r = ExportLogsServiceResponse::decode(body)
                .map_err(|e| format!("the 200 body is not an ExportLogsServiceResponse: {e}"))?;
            r.partial_success.map_or((0, String::new()), |p| {
                (p.rejected_log_records, p.error_message)
            })
        }
        Protocol::OtlpJson => {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| format!("the 200 body is not JSON: {e}"))?;
            let p = &v["partialSuccess"];
            let rejected = match &p["rejectedLogRecords"] {
                Value::Null => 0,
                Value::String(s) => s.parse().unwrap_or(-1),
                n => n.as_i64().unwrap_or(-1),
            };
            (
                rejected,
                p["errorMessage"].as_str().unwrap_or("").to_owned(),
            )
        }
        _ => (0, String::new()),
    };
    match rejected {
        0 => Ok(()),
        n => Err(format!("partialSuccess refused {n} records: {message}")),
    }
}
