//! loadgen's accounting against the lab's mock service: a clean service verifies exactly in
//! every mode; retries, `202`s, unknown outcomes, lost or double-counted events, an undrained
//! queue, client errors, a service that vanishes mid-run and an unreachable one each end up in
//! the report the way the run's rules say.

use std::time::Duration;

use lab::mock::{Faults, MockServer};
use loadgen::{Config, Mode, run_async};

fn config(url: String, mode: Mode) -> Config {
    Config {
        url,
        events: Some(3_000),
        batch_size: 50,
        concurrency: 4,
        topics: 3,
        mode,
        seed: Some(5),
        request_timeout: Duration::from_millis(300),
        drain_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_service_verifies_exactly() {
    for mode in [Mode::Batch, Mode::Single, Mode::Mixed] {
        let mock = MockServer::start(Faults::default()).await;
        let report = run_async(&config(mock.url(), mode)).await.unwrap();
        let v = report.verification.as_ref().unwrap();
        assert!(report.passed(), "{mode:?}: {:#?}", report.failure_lines());
        assert!(v.exact);
        assert_eq!(v.deltas.received, 3_000);
        assert_eq!(v.deltas.unique_processed, 1_950);
        assert_eq!(v.deltas.duplicate_dropped, 1_050);
        assert_eq!(v.sample_ok, 20);
        assert_eq!(report.events_sent, 3_000);
        assert_eq!(report.unique_ids, 1_950);
        assert_eq!(report.retries, 0);
        assert!(report.verified_line().unwrap().starts_with("verified: "));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_queueing_and_unknown_outcomes_are_accounted() {
    let faults = Faults {
        reject_every: Some(7),
        fail_after_store_every: Some(11),
        queue_every: Some(5),
        slow_every: Some(97),
        ..Faults::default()
    };
    let mock = MockServer::start(faults).await;
    let report = run_async(&config(mock.url(), Mode::Mixed)).await.unwrap();
    let v = report.verification.as_ref().unwrap();
    assert!(report.passed(), "{:#?}", report.failure_lines());
    assert!(
        !v.exact,
        "500-after-store and timeouts make outcomes unknown"
    );
    assert!(report.retries > 0);
    assert!(report.queued_resends > 0);
    assert!(report.status_counts.contains_key("202"));
    assert!(report.status_counts.contains_key("503"));
    assert!(report.status_counts.contains_key("timeout"));
    // Retries and resends were acknowledged copies too: more received than planned.
    assert!(v.deltas.received > 3_000);
    assert_eq!(v.deltas.unique_processed, 1_950);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cautious_resends_after_202_still_verify_exactly() {
    let faults = Faults {
        queue_every: Some(3),
        ..Faults::default()
    };
    let mock = MockServer::start(faults).await;
    let report = run_async(&config(mock.url(), Mode::Batch)).await.unwrap();
    let v = report.verification.as_ref().unwrap();
    assert!(report.passed(), "{:#?}", report.failure_lines());
    assert!(v.exact, "202s and their resends leave no outcome unknown");
    assert_eq!(report.retries, 0);
    assert!(report.queued_resends > 0);
    // Every acknowledged copy, resends included, is received.
    assert_eq!(v.deltas.received as u64, report.acknowledged.events);
    assert!(report.acknowledged.events > 3_000);
    assert_eq!(v.deltas.unique_processed, 1_950);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_loses_or_miscounts_events_fails_verification() {
    let mock = MockServer::start(Faults {
        lose_every: Some(100),
        ..Faults::default()
    })
    .await;
    let report = run_async(&config(mock.url(), Mode::Batch)).await.unwrap();
    assert!(!report.passed());
    let lines = report.failure_lines().join("\n");
    assert!(lines.contains("unique_processed delta"), "{lines}");

    let mock = MockServer::start(Faults {
        count_twice_every: Some(50),
        ..Faults::default()
    })
    .await;
    let report = run_async(&config(mock.url(), Mode::Single)).await.unwrap();
    assert!(!report.passed());
    let lines = report.failure_lines().join("\n");
    assert!(lines.contains("received delta"), "{lines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_left_in_the_queue_fail_verification() {
    let mock = MockServer::start(Faults {
        queue_every: Some(4),
        no_drain: true,
        ..Faults::default()
    })
    .await;
    let mut cfg = config(mock.url(), Mode::Batch);
    cfg.drain_timeout = Duration::from_millis(300);
    let report = run_async(&cfg).await.unwrap();
    assert!(!report.passed());
    let v = report.verification.as_ref().unwrap();
    assert!(!v.drained);
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("POST /drain answered 404")),
        "{:?}",
        v.notes
    );
    let lines = report.failure_lines().join("\n");
    assert!(lines.contains("queue not drained"), "{lines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_fail_the_run_and_duration_stops_early() {
    let mock = MockServer::start(Faults {
        unprocessable_every: Some(10),
        ..Faults::default()
    })
    .await;
    let report = run_async(&config(mock.url(), Mode::Batch)).await.unwrap();
    assert!(!report.passed());
    assert!(
        report
            .failure_lines()
            .iter()
            .any(|l| l.contains("unexpected status 422"))
    );
    // The verification itself still holds: the 422s acknowledged nothing.
    assert!(report.verification.as_ref().unwrap().passed());

    let mock = MockServer::start(Faults {
        delay: Some(Duration::from_millis(20)),
        ..Faults::default()
    })
    .await;
    let mut cfg = config(mock.url(), Mode::Single);
    cfg.concurrency = 2;
    cfg.duration = Some(Duration::from_millis(300));
    let report = run_async(&cfg).await.unwrap();
    assert!(report.stopped_early);
    assert!(report.events_sent < 3_000 && report.events_sent > 0);
    assert!(report.passed(), "{:#?}", report.failure_lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_disappears_mid_run_leaves_a_partial_report() {
    let mock = MockServer::start(Faults {
        vanish_after: Some(10),
        ..Faults::default()
    })
    .await;
    let mut cfg = config(mock.url(), Mode::Batch);
    cfg.max_attempts = 2;
    let report = run_async(&cfg)
        .await
        .expect("a run that started returns its report even when the service goes away");
    assert!(!report.passed());
    assert!(report.verification.is_none());
    let err = report.verification_error.as_deref().unwrap();
    assert!(err.contains("/stats"), "{err}");
    // What was measured before the service vanished is all there.
    assert_eq!(report.acknowledged.ok_200, 10);
    assert_eq!(report.acknowledged.events, 10 * 50);
    assert!(report.status_counts.contains_key("connect_error"));
    let lines = report.failure_lines().join("\n");
    assert!(lines.contains("verification could not run"), "{lines}");
    let human = report.render_human();
    assert!(human.contains("partial report"), "{human}");
    assert!(report.to_json().contains("\"verification_error\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_service_is_an_error_and_no_verify_skips_stats() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = config(format!("http://127.0.0.1:{port}"), Mode::Batch);
    assert!(run_async(&cfg).await.is_err());
    cfg.verify = false;
    cfg.events = Some(10);
    cfg.max_attempts = 2;
    let report = run_async(&cfg).await.unwrap();
    assert!(report.verification.is_none());
    assert!(!report.passed());
    assert!(report.status_counts.contains_key("connect_error"));
    assert_eq!(report.acknowledged.unknown_outcome_attempts, 0);
}
