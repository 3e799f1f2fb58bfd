//! Reading a publish body: the three contract shapes split into raw items, each item's five
//! raw fields checked in one pass, and every problem of every item collected, so a batch is
//! accepted whole or refused with one error that lists them all (`413` before `422`).

use serde::{Deserialize, Deserializer};
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::{
    Event, ItemError, Level, Limits, Shape, check_text, level, normalize_timestamp, payload, scan,
};
use crate::error::{ApiError, FieldError};

impl Event {
    /// Validates one event object's raw fields, collecting every problem rather than stopping.
    fn from_fields(fields: Fields<'_>, limits: &Limits) -> Result<Event, ItemError> {
        let mut problems = Problems::default();
        let topic = text_field(fields.topic, &mut problems, "topic")?;
        let event_id = text_field(fields.event_id, &mut problems, "event_id")?;
        let timestamp = match string_value(fields.timestamp)? {
            Text::Missing => problems.invalid("timestamp", "is required"),
            Text::NotAString => problems.invalid("timestamp", "must be a string"),
            Text::Value(s) => match normalize_timestamp(&s) {
                Ok(t) => Some(t),
                Err(m) => problems.invalid("timestamp", m),
            },
        };
        let source = text_field(fields.source, &mut problems, "source")?;
        let payload = match fields.payload {
            None => Some(empty_object()),
            Some(raw) => {
                match payload::compact(raw)?.map(|p| p.unwrap_or_else(|| raw.get().to_owned())) {
                    Err(m) => problems.invalid("payload", m),
                    Ok(p) if p.len() > limits.max_payload_bytes => problems.too_large(
                        "payload",
                        format!(
                            "is {} bytes serialised; the limit is {}",
                            p.len(),
                            limits.max_payload_bytes
                        ),
                    ),
                    Ok(p) => Some(p),
                }
            }
        };
        let level = match string_value(fields.level)? {
            Text::Missing => Some(None),
            Text::NotAString => problems.invalid(
                "level",
                format!("must be a string: one of {}", level::LEVEL_NAMES),
            ),
            Text::Value(s) => match Level::parse(&s) {
                Some(l) => Some(Some(l)),
                None => problems.invalid(
                    "level",
                    format!(
                        "must be one of {} (or an alias such as warning, err, critical)",
                        level::LEVEL_NAMES
                    ),
                ),
            },
        };
        match (topic, event_id, timestamp, source, payload, level) {
            (
                Some(topic),
                Some(event_id),
                Some(timestamp),
                Some(source),
                Some(payload),
                Some(level),
            ) => {
                // The sent `level` wins over the one the payload carries.
                let event = Event::assemble(topic, event_id, timestamp, source, payload);
                Ok(match level {
                    Some(level) => event.with_level(level),
                    None => event,
                })
            }
            _ => Err(ItemError::Problems(problems)),
        }
    }
}

/// One event object as sent: each known field as raw JSON text, unknown fields skipped.
///
/// `null` reads as absent for the required fields; `payload` keeps an explicit `null`.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    topic: Option<&'a RawValue>,
    #[serde(borrow)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    payload: Option<&'a RawValue>,
    #[serde(borrow)]
    level: Option<&'a RawValue>,
}

/// The `{"events": [...]}` wrapper read in one pass, the items kept as raw text; other members
/// are ignored (they may be a bare event's fields). An `events` that is not an array fails it
/// with a data error, and [`LooseWrapper`] tells the cases apart.
#[derive(Deserialize)]
struct Wrapper<'a> {
    #[serde(borrow, default, deserialize_with = "present_array")]
    events: Option<Vec<&'a RawValue>>,
}

/// The wrapper with `events` as any JSON value: the second look when [`Wrapper`] fails.
#[derive(Deserialize)]
struct LooseWrapper<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    events: Option<&'a RawValue>,
}

/// Deserialises a present `events` member, `null` included, as `Some` array.
fn present_array<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<&'de RawValue>>, D::Error> {
    <Vec<&RawValue>>::deserialize(d).map(Some)
}

/// Deserialises a member that is present, `null` included, as `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A JSON member that should be a string.
enum Text {
    Missing,
    NotAString,
    Value(String),
}

/// Reads a raw member as a string; an unpaired surrogate escape makes the body malformed.
fn string_value(raw: Option<&RawValue>) -> Result<Text, ItemError> {
    let Some(raw) = raw else {
        return Ok(Text::Missing);
    };
    let json = raw.get();
    if !json.starts_with('"') {
        return Ok(Text::NotAString);
    }
    if !json.contains('\\') {
        // No escapes: the text between the quotes is the value.
        return Ok(Text::Value(json[1..json.len() - 1].to_owned()));
    }
    serde_json::from_str(json)
        .map(Text::Value)
        .map_err(|e| ItemError::Malformed(e.to_string()))
}

/// Reads a required text field, recording what is wrong with it.
fn text_field(
    raw: Option<&RawValue>,
    problems: &mut Problems,
    name: &str,
) -> Result<Option<String>, ItemError> {
    Ok(match string_value(raw)? {
        Text::Missing => problems.invalid(name, "is required"),
        Text::NotAString => problems.invalid(name, "must be a string"),
        Text::Value(s) => match check_text(&s) {
            Ok(()) => Some(s),
            Err(m) => problems.invalid(name, m),
        },
    })
}

fn empty_object() -> String {
    "{}".to_owned()
}

/// Problems found in one event, split by the status they lead to.
#[derive(Default)]
pub(super) struct Problems {
    invalid: Vec<FieldError>,
    too_large: Vec<FieldError>,
}

impl Problems {
    fn invalid<T>(&mut self, field: &str, message: impl Into<String>) -> Option<T> {
        self.invalid.push(FieldError::new(field, message));
        None
    }

    /// A problem with the item as a whole (not one field).
    fn whole(message: String) -> Problems {
        let mut p = Problems::default();
        p.invalid.push(FieldError {
            index: None,
            field: None,
            message,
        });
        p
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
    let text = std::str::from_utf8(body).map_err(ApiError::malformed_json)?;
    if let Some(events) = scan::events(text, shape, limits) {
        return Ok(events);
    }
    parse_text(text, shape, limits)
}

/// [`parse_batch`] without the one-pass scan (`scan`): every body, every answer.
pub(super) fn parse_text(
    text: &str,
    shape: Shape,
    limits: &Limits,
) -> Result<Vec<Event>, ApiError> {
    let (items, single) = split_shape(text, shape)?;
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
    validate_items(
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| ((!single).then_some(i), item)),
        limits,
    )
}

/// Validates raw event objects, tagged with the index their errors should name, as one
/// all-or-nothing batch: every event, or one error listing every problem (`413` if any payload
/// is too large, else `422`; `400` for text no store can hold). Callers check count limits first.
pub fn validate_items<'a>(
    items: impl ExactSizeIterator<Item = (Option<usize>, &'a RawValue)>,
    limits: &Limits,
) -> Result<Vec<Event>, ApiError> {
    let n = items.len();
    let results = items.map(|(index, item)| {
        let result = if item.get().starts_with('{') {
            match serde_json::from_str::<Fields>(item.get()) {
                Ok(fields) => Event::from_fields(fields, limits),
                // The syntax was checked with the body, so this is a repeated member.
                Err(e) => Err(ItemError::Problems(Problems::whole(strip_position(&e)))),
            }
        } else {
            Err(ItemError::Problems(Problems::whole(
                "must be a JSON object".into(),
            )))
        };
        (index, result)
    });
    collect_all(n, results)
}

/// The events of a batch, or one error for all its items' problems (see [`validate_items`]).
fn collect_all(
    n: usize,
    results: impl Iterator<Item = (Option<usize>, Result<Event, ItemError>)>,
) -> Result<Vec<Event>, ApiError> {
    let mut events = Vec::with_capacity(n);
    let mut all = Problems::default();
    for (index, result) in results {
        match result {
            Ok(event) => events.push(event),
            Err(ItemError::Malformed(reason)) => return Err(ApiError::malformed_json(reason)),
            Err(ItemError::Problems(p)) => {
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

/// A serde error's message without its ` at line 1 column 17` suffix.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Splits the body into raw items (checking its JSON syntax); `true` means "one bare event".
fn split_shape(text: &str, shape: Shape) -> Result<(Vec<&RawValue>, bool), ApiError> {
    let array = |json| serde_json::from_str(json).map_err(ApiError::malformed_json);
    let wrong_events = || {
        ApiError::invalid("expected {\"events\": [...]}").with_details(vec![FieldError::new(
            "events",
            "must be an array of event objects",
        )])
    };
    match text.trim_start().as_bytes().first() {
        Some(b'[') => Ok((array(text)?, false)),
        Some(b'{') => {
            let events = match serde_json::from_str::<Wrapper>(text) {
                Ok(wrapper) => wrapper.events.map(Ok),
                // Not an array of items (or a repeated member): read again to tell which.
                Err(e) if e.classify() == Category::Data => {
                    let loose: LooseWrapper =
                        serde_json::from_str(text).map_err(ApiError::malformed_json)?;
                    loose.events.map(Err)
                }
                Err(e) => return Err(ApiError::malformed_json(e)),
            };
            match events {
                Some(Ok(items)) => Ok((items, false)),
                Some(Err(events)) if events.get().starts_with('[') => {
                    Ok((array(events.get())?, false))
                }
                Some(Err(_)) => Err(wrong_events()),
                None if shape == Shape::Any => {
                    let whole: &RawValue =
                        serde_json::from_str(text).map_err(ApiError::malformed_json)?;
                    Ok((vec![whole], true))
                }
                None => Err(
                    ApiError::invalid("expected {\"events\": [...]} or an array")
                        .with_details(vec![FieldError::new("events", "is required")]),
                ),
            }
        }
        _ => {
            // A scalar (or garbage): small, so a full parse is cheap and checks its escapes too.
            serde_json::from_str::<serde_json::Value>(text).map_err(ApiError::malformed_json)?;
            Err(ApiError::invalid(match shape {
                Shape::Any => {
                    "expected an event object, an array of events, or {\"events\": [...]}"
                }
                Shape::Batch => "expected {\"events\": [...]} or an array of events",
            }))
        }
    }
}
