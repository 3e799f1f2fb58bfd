//! The ledger through loadgen's public API: every attempt accounted (retries, replays, `202`s
//! and their cautious resends, unknown outcomes), bad answers as errors, ledgers that merge.

use std::time::Duration;

use bytes::Bytes;
use loadgen::client::{Answer, Attempt, Failure};
use loadgen::ledger::{BitSet, Ledger};
use loadgen::plan::{PlannedRequest, Route};

fn answer(status: u16, body: &str) -> Attempt {
    Ok(Answer {
        status,
        body: Bytes::from(body.to_string()),
        latency: Duration::from_micros(1500),
        version: "HTTP/1.1",
    })
}

fn req(events: &[u64]) -> PlannedRequest {
    PlannedRequest {
        route: Route::Batch,
        events: events.to_vec(),
        resend_of: None,
    }
}

#[test]
fn bitset_basics() {
    let mut a = BitSet::default();
    a.insert(0);
    a.insert(64);
    a.insert(129);
    assert!(a.contains(64) && !a.contains(63) && !a.contains(1_000_000));
    assert_eq!(a.count(), 3);
    assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 64, 129]);
    let mut b = BitSet::default();
    b.insert(64);
    b.insert(1);
    b.insert(5_000);
    assert_eq!(a.count_without(&b), 2);
    assert_eq!(b.count_without(&a), 2);
    a.union_with(&b);
    assert_eq!(a.count(), 5);
    assert!(a.contains(5_000));
}

#[test]
fn retries_and_replays_are_all_counted_as_received() {
    let mut l = Ledger::new();
    // Request 0: events 0,1,2 — 503 then timeout then 200.
    let r0 = req(&[0, 1, 2]);
    l.issue(&r0);
    let a = vec![
        answer(503, "busy"),
        Err(Failure::Timeout),
        answer(200, r#"{"received":3,"processed":2,"duplicates":1}"#),
    ];
    assert!(!l.record(0, &r0, &a, false));
    // Request 1: replays 1,2 plus new 3 — 202, then the cautious resend gets 200.
    let r1 = req(&[1, 2, 3]);
    l.issue(&r1);
    assert!(l.record(
        1,
        &r1,
        &[answer(202, r#"{"received":3,"queued":3}"#)],
        false
    ));
    l.record(
        1,
        &r1,
        &[answer(
            200,
            r#"{"received":3,"processed":1,"duplicates":2}"#,
        )],
        true,
    );
    // Request 2: connection refused twice, never sent.
    let r2 = req(&[4]);
    l.issue(&r2);
    let refused = || Err(Failure::Connect("refused".into()));
    l.record(2, &r2, &[refused(), refused()], false);

    assert_eq!(l.acked_events, 9);
    assert_eq!(l.acked.count(), 4);
    assert_eq!(l.attempts, 7);
    assert_eq!(l.retries, 3);
    assert_eq!(l.queued_resends, 1);
    assert_eq!(l.ambiguous_attempts, 2);
    assert_eq!(l.ambiguous_events, 6);
    assert_eq!(l.failed_requests, 1);
    assert_eq!(l.error_count, 1, "{:?}", l.errors);
    assert_eq!(l.issued_distinct, 5);
    let e = l.expected();
    assert_eq!(e.acked_events, 9);
    assert_eq!(e.acked_unique, 4);
    assert_eq!(e.ambiguous_only_unique, 0, "event 4 was never sent");
    assert_eq!(e.sums_of_200, None, "a 202 was seen");
}

#[test]
fn bad_answers_are_errors() {
    let mut l = Ledger::new();
    let r = req(&[0, 1]);
    l.record(
        0,
        &r,
        &[answer(
            200,
            r#"{"received":1,"processed":1,"duplicates":0}"#,
        )],
        false,
    );
    l.record(1, &r, &[answer(200, "not json")], false);
    l.record(2, &r, &[answer(422, r#"{"error":"bad"}"#)], false);
    l.record(3, &r, &[answer(202, r#"{"received":2,"queued":3}"#)], false);
    assert_eq!(l.error_count, 4, "{:?}", l.errors);
    assert!(l.errors[2].contains("unexpected status 422"));
    // The 422 acknowledged nothing.
    assert_eq!(l.acked_events, 6);
}

#[test]
fn merge_adds_up() {
    let r = req(&[0, 1]);
    let ok = answer(200, r#"{"received":2,"processed":2,"duplicates":0}"#);
    let mut a = Ledger::new();
    a.record(0, &r, std::slice::from_ref(&ok), false);
    let mut b = Ledger::new();
    b.record(1, &req(&[2]), &[Err(Failure::Timeout)], false);
    b.record(2, &r, &[ok], false);
    a.merge(b);
    assert_eq!(a.acked_events, 4);
    assert_eq!(a.latency_us.len(), 2);
    assert_eq!(a.statuses[&200], 2);
    assert_eq!(a.failures["timeout"], 1);
    let e = a.expected();
    assert_eq!(e.acked_unique, 2);
    assert_eq!(e.ambiguous_only_unique, 1);
    assert_eq!(e.sums_of_200, Some((4, 0)));
}
