-- edgelog schema, version 3 (PostgreSQL): severity, text search, event-time order, live tail
-- and volume counters (issue 16, docs/SEARCH.md). Applied inside the same locked DO block.
-- On a large store this builds indexes over every stored event, once: publishes made
-- meanwhile wait for the lock or are queued (202) and applied afterwards.

-- Severity rank 1-6 (trace..fatal), NULL without one; the searchable message the payload
-- carries (message / msg / body), NULL when search reads the whole payload.
ALTER TABLE events ADD COLUMN IF NOT EXISTS level SMALLINT;
ALTER TABLE events ADD COLUMN IF NOT EXISTS message TEXT;
-- The inserting transaction: the live tail walks (tx, id), because ids are taken before
-- commit and a smaller id can become visible after a larger one.
ALTER TABLE events ADD COLUMN IF NOT EXISTS tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS events_tx_id ON events (tx, id);

-- Event-time order within a topic, keyset-paged: O(page) at any depth.
CREATE INDEX IF NOT EXISTS events_topic_timestamp_id ON events (topic, "timestamp", id);

-- Stored events per level, in the topic counter rows (/stats, /metrics).
ALTER TABLE topic_counters ADD COLUMN IF NOT EXISTS n_trace BIGINT NOT NULL DEFAULT 0;
ALTER TABLE topic_counters ADD COLUMN IF NOT EXISTS n_debug BIGINT NOT NULL DEFAULT 0;
ALTER TABLE topic_counters ADD COLUMN IF NOT EXISTS n_info BIGINT NOT NULL DEFAULT 0;
ALTER TABLE topic_counters ADD COLUMN IF NOT EXISTS n_warn BIGINT NOT NULL DEFAULT 0;
ALTER TABLE topic_counters ADD COLUMN IF NOT EXISTS n_error BIGINT NOT NULL DEFAULT 0;
ALTER TABLE topic_counters ADD COLUMN IF NOT EXISTS n_fatal BIGINT NOT NULL DEFAULT 0;

-- Stored events per (minute or hour, topic, level): /volume sums these, never the events.
-- grain 1 = a minute row, 60 = an hour row; bucket = its first minute since the Unix epoch;
-- level 0 = no level; shard as in topic_counters (the transaction's, folded by maintenance).
CREATE TABLE IF NOT EXISTS volume_counters (
    grain  SMALLINT NOT NULL,
    bucket BIGINT   NOT NULL,
    topic  TEXT     NOT NULL,
    level  SMALLINT NOT NULL,
    shard  SMALLINT NOT NULL,
    n      BIGINT   NOT NULL,
    PRIMARY KEY (grain, bucket, topic, level, shard)
);
INSERT INTO volume_counters (grain, bucket, topic, level, shard, n)
SELECT g.grain, (floor(extract(epoch FROM e."timestamp") / (60 * g.grain)) * g.grain)::bigint,
       e.topic, 0, 0, count(*)
FROM events AS e CROSS JOIN (VALUES (1), (60)) AS g(grain)
GROUP BY 1, 2, 3
ON CONFLICT (grain, bucket, topic, level, shard) DO NOTHING;

-- Text search: ILIKE '%word%' on the searchable text, served by a pg_trgm GIN index
-- (substrings of identifiers, any language; tsvector would split ERR_CONN_RESET and
-- req-7f3a into words and miss substrings). Without pg_trgm (not installed, or no right to
-- create it) search still works, by scanning: the service must not fail to start for that.
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX IF NOT EXISTS events_search_trgm
        ON events USING gin ((COALESCE(message, payload)) gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'edgelog: no trigram index for search (%); q= will scan events', SQLERRM;
END;
