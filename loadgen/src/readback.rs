//! The read-back check: a bounded, seeded sample of acknowledged events must come back from
//! `GET /events` exactly once and unchanged (under the id and payload the run's protocol maps
//! them to). Each event has its own microsecond within the run, so one request with a
//! one-microsecond window (`since` = its timestamp, `until` = one microsecond later) finds it,
//! however long the run was: the check costs one request per sampled event, not a walk
//! through the topic.

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use serde_json::Value;

use crate::client::{Client, encode_query_value};
use crate::events::{Events, SOURCE};
use crate::ledger::BitSet;
use crate::protocol::{self, Protocol};

/// Up to `n` members of `acked`, uniformly chosen with a seeded reservoir (Algorithm R), in
/// constant memory whatever the run's length.
pub fn sample(acked: &BitSet, n: usize, seed: u64) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut reservoir = Vec::with_capacity(n);
    for (seen, i) in acked.iter().enumerate() {
        if reservoir.len() < n {
            reservoir.push(i);
        } else {
            let k = rng.random_range(0..=seen);
            if k < n {
                reservoir[k] = i;
            }
        }
    }
    reservoir.sort_unstable();
    reservoir
}

/// Looks each sampled event up and compares it with what was sent; returns
/// `(found_identical, mismatches)`.
pub async fn read_back(
    client: &Client,
    events: &Events,
    sample: &[u64],
    protocol: Protocol,
) -> (usize, Vec<String>) {
    let mut ok = 0;
    let mut mismatches = Vec::new();
    for &i in sample {
        let topic = events.topic_of(i);
        let id = protocol::stored_id(events, i, protocol);
        let since = events.timestamp(i);
        let until = (events.time(i) + chrono::TimeDelta::microseconds(1))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let path = format!(
            "/events?topic={}&since={}&until={}&limit=10",
            encode_query_value(topic),
            encode_query_value(&since),
            encode_query_value(&until)
        );
        let page = match client.get_json(&path).await {
            Ok(v) => v,
            Err(e) => {
                mismatches.push(format!("read-back of {topic}/{id}: {e:#}"));
                continue;
            }
        };
        let Some(rows) = page.get("events").and_then(Value::as_array) else {
            mismatches.push(format!(
                "read-back of {topic}/{id}: the answer has no `events` array"
            ));
            continue;
        };
        let copies: Vec<&Value> = rows
            .iter()
            .filter(|r| r.get("event_id").and_then(Value::as_str) == Some(id.as_str()))
            .collect();
        match copies.as_slice() {
            [] => mismatches.push(format!(
                "acknowledged event {topic}/{id} is not returned by GET {path}"
            )),
            [one] => match compare(events, i, one, protocol) {
                None => ok += 1,
                Some(why) => mismatches.push(why),
            },
            many => mismatches.push(format!(
                "acknowledged event {topic}/{id} is stored {} times",
                many.len()
            )),
        }
    }
    (ok, mismatches)
}

/// Compares a stored event with event `i` as sent in `protocol`; `None` when identical.
fn compare(events: &Events, i: u64, got: &Value, protocol: Protocol) -> Option<String> {
    let topic = events.topic_of(i);
    let key = format!("{topic}/{}", protocol::stored_id(events, i, protocol));
    let mut diffs = Vec::new();
    let field = |name: &str| got.get(name).unwrap_or(&Value::Null);
    if got.get("topic").and_then(Value::as_str) != Some(topic) {
        diffs.push(format!("topic {}", field("topic")));
    }
    if got.get("source").and_then(Value::as_str) != Some(SOURCE) {
        diffs.push(format!("source {}", field("source")));
    }
    let payload = protocol::stored_payload(events, i, protocol);
    if field("payload") != &payload {
        diffs.push(format!("payload {} (sent {payload})", field("payload")));
    }
    let got_ts = got
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    if got_ts.map(|t| t.to_utc()) != Some(events.time(i)) {
        diffs.push(format!(
            "timestamp {} (sent {})",
            field("timestamp"),
            events.timestamp(i)
        ));
    }
    (!diffs.is_empty()).then(|| format!("event {key} reads back different: {}", diffs.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_bounded_seeded_and_drawn_from_the_set() {
        let mut acked = BitSet::default();
        for i in (0..100_000u64).filter(|i| i % 3 != 0) {
            acked.insert(i);
        }
        let a = sample(&acked, 20, 9);
        assert_eq!(a.len(), 20);
        assert!(a.iter().all(|&i| acked.contains(i)));
        assert_eq!(a, sample(&acked, 20, 9));
        assert_ne!(a, sample(&acked, 20, 10));
        // Spread over the whole run, not only its start.
        assert!(*a.last().unwrap() > 50_000, "{a:?}");
        let mut few = BitSet::default();
        few.insert(7);
        assert_eq!(sample(&few, 20, 1), vec![7]);
    }

    #[test]
    fn a_stored_event_compares_equal_only_when_identical() {
        let e = Events::new("rb", 3, 1, chrono::Utc::now());
        let mut stored: Value = serde_json::from_str(&e.event(42).json).unwrap();
        assert_eq!(compare(&e, 42, &stored, Protocol::Native), None);
        // The service may write the timestamp differently; the instant must be the same.
        let ts = e.time(42).format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string();
        stored["timestamp"] = Value::String(ts);
        assert_eq!(compare(&e, 42, &stored, Protocol::Native), None);
        stored["payload"]["n"] = Value::from(-1);
        assert!(
            compare(&e, 42, &stored, Protocol::Native)
                .unwrap()
                .contains("payload")
        );
    }
}
