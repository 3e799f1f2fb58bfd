//! The queue: validated batches waiting in Spin's key-value store `default`.
//!
//! One publish request is one entry. Its key is
//! `q/<13-digit unix millis>-<16 hex random>-<event count>`, so the keys sort in
//! arrival order and anyone can total the backlog from `get_keys` alone, without
//! reading values. The value is compact JSON:
//! `{"v":1,"events":[[topic,event_id,timestamp,source,payload],...]}`, or, when some event of
//! the batch has a level, `{"v":2,"events":[[topic,event_id,timestamp,source,payload,level],...]}`
//! (`level` a name or `null`): batches without levels stay readable by older versions.
//!
//! Entries are immutable: written once by [`Queue::enqueue_as`] (the durable
//! acknowledgement point of a publish whose store write failed or was deferred), read
//! by consumers in groups (one `get` per entry, one `wasi:keyvalue/batch` delete per
//! group), and deleted once the store has recorded them. Deleting is safe to repeat and safe to
//! skip, because the store keeps a marker per applied key (see `store`) until the
//! marker horizon has passed (see `maintenance`).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::value::RawValue;
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue::{batch, store as wasi_store};

use crate::validate::{Event, Level};

/// Prefix of every queue key, so other keys in the store are never mistaken for entries.
pub const PREFIX: &str = "q/";

/// A failed key-value operation; the text is for logs only.
#[derive(Debug)]
pub struct QueueError(pub String);

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key-value queue: {}", self.0)
    }
}

fn kv_error(op: &str, e: impl std::fmt::Display) -> QueueError {
    QueueError(format!("{op} failed: {e}"))
}

/// A queue entry's key and the number of events its name says it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The full key, `q/...`.
    pub key: String,
    /// Event count parsed from the key name.
    pub count: u64,
}

/// Totals the events in a list of pending entries (the backlog).
pub fn total(pending: &[Pending]) -> u64 {
    pending.iter().map(|p| p.count).sum()
}

/// Builds an entry key; `nonce` keeps concurrent publishes in the same millisecond apart.
pub fn entry_key(unix_millis: u64, nonce: u64, count: usize) -> String {
    // `format!("{PREFIX}{unix_millis:013}-{nonce:016x}-{count}")`, written out: a key is made
    // for every publish, and the formatting machinery cost it ~8,000 instructions.
    let mut key = String::with_capacity(PREFIX.len() + 13 + 1 + 16 + 1 + 20);
    key.push_str(PREFIX);
    push_decimal(&mut key, unix_millis, 13);
    key.push('-');
    key.extend(
        (0..16)
            .rev()
            .map(|i| HEX[(nonce >> (i * 4)) as usize & 0xf] as char),
    );
    key.push('-');
    push_decimal(&mut key, count as u64, 1);
    key
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `n` in decimal, zero-padded to at least `width` digits (at most 20).
fn push_decimal(out: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    while n > 0 || digits.len() - at < width {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend(digits[at..].iter().map(|&d| d as char));
}

/// A fresh key for a batch of `count` events: the queue key it would have, and its store marker.
pub fn new_key(count: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    entry_key(now.as_millis() as u64, nonce(&now), count)
}

/// A cheap random number (for the counter shard of a transaction).
pub fn random() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    nonce(&now)
}

/// The API id of an entry key (the key without `q/`), used for dead letters.
pub fn id_of(key: &str) -> &str {
    key.strip_prefix(PREFIX).unwrap_or(key)
}

/// Reads the event count out of an entry key; `None` for anything that is not an entry.
pub fn parse_key(key: &str) -> Option<u64> {
    key_parts(key)?.2.parse().ok().filter(|&n| n > 0)
}

/// The random nonce inside an entry key (see [`entry_key`]); `None` for anything else.
pub fn nonce_of(key: &str) -> Option<u64> {
    u64::from_str_radix(key_parts(key)?.1, 16).ok()
}

/// An entry key's millis, nonce and count, if it is well formed.
fn key_parts(key: &str) -> Option<(&str, &str, &str)> {
    // `millis-nonce-count` with 13 digits and 16 hex digits: fixed places, no search.
    let rest = key.strip_prefix(PREFIX)?;
    let b = rest.as_bytes();
    let well_formed = b.len() > 31
        && b[13] == b'-'
        && b[30] == b'-'
        && b[..13].iter().all(u8::is_ascii_digit)
        && b[14..30].iter().all(u8::is_ascii_hexdigit)
        && b[31..].iter().all(u8::is_ascii_digit);
    well_formed.then(|| (&rest[..13], &rest[14..30], &rest[31..]))
}

/// A cheap, unpredictable-enough 64-bit value: std's randomly seeded hasher over time and a counter.
fn nonce(now: &std::time::Duration) -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.as_nanos());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

type Row = (String, String, String, String, Box<RawValue>);

#[derive(Deserialize)]
struct Encoded {
    v: u32,
    events: Box<RawValue>,
}

/// Serialises a batch as an entry value: `{"v":1,"events":[[topic,event_id,timestamp,source,
/// payload],…]}`, or version 2 with each event's level as a sixth element when any has one.
///
/// Written by hand because the payload goes in as the JSON text it already is.
pub fn encode(events: &[Event]) -> Result<Vec<u8>, serde_json::Error> {
    let v2 = events.iter().any(|e| e.level().is_some());
    let size: usize = events
        .iter()
        .map(|e| e.topic().len() + e.event_id().len() + e.source().len() + e.payload().len() + 64)
        .sum();
    let mut out = Vec::with_capacity(size + 24);
    out.extend_from_slice(if v2 {
        b"{\"v\":2,\"events\":["
    } else {
        b"{\"v\":1,\"events\":["
    });
    for (i, e) in events.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"[" } else { b",[" });
        for text in [e.topic(), e.event_id(), e.timestamp(), e.source()] {
            serde_json::to_writer(&mut out, text)?;
            out.push(b',');
        }
        out.extend_from_slice(e.payload().as_bytes());
        if v2 {
            out.push(b',');
            serde_json::to_writer(&mut out, &e.level().map(|l| l.name()))?;
        }
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Parses an entry value back into events, checking it holds `expected` of them.
pub fn decode(bytes: &[u8], expected: u64) -> Result<Vec<Event>, String> {
    let encoded: Encoded = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let rows: Vec<(Row, Option<String>)> = match encoded.v {
        1 => serde_json::from_str::<Vec<Row>>(encoded.events.get())
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|row| (row, None))
            .collect(),
        2 => serde_json::from_str::<
            Vec<(
                String,
                String,
                String,
                String,
                Box<RawValue>,
                Option<String>,
            )>,
        >(encoded.events.get())
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(t, id, ts, s, p, level)| ((t, id, ts, s, p), level))
        .collect(),
        v => return Err(format!("unknown entry version {v}")),
    };
    if rows.len() as u64 != expected {
        return Err(format!(
            "entry holds {} events but its key says {expected}",
            rows.len()
        ));
    }
    rows.into_iter()
        .map(|((topic, event_id, ts, source, payload), level)| {
            let event = Event::restore(topic, event_id, &ts, source, payload)?;
            match level {
                None => Ok(event),
                Some(name) => Level::parse(&name)
                    .map(|l| event.with_level(l))
                    .ok_or_else(|| format!("unknown level {name:?}")),
            }
        })
        .collect()
}

/// What reading an entry found.
#[derive(Debug)]
pub enum Loaded {
    /// Another consumer finished it and deleted it meanwhile: nothing to do.
    Gone,
    /// The batch, ready to apply.
    Events(Vec<Event>),
    /// Unreadable (hand-edited or from an incompatible version): why, and the raw value.
    Corrupt(String, Vec<u8>),
}

/// The key-value store `default`, seen as a queue of batches.
pub struct Queue {
    kv: Store,
}

impl Queue {
    /// Opens the `default` key-value store.
    pub fn open() -> Result<Queue, QueueError> {
        Store::open_default()
            .map(|kv| Queue { kv })
            .map_err(|e| kv_error("open", e))
    }

    /// Writes the batch under a key chosen beforehand (the key its direct apply used as marker).
    pub fn enqueue_as(&self, key: &str, events: &[Event]) -> Result<(), QueueError> {
        let value = encode(events).map_err(|e| kv_error("encode", e))?;
        self.kv.set(key, &value).map_err(|e| kv_error("set", e))
    }

    /// Every entry currently queued, oldest first (from key names only; no values are read).
    pub fn pending(&self) -> Result<Vec<Pending>, QueueError> {
        let mut pending: Vec<Pending> = self
            .kv
            .get_keys()
            .map_err(|e| kv_error("get_keys", e))?
            .into_iter()
            .filter_map(|key| parse_key(&key).map(|count| Pending { key, count }))
            .collect();
        pending.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(pending)
    }

    /// Reads many entries, one `get` each (`Gone` for entries deleted meanwhile). Not
    /// `wasi:keyvalue/batch.get-many`: on Spin 4.0.2 its Redis backend sends `KEYS k1 k2 …`, which
    /// fails for two keys or more and panics the host for one.
    pub fn load_many(&self, entries: &[Pending]) -> Result<Vec<Loaded>, QueueError> {
        entries
            .iter()
            .map(|p| {
                let value = self.kv.get(&p.key).map_err(|e| kv_error("get", e))?;
                Ok(match value {
                    None => Loaded::Gone,
                    Some(bytes) => match decode(&bytes, p.count) {
                        Ok(events) => Loaded::Events(events),
                        Err(reason) => Loaded::Corrupt(reason, bytes),
                    },
                })
            })
            .collect()
    }

    /// Deletes entries once the store has recorded them (deleting a missing key is fine).
    pub fn remove_many(&self, keys: &[String]) -> Result<(), QueueError> {
        if keys.is_empty() {
            return Ok(());
        }
        let bucket = wasi_store::open("default").map_err(|e| kv_error("open", e))?;
        batch::delete_many(&bucket, keys).map_err(|e| kv_error("delete_many", e))
    }

    /// Deletes one entry once the store has recorded it.
    pub fn remove(&self, key: &str) -> Result<(), QueueError> {
        self.kv.delete(key).map_err(|e| kv_error("delete", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<Event> {
        let items: Vec<_> = (0..n)
            .map(|i| {
                serde_json::json!({"topic": "t", "event_id": format!("e{i}"),
                    "timestamp": "2024-05-01T12:00:00+01:00", "source": "s",
                    "payload": {"i": i, "s": "\"quoted\" \\ \u{1F600}"}})
            })
            .collect();
        crate::testing::parse_events(&serde_json::json!(items))
    }

    #[test]
    fn keys_round_trip_and_sort_by_time() {
        let key = entry_key(1_714_564_800_123, 0xdead_beef, 42);
        assert_eq!(key, "q/1714564800123-00000000deadbeef-42");
        assert_eq!(parse_key(&key), Some(42));
        let earlier = entry_key(999_999_999_999, u64::MAX, 1);
        assert!(
            earlier < key,
            "zero padding keeps lexical order = time order"
        );
    }

    #[test]
    fn foreign_and_malformed_keys_are_ignored() {
        for key in [
            "health/probe",
            "q/",
            "q/1714564800123-00000000deadbeef",
            "q/1714564800123-00000000deadbeef-",
            "q/1714564800123-00000000deadbeef-0",
            "q/1714564800123-00000000deadbeef-x",
            "q/1714564800123-00000000deadbeef-1-2",
            "q/171456480012-00000000deadbeef-1",
            "q/1714564800123-0000000deadbeef-1",
            "q/1714564800123-00000000deadbeeg-1",
            "x/1714564800123-00000000deadbeef-1",
            "q/1714564800123-00000000deadbeef-99999999999999999999999",
        ] {
            assert_eq!(parse_key(key), None, "{key}");
        }
    }

    #[test]
    fn keys_are_what_the_format_string_gives_and_read_back_as_the_split_reads_them() {
        let split = |key: &str| -> Option<(String, String, String)> {
            let rest = key.strip_prefix(PREFIX)?;
            let mut parts = rest.split('-');
            let (millis, nonce, count) = (parts.next()?, parts.next()?, parts.next()?);
            let ok = parts.next().is_none()
                && millis.len() == 13
                && millis.bytes().all(|b| b.is_ascii_digit())
                && nonce.len() == 16
                && nonce.bytes().all(|b| b.is_ascii_hexdigit())
                && !count.is_empty()
                && count.bytes().all(|b| b.is_ascii_digit());
            ok.then(|| (millis.into(), nonce.into(), count.into()))
        };
        let mut rng = crate::testing::Rng(0x2f1b_77c3_9a01_5e4d);
        let mut wide = || (0..4).fold(0u64, |n, _| (n << 16) | rng.below(1 << 16) as u64);
        for i in 0..20_000u64 {
            let (millis, nonce) = (wide() >> (i % 64), wide() >> (i % 61));
            let count = (wide() >> (i % 59)) as usize;
            let key = entry_key(millis, nonce, count);
            assert_eq!(key, format!("{PREFIX}{millis:013}-{nonce:016x}-{count}"));
            let owned = |p: (&str, &str, &str)| (p.0.into(), p.1.into(), p.2.into());
            assert_eq!(key_parts(&key).map(owned), split(&key), "{key}");
            // Damaged keys: every answer still matches the split's.
            let mut damaged = key.clone().into_bytes();
            let at = (wide() as usize) % damaged.len();
            damaged[at] = b"-0aQ/x9"[(wide() % 7) as usize];
            if at.is_multiple_of(3) {
                damaged.remove(at);
            }
            let damaged = String::from_utf8(damaged).unwrap();
            assert_eq!(key_parts(&damaged).map(owned), split(&damaged), "{damaged}");
        }
    }

    #[test]
    fn backlog_total() {
        let p = |count| Pending {
            key: String::new(),
            count,
        };
        assert_eq!(total(&[]), 0);
        assert_eq!(total(&[p(3), p(4)]), 7);
    }

    #[test]
    fn nonces_differ() {
        let now = std::time::Duration::from_millis(5);
        assert_ne!(nonce(&now), nonce(&now));
    }

    #[test]
    fn nonce_is_read_back_from_a_key() {
        let key = entry_key(1_700_000_000_000, 0xdead_beef_0123_4567, 3);
        assert_eq!(nonce_of(&key), Some(0xdead_beef_0123_4567));
        assert_eq!(nonce_of("q/garbage"), None);
        assert_eq!(nonce_of("x/1700000000000-00000000000000ff-1"), None);
    }

    #[test]
    fn values_round_trip() {
        let batch = events(3);
        let bytes = encode(&batch).unwrap();
        assert_eq!(decode(&bytes, 3).unwrap(), batch);
        assert!(
            std::str::from_utf8(&bytes)
                .unwrap()
                .starts_with(r#"{"v":1,"events":[["t","e0","#)
        );
    }

    #[test]
    fn levels_round_trip_in_version_2() {
        let mut batch = events(2);
        batch[1] = batch[1].clone().with_level(Level::Warn);
        let bytes = encode(&batch).unwrap();
        assert!(
            std::str::from_utf8(&bytes)
                .unwrap()
                .starts_with(r#"{"v":2,"#)
        );
        let back = decode(&bytes, 2).unwrap();
        assert_eq!(back, batch);
        assert_eq!(
            (back[0].level(), back[1].level()),
            (None, Some(Level::Warn))
        );
    }

    #[test]
    fn the_entry_is_the_json_it_always_was() {
        let body = r#"[{"topic":"t\"q","event_id":"\u00e9","timestamp":"2024-05-01T12:00:00Z",
            "source":"s\\","payload":{"a": [1, "x\n"], "level": "info"}},
            {"topic":"t","event_id":"e","timestamp":"2024-05-01T12:00:00Z","source":"s"}]"#;
        let limits = crate::validate::Limits {
            max_batch_events: 10,
            max_payload_bytes: 100,
        };
        let batch =
            crate::validate::parse_batch(body.as_bytes(), crate::validate::Shape::Batch, &limits)
                .unwrap();
        let bytes = encode(&batch).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let ts = "2024-05-01T12:00:00.000000Z";
        assert_eq!(
            value,
            serde_json::json!({"v": 2, "events": [
                ["t\"q", "\u{e9}", ts, "s\\", {"a": [1, "x\n"], "level": "info"}, "info"],
                ["t", "e", ts, "s", {}, null],
            ]})
        );
        assert_eq!(decode(&bytes, 2).unwrap(), batch);
        let v1 = encode(&batch[1..]).unwrap();
        assert_eq!(
            std::str::from_utf8(&v1).unwrap(),
            format!(r#"{{"v":1,"events":[["t","e","{ts}","s",{{}}]]}}"#)
        );
    }

    #[test]
    fn corrupt_values_are_reported_not_panicked() {
        let bytes = encode(&events(2)).unwrap();
        assert!(decode(&bytes, 3).is_err(), "count must match the key");
        assert!(decode(b"not json", 1).is_err());
        assert!(decode(br#"{"v":3,"events":[]}"#, 0).is_err());
        let bad_level = br#"{"v":2,"events":[["t","e","2024-05-01T12:00:00Z","s",{},"loud"]]}"#;
        assert!(decode(bad_level, 1).is_err());
        let bad_ts = br#"{"v":1,"events":[["t","e","yesterday","s",{}]]}"#;
        assert!(decode(bad_ts, 1).is_err());
    }
}
