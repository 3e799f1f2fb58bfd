//! The events of a run, as a pure function of `(run id, seed, index)`: event `i` always has the
//! same topic, id, timestamp and payload, serialized to the same bytes. Nothing is stored per
//! event, so a replay (sent again hours later) is byte-for-byte the original and a run of any
//! length costs no memory here; the read-back rebuilds what it compares against.
//!
//! Event `i` is `<run>-<i:08>` with timestamp `base_time + i µs`, so within a run every event
//! also has its own microsecond: the read-back finds it with a one-microsecond time window.

use std::fmt::Write as _;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde_json::{Value, json};

use crate::plan::{PlannedRequest, Route};

/// The `source` of every generated event, so they are recognisable in the store.
pub const SOURCE: &str = "loadgen";

const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];

/// One event, materialized (for the read-back comparison and the lab's raw inserts).
#[derive(Clone, Debug)]
pub struct PlannedEvent {
    /// Index into the run's topics.
    pub topic: u32,
    /// The event id, unique within the run.
    pub event_id: String,
    /// RFC 3339 UTC timestamp as sent.
    pub timestamp: String,
    /// The payload as sent.
    pub payload: Value,
    /// The whole event as sent.
    pub json: String,
}

/// The event factory of one run.
#[derive(Clone, Debug)]
pub struct Events {
    run_id: String,
    topics: Vec<String>,
    /// The topic names and the run id as JSON string literals, escaped once.
    topic_json: Vec<String>,
    run_json: String,
    seed: u64,
    base_time: DateTime<Utc>,
}

/// SplitMix64: a cheap, well-mixed hash of an index, so event contents need no stored state.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Events {
    /// The factory for `topics` topics named `<run_id>.t<k>`.
    pub fn new(run_id: &str, topics: u32, seed: u64, base_time: DateTime<Utc>) -> Events {
        let names: Vec<String> = (0..topics.max(1))
            .map(|k| format!("{run_id}.t{k}"))
            .collect();
        let quote = |s: &str| serde_json::to_string(s).expect("a string serializes");
        Events {
            run_id: run_id.to_string(),
            topic_json: names.iter().map(|t| quote(t)).collect(),
            topics: names,
            run_json: quote(run_id),
            seed,
            // Timestamps are sent with microseconds: keep the instants exactly what is sent.
            base_time: base_time
                .with_nanosecond(base_time.nanosecond() / 1000 * 1000)
                .unwrap_or(base_time),
        }
    }

    /// The run id (prefix of every topic and event id).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The topic names.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    fn hash(&self, i: u64) -> u64 {
        mix(self.seed ^ mix(i))
    }

    /// Topic index of event `i`.
    pub fn topic(&self, i: u64) -> u32 {
        (self.hash(i) % self.topics.len() as u64) as u32
    }

    /// Topic name of event `i`.
    pub fn topic_of(&self, i: u64) -> &str {
        &self.topics[self.topic(i) as usize]
    }

    /// Event id of event `i`.
    pub fn event_id(&self, i: u64) -> String {
        format!("{}-{i:08}", self.run_id)
    }

    /// The instant of event `i`: `base_time + i µs`.
    pub fn time(&self, i: u64) -> DateTime<Utc> {
        self.base_time + TimeDelta::microseconds(i as i64)
    }

    /// Timestamp of event `i` as sent.
    pub fn timestamp(&self, i: u64) -> String {
        self.time(i).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    /// The payload's `level` and `n` of event `i` (the other protocols carry them too).
    pub fn level_and_n(&self, i: u64) -> (&'static str, u64) {
        let h = mix(self.hash(i));
        (LEVELS[(h >> 60) as usize % LEVELS.len()], h % 1_000_000)
    }

    /// The payload of event `i`.
    pub fn payload(&self, i: u64) -> Value {
        let (level, n) = self.level_and_n(i);
        json!({
            "seq": i,
            "run": self.run_id,
            "level": level,
            "msg": format!("loadgen event {i}"),
            "n": n,
        })
    }

    /// Appends event `i`'s payload as JSON (always the same bytes) to `out`.
    pub fn write_payload(&self, i: u64, out: &mut String) {
        let (level, n) = self.level_and_n(i);
        let _ = write!(
            out,
            "{{\"seq\":{i},\"run\":{},\"level\":\"{level}\",\"msg\":\"loadgen event {i}\",\"n\":{n}}}",
            self.run_json,
        );
    }

    /// Appends event `i`'s JSON (always the same bytes) to `out`.
    pub fn write_json(&self, i: u64, out: &mut String) {
        let _ = write!(
            out,
            "{{\"topic\":{},\"event_id\":\"{}-{i:08}\",\"timestamp\":\"{}\",\"source\":\"{SOURCE}\",\
             \"payload\":",
            self.topic_json[self.topic(i) as usize],
            // The run id escaped for JSON, without its quotes.
            &self.run_json[1..self.run_json.len() - 1],
            self.timestamp(i),
        );
        self.write_payload(i, out);
        out.push('}');
    }

    /// Event `i` with everything the checks compare.
    pub fn event(&self, i: u64) -> PlannedEvent {
        let mut json = String::new();
        self.write_json(i, &mut json);
        PlannedEvent {
            topic: self.topic(i),
            event_id: self.event_id(i),
            timestamp: self.timestamp(i),
            payload: self.payload(i),
            json,
        }
    }

    /// The exact body of a request (its retries resend the same bytes).
    pub fn body(&self, req: &PlannedRequest) -> Bytes {
        let mut s = String::with_capacity(req.events.len() * 220 + 16);
        match req.route {
            Route::Single => self.write_json(req.events[0], &mut s),
            Route::Batch => {
                s.push_str("{\"events\":[");
                for (n, &i) in req.events.iter().enumerate() {
                    if n > 0 {
                        s.push(',');
                    }
                    self.write_json(i, &mut s);
                }
                s.push_str("]}");
            }
        }
        Bytes::from(s)
    }
}
