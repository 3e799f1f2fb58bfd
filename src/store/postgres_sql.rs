//! The PostgreSQL statements of the event store that are fixed text: apply (a call of the
//! functions migrations 5 and 7 create), dead letters, retention, marker compaction, counter folding
//! and the `/stats` snapshot. Timestamps leave the database as text in the service's one format.

/// Renders a `timestamptz` column in the service's one timestamp format.
macro_rules! utc_text {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

/// A JSON object of per-level counts from six level sums and the stored total (`none` is the rest).
macro_rules! level_json {
    ($t:literal, $d:literal, $i:literal, $w:literal, $e:literal, $f:literal, $all:literal) => {
        concat!(
            "json_build_object('trace', ",
            $t,
            ", 'debug', ",
            $d,
            ", 'info', ",
            $i,
            ", 'warn', ",
            $w,
            ", 'error', ",
            $e,
            ", 'fatal', ",
            $f,
            ", 'none', ",
            $all,
            " - ",
            $t,
            " - ",
            $d,
            " - ",
            $i,
            " - ",
            $w,
            " - ",
            $e,
            " - ",
            $f,
            ")"
        )
    };
}

pub(super) const LIST_COLUMNS: &str = concat!(
    "id, topic, event_id, ",
    utc_text!("\"timestamp\""),
    ", source, payload, ",
    utc_text!("processed_at"),
    ", level"
);

/// Applies a group of batches in ONE statement (one transaction) by calling the apply function
/// of migration 5 (`migrations/postgres/0005_apply_function.sql`, the only copy of its SQL)
/// through migration 7's `edgelog_apply_v7`, which takes each text column packed into one text
/// (`postgres_pack.rs`): markers first (a marker that already existed means that batch was
/// applied before: its events are skipped and the marker's age restarts), then the events of
/// the fresh batches in `(topic, event_id)` order, then their counts per topic into one counter
/// shard. `$12` is the dead letter the group re-applies, or NULL.
pub(super) const APPLY: &str = "SELECT * FROM edgelog_apply_v7($1, $2, $3, $4, $5, $6, $7, $8, $9, \
     $10, $11, $12)";

/// [`APPLY`] with the text columns as arrays, for a group whose text cannot be packed.
pub(super) const APPLY_ARRAYS: &str = "SELECT * FROM edgelog_apply_v5($1, $2, $3, $4, $5, $6, $7, \
     $8, $9, $10, $11, $12)";

/// Moves an entry aside: its marker and its dead letter, or nothing if it was applied meanwhile.
pub(super) const BURY: &str = "WITH m AS (INSERT INTO consumed_batches (batch_key, received, inserted) \
     VALUES ($1, $2, 0) ON CONFLICT (batch_key) DO NOTHING RETURNING batch_key) \
     INSERT INTO dead_letters (id, received, reason, batch, attempts) \
     SELECT $3, $2, $4, $5, $6 FROM m ON CONFLICT (id) DO NOTHING";

pub(super) const RECORD_FAILURE: &str = "INSERT INTO entry_failures (batch_key, attempts, last_error) \
     VALUES ($1, 1, $2) ON CONFLICT (batch_key) DO UPDATE SET \
     attempts = entry_failures.attempts + 1, last_error = EXCLUDED.last_error, updated_at = now() \
     RETURNING attempts";

pub(super) const LETTER_COLUMNS: &str = concat!(
    "seq, id, received, reason, attempts, ",
    utc_text!("failed_at"),
    ", status"
);

pub(super) const DISCARD: &str = "WITH u AS (UPDATE dead_letters SET status = 'discarded' \
     WHERE id = $1 AND status = 'pending' RETURNING status) \
     SELECT COALESCE((SELECT status FROM u), (SELECT status FROM dead_letters WHERE id = $1))";

/// Deletes the oldest `$2` events (by id) if stored before `$1`, counting them per topic.
/// The events leave `/volume` too: their volume rows of shard 0 go down, after the counter
/// rows (the sorted join), like a publisher's.
pub(super) const EXPIRE: &str = "WITH gone AS (DELETE FROM events WHERE id IN (\
     SELECT id FROM (SELECT id, processed_at FROM events ORDER BY id LIMIT $2) AS head \
     WHERE processed_at < $1::text::timestamptz) RETURNING topic, \"timestamp\", level), \
     per_topic AS (SELECT topic, count(*) AS n FROM gone GROUP BY topic), \
     counted AS (INSERT INTO topic_counters (topic, shard, expired) \
     SELECT topic, 0, n FROM per_topic ORDER BY topic \
     ON CONFLICT (topic, shard) DO UPDATE SET expired = topic_counters.expired + EXCLUDED.expired \
     RETURNING topic), \
     volume AS (INSERT INTO volume_counters (grain, bucket, topic, level, shard, n) \
     SELECT g.grain, (floor(extract(epoch FROM gone.\"timestamp\") / (60 * g.grain)) * g.grain)::bigint, \
     gone.topic, COALESCE(gone.level, 0), 0, -count(*) \
     FROM gone CROSS JOIN (VALUES (1), (60)) AS g(grain) \
     JOIN (SELECT topic FROM counted ORDER BY topic) AS c ON c.topic = gone.topic \
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 \
     ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET n = volume_counters.n + EXCLUDED.n \
     RETURNING 1), \
     totals AS (INSERT INTO volume_totals (grain, bucket, level, shard, n) \
     SELECT g.grain, (floor(extract(epoch FROM gone.\"timestamp\") / (60 * g.grain)) * g.grain)::bigint, \
     COALESCE(gone.level, 0), 0, -count(*) \
     FROM gone CROSS JOIN (VALUES (1), (60)) AS g(grain) \
     CROSS JOIN (SELECT count(*) FROM volume) AS after_volume \
     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 \
     ON CONFLICT (grain, bucket, level, shard) DO UPDATE SET n = volume_totals.n + EXCLUDED.n \
     RETURNING 1) \
     SELECT count(*) + 0 * (SELECT count(*) FROM volume) + 0 * (SELECT count(*) FROM totals) FROM gone";

pub(super) const COMPACT: &str = "WITH old AS (SELECT batch_key FROM consumed_batches \
     WHERE consumed_at < $1::text::timestamptz AND NOT (batch_key = ANY($2::text[])) \
     ORDER BY consumed_at LIMIT $3), \
     gone AS (DELETE FROM consumed_batches WHERE batch_key IN (SELECT batch_key FROM old) \
     RETURNING batch_key), \
     failures AS (DELETE FROM entry_failures WHERE batch_key IN (SELECT batch_key FROM gone)) \
     SELECT count(*) FROM gone";

/// Folds up to `$1` counter rows of other shards into shard 0, locking rows in `(topic, shard)`
/// order like publishers do, in one statement: a snapshot sees the counters before or after,
/// never half-way. Their volume rows fold separately ([`FOLD_VOLUME`]): moving every volume row
/// of the picked pairs here made one statement move ~700 k rows at 10 M events, past the
/// statement limit on every call.
pub(super) const FOLD: &str = "WITH picked AS (SELECT topic, shard FROM topic_counters WHERE shard <> 0 \
     ORDER BY topic, shard LIMIT $1 FOR UPDATE), \
     moved AS (DELETE FROM topic_counters c USING picked p \
     WHERE c.topic = p.topic AND c.shard = p.shard \
     RETURNING c.topic, c.received, c.inserted, c.expired, c.last_event_at, \
     c.n_trace, c.n_debug, c.n_info, c.n_warn, c.n_error, c.n_fatal), \
     folded AS (INSERT INTO topic_counters (topic, shard, received, inserted, expired, last_event_at, \
     n_trace, n_debug, n_info, n_warn, n_error, n_fatal) \
     SELECT topic, 0, SUM(received), SUM(inserted), SUM(expired), MAX(last_event_at), \
     SUM(n_trace), SUM(n_debug), SUM(n_info), SUM(n_warn), SUM(n_error), SUM(n_fatal) \
     FROM moved GROUP BY topic ORDER BY topic \
     ON CONFLICT (topic, shard) DO UPDATE SET \
     received = topic_counters.received + EXCLUDED.received, \
     inserted = topic_counters.inserted + EXCLUDED.inserted, \
     expired = topic_counters.expired + EXCLUDED.expired, \
     last_event_at = GREATEST(topic_counters.last_event_at, EXCLUDED.last_event_at), \
     n_trace = topic_counters.n_trace + EXCLUDED.n_trace, \
     n_debug = topic_counters.n_debug + EXCLUDED.n_debug, \
     n_info = topic_counters.n_info + EXCLUDED.n_info, \
     n_warn = topic_counters.n_warn + EXCLUDED.n_warn, \
     n_error = topic_counters.n_error + EXCLUDED.n_error, \
     n_fatal = topic_counters.n_fatal + EXCLUDED.n_fatal RETURNING 1) \
     SELECT count(*) + 0 * (SELECT count(*) FROM folded) FROM moved";

/// Folds up to `$1` per-topic volume rows of other shards into shard 0, in one statement,
/// found through the partial index of migration 6. It takes no counter row: a writer holding
/// one of these rows already holds all its earlier locks and waits only for later volume rows
/// (sorted, the order taken here within a shard) and the totals, which this never takes, so
/// no lock cycle. A `/volume` snapshot sees each row's count in one shard or the other.
pub(super) const FOLD_VOLUME: &str = "WITH picked AS (SELECT grain, bucket, topic, level, shard \
     FROM volume_counters WHERE shard <> 0 ORDER BY grain, bucket, topic, level, shard \
     LIMIT $1 FOR UPDATE), \
     moved AS (DELETE FROM volume_counters v USING picked p WHERE v.grain = p.grain \
     AND v.bucket = p.bucket AND v.topic = p.topic AND v.level = p.level AND v.shard = p.shard \
     RETURNING v.grain, v.bucket, v.topic, v.level, v.n), \
     folded AS (INSERT INTO volume_counters (grain, bucket, topic, level, shard, n) \
     SELECT grain, bucket, topic, level, 0, SUM(n) FROM moved \
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 \
     ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET \
     n = volume_counters.n + EXCLUDED.n RETURNING 1) \
     SELECT count(*) + 0 * (SELECT count(*) FROM folded) FROM moved";

/// Folds up to `$1` all-topic volume rows of other shards into shard 0, in one statement.
/// These rows are the last any writer locks, so taking them here (sorted) adds no cycle.
pub(super) const FOLD_TOTALS: &str = "WITH picked AS (SELECT grain, bucket, level, shard \
     FROM volume_totals WHERE shard <> 0 ORDER BY grain, bucket, level, shard LIMIT $1 FOR UPDATE), \
     moved AS (DELETE FROM volume_totals v USING picked p WHERE v.grain = p.grain \
     AND v.bucket = p.bucket AND v.level = p.level AND v.shard = p.shard \
     RETURNING v.grain, v.bucket, v.level, v.n), \
     folded AS (INSERT INTO volume_totals (grain, bucket, level, shard, n) \
     SELECT grain, bucket, level, 0, SUM(n) FROM moved GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 \
     ON CONFLICT (grain, bucket, level, shard) DO UPDATE SET n = volume_totals.n + EXCLUDED.n \
     RETURNING 1) \
     SELECT count(*) + 0 * (SELECT count(*) FROM folded) FROM moved";

pub(super) const TOUCH: &str = "UPDATE consumed_batches SET consumed_at = now() \
     WHERE batch_key = ANY($1::text[]) RETURNING batch_key";

/// Counters in one grouped pass over the counter rows (topics x shards), then the totals,
/// the per-topic page and the markers of the listed keys, all in one statement (one snapshot).
/// The page comes as two arrays: the topics (column 6), and [`TOPIC_NUMBERS`] columns of numbers
/// one after the other (column 10: received, stored, expired, the last event time in µs since
/// the epoch, then the six level counts, each a run of one number per topic): building JSON per topic (`to_char`, `json_build_object`, `json_agg`) took
/// ~6 of the statement's 10 ms with 1,000 topics, and the component parsed it back. The sums
/// are cast to `bigint` once, in `per` (numeric casts per array element cost another 2 ms).
pub(super) const SNAPSHOT: &str = concat!(
    "WITH per AS (SELECT topic, SUM(received)::bigint AS r, SUM(inserted)::bigint AS i, \
       SUM(expired)::bigint AS x, (extract(epoch FROM MAX(last_event_at)) * 1000000)::bigint AS l, \
       SUM(n_trace)::bigint AS l1, SUM(n_debug)::bigint AS l2, SUM(n_info)::bigint AS l3, \
       SUM(n_warn)::bigint AS l4, SUM(n_error)::bigint AS l5, SUM(n_fatal)::bigint AS l6 \
       FROM topic_counters GROUP BY topic), \
     page AS (SELECT *, row_number() OVER (ORDER BY topic) AS n FROM per \
       WHERE topic <> '' AND ($2::text IS NULL OR topic = $2) ORDER BY topic LIMIT $3), \
     dl AS (SELECT COALESCE(SUM(received) FILTER (WHERE status <> 'applied'), 0)::bigint AS dead, \
       count(*) FILTER (WHERE status = 'pending') AS pending FROM dead_letters) \
     SELECT (SELECT COALESCE(SUM(r), 0)::bigint FROM per), \
     (SELECT COALESCE(SUM(i), 0)::bigint FROM per), \
     (SELECT COALESCE(SUM(x), 0)::bigint FROM per), \
     (SELECT dead FROM dl), (SELECT pending FROM dl), \
     (SELECT count(*) FROM per WHERE topic <> ''), \
     ARRAY(SELECT topic FROM page ORDER BY n), \
     ARRAY(SELECT batch_key FROM consumed_batches WHERE batch_key = ANY($1::text[])), ",
    "(SELECT value FROM meta WHERE key = 'started_at'), (SELECT ",
    level_json!(
        "COALESCE(SUM(l1), 0)",
        "COALESCE(SUM(l2), 0)",
        "COALESCE(SUM(l3), 0)",
        "COALESCE(SUM(l4), 0)",
        "COALESCE(SUM(l5), 0)",
        "COALESCE(SUM(l6), 0)",
        "COALESCE(SUM(i), 0)"
    ),
    "::text FROM per), \
     (SELECT COALESCE(array_agg(r ORDER BY n) || array_agg(i ORDER BY n) \
       || array_agg(x ORDER BY n) || array_agg(l ORDER BY n) || array_agg(l1 ORDER BY n) \
       || array_agg(l2 ORDER BY n) || array_agg(l3 ORDER BY n) || array_agg(l4 ORDER BY n) \
       || array_agg(l5 ORDER BY n) || array_agg(l6 ORDER BY n), '{}') FROM page)"
);

/// Numbers per topic in the snapshot's page array (see [`SNAPSHOT`]).
pub(super) const TOPIC_NUMBERS: usize = 10;
