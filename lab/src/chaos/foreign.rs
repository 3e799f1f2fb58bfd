//! The foreign-protocol part of the hostile corpus: broken OTLP/HTTP, Loki push and NDJSON
//! bodies, and decompression bombs, on the ingest routes (`/v1/logs`, `/loki/api/v1/push`,
//! `/publish`, `/publish/batch`).
//!
//! Each case has one expected status (a `4xx`: a 5xx or a hang is a bug in the component) and
//! an expected error shape: OTLP answers a `google.rpc.Status` in the request's encoding
//! (protobuf or JSON), Loki a plain-text line, the publish routes edgelog's JSON error. The
//! store's counters (`/stats`) are read before and after every case and must not move: a
//! refused request stores nothing, not even its valid records. Everything a case could store is
//! named with the run's own topic, so the end of the run also checks that topic is empty.
//!
//! The bodies themselves (hand-built protobuf, the bombs) are made in [`super::bodies`].

use std::io::Write;
use std::time::Instant;

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use super::bodies::{
    DEEP, Reversed, bombs, field, fixed_time, loki_json, loki_request, ndjson_line,
    nested_any_value, nested_json, otlp_json, otlp_request, snappy,
};
use super::hostile::HostileOutcome;
use loadgen::client::{Client, encode_query_value, snippet};

/// How an error answer must look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `google.rpc.Status` as JSON: `{"code": 3, "message": "..."}`.
    OtlpJson,
    /// `google.rpc.Status` as protobuf bytes.
    OtlpProtobuf,
    /// Loki's plain-text line.
    Loki,
    /// edgelog's `{"error", "message", "details"}`.
    Native,
}

/// One foreign-protocol request and the answer it must get.
pub(super) struct Case {
    what: String,
    path: &'static str,
    content_type: &'static str,
    content_encoding: Option<&'static str>,
    body: Vec<u8>,
    want: u16,
    shape: Shape,
}

const OTLP: &str = "/v1/logs";
const LOKI: &str = "/loki/api/v1/push";
const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// The foreign-protocol cases; anything they could store is in `topic`.
pub(super) fn corpus(topic: &str) -> Vec<Case> {
    let case = |what: &str, path, content_type, body: Vec<u8>, want, shape| Case {
        what: what.to_owned(),
        path,
        content_type,
        content_encoding: None,
        body,
        want,
        shape,
    };
    let encoded = |what: &str, path, content_type, coding, body: &[u8], want, shape| Case {
        content_encoding: Some(coding),
        ..case(what, path, content_type, body.to_vec(), want, shape)
    };
    let (oj, op, loki, native) = (
        Shape::OtlpJson,
        Shape::OtlpProtobuf,
        Shape::Loki,
        Shape::Native,
    );
    let leaf = || {
        let mut r = Reversed::default();
        r.prepend(&field(0x0a, b"leaf"));
        r
    };
    let good_otlp = otlp_request(topic, leaf(), &fixed_time());
    // time_unix_nano (fixed64) sent as a varint: the wire type its field number does not have.
    let wrong_wire = otlp_request(topic, leaf(), &[0x08, 0x01]);
    let good_json = otlp_json(topic, r#"{"stringValue":"leaf"}"#);
    let good_loki = snappy(&loki_request(topic));
    let ndjson_body = |bad: &str| {
        format!(
            "{}\n{bad}\n{}\n",
            ndjson_line(topic, "ndjson-1"),
            ndjson_line(topic, "ndjson-2")
        )
        .into_bytes()
    };
    let b = bombs();
    let plain_loki = loki_json(topic).into_bytes();
    let mut cases = vec![
        // OTLP protobuf that does not decode.
        case(
            "OTLP protobuf, truncated",
            OTLP,
            PROTOBUF,
            good_otlp[..good_otlp.len() - 7].to_vec(),
            400,
            op,
        ),
        case(
            "OTLP protobuf, resource_logs as a varint",
            OTLP,
            PROTOBUF,
            vec![0x08, 0x01],
            400,
            op,
        ),
        case(
            "OTLP protobuf, time_unix_nano as a varint",
            OTLP,
            PROTOBUF,
            wrong_wire,
            400,
            op,
        ),
        case(
            "OTLP protobuf, a length past the end",
            OTLP,
            PROTOBUF,
            vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a],
            400,
            op,
        ),
        case(
            "OTLP protobuf, AnyValue 10,000 kvlists deep",
            OTLP,
            PROTOBUF,
            otlp_request(topic, nested_any_value(DEEP, true), &fixed_time()),
            400,
            op,
        ),
        case(
            "OTLP protobuf, AnyValue 10,000 arrays deep",
            OTLP,
            PROTOBUF,
            otlp_request(topic, nested_any_value(DEEP, false), &fixed_time()),
            400,
            op,
        ),
        case(
            "OTLP JSON, AnyValue 10,000 kvlists deep",
            OTLP,
            JSON,
            otlp_json(topic, &nested_json(DEEP, true)).into_bytes(),
            400,
            oj,
        ),
        case(
            "OTLP JSON, AnyValue 10,000 arrays deep",
            OTLP,
            JSON,
            otlp_json(topic, &nested_json(DEEP, false)).into_bytes(),
            400,
            oj,
        ),
        case(
            "OTLP JSON, intValue that is not an integer",
            OTLP,
            JSON,
            otlp_json(topic, r#"{"intValue":"twelve"}"#).into_bytes(),
            400,
            oj,
        ),
        // Mismatched Content-Type: the answer follows the declared encoding.
        case(
            "OTLP protobuf sent as application/json",
            OTLP,
            JSON,
            good_otlp.clone(),
            400,
            oj,
        ),
        case(
            "OTLP JSON sent as application/x-protobuf",
            OTLP,
            PROTOBUF,
            good_json.clone().into_bytes(),
            400,
            op,
        ),
        // Loki protobuf that is not snappy, or not whole.
        case(
            "Loki, snappy garbage",
            LOKI,
            PROTOBUF,
            b"\x20\xff\xfe\xfd not snappy at all \x00\x01\x02".to_vec(),
            400,
            loki,
        ),
        case(
            "Loki, truncated snappy block",
            LOKI,
            PROTOBUF,
            good_loki[..good_loki.len() / 2].to_vec(),
            400,
            loki,
        ),
        case(
            "Loki, snappy claiming 4 GiB",
            LOKI,
            PROTOBUF,
            vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00],
            413,
            loki,
        ),
        case(
            "Loki, snappy framing format instead of a block",
            LOKI,
            PROTOBUF,
            {
                let mut w = snap::write::FrameEncoder::new(Vec::new());
                w.write_all(&loki_request(topic)).expect("to memory");
                w.into_inner().expect("to memory")
            },
            400,
            loki,
        ),
        case(
            "Loki, snappy of something that is not a PushRequest",
            LOKI,
            PROTOBUF,
            snappy(&[0x0a, 0x05, 0x08, 0x01]),
            400,
            loki,
        ),
        case(
            "Loki protobuf sent as application/json",
            LOKI,
            JSON,
            good_loki.clone(),
            400,
            loki,
        ),
        case(
            "Loki JSON sent as application/x-protobuf",
            LOKI,
            PROTOBUF,
            loki_json(topic).into_bytes(),
            400,
            loki,
        ),
        case(
            "Loki JSON, values nested 10,000 deep",
            LOKI,
            JSON,
            loki_json(topic)
                .replace(
                    r#"[["1714564800000000000","a line"]]"#,
                    &format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP)),
                )
                .into_bytes(),
            400,
            loki,
        ),
        // NDJSON: one bad line refuses the whole body.
        case(
            "NDJSON, a line that is not JSON",
            "/publish",
            NDJSON,
            ndjson_body(r#"{"topic":"#),
            400,
            native,
        ),
        case(
            "NDJSON, a line that is not an event",
            "/publish/batch",
            NDJSON,
            ndjson_body("[1,2,3]"),
            422,
            native,
        ),
        case(
            "NDJSON, an event whose payload nests 10,000 deep",
            "/publish/batch",
            NDJSON,
            ndjson_body(&ndjson_line(topic, "deep").replace(
                r#""source":"chaos""#,
                &format!(
                    r#""source":"chaos","payload":{}{}"#,
                    "[".repeat(DEEP),
                    "]".repeat(DEEP)
                ),
            )),
            422,
            native,
        ),
    ];
    // Bombs and unknown codings on every ingest route.
    let routes = [
        (OTLP, JSON, oj, good_json.as_bytes()),
        (OTLP, PROTOBUF, op, good_otlp.as_slice()),
        (LOKI, JSON, loki, plain_loki.as_slice()),
        ("/publish", NDJSON, native, b"{}".as_slice()),
        ("/publish/batch", JSON, native, b"{}".as_slice()),
    ];
    for (path, ct, shape, plain) in routes {
        for (name, coding, bomb) in [
            ("gzip", "gzip, gzip", &b.gzip),
            ("deflate", "deflate, deflate", &b.deflate),
            ("zstd", "zstd, zstd", &b.zstd),
        ] {
            cases.push(encoded(
                &format!("{path} {ct}: {name} bomb (1 GiB)"),
                path,
                ct,
                coding,
                bomb,
                413,
                shape,
            ));
        }
        cases.push(encoded(
            &format!("{path} {ct}: Content-Encoding br"),
            path,
            ct,
            "br",
            plain,
            415,
            shape,
        ));
        cases.push(encoded(
            &format!("{path} {ct}: declared gzip, sent plain"),
            path,
            ct,
            "gzip",
            plain,
            400,
            shape,
        ));
    }
    cases
}

/// The counters a refused request must leave alone.
fn counters(stats: &Value) -> [u64; 5] {
    [
        "received",
        "unique_processed",
        "duplicate_dropped",
        "queued",
        "dead_lettered",
    ]
    .map(|k| stats.get(k).and_then(Value::as_u64).unwrap_or(u64::MAX))
}

/// Sends the foreign-protocol cases, one at a time, with the counters read around each.
pub(super) async fn run(client: &Client, topic: &str, out: &mut HostileOutcome) {
    for case in corpus(topic) {
        let before = match super::readback::get_with_retries(client, "/stats").await {
            Ok(s) => counters(&s),
            Err(e) => {
                out.problems
                    .push(format!("{}: /stats before: {e}", case.what));
                continue;
            }
        };
        let mut headers = vec![("content-type", case.content_type)];
        if let Some(coding) = case.content_encoding {
            headers.push(("content-encoding", coding));
        }
        let t0 = Instant::now();
        let a = client
            .attempt_with(
                Method::POST,
                case.path,
                &headers,
                Some(Bytes::from(case.body)),
            )
            .await;
        out.requests += 1;
        out.longest = out.longest.max(t0.elapsed());
        let what = format!("POST {} ({})", case.path, case.what);
        match a {
            Ok(ans) if ans.status >= 500 => {
                out.server_errors += 1;
                out.problems.push(format!(
                    "{what} answered {}: {}",
                    ans.status,
                    snippet(&ans.body)
                ));
            }
            Ok(ans) if ans.status != case.want => out.problems.push(format!(
                "{what}: expected {}, got {}: {}",
                case.want,
                ans.status,
                snippet(&ans.body)
            )),
            Ok(ans) => {
                if let Err(e) = check_shape(case.shape, &ans.body) {
                    out.problems.push(format!(
                        "{what}: the {} error is not {:?}: {e}: {}",
                        ans.status,
                        case.shape,
                        snippet(&ans.body)
                    ));
                }
            }
            Err(f) => out.problems.push(format!("{what}: no answer ({f})")),
        }
        match super::readback::get_with_retries(client, "/stats").await {
            Ok(s) if counters(&s) != before => out.problems.push(format!(
                "{what}: the counters moved: {before:?} -> {:?} \
                 (received, stored, duplicates, queued, dead-lettered)",
                counters(&s)
            )),
            Ok(_) => {}
            Err(e) => out.problems.push(format!("{what}: /stats after: {e}")),
        }
    }
    let path = format!("/events?topic={}&limit=1", encode_query_value(topic));
    match super::readback::get_with_retries(client, &path).await {
        Ok(page) => {
            let n = page.get("events").and_then(Value::as_array).map(Vec::len);
            if n != Some(0) {
                out.problems.push(format!(
                    "the foreign-protocol corpus stored events in {topic}: {page}"
                ));
            }
        }
        Err(e) => out.problems.push(format!("reading {topic} back: {e}")),
    }
}

/// Whether an error body has the shape its route's clients read.
fn check_shape(shape: Shape, body: &[u8]) -> Result<(), String> {
    match shape {
        Shape::OtlpJson => {
            let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
            match (v.get("code").and_then(Value::as_i64), v.get("message")) {
                (Some(3), Some(Value::String(m))) if !m.is_empty() => Ok(()),
                _ => Err("not {\"code\": 3, \"message\": \"...\"}".into()),
            }
        }
        Shape::OtlpProtobuf => match rpc_status(body) {
            Some((3, m)) if !m.is_empty() => Ok(()),
            Some((code, m)) => Err(format!("code {code}, message {m:?}")),
            None => Err("not a protobuf google.rpc.Status".into()),
        },
        Shape::Loki => {
            let text = std::str::from_utf8(body).map_err(|_| "not UTF-8 text".to_owned())?;
            if text.trim().is_empty() || text.trim_start().starts_with('{') {
                Err("not one plain-text line".into())
            } else {
                Ok(())
            }
        }
        Shape::Native => {
            let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
            match (v.get("error"), v.get("message")) {
                (Some(Value::String(_)), Some(Value::String(_))) => Ok(()),
                _ => Err("not {\"error\", \"message\"}".into()),
            }
        }
    }
}

/// Decodes a `google.rpc.Status` (code = 1 varint, message = 2 string, details = 3) by hand.
fn rpc_status(mut body: &[u8]) -> Option<(u64, String)> {
    fn read_varint(b: &mut &[u8]) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }
    let (mut code, mut message) = (0, String::new());
    while !body.is_empty() {
        match read_varint(&mut body)? {
            0x08 => code = read_varint(&mut body)?,
            tag @ (0x12 | 0x1a) => {
                let len = usize::try_from(read_varint(&mut body)?).ok()?;
                let bytes = body.get(..len)?;
                body = &body[len..];
                if tag == 0x12 {
                    message = String::from_utf8(bytes.to_vec()).ok()?;
                }
            }
            _ => return None,
        }
    }
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_told_apart() {
        let status = [vec![0x08, 0x03], field(0x12, b"bad body")].concat();
        assert_eq!(rpc_status(&status), Some((3, "bad body".into())));
        assert!(check_shape(Shape::OtlpProtobuf, &status).is_ok());
        assert!(check_shape(Shape::OtlpProtobuf, br#"{"code":3}"#).is_err());
        assert!(check_shape(Shape::OtlpJson, br#"{"code":3,"message":"m"}"#).is_ok());
        assert!(check_shape(Shape::OtlpJson, &status).is_err());
        assert!(check_shape(Shape::Loki, b"entry 0: bad\n").is_ok());
        assert!(check_shape(Shape::Loki, br#"{"error":"x"}"#).is_err());
        assert!(check_shape(Shape::Native, br#"{"error":"e","message":"m"}"#).is_ok());
        assert!(check_shape(Shape::Native, b"text").is_err());
    }

    #[test]
    fn every_issue_case_is_in_the_corpus() {
        let c = corpus("t.foreign");
        let has = |needle: &str| c.iter().any(|k| k.what.contains(needle));
        for needle in [
            "truncated",
            "as a varint",
            "10,000 kvlists deep",
            "10,000 arrays deep",
            "gzip bomb",
            "zstd bomb",
            "deflate bomb",
            "sent as application/json",
            "sent as application/x-protobuf",
            "snappy garbage",
            "truncated snappy",
            "Content-Encoding br",
            "not JSON",
        ] {
            assert!(has(needle), "{needle}");
        }
        assert!(c.iter().all(|k| (400..500).contains(&k.want)));
    }
}
