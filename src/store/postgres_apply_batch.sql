WITH input AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
        WITH ORDINALITY AS u(topic, event_id, ts, source, payload, ord)
), ins AS (
    INSERT INTO events (topic, event_id, "timestamp", source, payload)
    SELECT topic, event_id, ts::timestamptz, source, payload::jsonb
    FROM input
    WHERE NOT EXISTS (SELECT 1 FROM consumed_batches WHERE batch_key = $1::text)
    ORDER BY ord
    ON CONFLICT (topic, event_id) DO NOTHING
    RETURNING topic, event_id
), marker AS (
    INSERT INTO consumed_batches (batch_key, received, inserted)
    SELECT $1::text, $7::bigint, count(*) FROM ins
    ON CONFLICT (batch_key) DO NOTHING
    RETURNING inserted
), dups AS (
    SELECT i.topic, i.event_id, i.ord FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.topic = i.topic AND ins.event_id = i.event_id)
    ORDER BY i.ord
    LIMIT 10
)
SELECT (SELECT inserted FROM marker) AS inserted,
       ARRAY(SELECT topic FROM dups ORDER BY ord) AS dup_topics,
       ARRAY(SELECT event_id FROM dups ORDER BY ord) AS dup_event_ids
