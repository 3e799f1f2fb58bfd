//! What the service reads out of a payload it otherwise keeps opaque: the *searchable message*
//! and, when the event has no `level` of its own, a level.
//!
//! Searchable message: the first of the payload object's `message`, `msg` and `body` members
//! that is present and not `null` — a string as its text, anything else (an OTLP `body` that is
//! a map, a number) as its compact JSON — or the payload itself when it is a JSON string.
//! Without one, search reads the whole payload text (the store does that: `NULL` here).
//! Level: the payload object's `level` or `severity` string, if it names a level. Reading is
//! best effort and never rejects an event: a payload that is not an object, or repeats one of
//! these members, simply has neither.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::level::Level;

/// The members of a payload object this module looks at; all others are skipped unparsed.
#[derive(Deserialize)]
struct Known<'a> {
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    msg: Option<&'a RawValue>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    #[serde(borrow)]
    level: Option<&'a RawValue>,
    #[serde(borrow)]
    severity: Option<&'a RawValue>,
}

/// A raw JSON value as text: a string decoded, anything else as its (compact) JSON.
fn as_text(raw: &RawValue) -> Option<String> {
    let json = raw.get();
    if json == "null" {
        None
    } else if json.starts_with('"') {
        serde_json::from_str(json).ok()
    } else {
        Some(json.to_owned())
    }
}

/// The searchable message and the payload's own level (see the module doc).
pub fn inspect(payload: &RawValue) -> (Option<String>, Option<Level>) {
    let json = payload.get();
    if json.starts_with('"') {
        return (serde_json::from_str(json).ok(), None);
    }
    if !json.starts_with('{') {
        return (None, None);
    }
    let Ok(known) = serde_json::from_str::<Known>(json) else {
        return (None, None);
    };
    let message = [known.message, known.msg, known.body]
        .into_iter()
        .flatten()
        .find_map(as_text);
    let level = [known.level, known.severity]
        .into_iter()
        .flatten()
        .filter(|raw| raw.get().starts_with('"'))
        .find_map(|raw| as_text(raw).and_then(|s| Level::parse(&s)));
    (message, level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(json: &str) -> (Option<String>, Option<Level>) {
        inspect(&RawValue::from_string(json.to_owned()).unwrap())
    }

    #[test]
    fn message_members_in_order() {
        assert_eq!(of(r#"{"msg":"b","message":"a"}"#).0.as_deref(), Some("a"));
        assert_eq!(of(r#"{"message":null,"msg":"b"}"#).0.as_deref(), Some("b"));
        assert_eq!(
            of(r#"{"body":{"k":[1,2]}}"#).0.as_deref(),
            Some(r#"{"k":[1,2]}"#)
        );
        assert_eq!(
            of(r#"{"message":"caf\u00e9 \"x\""}"#).0.as_deref(),
            Some("café \"x\"")
        );
        assert_eq!(of(r#""plain line""#).0.as_deref(), Some("plain line"));
        assert_eq!(of(r#"{"other":"x"}"#).0, None);
        assert_eq!(of("[1]").0, None);
        assert_eq!(of("null").0, None);
        assert_eq!(
            of(r#"{"n":1e999999,"message":"big"}"#).0.as_deref(),
            Some("big")
        );
    }

    #[test]
    fn payload_level_is_best_effort() {
        assert_eq!(of(r#"{"level":"WARNING"}"#).1, Some(Level::Warn));
        assert_eq!(of(r#"{"severity":"err"}"#).1, Some(Level::Error));
        assert_eq!(
            of(r#"{"level":"loud","severity":"info"}"#).1,
            Some(Level::Info)
        );
        assert_eq!(of(r#"{"level":30}"#).1, None);
        assert_eq!(of(r#"{"level":"info","level":"warn"}"#), (None, None));
    }
}
