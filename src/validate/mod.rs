//! Validation: the only way to build an [`Event`] is to pass every rule.
//!
//! The publish routes hand the raw body to [`parse_batch`] (module `body`), which accepts the three
//! contract shapes (one event object, a JSON array, or `{"events": [...]}`), checks
//! every field of every event, and either returns the whole batch or one error that
//! lists *all* problems — a batch is all-or-nothing. NDJSON bodies reach the same checks
//! through [`validate_items`]; the protocol adapters (`ingest`) build events from their own
//! records with [`Event::build`] (module `event`), under the same rules, and derive ids with
//! [`content_id`].
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

mod body;
mod digest;
mod event;
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
pub use event::Event;
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

/// Why one item of a batch was not turned into an event.
enum ItemError {
    /// Rule violations, to be reported with the item's index.
    Problems(body::Problems),
    /// Text no store can hold (an unpaired surrogate escape): the whole body is malformed.
    Malformed(String),
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
mod tests;
