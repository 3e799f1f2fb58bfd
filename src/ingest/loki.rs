//! Loki push (`POST /loki/api/v1/push`): what Promtail, Grafana Alloy, pino-loki and
//! winston-loki send.
//!
//! Both of Loki's encodings: `application/x-protobuf`, a snappy-compressed (block format)
//! `logproto.PushRequest` (Loki's default; types generated from `proto/loki/push.proto`), and
//! `application/json`: `{"streams":[{"stream":{labels},"values":[["<ns>","line",{metadata}?]]}]}`.
//! Each entry becomes one event:
//!
//! - **topic**: the first non-empty label among `loki_topic_labels` (Spin variable, default
//!   `service_name,job,app`); `unknown_service` (Loki's own default) when none is set.
//! - **event_id**: a SHA-256 digest of the sorted labels, the timestamp in nanoseconds, the line
//!   and the structured metadata; so a resend of the same push is a duplicate, in either
//!   encoding.
//! - **source**: the label `instance`, else `host`, else `hostname`, else `loki` (a value over 255
//!   characters or with a NUL is passed over).
//! - **timestamp**: the entry's; **payload**: `{"line", "labels", "structured_metadata"?,
//!   "timestamp_ns"}` (the exact nanoseconds as a string).
//!
//! Like Loki, entries that break a rule are refused alone: the others are stored and the answer
//! is a `400` naming the refused ones. Errors are Loki's shape: the status and a plain-text body.

use std::collections::BTreeMap;

use prost::Message;
use serde::Deserialize;
use serde_json::value::RawValue;
use spin_sdk::http::Response;

use super::Decoded;
use super::json::Object;
use super::proto::logproto::PushRequest;
use crate::error::ApiError;
use crate::validate::{self, Event, Level, Limits};

/// The topic when no topic label is set (what Loki calls a stream without `service_name`).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Loki's two push encodings.
pub type Format = super::WireFormat;

/// The push encoding a `Content-Type` names (absent: decided from the body); else `415`.
pub fn format_of(content_type: Option<&str>) -> Result<Option<Format>, ApiError> {
    Format::of(
        content_type,
        "a Loki push encoding",
        "application/x-protobuf (snappy) or application/json",
    )
}

/// One stream's entries, whichever encoding they came in.
struct Stream {
    labels: BTreeMap<String, String>,
    entries: Vec<Entry>,
}

struct Entry {
    nanos: i128,
    line: String,
    metadata: Vec<(String, String)>,
}

/// Decodes a push body and maps its entries; `topic_labels` in order of preference.
pub fn decode(
    body: &[u8],
    format: Option<Format>,
    topic_labels: &[String],
    limits: &Limits,
    max_bytes: usize,
) -> Result<Decoded, ApiError> {
    let format = format.unwrap_or(if body.trim_ascii_start().starts_with(b"{") {
        Format::Json
    } else {
        Format::Protobuf
    });
    let streams = match format {
        Format::Protobuf => from_protobuf(body, max_bytes)?,
        Format::Json => from_json(body)?,
    };
    let entries: usize = streams.iter().map(|s| s.entries.len()).sum();
    if entries > limits.max_batch_events {
        return Err(ApiError::too_large(format!(
            "the push has {entries} entries; the limit is {}",
            limits.max_batch_events
        )));
    }
    let mut decoded = Decoded::with_capacity(entries, "entry");
    for (s, stream) in streams.iter().enumerate() {
        let label = |name: &str| stream.labels.get(name).filter(|v| !v.is_empty());
        let topic = topic_labels
            .iter()
            .find_map(|name| label(name))
            .map_or(UNKNOWN_SERVICE, String::as_str);
        // A label value the event rules cannot take as a source (over 255 characters, a NUL)
        // is passed over for the next one.
        let source = ["instance", "host", "hostname"]
            .into_iter()
            .filter_map(label)
            .find(|v| v.chars().count() <= validate::MAX_TEXT_CHARS && !v.contains('\0'))
            .map_or("loki", String::as_str);
        let mut canonical = Vec::new();
        for (name, value) in &stream.labels {
            canonical.extend_from_slice(name.as_bytes());
            canonical.push(0);
            canonical.extend_from_slice(value.as_bytes());
            canonical.push(0);
        }
        for (e, entry) in stream.entries.iter().enumerate() {
            let nanos = entry.nanos.to_string();
            let mut metadata = Vec::new();
            for (name, value) in &entry.metadata {
                metadata.extend_from_slice(name.as_bytes());
                metadata.push(0);
                metadata.extend_from_slice(value.as_bytes());
                metadata.push(0);
            }
            let event_id = validate::content_id(&[
                &canonical,
                nanos.as_bytes(),
                entry.line.as_bytes(),
                &metadata,
            ]);
            let built = validate::from_unix_nanos(entry.nanos).and_then(|ts| {
                Event::build(
                    topic.to_owned(),
                    event_id,
                    &ts,
                    source.to_owned(),
                    payload(&stream.labels, entry, &nanos),
                    limits,
                )
                .map(|event| {
                    match stream.labels.get("level").and_then(|l| Level::parse(l)) {
                        Some(level) => event.with_level(level),
                        None => event,
                    }
                })
            });
            match built {
                Ok(event) => decoded.events.push(event),
                Err(reason) => decoded.refuse(format!("stream {s} entry {e}"), reason),
            }
        }
    }
    Ok(decoded)
}

fn payload(labels: &BTreeMap<String, String>, entry: &Entry, nanos: &str) -> String {
    let mut out = String::with_capacity(entry.line.len() + 128);
    let mut o = Object::open(&mut out);
    o.string("line", &entry.line);
    let mut l = Object::open(o.key("labels"));
    for (name, value) in labels {
        l.string(name, value);
    }
    l.close();
    if !entry.metadata.is_empty() {
        let mut m = Object::open(o.key("structured_metadata"));
        for (name, value) in &entry.metadata {
            m.string(name, value);
        }
        m.close();
    }
    o.string("timestamp_ns", nanos);
    o.close();
    out
}

fn from_protobuf(body: &[u8], max_bytes: usize) -> Result<Vec<Stream>, ApiError> {
    let not_snappy = |e: snap::Error| {
        ApiError::malformed(format!(
            "the body is not snappy-compressed (Loki's protobuf push is): {e}"
        ))
    };
    let length = snap::raw::decompress_len(body).map_err(not_snappy)?;
    if length > max_bytes {
        return Err(ApiError::too_large(format!(
            "the push is {length} bytes once decompressed; the limit is {max_bytes}"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(not_snappy)?;
    let request = PushRequest::decode(raw.as_slice()).map_err(|e| {
        ApiError::malformed(format!("the body is not a protobuf Loki PushRequest: {e}"))
    })?;
    request
        .streams
        .into_iter()
        .enumerate()
        .map(|(s, stream)| {
            let labels = parse_labels(&stream.labels).map_err(|m| {
                ApiError::malformed(format!("stream {s}: labels {:?}: {m}", stream.labels))
            })?;
            let entries = stream
                .entries
                .into_iter()
                .map(|entry| {
                    let ts = entry.timestamp.unwrap_or_default();
                    Entry {
                        nanos: i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos),
                        line: entry.line,
                        metadata: entry
                            .structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect(),
                    }
                })
                .collect();
            Ok(Stream { labels, entries })
        })
        .collect()
}

#[derive(Deserialize)]
struct PushJson<'a> {
    #[serde(borrow)]
    streams: Vec<StreamJson<'a>>,
}

#[derive(Deserialize)]
struct StreamJson<'a> {
    #[serde(default)]
    stream: BTreeMap<String, String>,
    #[serde(borrow)]
    values: Vec<Vec<&'a RawValue>>,
}

fn from_json(body: &[u8]) -> Result<Vec<Stream>, ApiError> {
    super::json_object(body, "a Loki push request")?;
    let push: PushJson = serde_json::from_slice(body).map_err(|e| {
        ApiError::malformed(format!("the body is not a Loki JSON push request: {e}"))
    })?;
    push.streams
        .into_iter()
        .enumerate()
        .map(|(s, stream)| {
            let entries = stream
                .values
                .iter()
                .enumerate()
                .map(|(e, value)| {
                    json_entry(value)
                        .map_err(|m| ApiError::malformed(format!("streams[{s}].values[{e}]: {m}")))
                })
                .collect::<Result<_, _>>()?;
            Ok(Stream {
                labels: stream.stream,
                entries,
            })
        })
        .collect()
}

/// `["<ns>", "line"]` or `["<ns>", "line", {"name": "value", ...}]`.
fn json_entry(value: &[&RawValue]) -> Result<Entry, String> {
    let (ts, line, metadata) = match value {
        [ts, line] => (ts, line, None),
        [ts, line, metadata] => (ts, line, Some(metadata)),
        _ => return Err("must be [timestamp, line] or [timestamp, line, metadata]".into()),
    };
    let ts: String = serde_json::from_str(ts.get())
        .map_err(|_| "the timestamp must be a string of nanoseconds".to_owned())?;
    let nanos: i128 = ts
        .parse()
        .map_err(|_| format!("the timestamp {ts:?} is not a whole number of nanoseconds"))?;
    let line: String =
        serde_json::from_str(line.get()).map_err(|_| "the line must be a string".to_owned())?;
    let metadata = match metadata {
        None => Vec::new(),
        Some(raw) => {
            // An object of strings; kept in the sender's order.
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(raw.get())
                    .map_err(|_| "structured metadata must be an object of strings".to_owned())?;
            let mut pairs = Vec::with_capacity(map.len());
            for (name, value) in map {
                match value {
                    serde_json::Value::String(v) => pairs.push((name, v)),
                    _ => return Err(format!("structured metadata {name:?} must be a string")),
                }
            }
            pairs
        }
    };
    Ok(Entry {
        nanos,
        line,
        metadata,
    })
}

/// Parses Prometheus label-set text, `{name="value", ...}`, as Loki clients write it (values
/// quoted with Go's escapes). Sorted by name; a repeated name is an error.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or("must be enclosed in { }")?;
    let mut labels = BTreeMap::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("a label name is expected at {rest:?}"));
        }
        rest = rest[end..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("label {name:?} needs =\"value\""))?
            .trim_start();
        let (value, after) = quoted(rest).map_err(|m| format!("label {name:?}: {m}"))?;
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name:?} is repeated"));
        }
        rest = after.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(format!("a comma is expected at {rest:?}")),
        }
    }
    Ok(labels)
}

/// Reads a Go-quoted string at the start of `text`; returns it and what follows.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let mut chars = text.char_indices();
    if chars.next().map(|(_, c)| c) != Some('"') {
        return Err("the value must be a quoted string".into());
    }
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => {
                let (_, e) = chars.next().ok_or("unfinished escape")?;
                let mut hex = |n: usize| -> Result<char, String> {
                    let digits: String = (0..n)
                        .filter_map(|_| chars.next().map(|(_, c)| c))
                        .collect();
                    u32::from_str_radix(&digits, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("bad escape \\{e}{digits}"))
                };
                value.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'v' => '\u{b}',
                    '\\' | '"' | '\'' => e,
                    'x' => hex(2)?,
                    'u' => hex(4)?,
                    'U' => hex(8)?,
                    other => return Err(format!("unknown escape \\{other}")),
                });
            }
            c => value.push(c),
        }
    }
    Err("the quoted value is not closed".into())
}

/// `204`, as Loki answers a push.
pub fn answer() -> Response {
    Response::builder().status(204).body(Vec::new()).build()
}

/// An error as Loki answers it: the status (a `422` is Loki's `400`) and a plain-text body.
pub fn error(e: ApiError) -> Response {
    let status = if e.status == 422 { 400 } else { e.status };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(format!("{}\n", e.message))
        .build();
    for (name, value) in &e.headers {
        response.set_header(*name, value.as_str());
    }
    if matches!(status, 429 | 503) && !e.headers.iter().any(|(n, _)| *n == "retry-after") {
        response.set_header("retry-after", super::RETRY_AFTER_SECONDS);
    }
    response
}

#[cfg(test)]
mod tests;
