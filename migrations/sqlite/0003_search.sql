-- edgelog schema, version 3 (SQLite): severity, text search, event-time order and volume
-- counters (issue 16, docs/SEARCH.md). Statements are split on semicolons, so none may
-- contain one. Needs SQLite 3.43 or later with FTS5 (Spin's and edge-host's bundled SQLite).

-- Severity rank 1-6 (trace..fatal), NULL without one; the searchable message the payload
-- carries (message / msg / body), NULL when search reads the whole payload.
ALTER TABLE events ADD COLUMN level INTEGER;
ALTER TABLE events ADD COLUMN message TEXT;

-- Event-time order within a topic, keyset-paged: O(page) at any depth.
CREATE INDEX IF NOT EXISTS events_topic_timestamp_id ON events (topic, "timestamp", id);

-- Stored events per level, in the topic counter rows (/stats, /metrics).
ALTER TABLE topic_counters ADD COLUMN n_trace INTEGER NOT NULL DEFAULT 0;
ALTER TABLE topic_counters ADD COLUMN n_debug INTEGER NOT NULL DEFAULT 0;
ALTER TABLE topic_counters ADD COLUMN n_info INTEGER NOT NULL DEFAULT 0;
ALTER TABLE topic_counters ADD COLUMN n_warn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE topic_counters ADD COLUMN n_error INTEGER NOT NULL DEFAULT 0;
ALTER TABLE topic_counters ADD COLUMN n_fatal INTEGER NOT NULL DEFAULT 0;

-- Stored events per (minute or hour, topic, level); see the PostgreSQL migration.
CREATE TABLE IF NOT EXISTS volume_counters (
    grain  INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    topic  TEXT    NOT NULL,
    level  INTEGER NOT NULL,
    shard  INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (grain, bucket, topic, level, shard)
) WITHOUT ROWID;
INSERT INTO volume_counters (grain, bucket, topic, level, shard, n)
SELECT g.grain, (s - ((s % (60 * g.grain)) + 60 * g.grain) % (60 * g.grain)) / 60, topic, 0, 0, count(*)
FROM (SELECT topic, CAST(strftime('%s', substr("timestamp", 1, 19)) AS INTEGER) AS s FROM events) AS e
CROSS JOIN (SELECT 1 AS grain UNION ALL SELECT 60) AS g
WHERE true
GROUP BY 1, 2, 3
ON CONFLICT (grain, bucket, topic, level, shard) DO NOTHING;

-- Text search: an FTS5 index of three-character pieces (trigram tokenizer: substrings,
-- case-insensitive), contentless (it keeps no copy of the text; rowid = events.id), kept in
-- step with events by the apply and retention transactions.
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(text, content='', contentless_delete=1, tokenize='trigram');
INSERT INTO events_fts (rowid, text) SELECT id, payload FROM events
