-- edgelog schema, version 4 (SQLite): volume over all topics; see the PostgreSQL migration.
CREATE TABLE IF NOT EXISTS volume_totals (
    grain  INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    level  INTEGER NOT NULL,
    shard  INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (grain, bucket, level, shard)
) WITHOUT ROWID;
INSERT INTO volume_totals (grain, bucket, level, shard, n)
SELECT grain, bucket, level, 0, SUM(n) FROM volume_counters WHERE true GROUP BY 1, 2, 3
ON CONFLICT (grain, bucket, level, shard) DO NOTHING
