-- edgelog schema, version 1 (PostgreSQL).
-- Applied by src/store/postgres.rs as the body of one DO block, after
-- pg_advisory_xact_lock: the whole migration is one transaction, and concurrent
-- first requests wait for each other instead of racing.

-- Stored events. The first stored copy of a (topic, event_id) wins.
CREATE TABLE IF NOT EXISTS events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        TEXT        NOT NULL,
    event_id     TEXT        NOT NULL,
    "timestamp"  TIMESTAMPTZ NOT NULL,
    source       TEXT        NOT NULL,
    payload      JSONB       NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_topic_event_id_key UNIQUE (topic, event_id)
);

-- Serves WHERE topic = $1 AND id < $2 ORDER BY id DESC (per-topic keyset paging).
CREATE INDEX IF NOT EXISTS events_topic_id ON events (topic, id);

-- One marker per applied queue entry: makes re-applying an entry a no-op,
-- and its counts are the service's counters (sums, not one hot row).
CREATE TABLE IF NOT EXISTS consumed_batches (
    batch_key   TEXT        PRIMARY KEY,
    received    BIGINT      NOT NULL,
    inserted    BIGINT      NOT NULL,
    consumed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Facts about the store itself; started_at is the origin of /stats uptime_seconds.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

INSERT INTO meta (key, value)
VALUES ('started_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
ON CONFLICT (key) DO NOTHING;
