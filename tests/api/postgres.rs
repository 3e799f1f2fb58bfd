//! PostgreSQL + Redis only: timestamps stored as `timestamptz` and payloads as the text sent,
//! byte for byte; and the database going away and coming back (through a TCP switch the test
//! cuts, not the shared server): publishes are queued meanwhile and stored exactly once after.

use serde_json::json;

use crate::support::app::{App, Backend, counts, event};
use crate::support::switch::Switch;
use crate::support::{Host, HostConfig, TestDatabase, TestRedis, client, temp_dir};

#[test]
fn postgres_stores_timestamptz_and_payload_text_byte_for_byte() {
    let app = App::start(Backend::PostgresRedis);
    // jsonb would re-spell this (1e999999 is out of its range; 1.50 becomes 1.5; keys reorder).
    let payload_text = r#"{"z":1.50,"a":[1e999999,-0,"x",null,true],"unicode":"\u00e9t\u00e9 ✓"}"#;
    let body = format!(
        r#"{{"topic":"pg","event_id":"1","timestamp":"2024-03-05T06:07:08.123456-02:30","source":"s","payload": {payload_text} }}"#
    );
    let resp = client()
        .post(app.host.at("/publish"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let db = app.db.as_ref().unwrap();
    let row = db
        .connect()
        .query_one(
            "SELECT pg_typeof(\"timestamp\")::text, pg_typeof(payload)::text, \
             to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), payload::text \
             FROM events WHERE topic = 'pg'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "timestamp with time zone");
    assert_eq!(row.get::<_, String>(1), "text");
    assert_eq!(row.get::<_, String>(2), "2024-03-05T08:37:08.123456");
    assert_eq!(row.get::<_, String>(3), payload_text, "stored as sent");
    let raw = client()
        .get(app.host.at("/events?topic=pg"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(raw.contains(payload_text), "read back as sent: {raw}");
    assert!(raw.contains("\"timestamp\":\"2024-03-05T08:37:08.123456Z\""));
}

#[test]
fn database_outage_queues_then_stores_exactly_once() {
    let switch = Switch::start(5432);
    let db = TestDatabase::create("edgelog_outage");
    let redis = TestRedis::reserve();
    let url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", switch.port));
    let config = HostConfig {
        runtime_config: Some(redis.runtime_config(&temp_dir("edge-rc-"))),
        ..HostConfig::default()
    }
    .env("SPIN_VARIABLE_STORE", "postgres")
    .env("SPIN_VARIABLE_DATABASE_URL", &url)
    .env(
        "SPIN_VARIABLE_DB_HOST",
        &format!("127.0.0.1:{}", switch.port),
    );
    let app = App {
        host: Host::start(config),
        db: Some(db),
        redis: Some(redis),
    };
    assert_eq!(app.post("/publish", &event("out", "before")).0, 200);

    switch.down();
    let (s, body) = app.get("/health");
    assert_eq!(s, 503, "{body}");
    // Still ready: publishes are acknowledged from the queue while the store is down.
    let (s, ready) = app.get("/health?probe=ready");
    assert_eq!((s, &ready["status"]), (200, &json!("degraded")), "{ready}");
    assert!(
        body.to_string().contains("store"),
        "health names the failing part: {body}"
    );
    let mut queued = 0;
    for i in 0..5 {
        let (s, body) = app.post(
            "/publish/batch",
            &json!([event("out", &format!("d{i}")), event("out", "before")]),
        );
        assert_eq!(s, 202, "{body}");
        assert!(
            !body.to_string().contains("postgres://"),
            "no credentials leak: {body}"
        );
        queued += 2;
    }
    // Stats cannot be exact without the store: 503, but the backlog is still reported.
    let (s, body) = app.get("/stats");
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["queued"].as_u64(), Some(queued), "{body}");

    switch.restore();
    let (s, _) = app.post("/drain", &json!({}));
    assert_eq!(s, 200);
    assert_eq!(app.get("/health").0, 200);
    let stored = app.all_events("out");
    assert_eq!(stored.len(), 6, "host log:\n{}", app.host.logs());
    assert_eq!(counts(&app.stats()), (11, 6, 5, 0));
}
