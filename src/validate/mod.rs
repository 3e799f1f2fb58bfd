//! Validation: the only way to build an [`Event`] is to pass every rule.
//!
//! The publish routes hand the raw body to [`parse_batch`] (module `body`), which accepts the three
//! contract shapes (one event object, a JSON array, or `{"events": [...]}`), checks
//! every field of every event, and either returns the whole batch or one error that
//! lists *all* problems — a batch is all-or-nothing. NDJSON bodies reach the same checks
//! through [`validate_items`]; the protocol adapters (`ingest`) build events from their own
//! records with [`Event::build`], under the same rules, and derive ids with [`content_id`].
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
//! `level` is optional: a severity name or alias (see `level`), stored as its canonical name;
//! without it, the payload's own `level` / `severity` string is used if it names a level.
//! Unknown fields are ignored; a field given twice in one event is an error.
//!
//! Parsing never builds a `serde_json::Value` tree. The common bodies are read in one pass by
//! `scan`, which checks the grammar, copies each payload without whitespace and notes its
//! message and level as it goes; it only ever decides a success. Every other body (and every
//! error) takes the general path (`body`): the body is split into raw items, each item into its
//! raw fields, each checked. Either way the payload is kept as the text the client sent with
//! only the whitespace between tokens removed (so its size is the size of its compact JSON).
//! Unicode escapes the JSON parser lets through but no store can hold (unpaired surrogates)
//! make the body malformed.

use serde_json::value::RawValue;

mod body;
mod digest;
pub mod level;
mod payload;
mod scan;
pub mod text;
mod timestamp;
pub use body::{parse_batch, validate_items};

/// One NDJSON line's event in one pass, when the line is a valid event object; `None` sends the
/// line to [`validate_items`], which gives every answer (see `scan`).
pub fn scan_line(line: &str, limits: &Limits) -> Option<Event> {
    scan::event(line, limits)
}
pub use digest::content_id;
pub use level::Level;
pub use timestamp::{from_unix_nanos, normalize_timestamp, parse_timestamp, render_utc};

/// Longest `topic`, `event_id` or `source`, in characters.
pub const MAX_TEXT_CHARS: usize = 255;

/// Deepest nesting of arrays and objects in a payload; what every store's JSON parser accepts.
pub const MAX_PAYLOAD_DEPTH: usize = 128;
const _: () = assert!(
    MAX_PAYLOAD_DEPTH == 128,
    "the payload error message says 128"
);

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
    /// Compact JSON text (checked: only a validated payload becomes one).
    payload: String,
    level: Option<Level>,
    /// The searchable message read out of the payload (see `text`); derived, never sent.
    message: Option<String>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
            && self.timestamp == other.timestamp
            && self.source == other.source
            && self.payload == other.payload
            && self.level == other.level
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
    pub fn payload(&self) -> &str {
        &self.payload
    }

    /// Its severity, if it has one: searched with `level=`, counted per level.
    pub fn level(&self) -> Option<Level> {
        self.level
    }

    /// Sets the severity; how adapters (OTLP severity, Loki's `level` label) attach theirs.
    pub fn with_level(mut self, level: Level) -> Event {
        self.level = Some(level);
        self
    }

    /// The payload's searchable message, if it has one (otherwise search reads the payload).
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The event as a JSON object (what a dead letter shows of its batch).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "topic": self.topic,
            "event_id": self.event_id,
            "timestamp": self.timestamp,
            "source": self.source,
            "payload": RawValue::from_string(self.payload.clone()).ok(),
        });
        if let Some(level) = self.level {
            v["level"] = serde_json::json!(level.name());
        }
        v
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
        let timestamp = checked_fields(&topic, &event_id, &source, timestamp)?;
        let payload = String::from(Box::<str>::from(payload));
        Ok(Event::assemble(topic, event_id, timestamp, source, payload))
    }

    /// Builds an event a protocol adapter (OTLP, Loki) mapped from its own record, under the
    /// same rules as a published one, payload size limit included; the error says which rule.
    pub fn build(
        topic: String,
        event_id: String,
        timestamp: &str,
        source: String,
        payload: String,
        limits: &Limits,
    ) -> Result<Event, String> {
        let timestamp = checked_fields(&topic, &event_id, &source, timestamp)?;
        let payload = checked_payload(payload, limits)?;
        Ok(Event::assemble(topic, event_id, timestamp, source, payload))
    }

    /// [`Event::build`] for an adapter that already holds what `build` would read again: a
    /// `timestamp` rendered by [`from_unix_nanos`] (the stored form) and the payload's
    /// searchable `message`, for a payload without a `level` or `severity` member of its own
    /// (OTLP's). The same rules, the same event; each record's payload is parsed once less.
    pub fn build_rendered(
        topic: String,
        event_id: String,
        timestamp: String,
        source: String,
        payload: String,
        message: Option<String>,
        limits: &Limits,
    ) -> Result<Event, String> {
        for (field, value) in [
            ("topic", &topic),
            ("event_id", &event_id),
            ("source", &source),
        ] {
            check_text(value).map_err(|m| format!("{field} {m}"))?;
        }
        let payload = checked_payload(payload, limits)?;
        debug_assert_eq!(
            text::inspect(&payload),
            (message.clone(), None),
            "the adapter's message is the one inspect reads"
        );
        Ok(Event {
            topic,
            event_id,
            timestamp,
            source,
            payload,
            level: None,
            message,
        })
    }

    /// An event from checked fields, with the level and message its payload carries.
    fn assemble(
        topic: String,
        event_id: String,
        timestamp: String,
        source: String,
        payload: String,
    ) -> Event {
        let (message, level) = text::inspect(&payload);
        Event {
            topic,
            event_id,
            timestamp,
            source,
            payload,
            level,
            message,
        }
    }
}

/// Why one item of a batch was not turned into an event.
enum ItemError {
    /// Rule violations, to be reported with the item's index.
    Problems(body::Problems),
    /// Text no store can hold (an unpaired surrogate escape): the whole body is malformed.
    Malformed(String),
}

/// Checks the text fields of a restored or adapter-built event and normalises its time; the
/// error names the field.
fn checked_fields(
    topic: &str,
    event_id: &str,
    source: &str,
    timestamp: &str,
) -> Result<String, String> {
    let text = |field: &str, v: &str| check_text(v).map_err(|m| format!("{field} {m}"));
    text("topic", topic)?;
    text("event_id", event_id)?;
    text("source", source)?;
    normalize_timestamp(timestamp).map_err(|m| format!("timestamp {m}"))
}

/// An adapter's payload text as stored: JSON, no NUL, not too deep, compact, within the limit.
fn checked_payload(payload: String, limits: &Limits) -> Result<String, String> {
    let raw = RawValue::from_string(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let payload = match payload::compact(&raw) {
        Ok(Ok(p)) => p.unwrap_or_else(|| String::from(Box::<str>::from(raw))),
        Ok(Err(m)) => return Err(format!("payload {m}")),
        Err(ItemError::Malformed(m)) => return Err(format!("payload: {m}")),
        Err(ItemError::Problems(_)) => return Err("payload is invalid".into()),
    };
    if payload.len() > limits.max_payload_bytes {
        return Err(format!(
            "payload is {} bytes serialised; the limit is {}",
            payload.len(),
            limits.max_payload_bytes
        ));
    }
    Ok(payload)
}

/// Checks a text field: 1–255 characters, no NUL.
fn check_text(s: &str) -> Result<(), String> {
    let chars = text_chars(s);
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

/// The characters of `s` as far as [`check_text`]'s length rule needs: a string has at most as
/// many characters as bytes, so most need no count.
fn text_chars(s: &str) -> usize {
    if s.len() <= MAX_TEXT_CHARS {
        s.len()
    } else {
        s.chars().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
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
}
