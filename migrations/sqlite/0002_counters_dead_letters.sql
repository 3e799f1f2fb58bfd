-- edgelog schema, version 2 (SQLite): maintained counters, dead letters, query
-- indexes. Statements are split on semicolons, so none may contain one.

-- GET /events filters: source (keyset by id) and the event-time range.
CREATE INDEX IF NOT EXISTS events_source_id ON events (source, id);
CREATE INDEX IF NOT EXISTS events_timestamp_id ON events ("timestamp", id);

-- Counters per topic (SQLite has one writer, so one shard). /stats sums these
-- rows, never the history.
CREATE TABLE IF NOT EXISTS topic_counters (
    topic         TEXT    NOT NULL,
    shard         INTEGER NOT NULL,
    received      INTEGER NOT NULL DEFAULT 0,
    inserted      INTEGER NOT NULL DEFAULT 0,
    expired       INTEGER NOT NULL DEFAULT 0,
    last_event_at TEXT,
    PRIMARY KEY (topic, shard)
) WITHOUT ROWID;

-- Backfill from version 1 (see the PostgreSQL migration for the '' row).
INSERT INTO topic_counters (topic, shard, received, inserted, last_event_at)
SELECT topic, 0, count(*), count(*), max("timestamp") FROM events WHERE true GROUP BY topic
ON CONFLICT (topic, shard) DO NOTHING;
INSERT INTO topic_counters (topic, shard, received, inserted)
SELECT '', 0, d, 0
FROM (SELECT COALESCE(SUM(received), 0) - (SELECT count(*) FROM events) AS d FROM consumed_batches) AS backlog
WHERE d > 0
ON CONFLICT (topic, shard) DO NOTHING;

CREATE INDEX IF NOT EXISTS consumed_batches_consumed_at ON consumed_batches (consumed_at);

-- Queue entries that can never be applied, moved aside with their reason.
CREATE TABLE IF NOT EXISTS dead_letters (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT    NOT NULL UNIQUE,
    received  INTEGER NOT NULL,
    reason    TEXT    NOT NULL,
    batch     TEXT    NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 1,
    status    TEXT    NOT NULL DEFAULT 'pending',
    failed_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);

CREATE TABLE IF NOT EXISTS entry_failures (
    batch_key  TEXT    PRIMARY KEY,
    attempts   INTEGER NOT NULL,
    last_error TEXT    NOT NULL,
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
)
