//! OTLP/HTTP logs (`POST /v1/logs`) end to end: the OpenTelemetry JS SDK's own exporters
//! (`@opentelemetry/exporter-logs-otlp-http` for JSON, `-proto` for protobuf, with and without
//! gzip) export to the real `edgelog.wasm` on edge-host, on both backends; the exporter's retry
//! (the same export again) is stored once. Also: the specification's `examples/logs.json` by
//! curl, hostile bodies, tokens, and a retry the service forces by being down.

#[path = "ingest/common.rs"]
mod common;
mod support;

use common::{NodeRun, app_behind_switches, gzip, gzip_bomb, node, post_raw, topic_counts};
use serde_json::{Value, json};
use support::HostConfig;
use support::app::{App, Backend};

const RECORDS: usize = 30;

/// Exports RECORDS records twice with one exporter setup; checks counters and every record.
fn exported_twice_is_stored_once(app: &App, encoding: &str, compression: &str) {
    let service = format!("svc-{encoding}-{compression}");
    let lines = node(
        "otlp.mjs",
        &[
            &app.host.url,
            encoding,
            compression,
            &RECORDS.to_string(),
            &service,
            "2",
        ],
    );
    let exports: Vec<&Value> = lines.iter().filter(|l| l.get("export").is_some()).collect();
    assert_eq!(exports.len(), 2, "{lines:#?}");
    assert!(exports.iter().all(|e| e["code"] == 0), "{lines:#?}");
    let n = RECORDS as u64;
    assert_eq!(topic_counts(app, &service), (2 * n, n, n), "{service}");
    let events = app.all_events(&service);
    assert_eq!(events.len(), RECORDS);
    for event in &events {
        let p = &event["payload"];
        let i = p["attributes"]["record.index"]
            .as_u64()
            .expect("record.index") as usize;
        assert_eq!(p["body"], format!("record {i} from {service}"), "{event}");
        let (number, text) = [(9, "INFO"), (13, "WARN"), (17, "ERROR")][i % 3];
        assert_eq!(
            (&p["severity_number"], &p["severity_text"]),
            (&json!(number), &json!(text)),
            "{event}"
        );
        assert_eq!(
            p["attributes"],
            json!({"record.index": i, "http.route": "/checkout", "duration.ms": 12.5,
                   "ok": i.is_multiple_of(2), "tags": ["a", "b"]}),
            "{event}"
        );
        assert_eq!(event["source"], "instance-1");
        assert_eq!(
            p["resource"]["attributes"]["service.name"],
            service.as_str()
        );
        assert_eq!(p["scope"]["name"], "edgelog-client-test");
        let ms = 1_714_564_800_000u64 + i as u64;
        assert_eq!(p["time_unix_nano"], (ms * 1_000_000).to_string());
        assert_eq!(
            event["timestamp"],
            format!("2024-05-01T12:00:00.{:03}000Z", i),
            "{event}"
        );
        assert_eq!(event["event_id"].as_str().unwrap().len(), 64);
    }
}

fn sdk_exporters_are_stored_exactly_once(b: Backend) {
    let app = App::start(b);
    for (encoding, compression) in [
        ("proto", "none"),
        ("proto", "gzip"),
        ("json", "none"),
        ("json", "gzip"),
    ] {
        exported_twice_is_stored_once(&app, encoding, compression);
    }
    let stats = app.stats();
    let n = RECORDS as u64;
    assert_eq!(
        (
            &stats["received"],
            &stats["unique_processed"],
            &stats["duplicate_dropped"]
        ),
        (&json!(8 * n), &json!(4 * n), &json!(4 * n)),
        "{stats}"
    );
}

fn the_specification_example_is_accepted_by_curl(b: Backend) {
    let app = App::start(b);
    let fixture = support::root().join("tests/fixtures/otlp/logs.json");
    for attempt in 1..=2 {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-X", "POST", "-H", "Content-Type: application/json"])
            .arg("-d")
            .arg(format!("@{}", fixture.display()))
            .args(["-w", "\n%{http_code}"])
            .arg(app.host.at("/v1/logs"))
            .output()
            .expect("run curl (scripts/services.sh installs it)");
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        assert_eq!(status, "200", "attempt {attempt}: {body}");
        assert_eq!(serde_json::from_str::<Value>(body).unwrap(), json!({}));
    }
    assert_eq!(topic_counts(&app, "my.service"), (2, 1, 1));
    let events = app.all_events("my.service");
    let p = &events[0]["payload"];
    assert_eq!(p["body"], "Example log record");
    assert_eq!(p["severity_text"], "Information");
    assert_eq!(
        p["attributes"]["map.attribute"],
        json!({"some.map.key": "some value"})
    );
    assert_eq!(p["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(events[0]["timestamp"], "2018-12-13T14:51:00.300000Z");
}

/// A valid request as protobuf bytes, built without a protobuf library: one ResourceLogs with
/// service.name = `svc`, one record whose body is `body` (an AnyValue's encoding).
fn protobuf_request(body_any_value: &[u8]) -> Vec<u8> {
    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let mut len = bytes.len();
        loop {
            let b = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(bytes);
        out
    }
    let string_value = |s: &str| field(0x0a, s.as_bytes()); // AnyValue.string_value = 1
    let key_value = [
        field(0x0a, b"service.name"),
        field(0x12, &string_value("hostile")),
    ]
    .concat();
    let resource = field(0x0a, &key_value); // Resource.attributes = 1
    let record = field(0x2a, body_any_value); // LogRecord.body = 5
    let scope_logs = field(0x12, &record); // ScopeLogs.log_records = 2
    let resource_logs = [field(0x0a, &resource), field(0x12, &scope_logs)].concat();
    field(0x0a, &resource_logs) // ExportLogsServiceRequest.resource_logs = 1
}

/// An AnyValue nested `depth` arrays deep (ArrayValue.values = 1, AnyValue.array_value = 5).
fn nested_any_value(depth: usize) -> Vec<u8> {
    let wrap = |tag: u8, inner: &[u8]| {
        let mut out = vec![tag];
        let mut len = inner.len();
        loop {
            let b = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(inner);
        out
    };
    let mut value = wrap(0x0a, b"leaf");
    for _ in 0..depth {
        value = wrap(0x2a, &wrap(0x0a, &value));
    }
    value
}

fn hostile_bodies_are_clear_4xx_and_store_nothing(b: Backend) {
    let app = App::start(b);
    let url = app.host.at("/v1/logs");
    let proto = [("content-type", "application/x-protobuf")];
    let good = protobuf_request(&nested_any_value(1));
    // The hand-built request is valid: it is the control for everything below.
    let (s, _, _) = post_raw(&url, &proto, good.clone());
    assert_eq!(s, 200);
    let status_of = |body: &[u8], ct: &str| -> (u16, Value) {
        let (s, content_type, body) = post_raw(&url, &[("content-type", ct)], body.to_vec());
        let status: Value = if content_type == "application/json" {
            serde_json::from_slice(&body).unwrap()
        } else {
            json!({"protobuf_bytes": body.len()})
        };
        (s, status)
    };
    let cases: Vec<(&str, Vec<u8>, &str, u16)> =
        vec![
        ("truncated protobuf", good[..good.len() - 5].to_vec(), "application/x-protobuf", 400),
        ("wrong wire type", vec![0x08, 0x01], "application/x-protobuf", 400),
        (
            "AnyValue nested 2,000 deep",
            protobuf_request(&nested_any_value(2000)),
            "application/x-protobuf",
            400,
        ),
        (
            "JSON AnyValue nested 1,000 deep",
            format!(
                r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{}"x"{}}}]}}]}}]}}"#,
                r#"{"arrayValue":{"values":["#.repeat(1000),
                "]}}".repeat(1000)
            )
            .into_bytes(),
            "application/json",
            400,
        ),
        ("protobuf sent as JSON", good.clone(), "application/json", 400),
        ("JSON sent as protobuf", b"{\"resourceLogs\":[]}".to_vec(), "application/x-protobuf", 400),
        ("a text content type", good.clone(), "text/plain", 415),
    ];
    for (what, body, ct, want) in cases {
        let (s, status) = status_of(&body, ct);
        assert_eq!(s, want, "{what}: {status}");
        if ct == "application/json" {
            assert_eq!(status["code"], 3, "{what}: a google.rpc.Status: {status}");
            assert!(
                status["message"].as_str().unwrap().len() > 10,
                "{what}: {status}"
            );
        }
    }
    // A ~1 KB body that inflates to 1 GiB: 413 after at most max_body_bytes, not a crash.
    let (s, _, body) = post_raw(
        &url,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip, gzip"),
        ],
        gzip_bomb(),
    );
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(s, 413, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("decompressed"),
        "{status}"
    );
    // Not gzip at all, and an encoding nobody decodes here.
    let (s, _, _) = post_raw(
        &url,
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        good.clone(),
    );
    assert_eq!(s, 400);
    let (s, _, _) = post_raw(
        &url,
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "br"),
        ],
        gzip(&good),
    );
    assert_eq!(s, 415);
    // The service is fine and only the control request was stored.
    assert_eq!(app.get("/health").0, 200);
    assert_eq!(topic_counts(&app, "hostile"), (1, 1, 0));
    let stats = app.stats();
    assert_eq!(stats["received"], 1, "{stats}");
}

fn bad_records_are_refused_alone_with_partial_success(b: Backend) {
    let app = App::start(b);
    let record = |body: &str, ns: &str| {
        json!({"timeUnixNano": ns, "body": {"stringValue": body},
               "attributes": [{"key": "k", "value": {"intValue": 5}}]})
    };
    let request = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "partial"}}]},
        "scopeLogs": [{"scope": {"name": "s"}, "logRecords": [
            record("fine", "1700000000000000000"),
            record("nul \u{0} inside", "1700000000000000001"),
            record("also fine", 1_700_000_000_000_000_002u64.to_string().as_str())
        ]}]
    }]});
    let (s, _, body) = post_raw(
        &app.host.at("/v1/logs"),
        &[("content-type", "application/json")],
        request.to_string().into_bytes(),
    );
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(s, 200, "{answer}");
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("log record 1") && message.contains("NUL"),
        "{message}"
    );
    assert_eq!(topic_counts(&app, "partial"), (2, 2, 0));
    // Every record refused: a 400 the exporter does not retry.
    let only_bad =
        json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [record("\u{0}", "1")]}]}]});
    let (s, _, body) = post_raw(
        &app.host.at("/v1/logs"),
        &[("content-type", "application/json")],
        only_bad.to_string().into_bytes(),
    );
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
}

fn publish_tokens_guard_the_route(b: Backend) {
    let app = App::start_with(
        b,
        HostConfig::default().env("SPIN_VARIABLE_PUBLISH_TOKENS", "otlp-secret"),
    );
    let (s, content_type, body) = post_raw(
        &app.host.at("/v1/logs"),
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    );
    assert_eq!((s, content_type.as_str()), (401, "application/json"));
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        status["code"], 16,
        "UNAUTHENTICATED as a google.rpc.Status: {status}"
    );
    node(
        "otlp.mjs",
        &[
            &app.host.url,
            "proto",
            "gzip",
            "5",
            "tokened",
            "1",
            "otlp-secret",
        ],
    );
    let (s, body) = app.get("/stats?topic=tokened");
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["topic_stats"][0]["unique_processed"], 5, "{body}");
}

/// The service forces the exporter to retry: with the store and the queue both down it answers
/// 503 with Retry-After; the exporter retries on its own and, once they are back, everything is
/// stored exactly once. With only the store down the export is acknowledged from the queue.
#[test]
fn retries_forced_by_the_service_are_stored_once() {
    let (app, pg, kv) = app_behind_switches();
    let n = 20u64;
    // Store down, queue up: acknowledged (200) from the queue, stored once when it is back.
    pg.down();
    node(
        "otlp.mjs",
        &[
            &app.host.url,
            "proto",
            "gzip",
            &n.to_string(),
            "queued",
            "2",
        ],
    );
    pg.restore();
    let (s, body) = app.post("/drain", &json!({}));
    assert_eq!(s, 200, "{body}");
    assert_eq!(topic_counts(&app, "queued"), (2 * n, n, n));

    // Store and queue down: 503 + Retry-After; the exporter schedules a retry by itself.
    // Spin 4.0.2 waits out its Redis client's retries on a refused connection (minutes, see
    // docs/OPERATIONS.md), so the exporter times out instead of seeing the 503.
    if support::skip_on_spin("a refused Redis makes Spin 4.0.2 hang instead of answer 503") {
        return;
    }
    pg.down();
    kv.down();
    // The records are exported twice by one process: the retried export, then the same export
    // again (what a timed-out exporter resends).
    let mut run = NodeRun::start(
        "otlp.mjs",
        &[
            &app.host.url,
            "json",
            "gzip",
            &n.to_string(),
            "retried",
            "2",
        ],
    );
    run.wait_for("Scheduling export retry");
    pg.restore();
    kv.restore();
    let (ok, lines) = run.finish();
    assert!(ok, "the exporter's retries succeeded: {lines:#?}");
    let exports: Vec<&Value> = lines.iter().filter(|l| l.get("export").is_some()).collect();
    assert_eq!(exports.len(), 2, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l["diag"] == "Scheduling export retry in 2000ms"),
        "the exporter waited as Retry-After: 2 said: {lines:#?}"
    );
    // The 503 accepted nothing; the retried export stored every record once, and the second
    // export of the same records stored none.
    assert_eq!(topic_counts(&app, "retried"), (2 * n, n, n));
    assert_eq!(app.all_events("retried").len() as u64, n);
}

/// The deepest nesting each decoder accepts is stored, and one level more is a clear 4xx: the
/// component's stack (build.rs sets it; smaller is cheaper for every request) must hold the
/// worst case a decoder lets through, or that request would trap into a 500.
fn the_deepest_accepted_nesting_fits_the_stack(b: Backend) {
    let app = App::start(b);
    let deepest = |what: &str, path: &str, ct: &str, body: &dyn Fn(usize) -> Vec<u8>| {
        let mut depth = 1;
        loop {
            let (s, _, answer) = post_raw(&app.host.at(path), &[("content-type", ct)], body(depth));
            if s != 200 {
                assert!(
                    s == 400 || s == 422,
                    "{what} nested {depth} deep: {s} {}",
                    String::from_utf8_lossy(&answer)
                );
                assert!(depth > 20, "{what}: refused already at depth {depth}");
                return depth - 1;
            }
            depth += 1;
            assert!(depth < 1000, "{what}: no nesting limit below 1,000");
        }
    };
    let native = deepest("a /publish payload", "/publish", "application/json", &|d| {
        format!(
            r#"{{"topic":"deep","event_id":"n{d}","timestamp":"2026-12-05T00:00:00Z","source":"s","payload":{}1{}}}"#,
            "[".repeat(d),
            "]".repeat(d)
        )
        .into_bytes()
    });
    let proto = deepest(
        "an OTLP protobuf AnyValue",
        "/v1/logs",
        "application/x-protobuf",
        &|d| protobuf_request(&nested_any_value(d)),
    );
    let json = deepest(
        "an OTLP/JSON AnyValue",
        "/v1/logs",
        "application/json",
        &|d| {
            format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{}{{"stringValue":"x"}}{}}}]}}]}}]}}"#,
            r#"{"arrayValue":{"values":["#.repeat(d),
            "]}}".repeat(d)
        )
        .into_bytes()
        },
    );
    // Every accepted depth was stored (one event each; OTLP records without ids are digests of
    // their different bodies).
    let (received, stored, _) = topic_counts(&app, "deep");
    assert_eq!((received, stored), (native as u64, native as u64));
    let (received, stored, _) = topic_counts(&app, "hostile");
    assert_eq!((received, stored), (proto as u64, proto as u64));
    let (received, stored, _) = topic_counts(&app, "unknown_service");
    assert_eq!((received, stored), (json as u64, json as u64));
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
        sdk_exporters_are_stored_exactly_once,
        the_specification_example_is_accepted_by_curl,
        hostile_bodies_are_clear_4xx_and_store_nothing,
        bad_records_are_refused_alone_with_partial_success,
        publish_tokens_guard_the_route,
        the_deepest_accepted_nesting_fits_the_stack,
    );
}

mod postgres_redis {
    use super::Backend;
    suite!(Backend::PostgresRedis =>
        sdk_exporters_are_stored_exactly_once,
        the_specification_example_is_accepted_by_curl,
        hostile_bodies_are_clear_4xx_and_store_nothing,
        bad_records_are_refused_alone_with_partial_success,
        publish_tokens_guard_the_route,
    );
}
