//! The statements each query shape builds, word for word, on both dialects.

use super::super::find::{Find, LevelFilter, Term};
use super::*;
use crate::validate::Level;

fn query() -> EventQuery {
    EventQuery {
        topic: None,
        source: None,
        since: None,
        until: None,
        limit: 100,
        offset: 0,
        before: None,
        find: Find::default(),
    }
}

fn search(terms: &[(&str, bool)]) -> Option<Search> {
    Some(Search {
        terms: terms
            .iter()
            .map(|(t, exclude)| Term {
                text: (*t).into(),
                exclude: *exclude,
            })
            .collect(),
    })
}

#[test]
fn listing_query_numbers_parameters_in_order() {
    let pg = Dialect::Postgres;
    let q = EventQuery {
        topic: Some("t".into()),
        limit: 10,
        offset: 5,
        before: Some(99),
        ..query()
    };
    let (text, params) = list_events("id", &q, pg);
    assert_eq!(
        text,
        "SELECT id FROM events WHERE topic = $1 AND id < $2 ORDER BY id DESC LIMIT $3 OFFSET $4"
    );
    assert_eq!(
        params,
        vec![
            Param::Text("t"),
            Param::Int(99),
            Param::Int(10),
            Param::Int(5)
        ]
    );
    let q = EventQuery {
        source: Some("s".into()),
        since: Some("2024-01-01T00:00:00.000000Z".into()),
        until: Some("2024-01-02T00:00:00.000000Z".into()),
        ..query()
    };
    let (text, params) = list_events("id", &q, pg);
    assert_eq!(
        text,
        "SELECT id FROM events WHERE source = $1 AND \"timestamp\" >= $2::text::timestamptz \
         AND \"timestamp\" < $3::text::timestamptz ORDER BY \"timestamp\" DESC, id DESC \
         LIMIT $4 OFFSET $5"
    );
    assert_eq!(params.len(), 5);
    let q = EventQuery {
        since: Some("2024-01-01T00:00:00.000000Z".into()),
        before: Some(42),
        ..query()
    };
    assert_eq!(
        list_events("id", &q, pg).0,
        "SELECT id FROM events WHERE \"timestamp\" >= $1::text::timestamptz AND \
         (\"timestamp\", id) < (SELECT \"timestamp\", id FROM events WHERE id = $2) \
         ORDER BY \"timestamp\" DESC, id DESC LIMIT $3 OFFSET $4"
    );
    assert_eq!(
        list_events("id", &query(), pg).0,
        "SELECT id FROM events ORDER BY id DESC LIMIT $1 OFFSET $2"
    );
}

#[test]
fn order_level_and_search_on_postgres() {
    let mut q = query();
    q.topic = Some("t".into());
    q.find = Find {
        level: Some(LevelFilter::AtLeast(Level::Warn)),
        q: search(&[("timeout", false), ("50%", true)]),
        order: Order::Time,
    };
    let (text, params) = list_events("id", &q, Dialect::Postgres);
    assert_eq!(
        text,
        "SELECT id FROM events WHERE topic = $1 AND level >= 4 AND \
         COALESCE(message, payload) ILIKE $2 AND COALESCE(message, payload) NOT ILIKE $3 \
         ORDER BY \"timestamp\" DESC, id DESC LIMIT $4 OFFSET $5"
    );
    assert_eq!(params[1], Param::Owned("%timeout%".into()));
    assert_eq!(params[2], Param::Owned("%50\\%%".into()));
    q.find.order = Order::Stored;
    q.since = Some("2024-01-01T00:00:00.000000Z".into());
    assert!(
        list_events("id", &q, Dialect::Postgres)
            .0
            .ends_with("ORDER BY id DESC LIMIT $5 OFFSET $6")
    );
}

#[test]
fn sqlite_search_is_driven_by_the_fts_matches() {
    let mut q = query();
    q.topic = Some("t".into());
    q.before = Some(7);
    q.find = Find {
        level: None,
        q: search(&[
            ("timeout", false),
            ("db", false),
            ("retry", true),
            ("ok", true),
        ]),
        order: Order::Time,
    };
    let (text, params) = list_events("id", &q, Dialect::Sqlite);
    assert_eq!(
        text,
        "SELECT id FROM (SELECT rowid AS fts_id FROM events_fts WHERE events_fts MATCH $1) \
         AS fts CROSS JOIN events ON events.id = fts.fts_id WHERE topic = $2 AND \
         COALESCE(message, payload) LIKE $3 ESCAPE '\\' AND \
         COALESCE(message, payload) NOT LIKE $4 ESCAPE '\\' AND \
         (\"timestamp\", id) < (SELECT \"timestamp\", id FROM events WHERE id = $5) \
         ORDER BY \"timestamp\" DESC, id DESC LIMIT $6 OFFSET $7"
    );
    assert_eq!(
        params[0],
        Param::Owned("((\"timeout\") NOT \"retry\")".into())
    );
    // A time range: the span is the scope's ids, counted up to SPAN_SCAN rows, past
    // that the topic's; the scope's rows checked with LIKE instead when their ids spread
    // wider than ROW_CHECK_RATIO per row.
    q.since = Some("2024-01-01T00:00:00.000000Z".into());
    q.until = Some("2024-01-02T00:00:00.000000Z".into());
    q.before = None;
    q.find.q = search(&[("timeout", false)]);
    let (text, params) = list_events("id", &q, Dialect::Sqlite);
    let scope = "topic = $1 AND \"timestamp\" >= $2 AND \"timestamp\" < $3";
    assert_eq!(
        text,
        format!(
            "WITH scoped AS MATERIALIZED (SELECT n, lo, hi, n > {SPAN_SCAN} OR COALESCE(hi, -1) \
             - COALESCE(lo, 0) < n * {ROW_CHECK_RATIO} AS fts FROM (SELECT count(*) AS n, \
             min(id) AS lo, max(id) AS hi FROM (SELECT id FROM events WHERE {scope} \
             LIMIT {scan}))), span AS MATERIALIZED (SELECT CASE WHEN NOT fts THEN 1 \
             WHEN n > {SPAN_SCAN} THEN COALESCE((SELECT min(id) FROM events WHERE topic = $1), 0) \
             ELSE COALESCE(lo, 0) END AS lo, CASE WHEN NOT fts THEN 0 WHEN n > {SPAN_SCAN} THEN \
             COALESCE((SELECT max(id) FROM events WHERE topic = $1), -1) \
             ELSE COALESCE(hi, -1) END AS hi, fts FROM scoped), \
             row_ids AS MATERIALIZED (SELECT id AS scope_id FROM events WHERE {scope} \
             AND NOT (SELECT fts FROM scoped) LIMIT {scan}) \
             SELECT id FROM (SELECT id FROM (SELECT id FROM (SELECT rowid AS fts_id FROM events_fts \
             WHERE events_fts MATCH (SELECT CASE WHEN fts THEN $4 ELSE '\"' || char(1, 2, 3) \
             || '\"' END FROM span) \
             AND rowid >= (SELECT lo FROM span) AND rowid <= (SELECT hi FROM span)) \
             AS fts CROSS JOIN events ON events.id = fts.fts_id WHERE {scope} \
             UNION ALL SELECT id FROM row_ids CROSS JOIN events ON events.id = row_ids.scope_id \
             WHERE COALESCE(message, payload) LIKE $5 ESCAPE '\\')) \
             ORDER BY \"timestamp\" DESC, id DESC LIMIT $6 OFFSET $7",
            scan = SPAN_SCAN + 1
        )
    );
    assert_eq!(params[4], Param::Owned("%timeout%".into()));
    // A term beyond ASCII: LIKE would fold only ASCII case, so always the FTS matches.
    q.find.q = search(&[("café", false)]);
    let (text, _) = list_events("id", &q, Dialect::Sqlite);
    assert!(text.contains("(SELECT n, lo, hi, 1 AS fts FROM"), "{text}");
    q.find.q = search(&[("timeout", false)]);
    let (_, params) = list_events("id", &q, Dialect::Sqlite);
    assert_eq!(params.len(), 7);
    // Time only: past SPAN_SCAN rows, no bound.
    q.topic = None;
    let (text, _) = list_events("id", &q, Dialect::Sqlite);
    assert!(
        text.contains(&format!(
            "THEN 0 ELSE COALESCE(lo, 0) END AS lo, CASE WHEN NOT fts THEN 0 WHEN n > {SPAN_SCAN} \
             THEN {} ELSE",
            i64::MAX
        )),
        "{text}"
    );
    // No time range: the FTS matches of the whole store.
    q.since = None;
    q.until = None;
    let (text, _) = list_events("id", &q, Dialect::Sqlite);
    assert!(text.starts_with(
        "SELECT id FROM (SELECT rowid AS fts_id FROM events_fts WHERE events_fts MATCH $1) AS fts"
    ));
    q.topic = Some("t".into());
    q.before = Some(7);
    // Only short or excluded terms: no FTS, row conditions only.
    q.find.q = search(&[("db", false), ("retry", true)]);
    let (text, _) = list_events("id", &q, Dialect::Sqlite);
    assert!(text.starts_with("SELECT id FROM events WHERE topic = $1 AND COALESCE"));
    assert!(text.contains("NOT LIKE $3"));
}

#[test]
fn tail_statements() {
    let mut q = query();
    q.topic = Some("t".into());
    q.find.q = search(&[("timeout", false)]);
    let after = TailCursor { tx: 5, id: 9 };
    let (text, params) = tail_events("id", &q, after, Dialect::Postgres);
    assert!(text.contains("WHERE (tx, id) > ($1::text::xid8, $2) AND tx < (SELECT xmin FROM h)"));
    assert!(text.contains("hit AS (SELECT * FROM fresh WHERE topic = $4 AND COALESCE(message, payload) ILIKE $5 ORDER BY tx, id LIMIT $6)"));
    assert!(text.ends_with("ORDER BY hit.tx, hit.id"));
    assert_eq!(params[0], Param::Owned("5".into()));
    let (text, params) = tail_events("id", &q, after, Dialect::Sqlite);
    assert!(text.contains(
        "fresh AS MATERIALIZED (SELECT * FROM events WHERE id > $1 ORDER BY id LIMIT $2)"
    ));
    assert!(text.contains("id IN (SELECT rowid FROM events_fts WHERE events_fts MATCH $3 AND rowid > $1) AND topic = $4"));
    assert_eq!(params.len(), 5);
}

#[test]
fn volume_statements() {
    let mut v = VolumeQuery {
        since_minute: 120,
        until_minute: 240,
        step_minutes: 60,
        topic: Some("t".into()),
        source: None,
        find: Find {
            level: Some(LevelFilter::Exactly(vec![Level::Error])),
            ..Find::default()
        },
    };
    let (text, params) = volume(&v, Dialect::Sqlite);
    assert_eq!(
        text,
        "SELECT (bucket - $1) / $2 AS b, level, CAST(SUM(n) AS BIGINT) FROM volume_counters \
         WHERE grain = CAST($3 AS BIGINT) AND bucket >= $1 AND bucket < $4 AND topic = $5 AND level IN (5) \
         GROUP BY 1, 2 HAVING SUM(n) <> 0 ORDER BY 1, 2"
    );
    assert_eq!(params[2], Param::Int(60));
    v.topic = None;
    let (text, _) = volume(&v, Dialect::Postgres);
    assert!(
        text.contains("FROM volume_totals WHERE grain = CAST($3 AS BIGINT)"),
        "{text}"
    );
    assert!(!text.contains("topic"), "{text}");
    v.topic = Some("t".into());
    v.step_minutes = 5;
    assert_eq!(volume(&v, Dialect::Sqlite).1[2], Param::Int(1));
    v.source = Some("s".into());
    let (text, params) = volume(&v, Dialect::Postgres);
    assert!(text.starts_with(
        "SELECT floor((extract(epoch FROM \"timestamp\") - CAST($1 AS BIGINT)) / CAST($2 AS BIGINT))::bigint AS b, COALESCE(level, 0), count(*) FROM events WHERE \"timestamp\" >= $3::text::timestamptz"
    ));
    assert_eq!(
        params[2],
        Param::Owned("1970-01-01T02:00:00.000000Z".into())
    );
    v.find.q = search(&[("timeout", false)]);
    let (text, params) = volume(&v, Dialect::Sqlite);
    assert!(
        text.contains(
            "FROM (SELECT id FROM events WHERE \"timestamp\" >= $1 AND \"timestamp\" < $2 \
             AND topic = $3 AND source = $4 LIMIT"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "SELECT (CAST(strftime('%s', substr(\"timestamp\", 1, 19)) AS INTEGER) - $5) / $6 AS b"
        ),
        "{text}"
    );
    assert!(text.contains("FROM (SELECT rowid AS fts_id FROM events_fts WHERE events_fts MATCH $7 AND rowid >= (SELECT lo FROM span)"), "{text}");
    assert!(
        text.contains(
            "WHERE \"timestamp\" >= $1 AND \"timestamp\" < $2 AND topic = $3 AND source = $4 \
             AND level IN (5) GROUP BY"
        ),
        "{text}"
    );
    assert_eq!(params.len(), 7);
    assert_eq!(params[4], Param::Int(7200));
    // PostgreSQL has no span.
    assert!(!volume(&v, Dialect::Postgres).0.contains("span"));
}
