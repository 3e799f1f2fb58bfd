WITH batch AS (
    SELECT * FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS b(key, received, idx)
),{SETTLE} marked AS (
    INSERT INTO consumed_batches (batch_key, received, inserted)
    SELECT key, received, 0 FROM batch{SETTLED} ORDER BY key
    ON CONFLICT (batch_key) DO UPDATE SET consumed_at = now()
    RETURNING batch_key, (xmax = 0) AS fresh
), input AS (
    SELECT u.topic, u.event_id, u.ts, u.source, u.payload, u.ord
    FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
        WITH ORDINALITY AS u(b, topic, event_id, ts, source, payload, ord)
    JOIN batch ON batch.idx = u.b
    JOIN marked ON marked.batch_key = batch.key AND marked.fresh
), ins AS (
    INSERT INTO events (topic, event_id, "timestamp", source, payload)
    SELECT DISTINCT ON (topic, event_id) topic, event_id, ts::timestamptz, source, payload
    FROM input ORDER BY topic, event_id, ord
    ON CONFLICT (topic, event_id) DO NOTHING
    RETURNING topic, event_id
), counted AS (
    INSERT INTO topic_counters (topic, shard, received, inserted, last_event_at)
    SELECT r.topic, $9::smallint, r.n, COALESCE(i.n, 0), r.last
    FROM (SELECT topic, count(*) AS n, max(ts::timestamptz) AS last FROM input GROUP BY topic) AS r
    LEFT JOIN (SELECT topic, count(*) AS n FROM ins GROUP BY topic) AS i USING (topic)
    ORDER BY r.topic
    ON CONFLICT (topic, shard) DO UPDATE SET
        received = topic_counters.received + EXCLUDED.received,
        inserted = topic_counters.inserted + EXCLUDED.inserted,
        last_event_at = GREATEST(topic_counters.last_event_at, EXCLUDED.last_event_at)
    RETURNING 1
), dups AS (
    SELECT topic, event_id FROM input EXCEPT SELECT topic, event_id FROM ins LIMIT 10
)
SELECT ARRAY(SELECT batch_key FROM marked WHERE fresh) AS fresh,
       (SELECT count(*) FROM input) AS received,
       (SELECT count(*) FROM ins) AS inserted,
       ARRAY(SELECT topic FROM dups) AS dup_topics,
       ARRAY(SELECT event_id FROM dups) AS dup_event_ids,
       (SELECT count(*) FROM counted) AS topics
