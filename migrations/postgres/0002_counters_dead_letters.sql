-- edgelog schema, version 2 (PostgreSQL): payload as text, maintained counters,
-- dead letters, query indexes. Applied inside the same locked DO block as version 1.

-- Payloads are kept as the sender's compact JSON text, byte for byte: jsonb refused
-- numbers outside its range (1e999999 -> SQLSTATE 22003, a poison entry) and wrote
-- 1e131071 out as 131,072 digits. Text is also cheaper to insert.
ALTER TABLE events ALTER COLUMN payload TYPE TEXT USING payload::text;

-- GET /events filters: source (keyset by id) and the event-time range.
CREATE INDEX IF NOT EXISTS events_source_id ON events (source, id);
CREATE INDEX IF NOT EXISTS events_timestamp_id ON events ("timestamp", id);

-- Counters, per topic, in a few shards so concurrent batches of one topic rarely
-- wait on the same row. /stats sums (topics x shards) rows, never the history.
CREATE TABLE IF NOT EXISTS topic_counters (
    topic         TEXT        NOT NULL,
    shard         SMALLINT    NOT NULL,
    received      BIGINT      NOT NULL DEFAULT 0,
    inserted      BIGINT      NOT NULL DEFAULT 0,
    expired       BIGINT      NOT NULL DEFAULT 0,
    last_event_at TIMESTAMPTZ,
    PRIMARY KEY (topic, shard)
);

-- Backfill from version 1: stored events per topic; duplicates counted before the
-- upgrade cannot be attributed to a topic and go to the row of topic '' (not a
-- valid topic, so never shown per topic; included in the totals).
INSERT INTO topic_counters (topic, shard, received, inserted, last_event_at)
SELECT topic, 0, count(*), count(*), max("timestamp") FROM events WHERE true GROUP BY topic
ON CONFLICT (topic, shard) DO NOTHING;
INSERT INTO topic_counters (topic, shard, received, inserted)
SELECT '', 0, d, 0
FROM (SELECT COALESCE(SUM(received), 0) - (SELECT count(*) FROM events) AS d FROM consumed_batches) AS backlog
WHERE d > 0
ON CONFLICT (topic, shard) DO NOTHING;

-- Markers are now only "this entry was applied" flags; maintenance deletes those
-- older than the marker horizon (see docs/DESIGN.md).
CREATE INDEX IF NOT EXISTS consumed_batches_consumed_at ON consumed_batches (consumed_at);

-- Queue entries that can never be applied, moved aside with their reason.
CREATE TABLE IF NOT EXISTS dead_letters (
    seq       BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id        TEXT        NOT NULL UNIQUE,
    received  BIGINT      NOT NULL,
    reason    TEXT        NOT NULL,
    batch     TEXT        NOT NULL,
    attempts  INTEGER     NOT NULL DEFAULT 1,
    status    TEXT        NOT NULL DEFAULT 'pending',
    failed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Failed attempts of entries whose error is neither clearly transient nor clearly
-- permanent: after a few, the entry becomes a dead letter.
CREATE TABLE IF NOT EXISTS entry_failures (
    batch_key  TEXT        PRIMARY KEY,
    attempts   INTEGER     NOT NULL,
    last_error TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
