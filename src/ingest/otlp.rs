//! OTLP/HTTP logs (`POST /v1/logs`): what OpenTelemetry SDKs and Collectors export.
//!
//! Both encodings of the OTLP specification: `application/x-protobuf` (an
//! `ExportLogsServiceRequest`) and `application/json` (its JSON mapping: lowerCamelCase keys,
//! hex trace and span ids, 64-bit integers as strings or numbers, enums as integers; a whole
//! number may carry a fraction or an exponent, `2.0`, as protobuf's JSON parsers allow). The
//! messages and their JSON mapping come from the `opentelemetry-proto` crate; nothing is decoded
//! by hand. Each log record becomes one event:
//!
//! - **topic**: the resource attribute named by the `otlp_topic_attribute` Spin variable
//!   (default `service.name`); `unknown_service`, OTel's default, when it is missing.
//! - **event_id**: the record's `log.record.uid` attribute when it is a usable id (a string of
//!   1–255 characters), else a SHA-256 digest of the resource, the scope, their schema URLs and
//!   the whole record (times, severity, body, attributes, trace and span ids, flags) as protobuf:
//!   a resend of the same record, in either encoding, gets the same id. Arrival time is never
//!   part of it.
//! - **source**: `service.instance.id`, else `host.name`, else the scope name, else `unknown`
//!   (a candidate over 255 characters or with a NUL is passed over).
//! - **timestamp**: `timeUnixNano`, else `observedTimeUnixNano`, else the time of arrival.
//! - **payload**: the rest, nothing dropped (see [`payload`]).
//!
//! A record that breaks an event rule (a `\u0000` in a string, a payload over
//! `max_payload_bytes`, a topic over 255 characters) is refused alone and counted in the
//! answer's `partialSuccess`; the others are stored. A request that cannot be decoded is a
//! `400` with a `google.rpc.Status` in the request's encoding, which exporters do not retry.

use std::fmt::Write as _;

use base64::Engine;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use spin_sdk::http::Response;

use super::Decoded;
use super::json::{Object, push_str};
use super::proto::google::rpc::Status;
use crate::error::ApiError;
use crate::validate::{self, Event, Level, Limits};

/// The topic when the resource does not name its service (OTel's own default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// The attribute OTel's semantic conventions use for a record's unique id.
const RECORD_UID: &str = "log.record.uid";

/// The two OTLP/HTTP encodings; answers use the request's.
pub type Encoding = super::WireFormat;

/// The encoding a `Content-Type` names; absent means protobuf unless the body looks like JSON
/// (decided later, see [`decode`]); anything else is a `415`.
pub fn encoding_of(content_type: Option<&str>) -> Result<Option<Encoding>, ApiError> {
    Encoding::of(
        content_type,
        "an OTLP/HTTP encoding",
        "application/x-protobuf or application/json",
    )
}

/// Decodes an export request (protobuf, or JSON; `None` sniffs) and maps its records.
pub fn decode(
    body: &[u8],
    encoding: Option<Encoding>,
    topic_attribute: &str,
    limits: &Limits,
) -> Result<(Encoding, Decoded), ApiError> {
    if body.is_empty() {
        // A valid empty protobuf message, but no exporter sends one: a request without a body
        // is a client's mistake, said so rather than answered 200.
        return Err(ApiError::malformed(
            "the body is empty; send an ExportLogsServiceRequest",
        ));
    }
    let encoding = encoding.unwrap_or(if body.trim_ascii_start().starts_with(b"{") {
        Encoding::Json
    } else {
        Encoding::Protobuf
    });
    let request = match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body).map_err(|e| {
            ApiError::malformed(format!(
                "the body is not a protobuf ExportLogsServiceRequest: {e}"
            ))
        })?,
        Encoding::Json => {
            super::json_object(body, "an OTLP/JSON ExportLogsServiceRequest")?;
            serde_json::from_slice(&integers::plain_integers(body)).map_err(|e| {
                ApiError::malformed(format!(
                    "the body is not an OTLP/JSON ExportLogsServiceRequest: {e}"
                ))
            })?
        }
    };
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    if records > limits.max_batch_events {
        return Err(ApiError::too_large(format!(
            "the request has {records} log records; the limit is {}",
            limits.max_batch_events
        )));
    }
    let mut decoded = Decoded::with_capacity(records, "log record");
    let mut index = 0;
    for resource_logs in &request.resource_logs {
        let resource = resource_logs.resource.clone().unwrap_or_default();
        let resource_bytes = resource.encode_to_vec();
        let mut resource_encoded = Vec::new();
        let resource_json =
            resource_json(&resource, &resource_logs.schema_url, &mut resource_encoded);
        let topic = string_attribute(&resource.attributes, topic_attribute)
            .unwrap_or(UNKNOWN_SERVICE)
            .to_owned();
        for scope_logs in &resource_logs.scope_logs {
            let scope = scope_logs.scope.clone().unwrap_or_default();
            let scope_bytes = scope.encode_to_vec();
            let source = string_attribute(&resource.attributes, "service.instance.id")
                .filter(usable_source)
                .or_else(|| {
                    string_attribute(&resource.attributes, "host.name").filter(usable_source)
                })
                .or(Some(scope.name.as_str()).filter(|n| !n.is_empty() && usable_source(n)))
                .unwrap_or("unknown")
                .to_owned();
            // What every record of this scope shares is rendered once, not per record.
            let mut encoded = resource_encoded.clone();
            let context = Context {
                resource: &resource_json,
                scope: scope_json(&scope, &scope_logs.schema_url, &mut encoded),
                encoded,
            };
            for record in &scope_logs.log_records {
                let event_id = string_attribute(&record.attributes, RECORD_UID)
                    .filter(|uid| (1..=validate::MAX_TEXT_CHARS).contains(&uid.chars().count()))
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        validate::content_id(&[
                            &resource_bytes,
                            resource_logs.schema_url.as_bytes(),
                            &scope_bytes,
                            scope_logs.schema_url.as_bytes(),
                            &record.encode_to_vec(),
                        ])
                    });
                let built = timestamp(record).and_then(|ts| {
                    let (payload, message) = payload(record, &context);
                    Event::build_rendered(
                        topic.clone(),
                        event_id,
                        ts,
                        source.clone(),
                        payload,
                        message,
                        limits,
                    )
                    .map(|event| match otlp_level(record) {
                        Some(level) => event.with_level(level),
                        None => event,
                    })
                });
                match built {
                    Ok(event) => decoded.events.push(event),
                    Err(reason) => decoded.refuse(index.to_string(), reason),
                }
                index += 1;
            }
        }
    }
    Ok((encoding, decoded))
}

/// The record's severity as a level: its number (1-24), else its text if that names a level.
fn otlp_level(record: &LogRecord) -> Option<Level> {
    Level::from_otlp_severity(record.severity_number)
        .or_else(|| Level::parse(&record.severity_text))
}

/// The record's time, else when it was observed, else now.
fn timestamp(record: &LogRecord) -> Result<String, String> {
    match [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|&t| t != 0)
    {
        Some(nanos) => validate::from_unix_nanos(i128::from(nanos)),
        None => Ok(validate::render_utc(&crate::stats::now_utc())),
    }
}

/// Whether a candidate for the source fits the event rules (at most 255 characters, no NUL);
/// one that does not is passed over for the next, as an unusable `log.record.uid` is.
fn usable_source(candidate: &&str) -> bool {
    candidate.chars().count() <= validate::MAX_TEXT_CHARS && !candidate.contains('\0')
}

/// The first attribute called `key` whose value is a non-empty string.
fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().filter(|kv| kv.key == key).find_map(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        }
    })
}

/// Where a record was emitted from: the `resource` and `scope` members of its payload, as
/// JSON text rendered once for all the records of a scope, and their `encoded` pointers.
struct Context<'a> {
    resource: &'a str,
    scope: String,
    encoded: Vec<(String, &'static str)>,
}

/// The `resource` member: `{attributes, schema_url?, dropped_attributes_count?}`.
fn resource_json(
    resource: &Resource,
    schema: &str,
    encoded: &mut Vec<(String, &'static str)>,
) -> String {
    let mut out = String::with_capacity(128);
    let mut r = Object::open(&mut out);
    key_values(
        r.key("attributes"),
        &resource.attributes,
        &mut "/resource/attributes".to_owned(),
        encoded,
    );
    if !schema.is_empty() {
        r.string("schema_url", schema);
    }
    if resource.dropped_attributes_count != 0 {
        number(
            r.key("dropped_attributes_count"),
            resource.dropped_attributes_count,
        );
    }
    r.close();
    out
}

/// The `scope` member: `{name, version?, attributes?, schema_url?, dropped_attributes_count?}`.
fn scope_json(
    scope: &InstrumentationScope,
    schema: &str,
    encoded: &mut Vec<(String, &'static str)>,
) -> String {
    let mut out = String::with_capacity(64);
    let mut s = Object::open(&mut out);
    s.string("name", &scope.name);
    if !scope.version.is_empty() {
        s.string("version", &scope.version);
    }
    if !scope.attributes.is_empty() {
        key_values(
            s.key("attributes"),
            &scope.attributes,
            &mut "/scope/attributes".to_owned(),
            encoded,
        );
    }
    if !schema.is_empty() {
        s.string("schema_url", schema);
    }
    if scope.dropped_attributes_count != 0 {
        number(
            s.key("dropped_attributes_count"),
            scope.dropped_attributes_count,
        );
    }
    s.close();
    out
}

/// Appends a number's decimal digits without an intermediate `String`.
fn number(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

/// The payload of one record, as JSON text with the keys below (empty ones left out, as
/// protobuf leaves them out):
///
/// `severity_text`, `severity_number`, `body`, `attributes`, `event_name`, `trace_id`,
/// `span_id` (hex), `flags`, `time_unix_nano`, `observed_time_unix_nano` (strings: exact
/// nanoseconds), `dropped_attributes_count`, `resource` {`attributes`, `schema_url`,
/// `dropped_attributes_count`}, `scope` {`name`, `version`, `attributes`, `schema_url`,
/// `dropped_attributes_count`}.
///
/// Values are plain JSON: strings, booleans, integers (exact), doubles (always with a `.` or an
/// exponent, so `1.0` stays a double), arrays, key/value lists as objects (keys in order,
/// repeats kept). The two kinds JSON has no literal for are written as strings and listed in
/// `encoded`, by JSON Pointer: bytes as base64 (`"bytes"`) and NaN/±Infinity (`"double"`)
/// (and a profile's string-table index, `"strindex"`, which no log record should carry).
///
/// Also returns the searchable message, the body's text (see `validate::text`), so it need not
/// be read back out of the payload.
fn payload(record: &LogRecord, context: &Context<'_>) -> (String, Option<String>) {
    let mut encoded: Vec<(String, &'static str)> = Vec::new();
    let mut out = String::with_capacity(256);
    let mut o = Object::open(&mut out);
    if !record.severity_text.is_empty() {
        o.string("severity_text", &record.severity_text);
    }
    if record.severity_number != 0 {
        number(o.key("severity_number"), record.severity_number);
    }
    let mut message = None;
    if let Some(body) = &record.body {
        let out = o.key("body");
        let start = out.len();
        any_value(out, body, &mut "/body".to_owned(), &mut encoded);
        let text = &out[start..];
        message = match &body.value {
            None => None,
            Some(Value::StringValue(s)) => Some(s.clone()),
            Some(_) if text.starts_with('"') => serde_json::from_str(text).ok(),
            Some(_) => Some(text.to_owned()),
        };
    }
    if !record.attributes.is_empty() {
        key_values(
            o.key("attributes"),
            &record.attributes,
            &mut "/attributes".to_owned(),
            &mut encoded,
        );
    }
    if !record.event_name.is_empty() {
        o.string("event_name", &record.event_name);
    }
    if !record.trace_id.is_empty() {
        o.string("trace_id", &hex(&record.trace_id));
    }
    if !record.span_id.is_empty() {
        o.string("span_id", &hex(&record.span_id));
    }
    if record.flags != 0 {
        number(o.key("flags"), record.flags);
    }
    if record.time_unix_nano != 0 {
        let _ = write!(o.key("time_unix_nano"), "\"{}\"", record.time_unix_nano);
    }
    if record.observed_time_unix_nano != 0 {
        let _ = write!(
            o.key("observed_time_unix_nano"),
            "\"{}\"",
            record.observed_time_unix_nano
        );
    }
    if record.dropped_attributes_count != 0 {
        number(
            o.key("dropped_attributes_count"),
            record.dropped_attributes_count,
        );
    }
    o.raw("resource", context.resource);
    o.raw("scope", &context.scope);
    if !encoded.is_empty() || !context.encoded.is_empty() {
        let mut e = Object::open(o.key("encoded"));
        for (pointer, kind) in encoded.iter().chain(&context.encoded) {
            e.string(pointer, kind);
        }
        e.close();
    }
    o.close();
    (out, message)
}

/// Writes a key/value list as a JSON object, keys in order.
fn key_values(
    out: &mut String,
    list: &[KeyValue],
    path: &mut String,
    encoded: &mut Vec<(String, &'static str)>,
) {
    let mut o = Object::open(out);
    for kv in list {
        let len = path.len();
        pointer_push(path, &kv.key);
        match &kv.value {
            Some(v) => any_value(o.key(&kv.key), v, path, encoded),
            None => o.raw(&kv.key, "null"),
        }
        path.truncate(len);
    }
    o.close();
}

/// Writes an AnyValue as plain JSON (see [`payload`]).
fn any_value(
    out: &mut String,
    value: &AnyValue,
    path: &mut String,
    encoded: &mut Vec<(String, &'static str)>,
) {
    match &value.value {
        None => out.push_str("null"),
        Some(Value::StringValue(s)) => push_str(out, s),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => number(out, i),
        Some(Value::DoubleValue(d)) if d.is_finite() => {
            let text = serde_json::to_string(d).unwrap_or_else(|_| "null".into());
            out.push_str(&text);
            if !text.contains(['.', 'e', 'E']) {
                out.push_str(".0");
            }
        }
        Some(Value::DoubleValue(d)) => {
            let text = match (d.is_nan(), d.is_sign_positive()) {
                (true, _) => "NaN",
                (false, true) => "Infinity",
                (false, false) => "-Infinity",
            };
            push_str(out, text);
            encoded.push((path.clone(), "double"));
        }
        Some(Value::BytesValue(b)) => {
            push_str(out, &base64::engine::general_purpose::STANDARD.encode(b));
            encoded.push((path.clone(), "bytes"));
        }
        Some(Value::ArrayValue(array)) => {
            out.push('[');
            for (i, v) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let len = path.len();
                path.push('/');
                number(path, i);
                any_value(out, v, path, encoded);
                path.truncate(len);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(list)) => key_values(out, &list.values, path, encoded),
        // An index into a profile's string table (profiles only; no log record should carry
        // one): kept as its number and listed, so nothing is dropped.
        Some(Value::StringValueStrindex(i)) => {
            number(out, i);
            encoded.push((path.clone(), "strindex"));
        }
    }
}

/// Appends one JSON Pointer (RFC 6901) reference token.
fn pointer_push(path: &mut String, token: &str) {
    path.push('/');
    if token.contains(['~', '/']) {
        path.push_str(&token.replace('~', "~0").replace('/', "~1"));
    } else {
        path.push_str(token);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `200` with an `ExportLogsServiceResponse`; `partialSuccess` when records were refused.
pub fn answer(encoding: Encoding, decoded: &Decoded) -> Response {
    let body = match encoding {
        Encoding::Protobuf => {
            use opentelemetry_proto::tonic::collector::logs::v1::{
                ExportLogsPartialSuccess, ExportLogsServiceResponse,
            };
            ExportLogsServiceResponse {
                partial_success: (decoded.rejected > 0).then(|| ExportLogsPartialSuccess {
                    rejected_log_records: decoded.rejected as i64,
                    error_message: decoded.summary(),
                }),
            }
            .encode_to_vec()
        }
        Encoding::Json if decoded.rejected > 0 => serde_json::json!({
            "partialSuccess": {
                "rejectedLogRecords": decoded.rejected.to_string(),
                "errorMessage": decoded.summary(),
            }
        })
        .to_string()
        .into_bytes(),
        Encoding::Json => b"{}".to_vec(),
    };
    Response::builder()
        .status(200)
        .header("content-type", encoding.media())
        .body(body)
        .build()
}

/// An error as OTLP/HTTP answers it: the status (a `422` is OTLP's `400`), a `google.rpc.Status`
/// in the request's encoding, and `Retry-After` on `429` and `503` so exporters back off.
pub fn error(encoding: Encoding, e: ApiError) -> Response {
    let status = if e.status == 422 { 400 } else { e.status };
    // google.rpc.Code: the gRPC code matching the HTTP status.
    let code = match status {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 5,             // NOT_FOUND
        405 => 12,            // UNIMPLEMENTED
        408 => 4,             // DEADLINE_EXCEEDED
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    };
    let body = match encoding {
        Encoding::Protobuf => Status {
            code,
            message: e.message.clone(),
            details: Vec::new(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": code, "message": e.message})
            .to_string()
            .into_bytes(),
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", encoding.media())
        .body(body)
        .build();
    for (name, value) in &e.headers {
        response.set_header(*name, value.as_str());
    }
    if matches!(status, 429 | 503) && !e.headers.iter().any(|(n, _)| *n == "retry-after") {
        response.set_header("retry-after", super::RETRY_AFTER_SECONDS);
    }
    response
}

mod integers;

#[cfg(test)]
mod tests;
