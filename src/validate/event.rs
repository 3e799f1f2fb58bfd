//! The [`Event`] type: a log event that passed every rule, and the ways to make one — from a
//! published body (`body`, `scan`), from an entry read back from the queue ([`Event::restore`]),
//! or from a protocol adapter's record ([`Event::build`], [`Event::build_rendered`]). Its fields
//! are private to `validate`, so no other module can make an invalid one.

use serde_json::value::RawValue;

use super::{ItemError, Level, Limits, check_text, normalize_timestamp, payload, text};

/// A log event that satisfies every rule; fields are private so no invalid one exists.
#[derive(Debug, Clone)]
pub struct Event {
    pub(super) topic: String,
    pub(super) event_id: String,
    pub(super) timestamp: String,
    pub(super) source: String,
    /// Compact JSON text (checked: only a validated payload becomes one).
    pub(super) payload: String,
    pub(super) level: Option<Level>,
    /// The searchable message read out of the payload (see `text`); derived, never sent.
    pub(super) message: Option<String>,
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
    /// `timestamp` rendered by [`from_unix_nanos`](super::from_unix_nanos) (the stored form)
    /// and the payload's searchable `message`, for a payload without a `level` or `severity`
    /// member of its own (OTLP's). The same rules, the same event; each record's payload is
    /// parsed once less.
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
    pub(super) fn assemble(
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
