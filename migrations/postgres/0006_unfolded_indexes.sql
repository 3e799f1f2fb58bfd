-- edgelog schema, version 6 (PostgreSQL): indexes over the counter rows not yet folded.
-- Maintenance folds the rows of shards 1-15 into shard 0 a bounded chunk at a time
-- (src/store/postgres_sql.rs FOLD_VOLUME and FOLD_TOTALS). Between runs almost every row is
-- in shard 0, so finding the others through the primary key read the whole table on every
-- call: ~2.3 M volume rows at 10 M events. These partial indexes hold only the unfolded
-- rows, so a chunk costs O(chunk) and a call with nothing to fold costs O(1). Writers' upserts
-- change only `n`, never an indexed column, so their updates stay HOT.
CREATE INDEX IF NOT EXISTS volume_counters_unfolded
    ON volume_counters (grain, bucket, topic, level, shard) WHERE shard <> 0;
CREATE INDEX IF NOT EXISTS volume_totals_unfolded
    ON volume_totals (grain, bucket, level, shard) WHERE shard <> 0;
