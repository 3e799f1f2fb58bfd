//! Ingest protocols other than edgelog's own JSON: adapters at the edge of the one path.
//!
//! Each protocol module turns its wire format into validated [`Event`]s and answers in its own
//! shape; storing them is always `routes::deliver`, the same validate → apply / queue path as
//! `/publish`, so exactly-once per `(topic, event_id)`, the counters, dead letters, tokens (the
//! **publish** group), CORS and `/stats` per topic hold for every protocol.
//!
//! - `otlp`: OTLP/HTTP logs, `POST /v1/logs` (protobuf and JSON).
//! - `loki`: Loki push, `POST /loki/api/v1/push` (snappy protobuf and JSON).
//! - `ndjson`: newline-delimited events on `/publish` and `/publish/batch`.
//!
//! Compressed bodies (`Content-Encoding`) are undone before any of them, in `http`. [`Dialect`]
//! renders every error of a protocol's route (auth errors included; a wrong method is the HTTP
//! layer's `405`, the same everywhere) the way that protocol's clients read errors.

pub mod loki;
pub mod ndjson;
pub mod otlp;

mod json;

/// Messages generated from `proto/` by the build script (see `build.rs`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    /// Loki's push messages.
    pub mod logproto {
        include!(concat!(env!("OUT_DIR"), "/logproto.rs"));
    }
    /// google.rpc.
    pub mod google {
        /// google.rpc.Status.
        pub mod rpc {
            include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
        }
    }
}

use spin_sdk::http::{IncomingRequest, Response};

use crate::Route;
use crate::config::{self, Config};
use crate::error::ApiError;
use crate::http;
use crate::log::logln;
use crate::routes::{self, Handled};
use crate::validate::Event;

/// `Retry-After` on `429` / `503` answers to protocol clients: long enough for a store or queue
/// blip to pass, short enough that exporters' own retry budgets (a few attempts) cover it.
pub const RETRY_AFTER_SECONDS: &str = "2";
/// How many refusal reasons one answer quotes.
const REASONS_QUOTED: usize = 3;

/// The lower-cased media type of a `Content-Type`, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The two encodings OTLP/HTTP and Loki push both define: protobuf or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// `application/x-protobuf` (on Loki, snappy-compressed).
    Protobuf,
    /// `application/json`.
    Json,
}

impl WireFormat {
    /// The media type an answer in this format carries.
    pub fn media(self) -> &'static str {
        match self {
            WireFormat::Protobuf => "application/x-protobuf",
            WireFormat::Json => "application/json",
        }
    }

    /// The format a `Content-Type` names (absent: decided from the body); anything else is a
    /// `415` that says it is not `what` and which types to `send`.
    pub fn of(
        content_type: Option<&str>,
        what: &str,
        send: &str,
    ) -> Result<Option<Self>, ApiError> {
        let Some(raw) = content_type else {
            return Ok(None);
        };
        match media_type(raw).as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Some(WireFormat::Protobuf)),
            "application/json" => Ok(Some(WireFormat::Json)),
            _ => Err(ApiError::unsupported_encoding(format!(
                "content type {raw:?} is not {what}; send {send}"
            ))),
        }
    }
}

/// Refuses a JSON body that is not an object before serde sees it (serde would read a struct
/// from an array, so `[]` would pass for an empty request).
pub fn json_object(body: &[u8], what: &str) -> Result<(), ApiError> {
    if body.trim_ascii_start().starts_with(b"{") {
        Ok(())
    } else {
        Err(ApiError::malformed(format!(
            "the body must be a JSON object ({what})"
        )))
    }
}

/// How a route's errors are written: edgelog's JSON, OTLP's `google.rpc.Status`, Loki's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `{"error", "message", "details"}`.
    Native,
    /// `google.rpc.Status` in this encoding.
    Otlp(otlp::Encoding),
    /// Plain text.
    Loki,
}

impl Dialect {
    /// The dialect of a route, given the request's `Content-Type` (OTLP answers in its encoding).
    pub fn of(route: Option<Route>, content_type: Option<&str>) -> Dialect {
        match route {
            Some(Route::OtlpLogs) => Dialect::Otlp(
                otlp::encoding_of(content_type)
                    .ok()
                    .flatten()
                    .unwrap_or(otlp::Encoding::Protobuf),
            ),
            Some(Route::LokiPush) => Dialect::Loki,
            _ => Dialect::Native,
        }
    }

    /// Renders an error in this dialect.
    pub fn error(self, e: ApiError) -> Response {
        match self {
            Dialect::Native => e.into_response(),
            Dialect::Otlp(encoding) => otlp::error(encoding, e),
            Dialect::Loki => loki::error(e),
        }
    }
}

/// What a protocol request turned into: events to store and the records refused, with why.
#[derive(Debug, Default)]
pub struct Decoded {
    /// One event per accepted record.
    pub events: Vec<Event>,
    /// How many records were refused.
    pub rejected: u64,
    /// Why (the first few), for the answer and the log.
    pub reasons: Vec<String>,
    /// What the protocol calls a record ("log record", "entry").
    pub noun: &'static str,
}

impl Decoded {
    /// An empty result for `n` records.
    pub fn with_capacity(n: usize, noun: &'static str) -> Decoded {
        Decoded {
            events: Vec::with_capacity(n),
            noun,
            ..Decoded::default()
        }
    }

    /// Counts a refused record, keeping the first few reasons.
    pub fn refuse(&mut self, which: String, reason: String) {
        self.rejected += 1;
        if self.reasons.len() < REASONS_QUOTED {
            self.reasons
                .push(format!("{} {which}: {reason}", self.noun));
        }
    }

    /// One line saying what was refused and why.
    pub fn summary(&self) -> String {
        let more = self.rejected.saturating_sub(self.reasons.len() as u64);
        let mut text = format!(
            "{} {}(s) refused: {}",
            self.rejected,
            self.noun,
            self.reasons.join("; ")
        );
        if more > 0 {
            text.push_str(&format!("; and {more} more"));
        }
        text
    }

    /// Stores the accepted events through the one apply / queue path; logs what was refused.
    fn deliver(&self, protocol: &str, asynchronous: bool, config: &Config) -> Result<(), ApiError> {
        if self.rejected > 0 {
            logln!("WARN {protocol}: {}", self.summary());
        }
        if !self.events.is_empty() {
            routes::deliver(&self.events, asynchronous, config)?;
        }
        Ok(())
    }
}

/// `POST /v1/logs`: decode, store what is valid, answer `200` (with `partialSuccess` when
/// records were refused), or `400` when every record was.
pub async fn otlp_logs(req: IncomingRequest, headers: &http::Headers, query: &str) -> Handled {
    let encoding = otlp::encoding_of(headers.get("content-type").as_deref())?;
    let asynchronous = http::wants_async(headers.get("prefer").as_deref(), query)?;
    let config = Config::load()?;
    let topic_attribute = config::setting("otlp_topic_attribute", "service.name")?;
    let body = http::read_body(req, headers, config.max_body_bytes)?;
    let (encoding, decoded) = otlp::decode(&body, encoding, &topic_attribute, &config.limits)?;
    drop(body);
    if decoded.events.is_empty() && decoded.rejected > 0 {
        return Err(ApiError::invalid(decoded.summary()));
    }
    decoded.deliver("otlp", asynchronous, &config)?;
    Ok(otlp::answer(encoding, &decoded))
}

/// `POST /loki/api/v1/push`: decode, store what is valid, answer `204`, or `400` naming the
/// refused entries (the valid ones are stored, as Loki does).
pub async fn loki_push(req: IncomingRequest, headers: &http::Headers, query: &str) -> Handled {
    let format = loki::format_of(headers.get("content-type").as_deref())?;
    let asynchronous = http::wants_async(headers.get("prefer").as_deref(), query)?;
    let config = Config::load()?;
    let labels = config::setting("loki_topic_labels", "service_name,job,app")?;
    let labels: Vec<String> = labels
        .split(',')
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let body = http::read_body(req, headers, config.max_body_bytes)?;
    let decoded = loki::decode(
        &body,
        format,
        &labels,
        &config.limits,
        config.max_body_bytes,
    )?;
    drop(body);
    decoded.deliver("loki", asynchronous, &config)?;
    if decoded.rejected > 0 {
        return Err(ApiError::invalid(decoded.summary()));
    }
    Ok(loki::answer())
}
