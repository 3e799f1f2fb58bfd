//! The read statements of `GET /events` (pages, live tail) and `GET /volume`, built for either
//! dialect from the filters actually asked for, so each variant gets its own plan.
//!
//! Indexes they rely on (migrations 2 and 3): `(topic, id)`, `(source, id)` and `id` for stored
//! order; `("timestamp", id)` and `(topic, "timestamp", id)` for event-time order; on PostgreSQL
//! `(tx, id)` for the tail and a `pg_trgm` GIN index on the searchable text; on SQLite the FTS5
//! trigram table `events_fts`; `volume_counters` for `/volume`. Searchable text is
//! `COALESCE(message, payload)`: the payload's message when it has one, else its whole text.
//!
//! Placeholders are `$n` in both dialects; SQLite numbers them in order of first appearance,
//! so every builder pushes a parameter exactly when its `$n` first appears in the text.

use super::EventQuery;
use super::find::{Order, Search, TailCursor, VolumeQuery};
use super::sql::Param;

/// The searchable text of an event row.
pub const SEARCH_TEXT: &str = "COALESCE(message, payload)";

/// Rows a tail read looks at per call at most, so a client far behind costs a bounded read.
pub const TAIL_SCAN: u32 = 10_000;

/// Which SQL dialect a statement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `timestamptz` casts, `ILIKE` served by the trigram index.
    Postgres,
    /// SQLite: timestamps as text, search through the FTS5 trigram table.
    Sqlite,
}

impl Dialect {
    fn ts(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}::text::timestamptz"),
            Dialect::Sqlite => format!("${n}"),
        }
    }
}

/// Filtered rows a SQLite search scans at most (in the topic / time index) to bound the ids the
/// FTS matches are read between; past it the bound falls back to the topic's (or source's) ids.
pub const SPAN_SCAN: u32 = 20_000;

/// Ids of span the FTS reads for the cost of checking one scope row with `LIKE` (measured at
/// 10 M events: ~11.5 ns per id of span against ~2.3 µs per row). A scope of at most
/// [`SPAN_SCAN`] rows whose ids spread wider than this many per row (events sent late, or with
/// old timestamps) is searched row by row instead of through the FTS table.
pub const ROW_CHECK_RATIO: u32 = 200;

/// A filter that narrows the ids an event can have: the parts of the scope of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Topic,
    Source,
    Since,
    Until,
}

/// Parameters and conditions collected while a statement is built.
#[derive(Default)]
struct Builder<'a> {
    params: Vec<Param<'a>>,
    filters: Vec<String>,
    /// The scope's parameters (topic, source, time range) and their numbers, once pushed.
    scope: Vec<(Bound, usize)>,
    scope_pushed: bool,
}

impl<'a> Builder<'a> {
    /// Adds a parameter; returns its number.
    fn push(&mut self, p: Param<'a>) -> usize {
        self.params.push(p);
        self.params.len()
    }

    /// Pushes the scope's parameters, in the order given, the first time it is called; later
    /// calls reuse their numbers (a statement may name them twice: SQLite's span, then rows).
    fn scope(&mut self, scope: &[(Bound, Param<'a>)]) -> Vec<(Bound, usize)> {
        if !self.scope_pushed {
            self.scope_pushed = true;
            for (bound, p) in scope {
                let n = self.push(p.clone());
                self.scope.push((*bound, n));
            }
        }
        self.scope.clone()
    }

    fn filter(&mut self, f: String) {
        self.filters.push(f);
    }

    fn where_clause(&self) -> String {
        if self.filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.filters.join(" AND "))
        }
    }
}

/// The FTS5 `MATCH` expression of a search on SQLite, if some included term is long enough for
/// the trigram index: included terms ANDed, long excluded terms `NOT`ed. Other terms are row
/// conditions (see [`row_terms`]).
fn fts_match(search: &Search) -> Option<String> {
    let included: Vec<String> = search
        .terms
        .iter()
        .filter(|t| !t.exclude && t.indexable())
        .map(|t| t.fts_string())
        .collect();
    if included.is_empty() {
        return None;
    }
    let mut expr = format!("({})", included.join(" AND "));
    for t in search.terms.iter().filter(|t| t.exclude && t.indexable()) {
        expr = format!("({expr} NOT {})", t.fts_string());
    }
    Some(expr)
}

/// Search conditions checked on each row: every term on PostgreSQL (`ILIKE`, which the trigram
/// index serves), on SQLite the terms the FTS `MATCH` does not cover (`LIKE`).
fn row_terms<'a>(b: &mut Builder<'a>, d: Dialect, search: &Search, fts_used: bool) {
    for t in &search.terms {
        if d == Dialect::Sqlite && fts_used && t.indexable() {
            continue;
        }
        let n = b.push(Param::Owned(t.like_pattern()));
        let not = if t.exclude { "NOT " } else { "" };
        b.filter(match d {
            Dialect::Postgres => format!("{SEARCH_TEXT} {not}ILIKE ${n}"),
            Dialect::Sqlite => format!("{SEARCH_TEXT} {not}LIKE ${n} ESCAPE '\\'"),
        });
    }
}

/// The condition of one scope filter on its parameter `$n`.
fn bound_sql(bound: Bound, n: usize, d: Dialect) -> String {
    match bound {
        Bound::Topic => format!("topic = ${n}"),
        Bound::Source => format!("source = ${n}"),
        Bound::Since => format!("\"timestamp\" >= {}", d.ts(n)),
        Bound::Until => format!("\"timestamp\" < {}", d.ts(n)),
    }
}

/// Adds the scope's conditions (pushing its parameters unless the span already did).
fn scope_filters<'a>(b: &mut Builder<'a>, d: Dialect, scope: &[(Bound, Param<'a>)]) {
    for (bound, n) in b.scope(scope) {
        b.filter(bound_sql(bound, n, d));
    }
}

/// The scope of a `GET /events` request: topic, source, time range.
fn event_scope(q: &EventQuery) -> Vec<(Bound, Param<'_>)> {
    let mut scope = Vec::new();
    if let Some(topic) = &q.topic {
        scope.push((Bound::Topic, Param::Text(topic)));
    }
    if let Some(source) = &q.source {
        scope.push((Bound::Source, Param::Text(source)));
    }
    if let Some(since) = &q.since {
        scope.push((Bound::Since, Param::Text(since)));
    }
    if let Some(until) = &q.until {
        scope.push((Bound::Until, Param::Text(until)));
    }
    scope
}

/// On SQLite, for a search with an FTS term and a scope, the CTEs `scoped`, `span` and (for a
/// listing) `row_ids`.
///
/// `scoped`: how many rows the scope holds (counted up to [`SPAN_SCAN`] + 1 in the topic / time
/// index) and their least and greatest id. `span`: the least and greatest id (`lo`, `hi`) an event of the scope can
/// have, so the FTS matches are read only between them (FTS5 seeks its doclists to a rowid
/// range) instead of over the whole store: exact over the scope's rows when it holds at most
/// [`SPAN_SCAN`] rows, past that the topic's (else the source's) least and greatest id, one
/// index probe each, or no bound at all. Every event of the scope lies between `lo` and `hi`
/// (an empty scope gives an empty range).
///
/// With `row_check`, `span.fts` also says whether reading those FTS matches is cheaper than
/// checking the scope's rows one by one with `LIKE` (see [`ROW_CHECK_RATIO`]); when it is not,
/// `lo`..`hi` is empty, so the FTS branch reads nothing and the caller's `LIKE` branch, driven
/// by `row_ids` (the scope's ids then, none otherwise), runs instead. Checking rows with `LIKE` folds only ASCII case, the FTS index
/// any letter's: searches with a term beyond ASCII always take the FTS branch.
///
/// Only with a time range (a topic alone spans most of the store: its bounds cost a little and
/// save nothing, measured). Pushes the scope's parameters first: the text starts with them.
fn span_cte<'a>(
    b: &mut Builder<'a>,
    d: Dialect,
    search: Option<&Search>,
    scope: &[(Bound, Param<'a>)],
    row_check: bool,
) -> Option<String> {
    let timed = scope
        .iter()
        .any(|(bound, _)| matches!(bound, Bound::Since | Bound::Until));
    if d != Dialect::Sqlite || !timed || search.and_then(fts_match).is_none() {
        return None;
    }
    let numbers = b.scope(scope);
    let key = numbers
        .iter()
        .find(|(bound, _)| *bound == Bound::Topic)
        .or_else(|| numbers.iter().find(|(bound, _)| *bound == Bound::Source))
        .map(|&(bound, n)| bound_sql(bound, n, d));
    let (key_lo, key_hi) = match &key {
        Some(k) => (
            format!("COALESCE((SELECT min(id) FROM events WHERE {k}), 0)"),
            format!("COALESCE((SELECT max(id) FROM events WHERE {k}), -1)"),
        ),
        None => ("0".to_owned(), i64::MAX.to_string()),
    };
    let conds: Vec<String> = numbers
        .iter()
        .map(|&(bound, n)| bound_sql(bound, n, d))
        .collect();
    let ascii = search.is_some_and(|s| s.terms.iter().all(|t| t.text.is_ascii()));
    let fts = if row_check && ascii {
        format!("n > {SPAN_SCAN} OR COALESCE(hi, -1) - COALESCE(lo, 0) < n * {ROW_CHECK_RATIO}")
    } else {
        "1".to_owned()
    };
    let where_scope = conds.join(" AND ");
    let scan = SPAN_SCAN + 1;
    // The ids the `LIKE` branch reads: the scope's, read from the index again, or none when the
    // FTS branch runs (materialised: SQLite would check a condition on `scoped` in the branch
    // itself only after reading each row).
    let row_ids = if row_check {
        format!(
            ", row_ids AS MATERIALIZED (SELECT id AS scope_id FROM events WHERE {where_scope} \
             AND NOT (SELECT fts FROM scoped) LIMIT {scan})"
        )
    } else {
        String::new()
    };
    // The scope's conditions come first in the text: SQLite numbers `$n` by first appearance.
    Some(format!(
        "WITH scoped AS MATERIALIZED (SELECT n, lo, hi, {fts} AS fts FROM (SELECT count(*) AS n, \
         min(id) AS lo, max(id) AS hi FROM (SELECT id FROM events WHERE {where_scope} \
         LIMIT {scan}))), \
         span AS MATERIALIZED (SELECT CASE WHEN NOT fts THEN 1 WHEN n > {SPAN_SCAN} THEN {key_lo} \
         ELSE COALESCE(lo, 0) END AS lo, CASE WHEN NOT fts THEN 0 WHEN n > {SPAN_SCAN} \
         THEN {key_hi} ELSE COALESCE(hi, -1) END AS hi, fts FROM scoped){row_ids} ",
    ))
}

/// Topic, source, time range, level and the row part of the search.
fn filters<'a>(b: &mut Builder<'a>, d: Dialect, q: &'a EventQuery, fts_used: bool) {
    scope_filters(b, d, &event_scope(q));
    row_filters(b, d, q, fts_used);
}

/// Level and the row part of the search (the scope is the caller's).
fn row_filters<'a>(b: &mut Builder<'a>, d: Dialect, q: &'a EventQuery, fts_used: bool) {
    if let Some(level) = &q.find.level {
        b.filter(level.sql("level"));
    }
    if let Some(search) = &q.find.q {
        row_terms(b, d, search, fts_used);
    }
}

/// The `FROM` clause: on SQLite with an indexable search, the FTS matches drive the join
/// (`CROSS JOIN` fixes that order), so a selective search reads only its matches; with a
/// `span` (see [`span_cte`]) only those between its ids.
fn from_clause<'a>(
    b: &mut Builder<'a>,
    d: Dialect,
    search: Option<&Search>,
    span: bool,
    row_check: bool,
) -> (String, bool) {
    match (d, search.and_then(fts_match)) {
        (Dialect::Sqlite, Some(expr)) => {
            let n = b.push(Param::Owned(expr));
            // Not to be read (`span.fts` false): an empty range, and a phrase of control
            // characters instead of the search's, whose doclist FTS5 finds empty at once (an
            // empty range alone still seeks every trigram of the phrase: ~5 ms at 10 M).
            let range = " AND rowid >= (SELECT lo FROM span) AND rowid <= (SELECT hi FROM span)";
            let (phrase, range) = if span && row_check {
                (
                    format!(
                        "(SELECT CASE WHEN fts THEN ${n} ELSE '\"' || char(1, 2, 3) || '\"' END \
                         FROM span)"
                    ),
                    range,
                )
            } else if span {
                (format!("${n}"), range)
            } else {
                (format!("${n}"), "")
            };
            (
                format!(
                    "(SELECT rowid AS fts_id FROM events_fts WHERE events_fts MATCH {phrase}{range}) \
                     AS fts CROSS JOIN events ON events.id = fts.fts_id"
                ),
                true,
            )
        }
        _ => ("events".to_owned(), false),
    }
}

/// Whether a page is in event-time order.
pub fn by_time(q: &EventQuery) -> bool {
    match q.find.order {
        Order::Time => true,
        Order::Stored => false,
        Order::Default => q.since.is_some() || q.until.is_some(),
    }
}

/// Builds the `GET /events` page query for a dialect's select list, newest first.
///
/// Stored order walks `id` (or `(topic, id)`, `(source, id)`); event-time order walks
/// `("timestamp", id)` or `(topic, "timestamp", id)`. The cursor is an id either way: in
/// event-time order the page continues below that event's `(timestamp, id)`.
///
/// With a SQLite `span` (see [`span_cte`]) the rows come from one of two branches, as the
/// span's `fts` chose: the FTS matches between its bounds (an empty range otherwise), or the
/// scope's rows (`row_ids`, empty otherwise) checked with `LIKE`.
pub fn list_events<'a>(
    select_list: &str,
    q: &'a EventQuery,
    d: Dialect,
) -> (String, Vec<Param<'a>>) {
    let mut b = Builder::default();
    let span = span_cte(&mut b, d, q.find.q.as_ref(), &event_scope(q), true);
    let (from, fts_used) = from_clause(&mut b, d, q.find.q.as_ref(), span.is_some(), true);
    filters(&mut b, d, q, fts_used);
    let by_time = by_time(q);
    let before = q.before.map(|before| {
        let n = b.push(Param::Int(i64::try_from(before).unwrap_or(i64::MAX)));
        if by_time {
            format!("(\"timestamp\", id) < (SELECT \"timestamp\", id FROM events WHERE id = ${n})")
        } else {
            format!("id < ${n}")
        }
    });
    if let Some(cond) = &before {
        b.filter(cond.clone());
    }
    let rows = if span.is_some() {
        let matches = format!("SELECT {select_list} FROM {from}{}", b.where_clause());
        b.filters.clear();
        // `row_ids` holds exactly the scope's rows here (or none), so only the rest is checked
        // and each row is read by its id.
        row_filters(&mut b, d, q, false);
        if let Some(cond) = before {
            b.filter(cond);
        }
        format!(
            "(SELECT {select_list} FROM ({matches} UNION ALL SELECT {select_list} FROM row_ids \
             CROSS JOIN events ON events.id = row_ids.scope_id{}))",
            b.where_clause()
        )
    } else {
        format!("{from}{}", b.where_clause())
    };
    let limit = b.push(Param::Int(i64::from(q.limit)));
    let offset = b.push(Param::Int(i64::try_from(q.offset).unwrap_or(i64::MAX)));
    let order = if by_time {
        "\"timestamp\" DESC, id DESC"
    } else {
        "id DESC"
    };
    let text = format!(
        "{}SELECT {select_list} FROM {rows} ORDER BY {order} LIMIT ${limit} OFFSET ${offset}",
        span.unwrap_or_default(),
    );
    (text, b.params)
}

/// Builds a live-tail read: events committed after `after`, oldest first, matching the filters.
///
/// The first row always exists (a `LEFT JOIN` from one row) and carries, before the select
/// list: rows scanned, the snapshot's `xmin` (PostgreSQL; text), and the `(tx, id)` of the last
/// row scanned; then the event's columns, `NULL` when nothing matched. At most [`TAIL_SCAN`]
/// newer rows are looked at, so the next cursor can move past rows that did not match.
/// On SQLite the text search uses the FTS table restricted to rowids after the cursor.
pub fn tail_events<'a>(
    select_list: &str,
    q: &'a EventQuery,
    after: TailCursor,
    d: Dialect,
) -> (String, Vec<Param<'a>>) {
    let mut b = Builder::default();
    let fresh = match d {
        Dialect::Postgres => {
            let tx = b.push(Param::Owned(after.tx.to_string()));
            let id = b.push(Param::Int(after.id));
            let scan = b.push(Param::Int(i64::from(TAIL_SCAN)));
            format!(
                "WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin), \
                 fresh AS MATERIALIZED (SELECT * FROM events \
                 WHERE (tx, id) > (${tx}::text::xid8, ${id}) AND tx < (SELECT xmin FROM h) \
                 ORDER BY tx, id LIMIT ${scan})"
            )
        }
        Dialect::Sqlite => {
            let id = b.push(Param::Int(after.id));
            let scan = b.push(Param::Int(i64::from(TAIL_SCAN)));
            format!(
                "WITH fresh AS MATERIALIZED (SELECT * FROM events WHERE id > ${id} \
                 ORDER BY id LIMIT ${scan})"
            )
        }
    };
    let fts = match (d, q.find.q.as_ref().and_then(fts_match)) {
        (Dialect::Sqlite, Some(expr)) => {
            let n = b.push(Param::Owned(expr));
            // `$1` is the cursor's id: only the FTS rows after it are read.
            b.filter(format!(
                "id IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ${n} AND rowid > $1)"
            ));
            true
        }
        _ => false,
    };
    filters(&mut b, d, q, fts);
    let (order, meta) = match d {
        Dialect::Postgres => (
            "tx, id",
            "(SELECT count(*) FROM fresh), (SELECT xmin::text FROM h), \
             (SELECT tx::text FROM fresh ORDER BY tx DESC, id DESC LIMIT 1), \
             (SELECT id FROM fresh ORDER BY tx DESC, id DESC LIMIT 1)",
        ),
        Dialect::Sqlite => (
            "id",
            "(SELECT count(*) FROM fresh), NULL, NULL, (SELECT max(id) FROM fresh)",
        ),
    };
    let limit = b.push(Param::Int(i64::from(q.limit)));
    let text = format!(
        "{fresh}, hit AS (SELECT * FROM fresh{} ORDER BY {order} LIMIT ${limit}) \
         SELECT {meta}, {select_list} FROM (SELECT 1 AS one) AS one LEFT JOIN hit ON true \
         ORDER BY {}",
        b.where_clause(),
        order
            .split(", ")
            .map(|c| format!("hit.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    (text, b.params)
}

/// The statement that reads the current tail position (what `tail_cursor` starts from).
pub fn tail_position(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => "SELECT pg_snapshot_xmin(pg_current_snapshot())::text",
        Dialect::Sqlite => "SELECT COALESCE(MAX(id), 0) FROM events",
    }
}

/// The statement that says whether anything was committed after a tail position: one index
/// probe (`$1`, `$2`: the cursor's `tx` as text and `id`; SQLite uses only the id, as `$1`).
pub fn tail_moved(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => {
            "SELECT EXISTS (SELECT 1 FROM events WHERE (tx, id) > ($1::text::xid8, $2) \
             AND tx < pg_snapshot_xmin(pg_current_snapshot()))"
        }
        Dialect::Sqlite => "SELECT COALESCE(MAX(id), 0) > $1 FROM events",
    }
}

/// Builds a `/volume` query: rows of (bucket index, level rank, events).
///
/// Without a source or text search it sums counter rows — hour rows (`grain` 60) when the
/// step is a whole number of hours, minute rows otherwise; `volume_totals` (all topics) or a
/// topic's `volume_counters` — so it costs O(buckets × levels), not O(events) or O(topics). Otherwise it counts the matching events of
/// the range (on SQLite driven by the FTS matches when the search has an indexable term).
pub fn volume<'a>(v: &'a VolumeQuery, d: Dialect) -> (String, Vec<Param<'a>>) {
    let mut b = Builder::default();
    if v.uses_counters() {
        let since = b.push(Param::Int(v.since_minute));
        let step = b.push(Param::Int(v.step_minutes));
        let grain = b.push(Param::Int(if v.step_minutes % 60 == 0 { 60 } else { 1 }));
        b.filter(format!("grain = CAST(${grain} AS BIGINT)"));
        b.filter(format!("bucket >= ${since}"));
        let until = b.push(Param::Int(v.until_minute));
        b.filter(format!("bucket < ${until}"));
        let table = if let Some(topic) = &v.topic {
            let n = b.push(Param::Text(topic));
            b.filter(format!("topic = ${n}"));
            "volume_counters"
        } else {
            "volume_totals"
        };
        if let Some(level) = &v.find.level {
            b.filter(level.sql("level"));
        }
        let text = format!(
            "SELECT (bucket - ${since}) / ${step} AS b, level, CAST(SUM(n) AS BIGINT) \
             FROM {table}{} GROUP BY 1, 2 HAVING SUM(n) <> 0 ORDER BY 1, 2",
            b.where_clause()
        );
        return (text, b.params);
    }
    let mut scope = vec![
        (Bound::Since, Param::Owned(minute_text(v.since_minute))),
        (Bound::Until, Param::Owned(minute_text(v.until_minute))),
    ];
    if let Some(topic) = &v.topic {
        scope.push((Bound::Topic, Param::Text(topic)));
    }
    if let Some(source) = &v.source {
        scope.push((Bound::Source, Param::Text(source)));
    }
    let span = span_cte(&mut b, d, v.find.q.as_ref(), &scope, false);
    let since_s = b.push(Param::Int(v.since_minute.saturating_mul(60)));
    let step_s = b.push(Param::Int(v.step_minutes.saturating_mul(60)));
    let bucket = match d {
        Dialect::Postgres => {
            format!(
                "floor((extract(epoch FROM \"timestamp\") - CAST(${since_s} AS BIGINT)) \
                 / CAST(${step_s} AS BIGINT))::bigint"
            )
        }
        Dialect::Sqlite => format!(
            "(CAST(strftime('%s', substr(\"timestamp\", 1, 19)) AS INTEGER) - ${since_s}) / ${step_s}"
        ),
    };
    let (from, fts_used) = from_clause(&mut b, d, v.find.q.as_ref(), span.is_some(), false);
    scope_filters(&mut b, d, &scope);
    if let Some(level) = &v.find.level {
        b.filter(level.sql("level"));
    }
    if let Some(search) = &v.find.q {
        row_terms(&mut b, d, search, fts_used);
    }
    let text = format!(
        "{}SELECT {bucket} AS b, COALESCE(level, 0), count(*) FROM {from}{} \
         GROUP BY 1, 2 ORDER BY 1, 2",
        span.unwrap_or_default(),
        b.where_clause()
    );
    (text, b.params)
}

/// A minute since the epoch as the service's UTC text.
pub fn minute_text(minute: i64) -> String {
    chrono::DateTime::from_timestamp(minute.saturating_mul(60), 0)
        .map(|t| crate::validate::render_utc(&t.naive_utc()))
        .unwrap_or_else(|| "9999-12-31T23:59:59.999999Z".to_owned())
}

#[cfg(test)]
mod tests;
