//! Reading, on both backends: `/events` paging, the topic filter and the cursor; `/health` on a
//! fresh store and after a publish, and `/metrics`.
//!
//! Suite functions take the backend and are `pub` so that `api.rs` can run each of them as a
//! test on both backends (its `sqlite` and `postgres_redis` modules).

use serde_json::{Value, json};

use crate::support::app::{App, Backend, event};
use crate::support::client;

pub fn events_paging_topic_filter_and_cursor(b: Backend) {
    let app = App::start(b);
    let batch: Vec<Value> = (0..25)
        .map(|i| event(if i % 2 == 0 { "even" } else { "odd" }, &format!("e{i:02}")))
        .collect();
    assert_eq!(app.post("/publish/batch", &json!({"events": batch})).0, 200);
    let (s, body) = app.get("/events?topic=even&limit=5");
    assert_eq!(s, 200);
    assert_eq!(body["count"], 5);
    assert_eq!(body["topic"], "even");
    let first: Vec<String> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(first, vec!["e24", "e22", "e20", "e18", "e16"]);
    let cursor = body["next_cursor"]
        .as_i64()
        .expect("full page has a cursor");
    let (_, next) = app.get(&format!("/events?topic=even&limit=5&before={cursor}"));
    assert_eq!(next["events"][0]["event_id"], "e14");
    let (_, off) = app.get("/events?topic=even&limit=5&offset=5");
    assert_eq!(off["events"], next["events"]);
    let (_, all) = app.get("/events?limit=1000");
    assert_eq!(all["count"], 25);
    assert!(all["next_cursor"].is_null());
    assert_eq!(app.all_events("odd").len(), 12);
}

pub fn health_and_metrics(b: Backend) {
    let app = App::start(b);
    // The first request, on a fresh store: counted like any other store (no dead letters, nothing
    // queued), and creating nothing.
    let (s, body) = app.get("/health");
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("healthy")),
        "{body}"
    );
    assert_eq!(
        (&body["dead_letters"], &body["queue_size"]),
        (&json!(0), &json!(0)),
        "a fresh store answers like any other: {body}"
    );
    if let Some(db) = &app.db {
        let row = db
            .connect()
            .query_one("SELECT to_regclass('dead_letters') IS NULL", &[])
            .unwrap();
        assert!(row.get::<_, bool>(0), "/health created the schema");
    }
    // Migrated by a publish: the same answer, now read from the table (lifecycle.rs counts real
    // dead letters).
    let (s, body) = app.post("/publish", &event("m", "0"));
    assert_eq!(s, 200, "{body}");
    assert_eq!(app.get("/health").1["dead_letters"], 0);
    app.post("/publish", &event("m", "1"));
    let text = client()
        .get(app.host.at("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("received"), "{text}");
}
