//! The event factory through loadgen's public API: events are a pure function of the seed and
//! the index, and the JSON written by hand is what serde would write.

use chrono::{DateTime, Utc};
use loadgen::events::{Events, SOURCE};
use serde_json::Value;

fn events() -> Events {
    let t = DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
        .unwrap()
        .with_timezone(&Utc);
    Events::new("testrun", 8, 7, t)
}

#[test]
fn odd_run_ids_still_make_valid_json() {
    let e = Events::new("a\"b\\c.kill", 2, 1, chrono::Utc::now());
    let v: Value = serde_json::from_str(&e.event(3).json).unwrap();
    assert_eq!(v["event_id"], "a\"b\\c.kill-00000003");
    assert_eq!(v["payload"]["run"], "a\"b\\c.kill");
}

#[test]
fn the_written_json_is_the_event_serde_would_write() {
    let e = events();
    for i in [0u64, 1, 99, 12_345_678, u32::MAX as u64 + 5] {
        let ev = e.event(i);
        let parsed: Value = serde_json::from_str(&ev.json).unwrap();
        assert_eq!(parsed["topic"], e.topic_of(i));
        assert_eq!(parsed["event_id"], ev.event_id);
        assert_eq!(parsed["timestamp"], ev.timestamp);
        assert_eq!(parsed["source"], SOURCE);
        assert_eq!(parsed["payload"], ev.payload);
        assert_eq!(parsed.as_object().unwrap().len(), 5);
    }
    assert_eq!(e.timestamp(0), "2030-01-02T03:04:05.000000Z");
    assert_eq!(e.timestamp(1_000_001), "2030-01-02T03:04:06.000001Z");
}

#[test]
fn events_are_a_pure_function_of_seed_and_index() {
    let (a, b) = (events(), events());
    let other = Events::new("testrun", 8, 8, a.time(0));
    let mut differs = 0;
    for i in 0..1_000 {
        assert_eq!(a.event(i).json, b.event(i).json);
        if a.event(i).json != other.event(i).json {
            differs += 1;
        }
    }
    assert!(differs > 900, "the seed changes contents: {differs}");
    let used: std::collections::BTreeSet<u32> = (0..1_000).map(|i| a.topic(i)).collect();
    assert_eq!(used.len(), 8, "every topic is used");
}
