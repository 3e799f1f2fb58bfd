//! Validation: the only way to build an [`Event`] is to pass every rule.
//!
//! The publish routes hand the raw body to [`parse_batch`], which accepts the three
//! contract shapes (one event object, a JSON array, or `{"events": [...]}`), checks
//! every field of every event, and either returns the whole batch or one error that
//! lists *all* problems — a batch is all-or-nothing.
//!
//! Rules: `topic`, `event_id`, `source` are strings of 1–255 characters (Unicode
//! scalar values, not bytes) without NUL; `timestamp` is an RFC 3339 / ISO 8601
//! date-time (`T`, `t` or space separator, optional fraction, `Z` or `±HH:MM`
//! offset). A timestamp without an offset is taken as UTC. Timestamps are
//! normalised to UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (fraction truncated to
//! microseconds, the precision Postgres keeps); leap seconds (`:60`) and UTC years
//! outside 0001–9999 are rejected because the stores cannot hold them exactly.
//! `payload` is any JSON value: absent means `{}`, an explicit `null` stays `null`;
//! strings inside it must not contain NUL (Postgres `jsonb` refuses `\u0000`).
//! Unknown fields are ignored.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::http::{ApiError, FieldError};

/// Longest `topic`, `event_id` or `source`, in characters.
pub const MAX_TEXT_CHARS: usize = 255;

/// Size limits from configuration that decide between accepting and `413`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most events one request may carry.
    pub max_batch_events: usize,
    /// Largest serialised (compact JSON) payload of one event, in bytes.
    pub max_payload_bytes: usize,
}

/// Which body shapes a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `POST /publish`: one event object, an array, or `{"events": [...]}`.
    Any,
    /// `POST /publish/batch`: an array or `{"events": [...]}` only.
    Batch,
}

/// A log event that satisfies every rule; fields are private so no invalid one exists.
#[derive(Debug, Clone)]
pub struct Event {
    topic: String,
    event_id: String,
    timestamp: String,
    source: String,
    payload: Box<RawValue>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
            && self.timestamp == other.timestamp
            && self.source == other.source
            && self.payload.get() == other.payload.get()
    }
}

impl Event {
    /// The stream this event belongs to; half of the dedup key.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The publisher's id, unique per topic; the other half of the dedup key.
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// When it happened, normalised: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub fn timestamp(&self) -> &str {
        &self.timestamp
    }

    /// Who emitted it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The payload as compact JSON text, ready for a store or the queue.
    pub fn payload(&self) -> &RawValue {
        &self.payload
    }

    /// The dedup key `(topic, event_id)`; sorting by it gives every store one lock order.
    pub fn key(&self) -> (&str, &str) {
        (&self.topic, &self.event_id)
    }

    /// Rebuilds an event read back from the queue, re-checking the field rules.
    ///
    /// The payload size limit is not re-applied: the event was accepted under the
    /// limits of its day, and a later, smaller limit must not strand it in the queue.
    pub fn restore(
        topic: String,
        event_id: String,
        timestamp: &str,
        source: String,
        payload: Box<RawValue>,
    ) -> Result<Event, String> {
        let text = |field: &str, v: &str| check_text(v).map_err(|m| format!("{field} {m}"));
        text("topic", &topic)?;
        text("event_id", &event_id)?;
        text("source", &source)?;
        let timestamp = normalize_timestamp(timestamp).map_err(|m| format!("timestamp {m}"))?;
        Ok(Event {
            topic,
            event_id,
            timestamp,
            source,
            payload,
        })
    }

    /// Validates one event object, collecting every problem rather than stopping at the first.
    fn from_object(mut obj: Map<String, Value>, limits: &Limits) -> Result<Event, Problems> {
        let mut problems = Problems::default();
        let topic = take_text(&mut obj, &mut problems, "topic");
        let event_id = take_text(&mut obj, &mut problems, "event_id");
        let timestamp = match obj.remove("timestamp") {
            None | Some(Value::Null) => problems.invalid("timestamp", "is required"),
            Some(Value::String(s)) => match normalize_timestamp(&s) {
                Ok(t) => Some(t),
                Err(m) => problems.invalid("timestamp", m),
            },
            Some(_) => problems.invalid("timestamp", "must be a string"),
        };
        let source = take_text(&mut obj, &mut problems, "source");
        let payload = obj
            .remove("payload")
            .unwrap_or_else(|| Value::Object(Map::new()));
        let payload = if contains_nul(&payload) {
            problems.invalid("payload", "strings must not contain NUL characters")
        } else {
            match serde_json::value::to_raw_value(&payload) {
                Ok(raw) if raw.get().len() > limits.max_payload_bytes => problems.too_large(
                    "payload",
                    format!(
                        "is {} bytes serialised; the limit is {}",
                        raw.get().len(),
                        limits.max_payload_bytes
                    ),
                ),
                Ok(raw) => Some(raw),
                Err(_) => problems.invalid("payload", "cannot be serialised"),
            }
        };
        match (topic, event_id, timestamp, source, payload) {
            (Some(topic), Some(event_id), Some(timestamp), Some(source), Some(payload)) => {
                Ok(Event {
                    topic,
                    event_id,
                    timestamp,
                    source,
                    payload,
                })
            }
            _ => Err(problems),
        }
    }
}

/// Takes a required text field out of an event object, recording what is wrong with it.
fn take_text(obj: &mut Map<String, Value>, problems: &mut Problems, name: &str) -> Option<String> {
    match obj.remove(name) {
        None | Some(Value::Null) => problems.invalid(name, "is required"),
        Some(Value::String(s)) => match check_text(&s) {
            Ok(()) => Some(s),
            Err(m) => problems.invalid(name, m),
        },
        Some(_) => problems.invalid(name, "must be a string"),
    }
}

/// Problems found in one event, split by the status they lead to.
#[derive(Default)]
struct Problems {
    invalid: Vec<FieldError>,
    too_large: Vec<FieldError>,
}

impl Problems {
    fn invalid<T>(&mut self, field: &str, message: impl Into<String>) -> Option<T> {
        self.invalid.push(FieldError::new(field, message));
        None
    }

    fn too_large<T>(&mut self, field: &str, message: impl Into<String>) -> Option<T> {
        self.too_large.push(FieldError::new(field, message));
        None
    }
}

/// Parses and validates a publish body into a non-empty batch, or one error naming every problem.
///
/// Status choice: any oversized payload makes the answer `413` (listing the oversized
/// ones); otherwise any rule violation makes it `422` (listing all of them).
pub fn parse_batch(body: &[u8], shape: Shape, limits: &Limits) -> Result<Vec<Event>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed_json("the body is empty"));
    }
    let value: Value = serde_json::from_slice(body).map_err(ApiError::malformed_json)?;
    let (items, single) = split_shape(value, shape)?;
    if items.is_empty() {
        return Err(
            ApiError::invalid("the batch is empty").with_details(vec![FieldError::new(
                "events",
                "must contain at least one event",
            )]),
        );
    }
    if items.len() > limits.max_batch_events {
        return Err(ApiError::too_large(format!(
            "the batch has {} events; the limit is {}",
            items.len(),
            limits.max_batch_events
        )));
    }
    let mut events = Vec::with_capacity(items.len());
    let mut all = Problems::default();
    for (i, item) in items.into_iter().enumerate() {
        let index = (!single).then_some(i);
        let result = match item {
            Value::Object(obj) => Event::from_object(obj, limits),
            _ => {
                let mut p = Problems::default();
                p.invalid.push(FieldError {
                    index: None,
                    field: None,
                    message: "must be a JSON object".into(),
                });
                Err(p)
            }
        };
        match result {
            Ok(event) => events.push(event),
            Err(p) => {
                let tag = |mut e: FieldError| {
                    e.index = index;
                    e
                };
                all.invalid.extend(p.invalid.into_iter().map(tag));
                all.too_large.extend(p.too_large.into_iter().map(tag));
            }
        }
    }
    if !all.too_large.is_empty() {
        return Err(
            ApiError::too_large("an event payload exceeds the size limit")
                .with_details(all.too_large),
        );
    }
    if !all.invalid.is_empty() {
        let message = format!(
            "{} invalid field(s); nothing was accepted",
            all.invalid.len()
        );
        return Err(ApiError::invalid(message).with_details(all.invalid));
    }
    Ok(events)
}

/// Unwraps the accepted body shapes into a list of items; `true` means "one bare event".
fn split_shape(value: Value, shape: Shape) -> Result<(Vec<Value>, bool), ApiError> {
    let wrong_events = || {
        ApiError::invalid("expected {\"events\": [...]}").with_details(vec![FieldError::new(
            "events",
            "must be an array of event objects",
        )])
    };
    match value {
        Value::Array(items) => Ok((items, false)),
        Value::Object(mut obj) => match obj.remove("events") {
            Some(Value::Array(items)) => Ok((items, false)),
            Some(_) => Err(wrong_events()),
            None if shape == Shape::Any => Ok((vec![Value::Object(obj)], true)),
            None => Err(
                ApiError::invalid("expected {\"events\": [...]} or an array")
                    .with_details(vec![FieldError::new("events", "is required")]),
            ),
        },
        _ => Err(ApiError::invalid(match shape {
            Shape::Any => "expected an event object, an array of events, or {\"events\": [...]}",
            Shape::Batch => "expected {\"events\": [...]} or an array of events",
        })),
    }
}

/// Checks a text field: 1–255 characters, no NUL.
fn check_text(s: &str) -> Result<(), String> {
    let chars = s.chars().count();
    if chars == 0 || chars > MAX_TEXT_CHARS {
        return Err(format!(
            "must be 1-{MAX_TEXT_CHARS} characters (got {chars})"
        ));
    }
    if s.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    Ok(())
}

/// Whether any string (or object key) inside a JSON value contains NUL.
fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// Parses an ISO 8601 / RFC 3339 date-time and renders it as UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn normalize_timestamp(s: &str) -> Result<String, String> {
    parse_timestamp(s).map(|utc| render_utc(&utc))
}

/// Renders a UTC instant in the one format this service emits.
pub fn render_utc(t: &NaiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 1_000
    )
}

/// Parses a timestamp into a UTC instant (see the module doc for the accepted grammar).
pub fn parse_timestamp(s: &str) -> Result<NaiveDateTime, String> {
    const HINT: &str = "must be an ISO 8601 date-time such as 2024-05-01T12:00:00Z";
    let b = s.as_bytes();
    if b.len() < 19 || b.len() > 64 {
        return Err(HINT.into());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let part = &b[range];
        if part.iter().all(u8::is_ascii_digit) {
            Ok(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        } else {
            Err(HINT.to_string())
        }
    };
    let sep_ok = b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b't' | b' ');
    if !sep_ok || b[13] != b':' || b[16] != b':' {
        return Err(HINT.into());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &b[19..];
    let mut micros = 0;
    if let [b'.' | b',', tail @ ..] = rest {
        let digits = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(HINT.into());
        }
        micros = tail[..digits]
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(6)
            .fold(0, |n, d| n * 10 + u32::from(d - b'0'));
        rest = &tail[digits..];
    }
    let offset_minutes: i64 = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(HINT.into());
            }
            let h = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let m = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if h > 23 || m > 59 {
                return Err("has an offset out of range (max ±23:59)".into());
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return Err(HINT.into()),
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)
        .ok_or_else(|| format!("is not a real calendar date ({year:04}-{month:02}-{day:02})"))?;
    if second > 59 {
        return Err("has seconds out of range (leap seconds are not supported)".into());
    }
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
        .ok_or_else(|| "has a time of day out of range".to_string())?;
    let utc = NaiveDateTime::new(date, time)
        .checked_sub_signed(TimeDelta::minutes(offset_minutes))
        .filter(|t| (1..=9999).contains(&t.year()))
        .ok_or_else(|| "is outside the years 0001-9999 once converted to UTC".to_string())?;
    Ok(utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: Limits = Limits {
        max_batch_events: 3,
        max_payload_bytes: 32,
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
        assert_eq!(e.payload().get(), r#"{"a":1}"#);
    }

    #[test]
    fn timestamps_normalise_to_utc_microseconds() {
        for (input, expected) in [
            ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000000Z"),
            ("2024-05-01t12:00:00z", "2024-05-01T12:00:00.000000Z"),
            ("2024-05-01 12:00:00", "2024-05-01T12:00:00.000000Z"),
            ("2024-05-01T12:00:00.5+02:00", "2024-05-01T10:00:00.500000Z"),
            (
                "2024-05-01T01:30:00.123456789-05:30",
                "2024-05-01T07:00:00.123456Z",
            ),
            ("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00.000000Z"),
            ("2024-03-01T00:10:00+00:20", "2024-02-29T23:50:00.000000Z"),
            ("2024-05-01T12:00:00,25", "2024-05-01T12:00:00.250000Z"),
            ("2024-05-01T12:00:00-00:00", "2024-05-01T12:00:00.000000Z"),
        ] {
            assert_eq!(
                normalize_timestamp(input).as_deref(),
                Ok(expected),
                "{input}"
            );
        }
    }

    #[test]
    fn bad_timestamps_are_rejected() {
        for input in [
            "",
            "2024-05-01",
            "2024-05-01T12:00",
            "2024-05-01X12:00:00Z",
            "2024-02-30T12:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:60:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+2:00",
            "2024-05-01T12:00:00+24:00",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00Z junk",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-00:01",
            "+2024-05-01T12:00:00Z",
            "２０２４-05-01T12:00:00Z",
            "1714564800",
        ] {
            assert!(
                normalize_timestamp(input).is_err(),
                "{input} should be rejected"
            );
        }
    }

    #[test]
    fn normalised_form_is_a_fixed_point() {
        let once = normalize_timestamp("2024-05-01T12:00:00.1234567+03:00").unwrap();
        assert_eq!(normalize_timestamp(&once).unwrap(), once);
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
        assert_eq!(one(v.clone()).unwrap().payload().get(), "{}");
        v["payload"] = Value::Null;
        assert_eq!(one(v.clone()).unwrap().payload().get(), "null");
        v["payload"] = json!([1, "x", {"y": false}]);
        assert_eq!(one(v).unwrap().payload().get(), r#"[1,"x",{"y":false}]"#);
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
    fn deep_nesting_is_a_400_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse_batch(deep.as_bytes(), Shape::Any, &LIMITS)
                .unwrap_err()
                .status,
            400
        );
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
}
