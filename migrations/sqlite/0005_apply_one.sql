-- edgelog schema, version 5 (SQLite): a single-event publish in one statement (issue 17).
--
-- `INSERT INTO apply_one (...) VALUES (...) RETURNING (SELECT fresh ...), (SELECT inserted ...)`
-- does for one batch of one event what src/store/sqlite.rs otherwise does in eight statements
-- (BEGIN, the marker, the event, its search row, the topic's counters, volume, volume totals,
-- COMMIT): one host call instead of eight, and one statement is its own transaction. The
-- trigger leaves whether the marker was new and whether the event was stored in the one row
-- of `apply_one_result`, which the statement's RETURNING reads (SQLite evaluates a RETURNING
-- clause after the row's triggers have run; tests/api.rs checks duplicates on every host).
--
-- Statements are split on semicolons, except inside CREATE TRIGGER ... END.

CREATE TABLE IF NOT EXISTS apply_one_result (
    k        INTEGER PRIMARY KEY CHECK (k = 0),
    fresh    INTEGER NOT NULL,
    inserted INTEGER NOT NULL
);
INSERT INTO apply_one_result (k, fresh, inserted) VALUES (0, 0, 0) ON CONFLICT (k) DO NOTHING;

-- minute: the event time in minutes since the epoch (store::epoch_minute).
CREATE VIEW IF NOT EXISTS apply_one
    (batch_key, topic, event_id, "timestamp", source, payload, level, message, minute) AS
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE false;

CREATE TRIGGER IF NOT EXISTS apply_one_insert INSTEAD OF INSERT ON apply_one
BEGIN
    INSERT INTO consumed_batches (batch_key, received, inserted) VALUES (NEW.batch_key, 1, 0)
        ON CONFLICT (batch_key) DO NOTHING;
    UPDATE apply_one_result SET fresh = changes(), inserted = 0;
    -- Applied before: only the marker's age changes (as store::sqlite's `touch`).
    UPDATE consumed_batches SET consumed_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
        WHERE batch_key = NEW.batch_key AND (SELECT fresh FROM apply_one_result) = 0;
    INSERT INTO events (topic, event_id, "timestamp", source, payload, level, message)
        SELECT NEW.topic, NEW.event_id, NEW."timestamp", NEW.source, NEW.payload, NEW.level,
               NEW.message
        FROM apply_one_result WHERE fresh = 1
        ON CONFLICT (topic, event_id) DO NOTHING;
    UPDATE apply_one_result SET inserted = changes();
    INSERT INTO events_fts (rowid, text)
        SELECT last_insert_rowid(), COALESCE(NEW.message, NEW.payload)
        FROM apply_one_result WHERE inserted = 1;
    INSERT INTO topic_counters (topic, shard, received, inserted, last_event_at,
                                n_trace, n_debug, n_info, n_warn, n_error, n_fatal)
        SELECT NEW.topic, 0, 1, inserted, NEW."timestamp",
               inserted * (NEW.level IS 1), inserted * (NEW.level IS 2),
               inserted * (NEW.level IS 3), inserted * (NEW.level IS 4),
               inserted * (NEW.level IS 5), inserted * (NEW.level IS 6)
        FROM apply_one_result WHERE fresh = 1
        ON CONFLICT (topic, shard) DO UPDATE SET
            received = received + excluded.received, inserted = inserted + excluded.inserted,
            last_event_at = max(coalesce(last_event_at, ''), excluded.last_event_at),
            n_trace = n_trace + excluded.n_trace, n_debug = n_debug + excluded.n_debug,
            n_info = n_info + excluded.n_info, n_warn = n_warn + excluded.n_warn,
            n_error = n_error + excluded.n_error, n_fatal = n_fatal + excluded.n_fatal;
    -- Minute and hour buckets: the bucket is the minute rounded down (also before 1970).
    INSERT INTO volume_counters (grain, bucket, topic, level, shard, n)
        SELECT g.grain, NEW.minute - ((NEW.minute % g.grain) + g.grain) % g.grain, NEW.topic,
               COALESCE(NEW.level, 0), 0, 1
        FROM (SELECT 1 AS grain UNION ALL SELECT 60) AS g, apply_one_result WHERE inserted = 1
        ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET n = n + excluded.n;
    INSERT INTO volume_totals (grain, bucket, level, shard, n)
        SELECT g.grain, NEW.minute - ((NEW.minute % g.grain) + g.grain) % g.grain,
               COALESCE(NEW.level, 0), 0, 1
        FROM (SELECT 1 AS grain UNION ALL SELECT 60) AS g, apply_one_result WHERE inserted = 1
        ON CONFLICT (grain, bucket, level, shard) DO UPDATE SET n = n + excluded.n;
END;
