//! The component's listing statements, rebuilt here for the plans: the text
//! `sql::list_events` in src/store/query.rs builds for each request kind, with the select lists
//! of src/store/postgres.rs and src/store/sqlite.rs (keep in step with them).

use super::requests::{Plan, window};

/// The statement `sql::list_events` builds for request kind `k`, with its parameters as text
/// or integers, in the dialect's form; `None` for non-listing kinds.
pub(super) fn listing_sql(
    pg: bool,
    k: usize,
    plan: &Plan,
    cursor: u64,
) -> Option<(String, Vec<Param>)> {
    let cols = if pg {
        "id, topic, event_id, to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         source, payload, to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    } else {
        "id, topic, event_id, \"timestamp\", source, payload, processed_at"
    };
    let ts = |n: usize| {
        if pg {
            format!("${n}::text::timestamptz")
        } else {
            format!("${n}")
        }
    };
    let (filter, mut params) = match k {
        2 => (String::new(), vec![]),
        3 => (
            " WHERE topic = $1 AND id < $2".to_string(),
            vec![Param::T(plan.topic.clone()), Param::I(cursor as i64)],
        ),
        4 => {
            let (s, u) = window(plan, 0);
            let norm = |x: &str| format!("{}.000000Z", x.trim_end_matches('Z'));
            (
                format!(
                    " WHERE \"timestamp\" >= {} AND \"timestamp\" < {}",
                    ts(1),
                    ts(2)
                ),
                vec![Param::T(norm(&s)), Param::T(norm(&u))],
            )
        }
        _ => return None,
    };
    let n = params.len();
    params.extend([Param::I(100), Param::I(0)]);
    // As `sql::list_events` in src/store/query.rs: a time range is ordered by event time.
    let order = if k == 4 {
        "\"timestamp\" DESC, id DESC"
    } else {
        "id DESC"
    };
    Some((
        format!(
            "SELECT {cols} FROM events{filter} ORDER BY {order} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        ),
        params,
    ))
}

/// A bound parameter of a listing statement.
#[derive(Debug, Clone)]
pub(super) enum Param {
    T(String),
    I(i64),
}
