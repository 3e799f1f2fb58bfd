WITH batch AS (
    SELECT * FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS b(key, received, idx)
),{SETTLE} marked AS (
    INSERT INTO consumed_batches (batch_key, received, inserted)
    SELECT key, received, 0 FROM batch{SETTLED} ORDER BY key
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
       (SELECT count(*) FROM volume) + (SELECT count(*) FROM totals) AS volume_rows
