-- edgelog schema, version 5 (PostgreSQL): the apply statement as a PL/pgSQL function (issue 17).
-- Applied inside the same locked DO block as the others (so the body has its own dollar tag).
--
-- Spin's PostgreSQL host prepares every statement anew (no statement cache), so the server
-- parsed and planned the whole apply CTE on every publish: ~0.6-1.2 ms of planning against
-- ~0.45 ms of execution. PL/pgSQL keeps the plan of each statement of a function for the
-- session (a generic plan after the first few calls), and pooled connections live long: the
-- per-call statement is now `SELECT * FROM edgelog_apply_v5($1, ..., $12)`, cheap to plan.
--
-- This is the ONLY copy of the apply statement (src/store/postgres.rs and lab raw call it).
-- Changing it means a new migration with a new function (edgelog_apply_v6) and the component
-- calling that: a store migrated by a newer component must keep serving older ones until
-- they are replaced, and CREATE OR REPLACE of this one in place would change their meaning.
--
-- Parameters, one row per event of the group unless said otherwise:
--   $1  text[]    queue entry keys, one per batch of the group (marker keys)
--   $2  bigint[]  events received per batch
--   $3  bigint[]  each event's batch, 1-based index into $1
--   $4  text[]    topic          $5 text[] event_id     $6 text[] timestamp (RFC 3339)
--   $7  text[]    source         $8 text[] payload (compact JSON text)
--   $9  smallint  the counter shard of this transaction (one row, not per event)
--   $10 int4[]    level rank 1-6 or NULL
--   $11 text[]    searchable message or NULL
--   $12 text      the dead letter this group re-applies, or NULL: when set, it becomes
--                 'applied' first and nothing is applied unless it was still pending (then
--                 no marker is fresh: not settled). A publish (NULL) never touches it.
-- Parameters are positional ($n) and the result columns are declared with #variable_conflict
-- use_column, so names in the statement always mean table columns, as they did outside.
--
-- Locking order (every writer takes rows in this order, sorted within each step, so two
-- transactions never wait on each other in a cycle): the dead letter ($12), markers by key,
-- events by (topic, event_id), counter rows by topic, volume rows, then the all-topic totals.
-- The function runs inside the caller's one statement, so all of it is one transaction.
CREATE OR REPLACE FUNCTION edgelog_apply_v5(
    text[], bigint[], bigint[], text[], text[], text[], text[], text[], smallint, int4[],
    text[], text
) RETURNS TABLE (
    fresh text[], received bigint, inserted bigint, dup_topics text[], dup_event_ids text[],
    topics bigint, volume_rows bigint
) LANGUAGE plpgsql VOLATILE AS $edgelog_apply$
#variable_conflict use_column
BEGIN
IF $12 IS NOT NULL THEN
    -- The dead-letter guard of a retry. A letter no longer pending (retried or discarded
    -- meanwhile) applies nothing: the row an empty group yields.
    UPDATE dead_letters SET status = 'applied', attempts = attempts + 1
    WHERE id = $12 AND status = 'pending';
    IF NOT FOUND THEN
        RETURN QUERY SELECT '{}'::text[], 0::bigint, 0::bigint, '{}'::text[], '{}'::text[],
                            0::bigint, 0::bigint;
        RETURN;
    END IF;
END IF;
RETURN QUERY
WITH batch AS (
    SELECT * FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS b(key, received, idx)
), marked AS (
    INSERT INTO consumed_batches (batch_key, received, inserted)
    SELECT key, received, 0 FROM batch ORDER BY key
    ON CONFLICT (batch_key) DO UPDATE SET consumed_at = now()
    RETURNING batch_key, (xmax = 0) AS fresh
), input AS (
    SELECT u.topic, u.event_id, u.ts, u.source, u.payload, u.level, u.message, u.ord
    FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $10::int4[], $11::text[])
        WITH ORDINALITY AS u(b, topic, event_id, ts, source, payload, level, message, ord)
    JOIN batch ON batch.idx = u.b
    JOIN marked ON marked.batch_key = batch.key AND marked.fresh
), ins AS (
    INSERT INTO events (topic, event_id, "timestamp", source, payload, level, message)
    SELECT DISTINCT ON (topic, event_id) topic, event_id, ts::timestamptz, source, payload,
           level::smallint, message
    FROM input ORDER BY topic, event_id, ord
    ON CONFLICT (topic, event_id) DO NOTHING
    RETURNING topic, event_id, "timestamp", level
), counted AS (
    INSERT INTO topic_counters (topic, shard, received, inserted, last_event_at,
                                n_trace, n_debug, n_info, n_warn, n_error, n_fatal)
    SELECT r.topic, $9::smallint, r.n, COALESCE(i.n, 0), r.last,
           COALESCE(i.l1, 0), COALESCE(i.l2, 0), COALESCE(i.l3, 0),
           COALESCE(i.l4, 0), COALESCE(i.l5, 0), COALESCE(i.l6, 0)
    FROM (SELECT topic, count(*) AS n, max(ts::timestamptz) AS last FROM input GROUP BY topic) AS r
    LEFT JOIN (SELECT topic, count(*) AS n,
                      count(*) FILTER (WHERE level = 1) AS l1, count(*) FILTER (WHERE level = 2) AS l2,
                      count(*) FILTER (WHERE level = 3) AS l3, count(*) FILTER (WHERE level = 4) AS l4,
                      count(*) FILTER (WHERE level = 5) AS l5, count(*) FILTER (WHERE level = 6) AS l6
               FROM ins GROUP BY topic) AS i USING (topic)
    ORDER BY r.topic
    ON CONFLICT (topic, shard) DO UPDATE SET
        received = topic_counters.received + EXCLUDED.received,
        inserted = topic_counters.inserted + EXCLUDED.inserted,
        last_event_at = GREATEST(topic_counters.last_event_at, EXCLUDED.last_event_at),
        n_trace = topic_counters.n_trace + EXCLUDED.n_trace,
        n_debug = topic_counters.n_debug + EXCLUDED.n_debug,
        n_info = topic_counters.n_info + EXCLUDED.n_info,
        n_warn = topic_counters.n_warn + EXCLUDED.n_warn,
        n_error = topic_counters.n_error + EXCLUDED.n_error,
        n_fatal = topic_counters.n_fatal + EXCLUDED.n_fatal
    RETURNING topic
), volume AS (
    -- After every counter row of the transaction (the sorted join waits for all of them):
    -- a topic's volume rows of this shard are only written under its counter row's lock.
    INSERT INTO volume_counters (grain, bucket, topic, level, shard, n)
    SELECT g.grain, (floor(extract(epoch FROM ins."timestamp") / (60 * g.grain)) * g.grain)::bigint,
           ins.topic, COALESCE(ins.level, 0), $9::smallint, count(*)
    FROM ins CROSS JOIN (VALUES (1), (60)) AS g(grain)
    JOIN (SELECT topic FROM counted ORDER BY topic) AS c ON c.topic = ins.topic
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET
        n = volume_counters.n + EXCLUDED.n
    RETURNING 1
), totals AS (
    -- All topics together, last (after this transaction's topic volume rows), in sorted
    -- order: every writer takes these rows after all its other locks, so no lock cycle.
    INSERT INTO volume_totals (grain, bucket, level, shard, n)
    SELECT g.grain, (floor(extract(epoch FROM ins."timestamp") / (60 * g.grain)) * g.grain)::bigint,
           COALESCE(ins.level, 0), $9::smallint, count(*)
    FROM ins CROSS JOIN (VALUES (1), (60)) AS g(grain)
    CROSS JOIN (SELECT count(*) AS rows FROM volume) AS after_volume
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (grain, bucket, level, shard) DO UPDATE SET
        n = volume_totals.n + EXCLUDED.n
    RETURNING 1
), dups AS (
    SELECT topic, event_id FROM input EXCEPT SELECT topic, event_id FROM ins LIMIT 10
)
SELECT ARRAY(SELECT batch_key FROM marked WHERE fresh) AS fresh,
       (SELECT count(*) FROM input) AS received,
       (SELECT count(*) FROM ins) AS inserted,
       ARRAY(SELECT topic FROM dups) AS dup_topics,
       ARRAY(SELECT event_id FROM dups) AS dup_event_ids,
       (SELECT count(*) FROM counted) AS topics,
       (SELECT count(*) FROM volume) + (SELECT count(*) FROM totals) AS volume_rows;
END
$edgelog_apply$;
