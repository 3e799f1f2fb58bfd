//! The `/stats` delta checks through loadgen's public API: exact equalities, each wrong counter
//! named, the sums of `200` answers, and bounds when some outcomes are unknown.

use loadgen::ledger::Expected;
use loadgen::verify::{Deltas, Stats, check_deltas};

fn stats(r: u64, u: u64, d: u64, q: Option<u64>) -> Stats {
    Stats {
        received: r,
        unique_processed: u,
        duplicate_dropped: d,
        queued: q,
    }
}

fn exact(acked: u64, unique: u64) -> Expected {
    Expected {
        acked_events: acked,
        acked_unique: unique,
        ambiguous_events: 0,
        ambiguous_only_unique: 0,
        sums_of_200: None,
    }
}

const BEFORE: Stats = Stats {
    received: 1000,
    unique_processed: 700,
    duplicate_dropped: 300,
    queued: Some(0),
};

#[test]
fn exact_match_passes() {
    let after = stats(1000 + 25_000, 700 + 16_250, 300 + 8_750, Some(0));
    assert_eq!(
        check_deltas(&exact(25_000, 16_250), &BEFORE, &after),
        Vec::<String>::new()
    );
    assert_eq!(
        Deltas::between(&BEFORE, &after),
        Deltas {
            received: 25_000,
            unique_processed: 16_250,
            duplicate_dropped: 8_750,
            queued: 0
        }
    );
}

#[test]
fn each_wrong_counter_is_reported() {
    let e = exact(25_000, 16_250);
    // One event lost: received right, unique short, dup compensates (still wrong vs A-U).
    let lost = stats(26_000, 700 + 16_249, 300 + 8_751, Some(0));
    let m = check_deltas(&e, &BEFORE, &lost);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].contains("unique_processed delta is 16249"));
    assert!(m[1].contains("duplicate_dropped delta is 8751"));
    // Counted one event twice.
    let double = stats(26_001, 700 + 16_250, 300 + 8_751, Some(0));
    let m = check_deltas(&e, &BEFORE, &double);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].contains("received delta is 25001") && m[0].contains("+1"));
    // Counters that do not add up.
    let skew = stats(26_000, 700 + 16_250, 300 + 8_700, Some(0));
    let m = check_deltas(&e, &BEFORE, &skew);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("received delta − unique_processed delta is 8750"));
    // Not drained.
    let queued = stats(26_000, 700 + 16_250, 300 + 8_750, Some(5));
    let m = check_deltas(&e, &BEFORE, &queued);
    assert_eq!(
        m,
        vec!["queue not drained: /stats still shows queued=5 after the run"]
    );
    // Counters reset (service restarted with in-memory stats): negative deltas fail.
    let reset = stats(10, 5, 5, Some(0));
    assert_eq!(check_deltas(&e, &BEFORE, &reset).len(), 3);
}

#[test]
fn sums_of_200_answers_must_match_the_deltas() {
    let mut e = exact(100, 60);
    e.sums_of_200 = Some((60, 40));
    let after = stats(1100, 760, 340, Some(0));
    assert!(check_deltas(&e, &BEFORE, &after).is_empty());
    e.sums_of_200 = Some((61, 39));
    let m = check_deltas(&e, &BEFORE, &after);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].contains("61 processed"));
}

#[test]
fn bounded_checks_when_outcomes_are_unknown() {
    let e = Expected {
        acked_events: 100,
        acked_unique: 60,
        ambiguous_events: 10,
        ambiguous_only_unique: 3,
        sums_of_200: Some((0, 0)), // ignored when not exact
    };
    for (r, u) in [(100, 60), (110, 63), (105, 61)] {
        let after = stats(1000 + r, 700 + u, 300 + r - u, None);
        assert!(
            check_deltas(&e, &BEFORE, &after).is_empty(),
            "r={r} u={u}: {:?}",
            check_deltas(&e, &BEFORE, &after)
        );
    }
    let over = stats(1000 + 111, 700 + 60, 300 + 51, Some(0));
    let m = check_deltas(&e, &BEFORE, &over);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("between 100 (acknowledged) and 110"));
    let under = stats(1000 + 100, 700 + 59, 300 + 41, Some(0));
    let m = check_deltas(&e, &BEFORE, &under);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("between 60"));
    let too_many_unique = stats(1000 + 110, 700 + 64, 300 + 46, Some(0));
    assert_eq!(check_deltas(&e, &BEFORE, &too_many_unique).len(), 1);
}
