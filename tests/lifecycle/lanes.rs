//! Parallel `POST /drain` callers (issue 17): four lane loops (`lane=I&lanes=4`), or four plain
//! loops, on one backlog at once; every entry is applied exactly once (the answers'
//! `drained_batches` add up to the entries queued), `/stats` is exact and the queue is empty.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::support::HostConfig;
use super::support::app::{App, Backend, event};
use super::{markers, queue_entries, sum};

/// Entries queued per test: over four groups of 256, so each lane needs more than one call.
const ENTRIES: u64 = 1200;
/// Events per entry.
const EVENTS: u64 = 4;
/// Distinct event ids: entries `i` and `i + 1000` carry the same ids, so lanes meet on keys.
const IDS: u64 = 4000;

/// Queues [`ENTRIES`] async publishes from 8 threads; returns (events, unique events).
fn fill(app: &App) -> (u64, u64) {
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ENTRIES {
                        return;
                    }
                    let batch: Vec<Value> = (0..EVENTS)
                        .map(|j| event("lanes", &format!("{}", (i * EVENTS + j) % IDS)))
                        .collect();
                    let (s, body) = app.post("/publish/batch?async=true", &json!(batch));
                    assert_eq!(s, 202, "{body}");
                }
            });
        }
    });
    (ENTRIES * EVENTS, IDS.min(ENTRIES * EVENTS))
}

/// Runs one `POST <path>` loop per path, all at once, each until its answer says no `more`;
/// returns every answer.
fn drain_in_parallel(app: &App, paths: &[String]) -> Vec<Value> {
    std::thread::scope(|s| {
        let loops: Vec<_> = paths
            .iter()
            .map(|path| {
                s.spawn(move || {
                    let mut answers = Vec::new();
                    for _ in 0..1000 {
                        let (s, body) = app.post(path, &json!({}));
                        assert_eq!(s, 200, "{path}: {body}");
                        let more = body["more"].as_bool().unwrap();
                        answers.push(body);
                        if !more {
                            return answers;
                        }
                    }
                    panic!("{path} never finished");
                })
            })
            .collect();
        loops.into_iter().flat_map(|l| l.join().unwrap()).collect()
    })
}

/// Fills the queue, drains it with `paths` in parallel (a 1 ms budget: one group per call), and
/// checks that nothing was applied twice or left.
fn drain_exactly_once(b: Backend, paths: &[String]) {
    let config = HostConfig::default().env("SPIN_VARIABLE_WORK_BUDGET_MS", "1");
    let app = App::start_with(b, config);
    let (events, unique) = fill(&app);
    assert_eq!(queue_entries(&app).len() as u64, ENTRIES);
    let answers = drain_in_parallel(&app, paths);
    assert!(
        answers.len() > paths.len(),
        "a 1 ms budget takes more than one call per loop"
    );
    // Each entry counted by the one call that applied it: no entry applied twice, none lost.
    assert_eq!(sum(&answers, "drained_batches"), ENTRIES, "{answers:?}");
    assert_eq!(sum(&answers, "processed"), unique);
    assert_eq!(sum(&answers, "duplicates"), events - unique);
    assert!(queue_entries(&app).is_empty(), "the queue is empty");
    assert_eq!(markers(&app) as u64, ENTRIES, "one marker per entry");
    let stats = app.stats();
    assert_eq!(
        (
            &stats["received"],
            &stats["unique_processed"],
            &stats["duplicate_dropped"],
            &stats["queued"],
            &stats["dead_lettered"]
        ),
        (
            &json!(events),
            &json!(unique),
            &json!(events - unique),
            &json!(0),
            &json!(0)
        ),
        "{stats}"
    );
    assert_eq!(app.all_events("lanes").len() as u64, unique);
}

/// Four lane loops, `lane=0..3&lanes=4`: disjoint parts of the queue.
pub fn parallel_lane_drains_apply_every_entry_once(b: Backend) {
    let paths: Vec<String> = (0..4)
        .map(|lane| format!("/drain?lane={lane}&lanes=4"))
        .collect();
    drain_exactly_once(b, &paths);
}

/// Four plain loops, uncoordinated: they may meet on entries, and still apply each once.
pub fn parallel_plain_drains_apply_every_entry_once(b: Backend) {
    drain_exactly_once(b, &vec!["/drain".to_string(); 4]);
}

/// Lane parameters outside the contract are refused by name, before anything is consumed.
#[test]
fn bad_lane_parameters_are_422_and_consume_nothing() {
    let app = App::start(Backend::Sqlite);
    let (s, _) = app.post("/publish?async=true", &event("lanes", "kept"));
    assert_eq!(s, 202);
    for (query, field) in [
        ("lanes=0&lane=0", "lanes"),
        ("lanes=65&lane=0", "lanes"),
        ("lanes=four&lane=0", "lanes"),
        ("lane=-1&lanes=4", "lane"),
        ("lane=64&lanes=64", "lane"),
        ("lane=0.5&lanes=4", "lane"),
        ("lane=&lanes=4", "lane"),
    ] {
        let (s, body) = app.post(&format!("/drain?{query}"), &json!({}));
        assert_eq!(s, 422, "{query}: {body}");
        assert_eq!(body["error"], "validation_failed", "{query}: {body}");
        assert_eq!(
            body["message"],
            format!("invalid query parameter \"{field}\""),
            "{query}: {body}"
        );
        assert_eq!(body["details"][0]["field"], field, "{query}: {body}");
    }
    assert_eq!(queue_entries(&app).len(), 1, "nothing was consumed");
    // In range: the entry is in exactly one of two lanes, and the last lane's `lane` may be
    // spelled modulo `lanes` (every value the contract allows is answered).
    let (s, first) = app.post("/drain?lane=0&lanes=2", &json!({}));
    assert_eq!((s, &first["more"]), (200, &json!(false)), "{first}");
    let (s, second) = app.post("/drain?lane=3&lanes=2", &json!({}));
    assert_eq!((s, &second["more"]), (200, &json!(false)), "{second}");
    assert_eq!(sum(&[first, second], "drained_batches"), 1);
    assert!(queue_entries(&app).is_empty());
}
