-- edgelog schema, version 1 (SQLite).
-- Applied by src/store/sqlite.rs inside BEGIN IMMEDIATE, one statement at a time:
-- statements are split on ';', so no statement may contain one.

-- Stored events. The first stored copy of a (topic, event_id) wins.
CREATE TABLE IF NOT EXISTS events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    topic        TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    "timestamp"  TEXT NOT NULL,
    source       TEXT NOT NULL,
    payload      TEXT NOT NULL,
    processed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    UNIQUE (topic, event_id)
);

-- Serves WHERE topic = ? AND id < ? ORDER BY id DESC (per-topic keyset paging).
CREATE INDEX IF NOT EXISTS events_topic_id ON events (topic, id);

-- One marker per applied queue entry: makes re-applying an entry a no-op,
-- and its counts are the service's counters (sums, not one hot row).
CREATE TABLE IF NOT EXISTS consumed_batches (
    batch_key   TEXT PRIMARY KEY,
    received    INTEGER NOT NULL,
    inserted    INTEGER NOT NULL,
    consumed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);

-- Facts about the store itself; started_at is the origin of /stats uptime_seconds.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

INSERT INTO meta (key, value)
VALUES ('started_at', strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
ON CONFLICT (key) DO NOTHING;
