//! Exactly once, on both backends: concurrent batches with overlapping ids store one row per
//! key, a graceful restart keeps events, counters and deduplication, and a SIGKILL right after
//! an acknowledgement loses nothing.
//!
//! Suite functions take the backend and are `pub` so that `api.rs` can run each of them as a
//! test on both backends (its `sqlite` and `postgres_redis` modules).

use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

use crate::support::app::{App, Backend, counts, event};

pub fn concurrent_overlapping_batches_are_exact(b: Backend) {
    let app = Arc::new(App::start(b));
    let clients = 50;
    let per_batch = 40;
    let mut threads = Vec::new();
    for c in 0..clients {
        let app = app.clone();
        threads.push(std::thread::spawn(move || {
            // Ids overlap heavily between clients and arrive in different orders.
            let mut ids: Vec<usize> = (0..per_batch).map(|i| (c * 7 + i * 3) % 120).collect();
            if c % 2 == 1 {
                ids.reverse();
            }
            let events: Vec<Value> = ids
                .iter()
                .map(|i| event("conc", &format!("k{i}")))
                .collect();
            let (s, body) = app.post("/publish/batch", &json!({"events": events}));
            (s, body)
        }));
    }
    let mut processed = 0;
    let mut duplicates = 0;
    for t in threads {
        let (s, body) = t.join().unwrap();
        assert_eq!(s, 200, "every concurrent batch succeeds: {body}");
        processed += body["processed"].as_u64().unwrap();
        duplicates += body["duplicates"].as_u64().unwrap();
    }
    let sent = (clients * per_batch) as u64;
    let stored = app.all_events("conc");
    let keys: HashSet<String> = stored
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), stored.len(), "one row per key");
    assert_eq!(processed, stored.len() as u64);
    assert_eq!(processed + duplicates, sent);
    assert_eq!(counts(&app.stats()), (sent, processed, duplicates, 0));
    if let Some(db) = &app.db {
        let n: i64 = db
            .connect()
            .query_one("SELECT count(*) FROM events WHERE topic = 'conc'", &[])
            .unwrap()
            .get(0);
        assert_eq!(n as usize, keys.len());
    }
}

pub fn restart_keeps_events_counters_and_dedup(b: Backend) {
    let mut app = App::start(b);
    assert_eq!(
        app.post("/publish/batch", &json!([event("r", "1"), event("r", "2")]))
            .0,
        200
    );
    let status = app.host.stop();
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    app.host.spawn();
    assert_eq!(counts(&app.stats()), (2, 2, 0, 0));
    let (s, body) = app.post("/publish", &event("r", "1"));
    assert_eq!((s, body["duplicates"].as_u64()), (200, Some(1)));
    assert_eq!(app.all_events("r").len(), 2);
}

pub fn sigkill_after_ack_loses_nothing(b: Backend) {
    let mut app = App::start(b);
    let mut acked: Vec<String> = Vec::new();
    let mut received = 0;
    for round in 0..5 {
        // An acknowledged synchronous batch, an acknowledged queued one, then SIGKILL at once.
        let sync: Vec<Value> = (0..20)
            .map(|i| event("k", &format!("s{round}-{i}")))
            .collect();
        let (s, _) = app.post("/publish/batch", &json!(sync));
        assert_eq!(s, 200);
        let queued: Vec<Value> = (0..20)
            .map(|i| event("k", &format!("q{round}-{i}")))
            .collect();
        let (s, _) = app.post("/publish/batch?async=true", &json!(queued));
        assert_eq!(s, 202);
        // A replay of the synchronous batch, so duplicates are counted across the crash too.
        let (s, _) = app.post("/publish/batch?async=true", &json!(sync));
        assert_eq!(s, 202);
        received += 60;
        acked.extend((0..20).map(|i| format!("s{round}-{i}")));
        acked.extend((0..20).map(|i| format!("q{round}-{i}")));
        app.host.kill();
        app.host.spawn();
    }
    let stored: HashSet<String> = app
        .all_events("k")
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged event {id} lost");
    }
    assert_eq!(stored.len(), acked.len());
    assert_eq!(
        counts(&app.stats()),
        (
            received,
            acked.len() as u64,
            received - acked.len() as u64,
            0
        )
    );
}
