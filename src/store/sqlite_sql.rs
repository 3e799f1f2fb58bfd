//! The SQLite statements of the event store that are fixed text or built from a count, and
//! the splitting of migration scripts into statements.

use super::super::sql;
use super::{MAX_PARAMS, PARAMS_PER_EVENT};

/// The current time in the service's timestamp format.
pub(super) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')";

pub(super) const CREATE_SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version INTEGER PRIMARY KEY, \
     applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')))";

pub(super) const RECORD_MIGRATION: &str = "INSERT INTO schema_migrations (version) VALUES ($1)";

pub(super) const LIST_COLUMNS: &str =
    "id, topic, event_id, \"timestamp\", source, payload, processed_at, level";

pub(super) const LETTER_COLUMNS: &str = "seq, id, received, reason, attempts, failed_at, status";

pub(super) const SETTLE: &str = "UPDATE dead_letters SET status = 'applied', attempts = attempts + 1 \
     WHERE id = $1 AND status = 'pending' RETURNING id";

pub(super) const COUNT: &str = "INSERT INTO topic_counters (topic, shard, received, inserted, last_event_at, \
     n_trace, n_debug, n_info, n_warn, n_error, n_fatal) \
     VALUES ($1, 0, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (topic, shard) DO UPDATE SET \
     received = received + excluded.received, inserted = inserted + excluded.inserted, \
     last_event_at = max(coalesce(last_event_at, ''), excluded.last_event_at), \
     n_trace = n_trace + excluded.n_trace, n_debug = n_debug + excluded.n_debug, \
     n_info = n_info + excluded.n_info, n_warn = n_warn + excluded.n_warn, \
     n_error = n_error + excluded.n_error, n_fatal = n_fatal + excluded.n_fatal";

/// Volume rows per statement (5 parameters each).
pub(super) const VOLUME_ROWS_PER_UPSERT: usize = MAX_PARAMS / 5;

/// Makes the new events of this transaction searchable: they are the rows from the first
/// id this transaction inserted on (one writer at a time: ids are this transaction's).
pub(super) const INDEX_TEXT: &str = "INSERT INTO events_fts (rowid, text) \
     SELECT id, COALESCE(message, payload) FROM events WHERE id >= $1";

/// A single publish (one batch of one event) in one statement; see migration 5. Returns
/// whether the marker was new and whether the event was stored (1 or 0 each).
pub(super) const APPLY_ONE: &str = "INSERT INTO apply_one (batch_key, topic, event_id, \
     \"timestamp\", source, payload, level, message, minute) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
     RETURNING (SELECT fresh FROM apply_one_result), (SELECT inserted FROM apply_one_result)";

pub(super) const RECORD_FAILURE: &str = "INSERT INTO entry_failures (batch_key, attempts, last_error) \
     VALUES ($1, 1, $2) ON CONFLICT (batch_key) DO UPDATE SET \
     attempts = attempts + 1, last_error = excluded.last_error, \
     updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') RETURNING attempts";

pub(super) const BURY_MARKER: &str = "INSERT INTO consumed_batches (batch_key, received, inserted) \
     VALUES ($1, $2, 0) ON CONFLICT (batch_key) DO NOTHING RETURNING batch_key";

pub(super) const BURY_LETTER: &str = "INSERT INTO dead_letters (id, received, reason, batch, attempts) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING";

/// The oldest `$1` events (by id), if stored before `$2`.
pub(super) const EXPIRED_HEAD: &str = "SELECT id, topic, \"timestamp\", level FROM (SELECT id, topic, \
     \"timestamp\", level, processed_at FROM events ORDER BY id LIMIT $1) WHERE processed_at < $2";

pub(super) const COUNT_EXPIRED: &str = "INSERT INTO topic_counters (topic, shard, expired) VALUES ($1, 0, $2) \
     ON CONFLICT (topic, shard) DO UPDATE SET expired = expired + excluded.expired";

/// Counters, dead letters, the per-topic page (JSON) and the markers of the listed keys, in
/// one statement (one snapshot). Placeholders first appear in order: topic, limit, keys.
pub(super) const SNAPSHOT: &str = "SELECT \
         (SELECT COALESCE(SUM(received), 0) FROM topic_counters), \
         (SELECT COALESCE(SUM(inserted), 0) FROM topic_counters), \
         (SELECT COALESCE(SUM(expired), 0) FROM topic_counters), \
         (SELECT COALESCE(SUM(received), 0) FROM dead_letters WHERE status <> 'applied'), \
         (SELECT count(*) FROM dead_letters WHERE status = 'pending'), \
         (SELECT count(DISTINCT topic) FROM topic_counters WHERE topic <> ''), \
         (SELECT json_group_array(json_object('topic', topic, 'received', r, \
            'unique_processed', i, 'duplicate_dropped', r - i, 'expired', x, \
            'last_event_at', l, 'levels', json_object('trace', l1, 'debug', l2, 'info', l3, \
            'warn', l4, 'error', l5, 'fatal', l6, 'none', i - l1 - l2 - l3 - l4 - l5 - l6))) \
            FROM (SELECT topic, SUM(received) AS r, SUM(inserted) AS i, \
            SUM(expired) AS x, MAX(last_event_at) AS l, SUM(n_trace) AS l1, SUM(n_debug) AS l2, \
            SUM(n_info) AS l3, SUM(n_warn) AS l4, SUM(n_error) AS l5, SUM(n_fatal) AS l6 \
            FROM topic_counters WHERE topic <> '' AND ($1 IS NULL OR topic = $1) \
            GROUP BY topic ORDER BY topic LIMIT $2)), \
         (SELECT json_group_array(batch_key) FROM consumed_batches \
          WHERE batch_key IN (SELECT value FROM json_each($3))), \
         (SELECT value FROM meta WHERE key = 'started_at'), \
         (SELECT json_object('trace', l1, 'debug', l2, 'info', l3, 'warn', l4, 'error', l5, \
            'fatal', l6, 'none', i - l1 - l2 - l3 - l4 - l5 - l6) FROM (SELECT \
            COALESCE(SUM(inserted), 0) AS i, COALESCE(SUM(n_trace), 0) AS l1, \
            COALESCE(SUM(n_debug), 0) AS l2, COALESCE(SUM(n_info), 0) AS l3, \
            COALESCE(SUM(n_warn), 0) AS l4, COALESCE(SUM(n_error), 0) AS l5, \
            COALESCE(SUM(n_fatal), 0) AS l6 FROM topic_counters))";

/// `(?, ?, …)` repeated: `rows` groups of `width` placeholders.
pub(super) fn placeholders(rows: usize, width: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; rows].join(", ")
}

/// `INSERT … VALUES (?, …), … ON CONFLICT DO NOTHING RETURNING id, topic, event_id`.
pub(super) fn insert_events_sql(rows: usize) -> String {
    format!(
        "{} VALUES {} ON CONFLICT (topic, event_id) DO NOTHING RETURNING id, topic, event_id",
        sql::INSERT_EVENTS_INTO,
        placeholders(rows, PARAMS_PER_EVENT)
    )
}

/// Splits a migration script into statements: drops `--` comment lines, splits on `;`, and
/// joins a `CREATE TRIGGER` back together up to its `END`.
pub(super) fn split_statements(script: &str) -> Vec<String> {
    let without_comments: String = script
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut statements: Vec<String> = Vec::new();
    let mut trigger: Option<String> = None;
    for piece in without_comments.split(';').map(str::trim) {
        if let Some(mut body) = trigger.take() {
            body.push_str(";\n");
            body.push_str(piece);
            if piece.eq_ignore_ascii_case("END") {
                statements.push(body);
            } else {
                trigger = Some(body);
            }
        } else if piece.len() >= 14 && piece[..14].eq_ignore_ascii_case("CREATE TRIGGER") {
            trigger = Some(piece.to_owned());
        } else if !piece.is_empty() {
            statements.push(piece.to_owned());
        }
    }
    statements.extend(trigger);
    statements
}

#[cfg(test)]
mod tests {
    use super::super::MIGRATIONS;
    use super::*;

    #[test]
    fn migrations_split_into_whole_statements() {
        let statements = split_statements(MIGRATIONS[0].1);
        assert_eq!(statements.len(), 5);
        assert!(statements[0].starts_with("CREATE TABLE IF NOT EXISTS events"));
        assert!(statements[4].starts_with("INSERT INTO meta"));
        let second = split_statements(MIGRATIONS[1].1);
        assert!(
            second
                .iter()
                .any(|s| s.contains("CREATE TABLE IF NOT EXISTS dead_letters"))
        );
        for s in statements.iter().chain(&second) {
            assert!(!s.contains("--"), "{s}");
        }
    }

    #[test]
    fn split_ignores_semicolons_in_comment_lines() {
        let got = split_statements("-- a; b\nSELECT 1;\n\n  -- c;\nSELECT 2");
        assert_eq!(got, vec!["SELECT 1", "SELECT 2"]);
    }

    #[test]
    fn a_trigger_stays_one_statement() {
        let got = split_statements(
            "CREATE TABLE a (x);\nCREATE TRIGGER t AFTER INSERT ON a\nBEGIN\n  \
             -- a comment; inside\n  UPDATE a SET x = 1;\n  DELETE FROM a;\nEND;\nSELECT 1",
        );
        assert_eq!(
            got,
            vec![
                "CREATE TABLE a (x)",
                "CREATE TRIGGER t AFTER INSERT ON a\nBEGIN\n  UPDATE a SET x = 1;\nDELETE FROM a;\nEND",
                "SELECT 1",
            ]
        );
        let apply_one = split_statements(MIGRATIONS[4].1);
        assert_eq!(apply_one.len(), 4, "{apply_one:#?}");
        assert!(apply_one[3].starts_with("CREATE TRIGGER") && apply_one[3].ends_with("END"));
    }

    #[test]
    fn insert_statement_has_five_placeholders_per_row() {
        let text = insert_events_sql(3);
        assert_eq!(text.matches('?').count(), 21);
        assert!(text.ends_with("DO NOTHING RETURNING id, topic, event_id"));
        assert_eq!(placeholders(2, 2), "(?, ?), (?, ?)");
    }
}
