//! The aggregator's HTTP API, end to end: the real `edgelog.wasm` served by `edge-host` over real
//! HTTP, once on the embedded default (SQLite queue + SQLite store) and once on PostgreSQL +
//! Redis. One suite, parameterised by backend: every suite test runs on both.
//!
//! One test binary, its tests by concept in `api/`. The suite: `publish.rs` (body shapes,
//! duplicates, rejected input, chunked bodies), `reading.rs` (paging, health, metrics),
//! `queue.rs` (queued publishes, the backlog limit) and `durability.rs` (concurrent batches, a
//! restart, SIGKILL). On PostgreSQL + Redis only: `postgres.rs` (native types, the database going
//! away and coming back) and `scale_out.rs` (several hosts, one killed). This file runs the suite
//! on each backend: the `sqlite` and `postgres_redis` modules below, one test per suite function.

mod support;

#[path = "api/durability.rs"]
mod durability;
#[path = "api/postgres.rs"]
mod postgres;
#[path = "api/publish.rs"]
mod publish;
#[path = "api/queue.rs"]
mod queue;
#[path = "api/reading.rs"]
mod reading;
#[path = "api/scale_out.rs"]
mod scale_out;

// The suite's functions, in scope here because the macro below calls each as `super::NAME`.
use durability::{
    concurrent_overlapping_batches_are_exact, restart_keeps_events_counters_and_dedup,
    sigkill_after_ack_loses_nothing,
};
use publish::{
    a_chunked_body_is_read_to_its_end, bad_input_is_rejected_and_changes_nothing,
    duplicates_are_dropped_and_counted, publish_shapes_and_read_back,
};
use queue::{
    async_publish_is_queued_then_stored, backlog_over_its_limit_answers_202_until_drained,
};
use reading::{events_paging_topic_filter_and_cursor, health_and_metrics};
use support::app::Backend;

// ---------------------------------------------------------------------------------------------
// The suite on both backends: each function takes the backend; the macro runs it on one.
// ---------------------------------------------------------------------------------------------

macro_rules! suite {
    ($backend:expr => $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::$name($backend);
            }
        )*
    };
}

mod sqlite {
    use super::Backend;
    suite!(Backend::Sqlite =>
        publish_shapes_and_read_back,
        duplicates_are_dropped_and_counted,
        bad_input_is_rejected_and_changes_nothing,
        a_chunked_body_is_read_to_its_end,
        events_paging_topic_filter_and_cursor,
        health_and_metrics,
        concurrent_overlapping_batches_are_exact,
        async_publish_is_queued_then_stored,
        backlog_over_its_limit_answers_202_until_drained,
        restart_keeps_events_counters_and_dedup,
        sigkill_after_ack_loses_nothing,
    );
}

mod postgres_redis {
    use super::Backend;
    suite!(Backend::PostgresRedis =>
        publish_shapes_and_read_back,
        duplicates_are_dropped_and_counted,
        bad_input_is_rejected_and_changes_nothing,
        a_chunked_body_is_read_to_its_end,
        events_paging_topic_filter_and_cursor,
        health_and_metrics,
        concurrent_overlapping_batches_are_exact,
        async_publish_is_queued_then_stored,
        backlog_over_its_limit_answers_202_until_drained,
        restart_keeps_events_counters_and_dedup,
        sigkill_after_ack_loses_nothing,
    );
}
