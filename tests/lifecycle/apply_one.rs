//! SQLite only: a single publish (one batch of one event) is one statement, migration 5's
//! `apply_one` trigger, where a larger group takes `BEGIN` … eight statements … `COMMIT`. Both
//! ways must store the same rows and count the same: the same events published one by one on
//! one topic and as one batch on another leave the same events, search rows, counters per
//! level and volume rows, replays included, and a marker applied twice changes nothing.

use super::sqlite_file;
use super::support::app::{App, Backend, counts};
use serde_json::{Value, json};

/// Events with and without a level (field or payload) and a message, in several minutes and
/// hours, one before 1970 (its buckets round down, not toward zero).
fn items(topic: &str) -> Vec<Value> {
    let item = |id: &str, ts: &str, payload: Value, level: Option<&str>| {
        let mut e = json!({"topic": topic, "event_id": id, "timestamp": ts, "source": "s",
                           "payload": payload});
        if let Some(l) = level {
            e["level"] = json!(l);
        }
        e
    };
    vec![
        item(
            "1",
            "2024-03-05T06:07:08Z",
            json!({"message": "disk full", "level": "error"}),
            None,
        ),
        item(
            "2",
            "2024-03-05T06:07:59.5Z",
            json!({"msg": "disk fine"}),
            Some("info"),
        ),
        item("3", "2024-03-05T07:00:00Z", json!({"n": 1}), None),
        item(
            "4",
            "1969-12-31T23:58:30Z",
            json!({"body": "disk early", "severity": "warn"}),
            None,
        ),
        item(
            "5",
            "2024-03-05T06:07:09Z",
            json!("disk as a string"),
            Some("fatal"),
        ),
    ]
}

/// Rows of `sql` (one text column per row, `?1` the topic), sorted.
fn rows(app: &App, sql: &str, topic: &str) -> Vec<String> {
    let conn = sqlite_file(app);
    let mut stmt = conn.prepare(sql).unwrap();
    let mut got: Vec<String> = stmt
        .query_map([topic], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    got.sort();
    got
}

const EVENTS: &str = "SELECT event_id || '|' || \"timestamp\" || '|' || source || '|' || payload \
     || '|' || coalesce(level, '-') || '|' || coalesce(message, '-') FROM events WHERE topic = ?1";
const SEARCHABLE: &str = "SELECT event_id FROM events WHERE topic = ?1 \
     AND id IN (SELECT rowid FROM events_fts WHERE events_fts MATCH 'disk')";
const COUNTERS: &str = "SELECT sum(received) || '|' || sum(inserted) || '|' || max(last_event_at) \
     || '|' || sum(n_trace) || sum(n_debug) || sum(n_info) || sum(n_warn) || sum(n_error) \
     || sum(n_fatal) FROM topic_counters WHERE topic = ?1";
const VOLUME: &str = "SELECT grain || '|' || bucket || '|' || level || '|' || sum(n) \
     FROM volume_counters WHERE topic = ?1 GROUP BY grain, bucket, level";

#[test]
fn a_single_publish_stores_and_counts_what_a_batch_does() {
    let app = App::start(Backend::Sqlite);
    for e in items("one") {
        let (s, body) = app.post("/publish", &e);
        assert_eq!((s, &body["processed"]), (200, &json!(1)), "{body}");
    }
    let (s, body) = app.post("/publish/batch", &json!(items("many")));
    assert_eq!((s, &body["processed"]), (200, &json!(5)), "{body}");
    // Replays: every single one is a duplicate now, and so is the batch.
    for e in items("one") {
        let (s, body) = app.post("/publish", &e);
        assert_eq!(
            (s, &body["duplicates"], &body["processed"]),
            (200, &json!(1), &json!(0))
        );
    }
    let (s, body) = app.post("/publish/batch", &json!(items("many")));
    assert_eq!((s, &body["duplicates"]), (200, &json!(5)), "{body}");

    for (what, sql) in [
        ("events", EVENTS),
        ("search rows", SEARCHABLE),
        ("counters", COUNTERS),
        ("volume", VOLUME),
    ] {
        let (one, many) = (rows(&app, sql, "one"), rows(&app, sql, "many"));
        assert_eq!(one, many, "{what}");
        assert!(!one.is_empty(), "{what}");
    }
    assert_eq!(rows(&app, SEARCHABLE, "one"), ["1", "2", "4", "5"]);
    assert_eq!(
        rows(&app, COUNTERS, "one"),
        ["10|5|2024-03-05T07:00:00.000000Z|001111"]
    );
    // Buckets before 1970 round down: 23:58:30 is minute -2, in the hour from minute -60.
    let volume = rows(&app, VOLUME, "one");
    assert!(volume.contains(&"1|-2|4|1".to_owned()), "{volume:?}");
    assert!(volume.contains(&"60|-60|4|1".to_owned()), "{volume:?}");
    // Over all topics: each bucket holds both topics' events.
    let conn = sqlite_file(&app);
    let off: i64 = conn
        .query_row(
            "SELECT count(*) FROM volume_totals t WHERE n <> (SELECT sum(n) FROM volume_counters \
             c WHERE c.grain = t.grain AND c.bucket = t.bucket AND c.level = t.level)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(off, 0);
    let (received, unique, duplicates, _) = counts(&app.stats());
    assert_eq!((received, unique, duplicates), (20, 10, 10));
}

#[test]
fn a_marker_applied_twice_by_the_one_statement_changes_nothing_the_second_time() {
    let app = App::start(Backend::Sqlite);
    assert_eq!(app.post("/publish", &items("warm")[0]).0, 200); // migrated
    let conn = sqlite_file(&app);
    let apply = |key: &str, id: &str| -> (i64, i64) {
        conn.query_row(
            "INSERT INTO apply_one (batch_key, topic, event_id, \"timestamp\", source, payload, \
             level, message, minute) VALUES (?1, 'twice', ?2, '2024-03-05T06:07:08.000000Z', \
             's', '{}', 3, NULL, 28496167) RETURNING (SELECT fresh FROM apply_one_result), \
             (SELECT inserted FROM apply_one_result)",
            [key, id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(apply("q/k1", "a"), (1, 1));
    let before = rows(&app, COUNTERS, "twice");
    assert_eq!(apply("q/k1", "a"), (0, 0), "the same marker again");
    assert_eq!(apply("q/k1", "b"), (0, 0), "the same marker, another event");
    assert_eq!(rows(&app, COUNTERS, "twice"), before);
    assert_eq!(rows(&app, EVENTS, "twice").len(), 1);
    assert_eq!(
        apply("q/k2", "a"),
        (1, 0),
        "a new marker, a duplicate event"
    );
    assert_eq!(
        rows(&app, COUNTERS, "twice"),
        ["2|1|2024-03-05T06:07:08.000000Z|001000"]
    );
}
