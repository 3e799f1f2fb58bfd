//! HTTP plumbing: reading a request safely and writing JSON answers.
//!
//! Everything that touches raw HTTP lives here: the `Content-Type` rule, the body
//! size cap (enforced while streaming, so an oversized body is never buffered),
//! query-string parsing and JSON answers. Errors live in `error`.
//!
//! A request without a `Content-Type` header is treated as JSON: the publishers this
//! replaces were inconsistent about sending one, and the body is parsed strictly anyway.
//! Compressed bodies (`Content-Encoding`) are undone in `body`, under the same size cap.

mod body;

use serde::Serialize;
use wasi::io::streams::StreamError;

use spin_sdk::http::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, Response, ResponseOutparam,
};

use crate::error::ApiError;
use crate::log::logln;
use crate::store::EventQuery;

/// Default page size of `GET /events`, from the contract.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page `GET /events` serves, from the contract.
pub const MAX_LIMIT: u32 = 1000;

/// Builds a JSON response; serialising our own types cannot fail, but if it did we say so.
pub fn json(status: u16, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(bytes)
            .build(),
        Err(_) => Response::builder()
            .status(500)
            .header("content-type", "application/json")
            .body(r#"{"error":"internal","message":"response encoding failed","details":[]}"#)
            .build(),
    }
}

/// Largest write `blocking-write-and-flush` takes (WASI 0.2 `output-stream`).
const WRITE_CHUNK: usize = 4096;

/// Sends an answer with as few host calls as wasi:http allows, because each costs more than most
/// handlers' own work: the SDK's sink asks the stream for its write budget around every write
/// and flush (twelve calls for a small answer); one `blocking-write-and-flush` per 4 KiB needs eight.
pub fn send(out: ResponseOutparam, response: Response) {
    let headers: Vec<(String, Vec<u8>)> = response
        .headers()
        .map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec()))
        .collect();
    let status = *response.status();
    let fields = match Fields::from_list(&headers) {
        Ok(fields) => fields,
        Err(e) => {
            // Our own header names and values: only a bug gets here.
            logln!("ERROR response headers refused: {e}");
            Fields::new()
        }
    };
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(status).is_err() {
        logln!("ERROR response status {status} refused");
    }
    let Ok(body) = outgoing.body() else {
        logln!("ERROR response body already taken");
        return;
    };
    out.set(outgoing);
    let bytes = response.into_body();
    if !bytes.is_empty() {
        let Ok(stream) = body.write() else {
            logln!("ERROR response body not writable");
            return;
        };
        for chunk in bytes.chunks(WRITE_CHUNK) {
            // The client went away: nothing left to tell it.
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    if let Err(e) = OutgoingBody::finish(body, None) {
        logln!("ERROR response body not finished: {e}");
    }
}

/// A request's headers, read across the host boundary once: each separate lookup would cost
/// the component three host calls (`headers`, `get`, and dropping the fields).
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    /// Every header of `req`, in one host call.
    pub fn of(req: &IncomingRequest) -> Headers {
        Headers(req.headers().entries())
    }

    /// Every value of `name` (case-insensitive), as sent.
    pub fn all(&self, name: &str) -> Vec<Vec<u8>> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// First value of `name`, lossily decoded (headers should be ASCII).
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| match std::str::from_utf8(v) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(v).into_owned(),
            })
    }
}

/// Splits `path?query` so routing only ever sees the path.
pub fn split_path_query(path_with_query: &str) -> (&str, &str) {
    path_with_query
        .split_once('?')
        .unwrap_or((path_with_query, ""))
}

/// Applies the content-type rule: absent is JSON; otherwise `application/json` or `application/*+json`.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let Some(raw) = content_type else {
        return Ok(());
    };
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = match media.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    };
    if is_json {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(raw))
    }
}

/// The content-type rule of the publish routes: JSON as above (`false`), or newline-delimited
/// JSON (`true`: `application/x-ndjson`, `application/jsonl`, ...); anything else is a `415`.
pub fn check_publish_content_type(content_type: Option<&str>) -> Result<bool, ApiError> {
    match content_type {
        Some(raw) if crate::ingest::ndjson::is_ndjson(&crate::ingest::media_type(raw)) => Ok(true),
        other => check_content_type(other).map(|()| false),
    }
}

/// Reads the body (blocking: the handler has nothing else to do meanwhile) and undoes its
/// `Content-Encoding`; 413 past `max_bytes` (compressed or not), 415 for an unknown coding
/// (before reading), 400 for a corrupt one. Never buffers more.
pub fn read_body(
    req: IncomingRequest,
    headers: &Headers,
    max_bytes: usize,
) -> Result<Vec<u8>, ApiError> {
    let codings = body::codings(headers.get("content-encoding").as_deref())?;
    let declared = headers
        .get("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let raw = read_raw(req, declared, max_bytes)?;
    body::decode(raw, &codings, max_bytes)
}

/// Most bytes one read asks for (the host may return fewer).
const READ_CHUNK: u64 = 64 * 1024;

/// Reads the body as sent, refusing (413) as soon as it exceeds `max_bytes`.
///
/// Plain wasi:http calls rather than the SDK's body stream, because each host call costs more
/// than most of a publish's own work: blocking reads need no poll between them, a body whose
/// declared length has arrived needs no extra read to see its end, and dropping the body is one
/// call where `finish` takes two (it returns the trailers' future).
fn read_raw(
    req: IncomingRequest,
    declared: Option<u64>,
    max_bytes: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::too_large(format!("request body exceeds {max_bytes} bytes"));
    if declared.is_some_and(|len| len > max_bytes as u64) {
        return Err(too_large());
    }
    // Trust a declared length only so far: it saves re-allocations, not a promise.
    let mut body = Vec::with_capacity(declared.map_or(0, |len| len.min(1 << 20) as usize));
    let incoming = req.consume().map_err(|()| ApiError::unreadable_body())?;
    let stream = incoming
        .stream()
        .map_err(|()| ApiError::unreadable_body())?;
    while declared != Some(body.len() as u64) {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => {
                if body.len() + chunk.len() > max_bytes {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => return Err(ApiError::unreadable_body()),
        }
    }
    Ok(body)
}

/// Decoded query parameters; the last occurrence of a repeated name wins.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .last()
}

fn integer_param(query: &str, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
    let Some(raw) = query_param(query, name) else {
        return Ok(None);
    };
    let range = || format!("must be an integer from {min} to {max}");
    let value: u64 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_query(name, range()))?;
    if value < min || value > max {
        return Err(ApiError::bad_query(name, range()));
    }
    Ok(Some(value))
}

/// Deepest `offset` `GET /events` serves; deeper pages use the `before` cursor.
pub const MAX_OFFSET: u64 = 10_000;

/// A 1–255 character text parameter, like the event fields it filters on.
pub(crate) fn text_param(query: &str, name: &str) -> Result<Option<String>, ApiError> {
    match query_param(query, name) {
        Some(t) if t.is_empty() || t.chars().count() > crate::validate::MAX_TEXT_CHARS => {
            Err(ApiError::bad_query(name, "must be 1-255 characters"))
        }
        Some(t) if t.contains('\0') => {
            Err(ApiError::bad_query(name, "must not contain NUL characters"))
        }
        other => Ok(other),
    }
}

/// An ISO 8601 time parameter, normalised like event timestamps.
pub(crate) fn time_param(query: &str, name: &str) -> Result<Option<String>, ApiError> {
    query_param(query, name)
        .map(|raw| {
            crate::validate::normalize_timestamp(raw.trim()).map_err(|_| {
                ApiError::bad_query(
                    name,
                    "must be an ISO 8601 date-time such as 2024-05-01T12:00:00Z",
                )
            })
        })
        .transpose()
}

/// Parses `GET /events` parameters: `topic`, `source`, `since`, `until`, `limit`,
/// `offset` (at most [`MAX_OFFSET`]), `before` (id cursor).
pub fn parse_event_query(query: &str) -> Result<EventQuery, ApiError> {
    let max = i64::MAX as u64;
    let limit = integer_param(query, "limit", 1, u64::from(MAX_LIMIT))?;
    let offset = match integer_param(query, "offset", 0, max)? {
        Some(o) if o > MAX_OFFSET => {
            return Err(ApiError::bad_query(
                "offset",
                format!(
                    "must be at most {MAX_OFFSET}; page deeper with the keyset cursor: \
                     pass the previous page's next_cursor as before="
                ),
            ));
        }
        other => other.unwrap_or(0),
    };
    let q = EventQuery {
        topic: text_param(query, "topic")?,
        source: text_param(query, "source")?,
        since: time_param(query, "since")?,
        until: time_param(query, "until")?,
        limit: limit.map_or(DEFAULT_LIMIT, |l| l as u32),
        offset,
        before: integer_param(query, "before", 1, max)?,
        find: crate::search::parse_find(query)?,
    };
    // An inverted or empty range (`until` at or before `since`) is valid and matches nothing: the
    // query answers an empty page, as any range no event falls in.
    Ok(q)
}

/// Parses `GET /stats` parameters: `topic` (optional).
pub fn parse_stats_query(query: &str) -> Result<Option<String>, ApiError> {
    text_param(query, "topic")
}

/// Parses `GET /dead-letters` parameters: `limit` (1–1000, 100) and `after` (cursor).
pub fn parse_page_query(query: &str) -> Result<(u32, i64), ApiError> {
    let limit = integer_param(query, "limit", 1, u64::from(MAX_LIMIT))?;
    let after = integer_param(query, "after", 0, i64::MAX as u64)?;
    Ok((
        limit.map_or(DEFAULT_LIMIT, |l| l as u32),
        after.map_or(0, |a| a as i64),
    ))
}

/// Parses `POST /drain` parameters: `lane` (0-63) and `lanes` (1-64), each `None` when absent
/// (`consume::Share::of_request` makes a lane of them only together).
pub fn parse_drain_query(query: &str) -> Result<(Option<u64>, Option<u64>), ApiError> {
    let max = crate::consume::MAX_LANES;
    let lanes = integer_param(query, "lanes", 1, max)?;
    let lane = integer_param(query, "lane", 0, max - 1)?;
    Ok((lane, lanes))
}

/// What a `/health` caller asks: everything (default), liveness, or readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Queue and store must both answer.
    Full,
    /// The component runs.
    Live,
    /// Publishes can be acknowledged (the queue or the store answers).
    Ready,
}

/// Parses `GET /health` parameters: `probe` = `live` | `ready` (absent: both dependencies).
pub fn parse_probe(query: &str) -> Result<Probe, ApiError> {
    match query_param(query, "probe").as_deref() {
        None => Ok(Probe::Full),
        Some("live") => Ok(Probe::Live),
        Some("ready") => Ok(Probe::Ready),
        Some(_) => Err(ApiError::bad_query("probe", "must be live or ready")),
    }
}

/// Whether the client asked for `202` handling: `Prefer: respond-async` or `?async=true`.
pub fn wants_async(prefer: Option<&str>, query: &str) -> Result<bool, ApiError> {
    let preferred = prefer.is_some_and(|p| {
        p.split([',', ';'])
            .any(|token| token.trim().eq_ignore_ascii_case("respond-async"))
    });
    let asked = match query_param(query, "async").as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => return Err(ApiError::bad_query("async", "must be true or false")),
    };
    Ok(preferred || asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_rule() {
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        assert!(check_content_type(Some("application/cloudevents-batch+json")).is_ok());
        for bad in [
            "text/plain",
            "",
            "application/xml",
            "json",
            "text/json",
            "application/jsonx",
        ] {
            let err = check_content_type(Some(bad)).unwrap_err();
            assert_eq!(err.status, 415, "{bad}");
        }
    }

    #[test]
    fn split_path() {
        assert_eq!(split_path_query("/events?topic=a"), ("/events", "topic=a"));
        assert_eq!(split_path_query("/events"), ("/events", ""));
    }

    #[test]
    fn event_query_defaults_and_values() {
        let q = parse_event_query("").unwrap();
        assert_eq!((q.topic, q.limit, q.offset, q.before), (None, 100, 0, None));
        let q = parse_event_query("topic=a%20b&limit=1000&offset=5&before=77").unwrap();
        assert_eq!(q.topic.as_deref(), Some("a b"));
        assert_eq!((q.limit, q.offset, q.before), (1000, 5, Some(77)));
        let q = parse_event_query("since=2024-05-01T12:00:00%2B01:00&until=2024-05-01T10:00:00Z")
            .unwrap();
        assert!(
            q.until < q.since,
            "an inverted range is accepted (it matches nothing)"
        );
        let q = parse_event_query("source=api&since=2024-05-01T12:00:00%2B01:00").unwrap();
        assert_eq!(q.source.as_deref(), Some("api"));
        assert_eq!(q.since.as_deref(), Some("2024-05-01T11:00:00.000000Z"));
    }

    #[test]
    fn event_query_rejects_bad_parameters_by_name() {
        for (query, param) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=abc", "limit"),
            ("limit=-1", "limit"),
            ("offset=1.5", "offset"),
            ("offset=-3", "offset"),
            ("before=x", "before"),
            ("before=0", "before"),
            ("before=99999999999999999999999", "before"),
            ("topic=", "topic"),
            ("topic=%00", "topic"),
            ("source=", "source"),
            ("since=yesterday", "since"),
            ("until=2024-13-01T00:00:00Z", "until"),
            ("until=2024-05-02", "until"),
            ("offset=10001", "offset"),
        ] {
            let err = parse_event_query(query).unwrap_err();
            assert_eq!(err.status, 422, "{query}");
            assert_eq!(err.details[0].field.as_deref(), Some(param), "{query}");
        }
    }

    #[test]
    fn drain_lanes_in_range_or_refused_by_name() {
        assert_eq!(parse_drain_query("").unwrap(), (None, None));
        assert_eq!(
            parse_drain_query("lane=3&lanes=4").unwrap(),
            (Some(3), Some(4))
        );
        assert_eq!(
            parse_drain_query("lane=63&lanes=64").unwrap(),
            (Some(63), Some(64))
        );
        for (query, param) in [
            ("lanes=0", "lanes"),
            ("lanes=65", "lanes"),
            ("lanes=x&lane=0", "lanes"),
            ("lane=-1&lanes=4", "lane"),
            ("lane=64&lanes=64", "lane"),
            ("lane=1.5&lanes=4", "lane"),
            ("lane=", "lane"),
        ] {
            let err = parse_drain_query(query).unwrap_err();
            assert_eq!(err.status, 422, "{query}");
            assert_eq!(err.details[0].field.as_deref(), Some(param), "{query}");
        }
    }

    #[test]
    fn async_detection() {
        assert!(!wants_async(None, "").unwrap());
        assert!(wants_async(Some("respond-async"), "").unwrap());
        assert!(wants_async(Some("wait=5, Respond-Async"), "").unwrap());
        assert!(!wants_async(Some("return=minimal"), "").unwrap());
        assert!(wants_async(None, "async=true").unwrap());
        assert!(!wants_async(None, "async=false").unwrap());
        assert_eq!(wants_async(None, "async=maybe").unwrap_err().status, 422);
    }
}
