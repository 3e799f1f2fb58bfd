//! Newline-delimited JSON (`application/x-ndjson`, `application/jsonl`) on `/publish` and
//! `/publish/batch`: one edgelog event object per line, what Vector's and Fluent Bit's HTTP
//! outputs send.
//!
//! The lines are one all-or-nothing batch under the same rules and limits as a JSON array; the
//! `index` of an error is the line's 0-based number in the body (blank lines count as lines and
//! are skipped), so a sender can find the line it has to fix.

use serde_json::value::RawValue;

use crate::error::{ApiError, FieldError};
use crate::validate::{self, Event, Limits};

/// Whether a `Content-Type` names newline-delimited JSON.
pub fn is_ndjson(media: &str) -> bool {
    matches!(
        media,
        "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines"
    )
}

/// Splits and validates an NDJSON body into a non-empty batch, or one error naming every bad line.
pub fn decode(body: &[u8], limits: &Limits) -> Result<Vec<Event>, ApiError> {
    let text = std::str::from_utf8(body).map_err(ApiError::malformed_json)?;
    if let Some(events) = scanned(text, limits) {
        return Ok(events);
    }
    let mut items: Vec<(Option<usize>, &RawValue)> = Vec::new();
    for (line_no, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        if items.len() == limits.max_batch_events {
            return Err(ApiError::too_large(format!(
                "the body has more lines with events than the limit of {}",
                limits.max_batch_events
            )));
        }
        let raw: &RawValue = serde_json::from_str(line).map_err(|e| {
            ApiError::malformed_json(format!("line {line_no}: {e}")).with_details(vec![
                FieldError {
                    index: Some(line_no),
                    field: None,
                    message: format!("is not valid JSON: {e}"),
                },
            ])
        })?;
        items.push((Some(line_no), raw));
    }
    if items.is_empty() {
        return Err(
            ApiError::invalid("the batch is empty").with_details(vec![FieldError::new(
                "events",
                "must contain at least one line with an event",
            )]),
        );
    }
    validate::validate_items(items.into_iter(), limits)
}

/// Every line read in one pass, when every line is a valid event object and they are within
/// the limit; `None` sends the body down [`decode`]'s line-by-line path, which gives every answer.
fn scanned(text: &str, limits: &Limits) -> Option<Vec<Event>> {
    let mut events = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        if events.len() == limits.max_batch_events {
            return None;
        }
        events.push(validate::scan_line(line, limits)?);
    }
    (!events.is_empty()).then_some(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_batch_events: 3,
        max_payload_bytes: 1000,
    };

    fn line(id: &str) -> String {
        format!(
            r#"{{"topic":"t","event_id":"{id}","timestamp":"2024-05-01T12:00:00Z","source":"s","payload":{{"id":"{id}"}}}}"#
        )
    }

    #[test]
    fn lines_become_events() {
        let body = format!("{}\n\n{}\r\n{}", line("a"), line("b"), line("c"));
        let events = decode(body.as_bytes(), &LIMITS).unwrap();
        let ids: Vec<&str> = events.iter().map(|e| e.event_id()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(events[1].payload(), r#"{"id":"b"}"#);
    }

    #[test]
    fn bad_lines_are_named_by_line_number() {
        let bad = line("x").replace("\"t\"", "\"\"");
        let body = format!("{}\n\n{bad}\n", line("a"));
        let err = decode(body.as_bytes(), &LIMITS).unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(err.details[0].index, Some(2));
        assert_eq!(err.details[0].field.as_deref(), Some("topic"));
        let body = format!("{}\n{{\"topic\":\n", line("a"));
        let err = decode(body.as_bytes(), &LIMITS).unwrap_err();
        assert_eq!((err.status, err.details[0].index), (400, Some(1)));
        let err = decode(b"[1]\n", &LIMITS).unwrap_err();
        assert_eq!((err.status, err.details[0].index), (422, Some(0)));
    }

    #[test]
    fn limits_and_empty_bodies() {
        let four = [line("a"), line("b"), line("c"), line("d")].join("\n");
        assert_eq!(decode(four.as_bytes(), &LIMITS).unwrap_err().status, 413);
        assert_eq!(decode(b"\n \n", &LIMITS).unwrap_err().status, 422);
        assert_eq!(decode(b"\xff\n", &LIMITS).unwrap_err().status, 400);
    }
}
