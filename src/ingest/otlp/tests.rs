//! Unit tests of the OTLP adapter: the specification's example, both encodings, the mapping
//! rules and hostile bodies. The suites in `tests/ingest_otlp.rs` drive real exporters.

use super::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use serde_json::{Value as Json, json};

const LIMITS: Limits = Limits {
    max_batch_events: 100,
    max_payload_bytes: 65536,
};

const SPEC_EXAMPLE: &str = include_str!("../../../tests/fixtures/otlp/logs.json");

fn text(s: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(s.into())),
    }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..KeyValue::default()
    }
}

fn request(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource,
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "scope-a".into(),
                    version: "1.2".into(),
                    ..InstrumentationScope::default()
                }),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn record(body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_700_000_000_123_456_789,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(text(body)),
        attributes: vec![kv(
            "n",
            AnyValue {
                value: Some(Value::IntValue(7)),
            },
        )],
        trace_id: vec![0xab; 16],
        span_id: vec![0x01; 8],
        flags: 1,
        ..LogRecord::default()
    }
}

fn payload_of(e: &Event) -> Json {
    serde_json::from_str(e.payload()).unwrap()
}

fn decode_proto(req: &ExportLogsServiceRequest) -> Decoded {
    let bytes = req.encode_to_vec();
    let (encoding, decoded) =
        decode(&bytes, Some(Encoding::Protobuf), "service.name", &LIMITS).unwrap();
    assert_eq!(encoding, Encoding::Protobuf);
    decoded
}

#[test]
fn the_specification_example_maps_as_documented() {
    let (encoding, decoded) = decode(
        SPEC_EXAMPLE.as_bytes(),
        Some(Encoding::Json),
        "service.name",
        &LIMITS,
    )
    .unwrap();
    assert_eq!((encoding, decoded.rejected), (Encoding::Json, 0));
    let [event] = decoded.events.as_slice() else {
        panic!("one record")
    };
    assert_eq!(event.topic(), "my.service");
    assert_eq!(
        event.source(),
        "my.library",
        "no instance id or host: the scope"
    );
    assert_eq!(event.timestamp(), "2018-12-13T14:51:00.300000Z");
    assert_eq!(event.event_id().len(), 64);
    assert_eq!(
        payload_of(event),
        json!({
            "severity_text": "Information",
            "severity_number": 10,
            "body": "Example log record",
            "attributes": {
                "string.attribute": "some string",
                "boolean.attribute": true,
                "int.attribute": 10,
                "double.attribute": 637.704,
                "array.attribute": ["many", "values"],
                "map.attribute": {"some.map.key": "some value"}
            },
            "trace_id": "5b8efff798038103d269b633813fc60c",
            "span_id": "eee19b7ec3c1b174",
            "time_unix_nano": "1544712660300000000",
            "observed_time_unix_nano": "1544712660300000000",
            "resource": {"attributes": {"service.name": "my.service"}},
            "scope": {"name": "my.library", "version": "1.0.0",
                      "attributes": {"my.scope.attribute": "some scope attribute"}}
        })
    );
    // The same request as protobuf gets the same id: the id is the record's, not the encoding's.
    let parsed: ExportLogsServiceRequest = serde_json::from_str(SPEC_EXAMPLE).unwrap();
    let again = decode_proto(&parsed);
    assert_eq!(again.events[0].event_id(), event.event_id());
    assert_eq!(again.events[0].payload(), event.payload());
}

#[test]
fn ids_depend_on_content_not_on_arrival() {
    let resource = vec![kv("service.name", text("api"))];
    let a = decode_proto(&request(resource.clone(), vec![record("x"), record("y")]));
    let b = decode_proto(&request(resource.clone(), vec![record("x"), record("y")]));
    let ids = |d: &Decoded| {
        d.events
            .iter()
            .map(|e| e.event_id().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(ids(&a)[0], ids(&a)[1]);
    // Anything that identifies the record changes the id: resource, severity, trace id, time.
    let other_host = vec![kv("service.name", text("api")), kv("host.name", text("h2"))];
    let c = decode_proto(&request(other_host, vec![record("x")]));
    assert_ne!(ids(&c)[0], ids(&a)[0]);
    for change in [
        |r: &mut LogRecord| r.severity_number = 17,
        |r: &mut LogRecord| r.trace_id[0] = 0,
        |r: &mut LogRecord| r.time_unix_nano += 1,
        |r: &mut LogRecord| r.observed_time_unix_nano = 5,
    ] {
        let mut r = record("x");
        change(&mut r);
        let d = decode_proto(&request(resource.clone(), vec![r]));
        assert_ne!(ids(&d)[0], ids(&a)[0]);
    }
}

#[test]
fn mapping_rules() {
    let resource = vec![
        kv("service.name", text("checkout")),
        kv("host.name", text("web-1")),
        kv("service.instance.id", text("pod-7")),
    ];
    let mut with_uid = record("with uid");
    with_uid
        .attributes
        .push(kv("log.record.uid", text("01HZY-uid")));
    let mut no_time = record("observed only");
    no_time.time_unix_nano = 0;
    no_time.observed_time_unix_nano = 1_000_000_000;
    let d = decode_proto(&request(resource, vec![with_uid, no_time]));
    assert_eq!(d.events[0].event_id(), "01HZY-uid");
    assert_eq!(d.events[0].source(), "pod-7");
    assert_eq!(d.events[1].timestamp(), "1970-01-01T00:00:01.000000Z");
    // No service.name: OTel's unknown_service; host.name is the next source.
    let d = decode_proto(&request(
        vec![kv("host.name", text("web-2"))],
        vec![record("x")],
    ));
    assert_eq!(
        (d.events[0].topic(), d.events[0].source()),
        ("unknown_service", "web-2")
    );
    // The topic attribute is configurable.
    let bytes = request(
        vec![kv("deployment.environment", text("prod"))],
        vec![record("x")],
    )
    .encode_to_vec();
    let (_, d) = decode(&bytes, None, "deployment.environment", &LIMITS).unwrap();
    assert_eq!(d.events[0].topic(), "prod");
}

#[test]
fn values_keep_their_types() {
    let nested = AnyValue {
        value: Some(Value::KvlistValue(KeyValueList {
            values: vec![
                kv(
                    "bytes",
                    AnyValue {
                        value: Some(Value::BytesValue(vec![0, 255])),
                    },
                ),
                kv(
                    "nan",
                    AnyValue {
                        value: Some(Value::DoubleValue(f64::NAN)),
                    },
                ),
                kv(
                    "one",
                    AnyValue {
                        value: Some(Value::DoubleValue(1.0)),
                    },
                ),
                kv(
                    "int",
                    AnyValue {
                        value: Some(Value::IntValue(i64::MIN)),
                    },
                ),
                kv(
                    "a/b~c",
                    AnyValue {
                        value: Some(Value::ArrayValue(ArrayValue {
                            values: vec![
                                AnyValue {
                                    value: Some(Value::BytesValue(vec![1])),
                                },
                                AnyValue::default(),
                            ],
                        })),
                    },
                ),
            ],
        })),
    };
    let mut r = record("x");
    r.body = Some(nested);
    let d = decode_proto(&request(vec![], vec![r]));
    let text = d.events[0].payload().to_owned();
    assert!(text.contains(r#""one":1.0"#), "{text}");
    assert!(text.contains(r#""int":-9223372036854775808"#), "{text}");
    let p = payload_of(&d.events[0]);
    assert_eq!(p["body"]["bytes"], "AP8=");
    assert_eq!(p["body"]["nan"], "NaN");
    assert_eq!(p["body"]["a/b~c"], json!(["AQ==", null]));
    assert_eq!(
        p["encoded"],
        json!({"/body/bytes": "bytes", "/body/nan": "double", "/body/a~1b~0c/0": "bytes"})
    );
}

#[test]
fn bad_records_are_refused_alone() {
    let too_big = record(&"x".repeat(70_000));
    let nul = record("a\u{0}b");
    let mut long_topic = request(
        vec![kv("service.name", text(&"s".repeat(300)))],
        vec![record("x")],
    );
    let d = decode_proto(&request(vec![], vec![record("ok"), too_big, nul]));
    assert_eq!((d.events.len(), d.rejected), (1, 2));
    let summary = d.summary();
    assert!(summary.contains("log record 1: payload is"), "{summary}");
    assert!(
        summary.contains("log record 2: payload strings must not contain NUL"),
        "{summary}"
    );
    long_topic.resource_logs[0].scope_logs[0]
        .log_records
        .push(record("y"));
    let d = decode_proto(&long_topic);
    assert_eq!((d.events.len(), d.rejected), (0, 2));
}

#[test]
fn hostile_bodies_are_400() {
    let good = request(vec![kv("service.name", text("api"))], vec![record("x")]).encode_to_vec();
    let status = |body: &[u8], enc| {
        decode(body, Some(enc), "service.name", &LIMITS)
            .unwrap_err()
            .status
    };
    assert_eq!(status(b"", Encoding::Protobuf), 400);
    // Truncated protobuf.
    assert_eq!(status(&good[..good.len() - 3], Encoding::Protobuf), 400);
    // Wrong wire type: field 1 (resource_logs, length-delimited) sent as a varint.
    assert_eq!(status(&[0x08, 0x01], Encoding::Protobuf), 400);
    // JSON sent as protobuf, protobuf sent as JSON.
    assert_eq!(status(SPEC_EXAMPLE.as_bytes(), Encoding::Protobuf), 400);
    assert_eq!(status(&good, Encoding::Json), 400);
    // serde would read a struct from an array: a body that is not an object is refused first.
    assert_eq!(status(b"[]", Encoding::Json), 400);
    assert_eq!(status(b" [[]]", Encoding::Json), 400);
    // AnyValue nested 1,000 deep: refused by the decoder's recursion limit (100), not a crash.
    let mut deep = text("leaf");
    for _ in 0..1_000 {
        deep = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values: vec![deep] })),
        };
    }
    let mut r = record("x");
    r.body = Some(deep);
    let bytes = request(vec![], vec![r]).encode_to_vec();
    assert_eq!(status(&bytes, Encoding::Protobuf), 400);
    let deep_json = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{}"x"{}}}]}}]}}]}}"#,
        r#"{"arrayValue":{"values":["#.repeat(500),
        "]}}".repeat(500)
    );
    assert_eq!(status(deep_json.as_bytes(), Encoding::Json), 400);
    // Too many records for one request.
    let many = request(vec![], (0..101).map(|i| record(&i.to_string())).collect()).encode_to_vec();
    assert_eq!(status(&many, Encoding::Protobuf), 413);
}

#[test]
fn answers_follow_the_request_encoding() {
    let mut d = Decoded::with_capacity(0, "log record");
    let ok = answer(Encoding::Json, &d);
    assert_eq!(ok.status(), &200);
    d.refuse(
        "3".into(),
        "payload strings must not contain NUL characters".into(),
    );
    let partial = answer(Encoding::Protobuf, &d);
    let response =
        opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::decode(
            partial.body(),
        )
        .unwrap();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 1);
    assert!(partial.error_message.contains("log record 3"));
    let e = error(Encoding::Protobuf, ApiError::queue_unavailable());
    assert_eq!(e.status(), &503);
    let status = Status::decode(e.body()).unwrap();
    assert_eq!(status.code, 14);
    let e = error(Encoding::Json, ApiError::invalid("bad"));
    assert_eq!(e.status(), &400);
    let v: Json = serde_json::from_slice(e.body()).unwrap();
    assert_eq!(v, json!({"code": 3, "message": "bad"}));
}

#[test]
fn whole_numbers_with_a_fraction_are_integers() {
    let body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": 1714564800000000000u64,
        "severityNumber": 17.0,
        "flags": 1e0,
        "droppedAttributesCount": 2.0,
        "body": {"intValue": 5.0},
        "attributes": [{"key": "d", "value": {"doubleValue": 2.0}}]
    }]}]}]})
    .to_string()
    // serde_json writes 1e0 and 17.0 as `1.0` and `17.0`; exponents are spelled by hand.
    .replace("\"flags\":1.0", "\"flags\":1e0");
    assert!(
        body.contains("\"severityNumber\":17.0") && body.contains("1e0"),
        "{body}"
    );
    let (_, d) = decode(
        body.as_bytes(),
        Some(Encoding::Json),
        "service.name",
        &LIMITS,
    )
    .unwrap();
    assert_eq!((d.events.len(), d.rejected), (1, 0));
    let p = payload_of(&d.events[0]);
    assert_eq!(
        (p["severity_number"].clone(), p["flags"].clone()),
        (json!(17), json!(1))
    );
    assert_eq!(p["body"], json!(5));
    assert_eq!(
        p["attributes"]["d"].to_string(),
        "2.0",
        "a double stays a double"
    );
    // A fraction that is not whole is still no integer.
    let half = body.replace("\"flags\":1e0", "\"flags\":1.5");
    let err = decode(
        half.as_bytes(),
        Some(Encoding::Json),
        "service.name",
        &LIMITS,
    )
    .unwrap_err();
    assert_eq!(err.status, 400);
}

#[test]
fn an_unusable_source_candidate_is_passed_over() {
    let long = "s".repeat(300);
    let mut req = request(
        vec![
            kv("service.name", text("api")),
            kv("service.instance.id", text(&long)),
            kv("host.name", text("h1")),
        ],
        vec![record("x")],
    );
    let d = decode_proto(&req);
    assert_eq!((d.events.len(), d.rejected), (1, 0));
    assert_eq!(d.events[0].source(), "h1");
    req.resource_logs[0].resource = Some(Resource::default());
    req.resource_logs[0].scope_logs[0].scope = Some(InstrumentationScope {
        name: long,
        ..InstrumentationScope::default()
    });
    let d = decode_proto(&req);
    assert_eq!((d.events.len(), d.rejected), (1, 0));
    assert_eq!(d.events[0].source(), "unknown");
}

#[test]
fn shared_resource_and_scope_members_are_in_every_record() {
    // The resource and scope members are rendered once per scope: each record still carries
    // them whole, and `encoded` lists the record's pointers, then the resource's, then the
    // scope's, in every record.
    let bytes = |b: &[u8]| AnyValue {
        value: Some(Value::BytesValue(b.to_vec())),
    };
    let mut req = request(
        vec![kv("service.name", text("svc")), kv("blob", bytes(&[7]))],
        vec![record("first"), record("second")],
    );
    let scope_logs = &mut req.resource_logs[0].scope_logs[0];
    scope_logs.schema_url = "https://scope.example".into();
    let scope = scope_logs.scope.as_mut().unwrap();
    scope.attributes = vec![kv(
        "inf",
        AnyValue {
            value: Some(Value::DoubleValue(f64::INFINITY)),
        },
    )];
    scope_logs.log_records[1].body = Some(bytes(&[1, 2]));
    let d = decode_proto(&req);
    assert_eq!(d.events.len(), 2);
    let (a, b) = (payload_of(&d.events[0]), payload_of(&d.events[1]));
    let resource = json!({"attributes": {"service.name": "svc", "blob": "Bw=="}});
    let scope = json!({"name": "scope-a", "version": "1.2", "attributes": {"inf": "Infinity"},
                       "schema_url": "https://scope.example"});
    for p in [&a, &b] {
        assert_eq!(p["resource"], resource);
        assert_eq!(p["scope"], scope);
    }
    assert_eq!(
        a["encoded"],
        json!({"/resource/attributes/blob": "bytes", "/scope/attributes/inf": "double"})
    );
    let keys: Vec<&String> = b["encoded"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "/body",
            "/resource/attributes/blob",
            "/scope/attributes/inf"
        ],
        "the record's pointers first"
    );
    let text = d.events[1].payload();
    let tail = r#""encoded":{"/body":"bytes","/resource/attributes/blob":"bytes","#;
    assert!(
        text.ends_with(&format!(r#"{tail}"/scope/attributes/inf":"double"}}}}"#)),
        "{text}"
    );
}

#[test]
fn the_searchable_message_is_the_body_text() {
    // The adapter hands the body's text to the event itself (no second read of the payload):
    // the text `validate::text` would read — a string as itself, anything else as its JSON,
    // a NaN or bytes as the string written for them, no body or an empty one: none.
    let cases: [(Option<AnyValue>, Option<&str>); 6] = [
        (Some(text("plain \"quoted\"")), Some("plain \"quoted\"")),
        (
            Some(AnyValue {
                value: Some(Value::IntValue(42)),
            }),
            Some("42"),
        ),
        (
            Some(AnyValue {
                value: Some(Value::DoubleValue(f64::NAN)),
            }),
            Some("NaN"),
        ),
        (
            Some(AnyValue {
                value: Some(Value::BytesValue(vec![1, 2])),
            }),
            Some("AQI="),
        ),
        (Some(AnyValue::default()), None),
        (None, None),
    ];
    for (body, want) in cases {
        let mut r = record("x");
        r.body = body.clone();
        let d = decode_proto(&request(vec![], vec![r]));
        assert_eq!(d.events[0].message(), want, "{body:?}");
        assert_eq!(
            text_of(&d.events[0]),
            want.map(str::to_owned),
            "the message validate would read from the payload"
        );
    }
}

/// The message `validate` reads out of a stored payload.
fn text_of(e: &Event) -> Option<String> {
    crate::validate::Event::restore(
        e.topic().into(),
        e.event_id().into(),
        e.timestamp(),
        e.source().into(),
        serde_json::value::RawValue::from_string(e.payload().to_owned()).unwrap(),
    )
    .unwrap()
    .message()
    .map(str::to_owned)
}
