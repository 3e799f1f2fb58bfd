-- edgelog schema, version 4 (PostgreSQL): volume over all topics (docs/SEARCH.md "Volume").
-- /volume without a topic sums these rows instead of every topic's: O(buckets × levels)
-- whatever the number of topics. Written in the apply transaction after the topic volume
-- rows (same shard), lowered by retention, folded into shard 0 by maintenance.
CREATE TABLE IF NOT EXISTS volume_totals (
    grain  SMALLINT NOT NULL,
    bucket BIGINT   NOT NULL,
    level  SMALLINT NOT NULL,
    shard  SMALLINT NOT NULL,
    n      BIGINT   NOT NULL,
    PRIMARY KEY (grain, bucket, level, shard)
);
INSERT INTO volume_totals (grain, bucket, level, shard, n)
SELECT grain, bucket, level, 0, SUM(n) FROM volume_counters GROUP BY 1, 2, 3
ON CONFLICT (grain, bucket, level, shard) DO NOTHING;
