//! Dead letters: a batch the store refuses for good is queued (acknowledged), moved aside by
//! the drain, listed page by page, retried once the store takes it, and discarded — its count
//! kept.

use super::support::app::{App, Backend, event};
use super::support::client;
use super::{cure_the_store, drain_until_done, ev, metrics, poison_the_store, sum};
use serde_json::json;

pub(super) fn dead_letters_are_moved_aside_listed_retried_and_discarded(b: Backend) {
    let app = App::start(b);
    assert_eq!(app.post("/publish", &event("dl", "warmup")).0, 200);
    poison_the_store(&app);
    // A permanent error on the direct apply: the batch is queued (acknowledged), not lost.
    let poisoned = json!([
        ev("dl", "p1", "poison", "2024-05-01T12:00:00Z"),
        event("dl", "ok1")
    ]);
    let (s, body) = app.post("/publish", &poisoned);
    assert_eq!(s, 202, "{body}");
    let (s, _) = app.post(
        "/publish?async=true",
        &ev("dl", "p2", "poison", "2024-05-01T12:00:00Z"),
    );
    assert_eq!(s, 202);
    // The poison does not block anyone: a later publish is stored at once.
    assert_eq!(app.post("/publish", &event("dl", "ok2")).0, 200);
    let answers = drain_until_done(&app);
    assert_eq!(sum(&answers, "dead_lettered"), 3, "{answers:?}");
    let stats = app.stats();
    assert_eq!(
        (stats["dead_lettered"].as_u64(), stats["queued"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(stats["unique_processed"], 2, "{stats}");
    let (s, health) = app.get("/health");
    assert_eq!((s, &health["dead_letters"]), (200, &json!(2)), "{health}");
    let metrics = metrics(&app);
    assert!(
        metrics.contains("\nedgelog_events_dead_lettered_total 3\n"),
        "{metrics}"
    );

    let (s, page) = app.get("/dead-letters?limit=1");
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["count"], 1);
    let first = page["dead_letters"][0].clone();
    assert_eq!(first["status"], "pending");
    assert!(first["reason"].as_str().unwrap().len() > 3, "{first}");
    let cursor = page["next_cursor"].as_i64().expect("a second page");
    let (_, page2) = app.get(&format!("/dead-letters?after={cursor}"));
    assert_eq!(page2["count"], 1);
    assert!(page2["next_cursor"].is_null());
    let second = page2["dead_letters"][0].clone();

    let id = first["id"].as_str().unwrap();
    let (s, detail) = app.get(&format!("/dead-letters/{id}"));
    assert_eq!(s, 200);
    assert_eq!(detail["events"].as_array().unwrap().len(), 2, "{detail}");
    assert_eq!(detail["events"][0]["event_id"], "p1");
    assert_eq!(app.get("/dead-letters/nope").0, 404);

    // Still refused: 409 (the letter's state, not the request, is the problem), still pending.
    let (s, body) = app.post(&format!("/dead-letters/{id}/retry"), &json!({}));
    assert_eq!((s, &body["error"]), (409, &json!("conflict")), "{body}");
    assert_eq!(
        app.get(&format!("/dead-letters/{id}")).1["status"],
        "pending"
    );
    cure_the_store(&app);
    let (s, body) = app.post(&format!("/dead-letters/{id}/retry"), &json!({}));
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (&body["status"], &body["processed"]),
        (&json!("applied"), &json!(2))
    );
    assert_eq!(
        app.post(&format!("/dead-letters/{id}/retry"), &json!({})).0,
        409
    );
    let id2 = second["id"].as_str().unwrap();
    let resp = client()
        .delete(app.host.at(&format!("/dead-letters/{id2}")))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = client()
        .delete(app.host.at(&format!("/dead-letters/{id}")))
        .send()
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        409,
        "an applied letter cannot be discarded"
    );

    let stats = app.stats();
    assert_eq!(
        stats["dead_lettered"], 1,
        "the discarded one stays counted: {stats}"
    );
    assert_eq!(stats["unique_processed"], 4, "{stats}");
    assert_eq!(stats["received"], 5, "{stats}");
    assert_eq!(app.get("/health").1["dead_letters"], 0);
}
