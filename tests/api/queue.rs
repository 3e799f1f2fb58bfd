//! The queue, on both backends: publishes queued with `Prefer: respond-async` or `?async=true`
//! are acknowledged with 202 and stored once, and a backlog over `max_backlog_events` answers
//! 202 until a drain.
//!
//! Suite functions take the backend and are `pub` so that `api.rs` can run each of them as a
//! test on both backends (its `sqlite` and `postgres_redis` modules).

use serde_json::{Value, json};

use crate::support::app::{App, Backend, counts, event};
use crate::support::{HostConfig, client};

pub fn async_publish_is_queued_then_stored(b: Backend) {
    let app = App::start(b);
    let resp = client()
        .post(app.host.at("/publish/batch"))
        .header("content-type", "application/json")
        .header("prefer", "respond-async")
        .body(json!({"events": [event("async", "1"), event("async", "2")]}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let body: Value = resp.json().unwrap();
    assert_eq!((&body["received"], &body["queued"]), (&json!(2), &json!(2)));
    assert_eq!(body["accepted"], json!(2), "{body}");
    let (s, _) = app.post("/publish?async=true", &event("async", "2"));
    assert_eq!(s, 202);
    // Reads consume pending work first: the queued events are visible and counted once.
    assert_eq!(app.all_events("async").len(), 2);
    assert_eq!(counts(&app.stats()), (3, 2, 1, 0));
    let (s, body) = app.post("/drain", &json!({}));
    assert_eq!(s, 200, "{body}");
}

pub fn backlog_over_its_limit_answers_202_until_drained(b: Backend) {
    // `max_backlog_events` is off by default; once set, a publish that finds more queued events
    // than the limit (its own included) is acknowledged with 202 and left for a drain.
    let config = HostConfig::default().env("SPIN_VARIABLE_MAX_BACKLOG_EVENTS", "2");
    let app = App::start_with(b, config);
    let (s, _) = app.post(
        "/publish/batch?async=true",
        &json!([event("bk", "1"), event("bk", "2")]),
    );
    assert_eq!(s, 202);
    let (s, body) = app.post("/publish", &event("bk", "3"));
    assert_eq!(
        (s, body),
        (202, json!({"received": 1, "queued": 1})),
        "3 queued > 2"
    );
    let (s, body) = app.post("/drain", &json!({}));
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (
            &body["drained_batches"],
            &body["processed"],
            &body["queued"]
        ),
        (&json!(2), &json!(3), &json!(0))
    );
    let (s, body) = app.post("/publish", &event("bk", "1"));
    assert_eq!(
        (s, body),
        (200, json!({"received": 1, "processed": 0, "duplicates": 1})),
        "an empty queue is under the limit: consumed at once"
    );
    assert_eq!(counts(&app.stats()), (4, 3, 1, 0));
}
