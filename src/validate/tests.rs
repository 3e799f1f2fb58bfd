//! Tests of `validate`: the rules of each field, the body shapes, and a batch read in one pass
//! against the same batch read item by item.

use super::*;
use crate::error::ApiError;
use serde_json::value::RawValue;
use serde_json::{Value, json};

const LIMITS: Limits = Limits {
    max_batch_events: 3,
    max_payload_bytes: 32,
};

const LIMITS_BIG: Limits = Limits {
    max_batch_events: 3,
    max_payload_bytes: 1000,
};

fn good() -> Value {
    json!({"topic": "t", "event_id": "e1", "timestamp": "2024-05-01T12:00:00Z",
           "source": "s", "payload": {"a": 1}})
}

fn one(v: Value) -> Result<Event, ApiError> {
    parse_batch(v.to_string().as_bytes(), Shape::Any, &LIMITS).map(|mut e| e.remove(0))
}

fn fields(err: &ApiError) -> Vec<(Option<usize>, Option<&str>)> {
    err.details
        .iter()
        .map(|d| (d.index, d.field.as_deref()))
        .collect()
}

#[test]
fn valid_event_is_built_and_normalised() {
    let e = one(good()).unwrap();
    assert_eq!(e.key(), ("t", "e1"));
    assert_eq!(e.source(), "s");
    assert_eq!(e.timestamp(), "2024-05-01T12:00:00.000000Z");
    assert_eq!(e.payload(), r#"{"a":1}"#);
}

#[test]
fn level_is_optional_normalised_and_checked() {
    assert_eq!(one(good()).unwrap().level(), None);
    let mut v = good();
    v["level"] = json!("WARNING");
    assert_eq!(one(v.clone()).unwrap().level(), Some(Level::Warn));
    v["level"] = Value::Null;
    assert_eq!(one(v.clone()).unwrap().level(), None);
    v["payload"] = json!({"level": "err", "message": "full"});
    let e = one(v.clone()).unwrap();
    assert_eq!((e.level(), e.message()), (Some(Level::Error), Some("full")));
    v["level"] = json!("debug");
    assert_eq!(
        one(v.clone()).unwrap().level(),
        Some(Level::Debug),
        "its own level wins"
    );
    v["level"] = json!("loud");
    let err = one(v.clone()).unwrap_err();
    assert_eq!(
        (err.status, fields(&err)),
        (422, vec![(None, Some("level"))])
    );
    v["level"] = json!(3);
    assert_eq!(fields(&one(v).unwrap_err()), vec![(None, Some("level"))]);
}

#[test]
fn text_lengths_count_characters_not_bytes() {
    let mut v = good();
    v["topic"] = json!("é".repeat(255)); // 510 bytes, 255 chars: fine
    assert!(one(v.clone()).is_ok());
    v["topic"] = json!("é".repeat(256));
    let err = one(v).unwrap_err();
    assert_eq!(
        (err.status, fields(&err)),
        (422, vec![(None, Some("topic"))])
    );
    let mut v = good();
    v["event_id"] = json!("");
    assert_eq!(fields(&one(v).unwrap_err()), vec![(None, Some("event_id"))]);
}

#[test]
fn every_bad_field_is_listed() {
    let v = json!({"topic": 5, "event_id": null, "timestamp": "yesterday",
                   "source": "a\u{0}b"});
    let err = one(v).unwrap_err();
    assert_eq!(err.status, 422);
    assert_eq!(
        fields(&err),
        vec![
            (None, Some("topic")),
            (None, Some("event_id")),
            (None, Some("timestamp")),
            (None, Some("source")),
        ]
    );
    let err = one(json!({})).unwrap_err();
    assert_eq!(err.details.len(), 4);
    assert!(err.details.iter().all(|d| d.message == "is required"));
}

#[test]
fn payload_defaults_and_null() {
    let mut v = good();
    v.as_object_mut().unwrap().remove("payload");
    assert_eq!(one(v.clone()).unwrap().payload(), "{}");
    v["payload"] = Value::Null;
    assert_eq!(one(v.clone()).unwrap().payload(), "null");
    v["payload"] = json!([1, "x", {"y": false}]);
    assert_eq!(one(v).unwrap().payload(), r#"[1,"x",{"y":false}]"#);
}

#[test]
fn payload_with_nul_is_invalid() {
    let mut v = good();
    v["payload"] = json!({"k": ["ok", "bad\u{0}"]});
    assert_eq!(
        fields(&one(v.clone()).unwrap_err()),
        vec![(None, Some("payload"))]
    );
    v["payload"] = json!({"k\u{0}": 1});
    assert_eq!(one(v).unwrap_err().status, 422);
}

#[test]
fn oversized_payload_is_413_with_index() {
    let mut big = good();
    big["payload"] = json!("x".repeat(40));
    let mut bad = good();
    bad["topic"] = json!("");
    let body = json!([good(), big, bad]).to_string();
    let err = parse_batch(body.as_bytes(), Shape::Any, &LIMITS).unwrap_err();
    assert_eq!(
        (err.status, fields(&err)),
        (413, vec![(Some(1), Some("payload"))])
    );
    let mut exact = good();
    exact["payload"] = json!("x".repeat(30)); // 32 bytes with quotes: at the limit
    assert!(one(exact).is_ok());
}

#[test]
fn unknown_fields_are_ignored() {
    let mut v = good();
    v["extra"] = json!({"anything": true});
    assert!(one(v).is_ok());
}

#[test]
fn body_shapes() {
    let e = good();
    for (body, shape, n) in [
        (e.clone(), Shape::Any, 1),
        (json!([e.clone(), e.clone()]), Shape::Any, 2),
        (json!({"events": [e.clone()]}), Shape::Any, 1),
        (json!([e.clone()]), Shape::Batch, 1),
        (
            json!({"events": [e.clone(), e.clone(), e.clone()]}),
            Shape::Batch,
            3,
        ),
    ] {
        let got = parse_batch(body.to_string().as_bytes(), shape, &LIMITS).unwrap();
        assert_eq!(got.len(), n, "{body}");
    }
}

#[test]
fn bad_shapes() {
    let status = |body: &str, shape| parse_batch(body.as_bytes(), shape, &LIMITS).unwrap_err();
    assert_eq!(status(&good().to_string(), Shape::Batch).status, 422);
    assert_eq!(status("[]", Shape::Any).status, 422);
    assert_eq!(status(r#"{"events": []}"#, Shape::Batch).status, 422);
    assert_eq!(status(r#"{"events": 3}"#, Shape::Any).status, 422);
    assert_eq!(status("42", Shape::Any).status, 422);
    assert_eq!(status("\"x\"", Shape::Batch).status, 422);
    assert_eq!(status("{", Shape::Any).status, 400);
    assert_eq!(status("", Shape::Any).status, 400);
    assert_eq!(status("[1] x", Shape::Any).status, 400);
    assert_eq!(status("\"\\ud800\"", Shape::Any).status, 400);
    let four = json!([good(), good(), good(), good()]).to_string();
    assert_eq!(status(&four, Shape::Any).status, 413);
}

#[test]
fn batch_errors_carry_indexes_and_reject_everything() {
    let mut bad = good();
    bad["timestamp"] = json!(12);
    let body = json!([good(), bad, 7]).to_string();
    let err = parse_batch(body.as_bytes(), Shape::Any, &LIMITS).unwrap_err();
    assert_eq!(err.status, 422);
    assert_eq!(
        fields(&err),
        vec![(Some(1), Some("timestamp")), (Some(2), None)]
    );
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let deep = |n| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let err = parse_batch(deep(100_000).as_bytes(), Shape::Any, &LIMITS).unwrap_err();
    assert_eq!((err.status, fields(&err)), (422, vec![(Some(0), None)]));
    let with_payload = |n| {
        let body = format!(
            r#"{{"topic":"t","event_id":"e","timestamp":"2024-05-01T12:00:00Z","source":"s","payload":{}}}"#,
            deep(n)
        );
        parse_batch(
            body.as_bytes(),
            Shape::Any,
            &Limits {
                max_batch_events: 1,
                max_payload_bytes: 1 << 20,
            },
        )
    };
    assert!(with_payload(MAX_PAYLOAD_DEPTH).is_ok());
    let err = with_payload(MAX_PAYLOAD_DEPTH + 1).unwrap_err();
    assert_eq!(
        (err.status, fields(&err)),
        (422, vec![(None, Some("payload"))])
    );
    assert_eq!(with_payload(100_000).unwrap_err().status, 422);
}

#[test]
fn restore_rechecks_rules() {
    let raw = || RawValue::from_string("{}".into()).unwrap();
    let ok = Event::restore(
        "t".into(),
        "e".into(),
        "2024-05-01T12:00:00.000000Z",
        "s".into(),
        raw(),
    );
    assert!(ok.is_ok());
    let bad = Event::restore(
        "".into(),
        "e".into(),
        "2024-05-01T12:00:00Z",
        "s".into(),
        raw(),
    );
    assert!(bad.is_err());
    let bad = Event::restore("t".into(), "e".into(), "nope", "s".into(), raw());
    assert!(bad.is_err());
}

#[test]
fn payload_keeps_its_text_without_whitespace() {
    let body = r#"{"topic":"t","event_id":"e","timestamp":"2024-05-01T12:00:00Z","source":"s",
            "payload": { "b" : [1, 2.50, 1e400],
                "a" : " spaced  out \" \\ ", "\u00e9\ud83d\ude00": null } }"#;
    let e = parse_batch(body.as_bytes(), Shape::Any, &LIMITS_BIG).unwrap();
    assert_eq!(
        e[0].payload(),
        r#"{"b":[1,2.50,1e400],"a":" spaced  out \" \\ ","\u00e9\ud83d\ude00":null}"#,
        "key order, number text and escapes are the sender's; only whitespace goes"
    );
    let compact = parse_batch(good().to_string().as_bytes(), Shape::Any, &LIMITS).unwrap();
    assert_eq!(compact[0].payload(), r#"{"a":1}"#);
}

#[test]
fn payload_escapes_are_checked() {
    let with = |payload: &str| {
        let body = format!(
            r#"{{"topic":"t","event_id":"e","timestamp":"2024-05-01T12:00:00Z","source":"s","payload":{payload}}}"#
        );
        parse_batch(body.as_bytes(), Shape::Any, &LIMITS_BIG)
    };
    assert!(
        with(r#""\\u0000""#).is_ok(),
        "an escaped backslash, then text"
    );
    assert!(with(r#"["\ud83d\ude00"]"#).is_ok());
    let err = with(r#"{"k":"a\u0000"}"#).unwrap_err();
    assert_eq!(
        (err.status, fields(&err)),
        (422, vec![(None, Some("payload"))])
    );
    for lone in [
        r#""\ud83d""#,
        r#""\ude00x""#,
        r#""\ud83d\u0041""#,
        r#"{"\udfff":1}"#,
    ] {
        assert_eq!(with(lone).unwrap_err().status, 400, "{lone}");
    }
}

#[test]
fn text_fields_decode_escapes_and_refuse_lone_surrogates() {
    let body = r#"{"topic":"caf\u00e9","event_id":"e\n1","timestamp":"2024-05-01T12:00:00Z","source":"s"}"#;
    let e = parse_batch(body.as_bytes(), Shape::Any, &LIMITS).unwrap();
    assert_eq!(e[0].key(), ("café", "e\n1"));
    let body =
        r#"{"topic":"\ud800","event_id":"e","timestamp":"2024-05-01T12:00:00Z","source":"s"}"#;
    assert_eq!(
        parse_batch(body.as_bytes(), Shape::Any, &LIMITS)
            .unwrap_err()
            .status,
        400
    );
}

#[test]
fn repeated_member_is_an_error_for_that_event() {
    let body = format!(
        r#"[{}, {{"topic":"a","topic":"b","event_id":"e","timestamp":"2024-05-01T12:00:00Z","source":"s"}}]"#,
        good()
    );
    let err = parse_batch(body.as_bytes(), Shape::Any, &LIMITS).unwrap_err();
    assert_eq!((err.status, fields(&err)), (422, vec![(Some(1), None)]));
    assert_eq!(err.details[0].message, "duplicate field `topic`");
}

#[test]
fn events_member_must_be_an_array() {
    for body in [
        r#"{"events": null}"#,
        r#"{"events": {}}"#,
        r#"{"events": "x"}"#,
    ] {
        let err = parse_batch(body.as_bytes(), Shape::Any, &LIMITS).unwrap_err();
        assert_eq!(
            (err.status, fields(&err)),
            (422, vec![(None, Some("events"))]),
            "{body}"
        );
    }
    let err = parse_batch(b"[] []", Shape::Any, &LIMITS).unwrap_err();
    assert_eq!(err.status, 400);
    let err = parse_batch(b"\xff", Shape::Any, &LIMITS).unwrap_err();
    assert_eq!(err.status, 400);
}

#[test]
fn items_that_are_not_objects_are_refused_one_by_one() {
    // serde reads a struct from an array too: the one-pass batch must not.
    let array_item = r#"["t","e2","2024-05-01T12:00:00Z","s"]"#;
    for body in [
        format!("[{}, {array_item}, 7]", good()),
        format!(r#"{{"events": [{}, {array_item}, 7]}}"#, good()),
    ] {
        let err = parse_batch(body.as_bytes(), Shape::Batch, &LIMITS).unwrap_err();
        assert_eq!(
            (err.status, fields(&err)),
            (422, vec![(Some(1), None), (Some(2), None)]),
            "{body}"
        );
        assert_eq!(err.details[0].message, "must be a JSON object");
    }
}

#[test]
fn a_batch_reads_the_same_in_one_pass_as_item_by_item() {
    let mut second = good();
    second["event_id"] = json!("e\u{e9}");
    second["payload"] = json!({"level": "warn", "message": "m", "n": [1, {"k": "v"}]});
    second["extra"] = json!({"ignored": true});
    let batch = json!([good(), second]).to_string();
    let one_pass = parse_batch(batch.as_bytes(), Shape::Batch, &LIMITS_BIG).unwrap();
    let items: Vec<&RawValue> = serde_json::from_str(&batch).unwrap();
    let by_item = validate_items(
        items.into_iter().enumerate().map(|(i, r)| (Some(i), r)),
        &LIMITS_BIG,
    )
    .unwrap();
    assert_eq!(one_pass, by_item);
    let wrapped = format!(r#"{{"events": {batch}, "other": 1}}"#);
    assert_eq!(
        parse_batch(wrapped.as_bytes(), Shape::Any, &LIMITS_BIG).unwrap(),
        by_item
    );
    // Over the count limit, or empty: the general path's answers.
    let four = json!([good(), good(), good(), good()]).to_string();
    assert_eq!(
        parse_batch(four.as_bytes(), Shape::Batch, &LIMITS)
            .unwrap_err()
            .status,
        413
    );
    assert_eq!(
        parse_batch(b"[]", Shape::Batch, &LIMITS)
            .unwrap_err()
            .status,
        422
    );
}
