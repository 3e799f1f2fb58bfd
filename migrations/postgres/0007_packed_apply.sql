-- edgelog schema, version 7 (PostgreSQL): the apply function with each text column as ONE text
-- (issue 17).
--
-- edgelog_apply_v5 takes a group's six text columns as six text[] parameters: for a 100-event
-- group, 600 strings that the Spin host lifts out of the component one at a time (an
-- allocation, a copy and a UTF-8 check each) and the PostgreSQL client encodes one at a time.
-- edgelog_apply_v7 takes each of those columns as one text, every value preceded by U+001E
-- (RECORD SEPARATOR), and splits it with string_to_array: n values give n + 1 parts, the first
-- empty, dropped by [2:] (so an empty value, or an empty group, needs no special case). In the
-- message column U+001F alone is NULL (the event has no searchable message).
--
-- It then calls edgelog_apply_v5 with the arrays it split, so v5 stays the ONLY copy of the
-- apply statement and both store exactly the same rows. A value that holds U+001E (topics,
-- event ids and sources may hold any character but NUL), or a message that holds U+001F,
-- cannot travel packed: the component sends that group to edgelog_apply_v5 as arrays
-- (src/store/postgres_pack.rs decides, per group).
--
-- Parameters as edgelog_apply_v5's (migration 5), except these, which are text:
--   $4 topic   $5 event_id   $6 timestamp   $7 source   $8 payload   $11 message (U+001F: NULL)
-- Like v5, a change means a new migration with a new function; this one is never replaced.
CREATE OR REPLACE FUNCTION edgelog_apply_v7(
    text[], bigint[], bigint[], text, text, text, text, text, smallint, int4[], text, text
) RETURNS TABLE (
    fresh text[], received bigint, inserted bigint, dup_topics text[], dup_event_ids text[],
    topics bigint, volume_rows bigint
) LANGUAGE plpgsql VOLATILE AS $edgelog_apply_v7$
BEGIN
RETURN QUERY SELECT * FROM edgelog_apply_v5(
    $1, $2, $3,
    (string_to_array($4, E'\x1e'))[2:],
    (string_to_array($5, E'\x1e'))[2:],
    (string_to_array($6, E'\x1e'))[2:],
    (string_to_array($7, E'\x1e'))[2:],
    (string_to_array($8, E'\x1e'))[2:],
    $9, $10,
    (string_to_array($11, E'\x1e', E'\x1f'))[2:],
    $12);
END
$edgelog_apply_v7$;
