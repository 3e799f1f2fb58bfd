//! PostgreSQL only: the apply statement is the function `edgelog_apply_v5` of migration 5,
//! called through migration 7's `edgelog_apply_v7` with the text columns packed (or directly,
//! with arrays, when a value holds a character the packing reserves). A store left at version 4
//! by an older release migrates and applies through them; both ways store the same rows; and
//! the component works unchanged when edge-host sends statements the way Spin 4.0.2 does
//! (`--postgres-statements spin`: prepared anew on every call), dead-letter retry included.

use super::support::app::{App, Backend, event};
use super::support::{HostConfig, skip_on_spin};
use super::{cure_the_store, drain_until_done, ev, poison_the_store, sum};
use serde_json::json;

/// The schema version the component migrates to (the last file in migrations/postgres).
const LATEST: i64 = 7;

/// `(received, unique_processed, duplicate_dropped)` of `/stats`.
fn totals(app: &App) -> (u64, u64, u64) {
    let stats = app.stats();
    let n = |k: &str| stats[k].as_u64().unwrap();
    (n("received"), n("unique_processed"), n("duplicate_dropped"))
}

/// Whether the store has both apply functions, and its schema version.
fn function_and_version(app: &App) -> (bool, i64) {
    let mut conn = app.db.as_ref().unwrap().connect();
    let row = conn
        .query_one(
            "SELECT to_regproc('edgelog_apply_v5') IS NOT NULL \
             AND to_regproc('edgelog_apply_v7') IS NOT NULL, \
             (SELECT max(version)::bigint FROM schema_migrations)",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn a_store_at_version_4_migrates_to_the_apply_function_and_applies() {
    let mut app = App::start(Backend::PostgresRedis);
    assert_eq!(app.post("/publish", &event("up5", "old1")).0, 200);
    assert_eq!(function_and_version(&app), (true, LATEST));
    app.host.kill();
    // Take the store back to version 4, what the previous release left.
    app.db
        .as_ref()
        .unwrap()
        .connect()
        .batch_execute(
            "DROP FUNCTION edgelog_apply_v7; DROP FUNCTION edgelog_apply_v5; \
             DELETE FROM schema_migrations WHERE version >= 5",
        )
        .unwrap();
    assert_eq!(function_and_version(&app), (false, 4));
    app.host.spawn();
    // The first publish migrates, then applies through the function: stored once, counted.
    let (s, body) = app.post("/publish", &event("up5", "new1"));
    assert_eq!((s, &body["processed"]), (200, &json!(1)), "{body}");
    assert_eq!(function_and_version(&app), (true, LATEST));
    let (s, body) = app.post(
        "/publish/batch",
        &json!([event("up5", "old1"), event("up5", "new2")]),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (&body["processed"], &body["duplicates"]),
        (&json!(1), &json!(1)),
        "{body}"
    );
    assert_eq!(totals(&app), (4, 3, 1));
    let ids: Vec<String> = app
        .all_events("up5")
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["new2", "new1", "old1"]);
}

/// A stored row as the apply wrote it: event id, level, message, and the time, source and
/// payload as one text.
type Row = (String, Option<i16>, Option<String>, String);

/// A topic's stored rows, by event id.
fn stored_rows(app: &App, topic: &str) -> Vec<Row> {
    let mut conn = app.db.as_ref().unwrap().connect();
    conn.query(
        "SELECT event_id, level, message, \
         concat_ws(' | ', \"timestamp\" AT TIME ZONE 'UTC', source, payload) \
         FROM events WHERE topic = $1 ORDER BY event_id",
        &[&topic],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

#[test]
fn packed_and_unpacked_groups_store_the_same_rows() {
    let app = App::start(Backend::PostgresRedis);
    let item = |topic: &str, id: &str, payload: serde_json::Value| {
        json!({"topic": topic, "event_id": id, "timestamp": "2024-03-05T06:07:08Z",
               "source": "s", "payload": payload})
    };
    let items = |topic: &str| {
        vec![
            item(
                topic,
                "1",
                json!({"message": "disk full", "level": "error"}),
            ),
            item(topic, "2", json!({"message": ""})),
            item(topic, "3", json!({"n": 1})),
            item(
                topic,
                "4",
                json!({"msg": "sep\u{1f}arated", "severity": "warn"}),
            ),
        ]
    };
    // Packed: nothing in the group holds U+001E. The message with U+001F goes alone, unpacked.
    let mut packed = items("packed");
    let odd = packed.pop().unwrap();
    let (s, body) = app.post("/publish/batch", &json!(packed));
    assert_eq!((s, &body["processed"]), (200, &json!(3)), "{body}");
    let (s, body) = app.post("/publish", &odd);
    assert_eq!((s, &body["processed"]), (200, &json!(1)), "{body}");
    // Unpacked: one event id holds U+001E, so the whole group travels as arrays.
    let mut unpacked = items("unpacked");
    unpacked.push(item("unpacked", "5\u{1e}x", json!({"message": "odd id"})));
    let (s, body) = app.post("/publish/batch", &json!(unpacked));
    assert_eq!((s, &body["processed"]), (200, &json!(5)), "{body}");

    let want = |extra: bool| {
        let row = |id: &str, level, message: Option<&str>, payload: &str| {
            let rest = format!("2024-03-05 06:07:08 | s | {payload}");
            (id.to_owned(), level, message.map(str::to_owned), rest)
        };
        let mut rows = vec![
            row(
                "1",
                Some(5),
                Some("disk full"),
                r#"{"level":"error","message":"disk full"}"#,
            ),
            row("2", None, Some(""), r#"{"message":""}"#),
            row("3", None, None, r#"{"n":1}"#),
            row(
                "4",
                Some(4),
                Some("sep\u{1f}arated"),
                r#"{"msg":"sep\u001farated","severity":"warn"}"#,
            ),
        ];
        if extra {
            rows.push(row(
                "5\u{1e}x",
                None,
                Some("odd id"),
                r#"{"message":"odd id"}"#,
            ));
        }
        rows
    };
    assert_eq!(stored_rows(&app, "packed"), want(false));
    assert_eq!(stored_rows(&app, "unpacked"), want(true));
    // Duplicates of both kinds are counted as duplicates, whichever way they travel.
    let (s, body) = app.post("/publish/batch", &json!(unpacked));
    assert_eq!((s, &body["duplicates"]), (200, &json!(5)), "{body}");
    let (s, body) = app.post("/publish/batch", &json!(items("packed")));
    assert_eq!((s, &body["duplicates"]), (200, &json!(4)), "{body}");
    assert_eq!(totals(&app), (18, 9, 9));
}

#[test]
fn spin_like_statements_publish_count_duplicates_and_retry_dead_letters() {
    if skip_on_spin("--postgres-statements is an edge-host flag (Spin always works this way)") {
        return;
    }
    let config = HostConfig {
        args: vec!["--postgres-statements".into(), "spin".into()],
        ..Default::default()
    };
    let app = App::start_with(Backend::PostgresRedis, config);
    // More applies than PL/pgSQL's five custom plans, so the cached generic plan serves too.
    for i in 0..8 {
        let (s, body) = app.post("/publish", &event("spinlike", &format!("e{i}")));
        assert_eq!((s, &body["processed"]), (200, &json!(1)), "{body}");
    }
    let (s, body) = app.post("/publish", &event("spinlike", "e0"));
    assert_eq!(
        (s, &body["processed"], &body["duplicates"]),
        (200, &json!(0), &json!(1)),
        "{body}"
    );
    let batch = json!([
        event("spinlike", "e1"),
        event("spinlike", "b1"),
        event("other", "b1")
    ]);
    let (s, body) = app.post("/publish/batch", &batch);
    assert_eq!(
        (s, &body["processed"], &body["duplicates"]),
        (200, &json!(2), &json!(1)),
        "{body}"
    );
    let (s, _) = app.post("/publish/batch?async=true", &batch);
    assert_eq!(s, 202);
    drain_until_done(&app);
    assert_eq!(totals(&app), (15, 10, 5));

    // A permanent error inside the function is still the data's: dead-lettered, not retried
    // forever; retried once the store accepts it, through the same function with `$12` set.
    poison_the_store(&app);
    let poisoned = json!([ev("dl", "p1", "poison", "2024-05-01T12:00:00Z")]);
    assert_eq!(app.post("/publish", &poisoned).0, 202);
    let answers = drain_until_done(&app);
    assert_eq!(sum(&answers, "dead_lettered"), 1, "{answers:?}");
    let (_, page) = app.get("/dead-letters");
    let id = page["dead_letters"][0]["id"].as_str().unwrap().to_owned();
    let (s, body) = app.post(&format!("/dead-letters/{id}/retry"), &json!({}));
    assert_eq!(s, 409, "still refused: {body}");
    cure_the_store(&app);
    let (s, body) = app.post(&format!("/dead-letters/{id}/retry"), &json!({}));
    assert_eq!(
        (s, &body["status"], &body["processed"]),
        (200, &json!("applied"), &json!(1)),
        "{body}"
    );
    assert_eq!(
        app.post(&format!("/dead-letters/{id}/retry"), &json!({})).0,
        409,
        "applied once"
    );
    assert_eq!(app.stats()["unique_processed"], 11);
}
