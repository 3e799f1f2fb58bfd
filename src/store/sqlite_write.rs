//! The SQLite store's writes built per call: event rows in chunks the parameter limit allows,
//! the markers of a group, marker ages, the volume counter rows, and the one-statement apply of a
//! single event. `apply` and `expire` (in `sqlite.rs`) run them inside their transaction.

use spin_sdk::sqlite3::Value;

use super::super::{Applied, Group, StoreError, VolumeDelta, epoch_minute};
use super::statements::{APPLY_ONE, NOW, VOLUME_ROWS_PER_UPSERT, insert_events_sql, placeholders};
use super::values::{count, int, n, t, text};
use super::{MAX_PARAMS, PARAMS_PER_EVENT, SqliteStore};
use crate::validate::Event;

/// The keys an insert stored, and the smallest id it gave.
type Inserted = (Vec<(String, String)>, Option<i64>);

impl SqliteStore {
    /// Inserts one chunk of events, returning the keys actually inserted and the smallest id.
    pub(super) fn insert_chunk(&self, chunk: &[&Event]) -> Result<Inserted, StoreError> {
        let mut params = Vec::with_capacity(chunk.len() * PARAMS_PER_EVENT);
        for e in chunk {
            params.push(t(e.topic()));
            params.push(t(e.event_id()));
            params.push(t(e.timestamp()));
            params.push(t(e.source()));
            params.push(t(e.payload()));
            params.push(e.level().map_or(Value::Null, |l| Value::Integer(l.rank())));
            params.push(e.message().map_or(Value::Null, t));
        }
        let rows = self.run(&insert_events_sql(chunk.len()), &params)?;
        let mut first: Option<i64> = None;
        let keys = rows
            .rows
            .iter()
            .map(|r| {
                let id = int(r.values.first())?;
                first = Some(first.map_or(id, |f| f.min(id)));
                Ok((text(r.values.get(1))?, text(r.values.get(2))?))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((keys, first))
    }

    /// Adds `delta` events per `(grain, bucket, topic, level)` to the volume rows (shard 0),
    /// and their sums over topics to the all-topic rows.
    pub(super) fn count_volume(&self, rows: &[VolumeDelta<'_>]) -> Result<(), StoreError> {
        for chunk in rows.chunks(VOLUME_ROWS_PER_UPSERT) {
            let statement = format!(
                "INSERT INTO volume_counters (grain, bucket, topic, level, shard, n) VALUES {} \
                 ON CONFLICT (grain, bucket, topic, level, shard) DO UPDATE SET n = n + excluded.n",
                placeholders(chunk.len(), 5).replace("?, ?)", "?, 0, ?)")
            );
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|((grain, bucket, topic, level), delta)| {
                    [
                        Value::Integer(*grain),
                        Value::Integer(*bucket),
                        t(topic),
                        Value::Integer(*level),
                        Value::Integer(*delta),
                    ]
                })
                .collect();
            self.run(&statement, &params)?;
        }
        let mut totals: std::collections::BTreeMap<(i64, i64, i64), i64> = Default::default();
        for ((grain, bucket, _, level), delta) in rows {
            *totals.entry((*grain, *bucket, *level)).or_default() += delta;
        }
        let totals: Vec<_> = totals.into_iter().collect();
        for chunk in totals.chunks(VOLUME_ROWS_PER_UPSERT) {
            let statement = format!(
                "INSERT INTO volume_totals (grain, bucket, level, shard, n) VALUES {} \
                 ON CONFLICT (grain, bucket, level, shard) DO UPDATE SET n = n + excluded.n",
                placeholders(chunk.len(), 4).replace("?, ?)", "?, 0, ?)")
            );
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|((grain, bucket, level), delta)| {
                    [grain, bucket, level, delta].map(|v| Value::Integer(*v))
                })
                .collect();
            self.run(&statement, &params)?;
        }
        Ok(())
    }

    /// Inserts the markers of a group; returns the keys whose marker is new.
    pub(super) fn mark(&self, group: &Group<'_>) -> Result<Vec<String>, StoreError> {
        let mut fresh = Vec::new();
        for chunk in group.batches.chunks(MAX_PARAMS / 2) {
            let statement = format!(
                "INSERT INTO consumed_batches (batch_key, received, inserted) VALUES {} \
                 ON CONFLICT (batch_key) DO NOTHING RETURNING batch_key",
                placeholders(chunk.len(), 2).replace("?)", "?, 0)")
            );
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|b| [t(b.key), n(b.events.len() as u64)])
                .collect();
            for row in self.run(&statement, &params)?.rows {
                fresh.push(text(row.values.first())?);
            }
        }
        if fresh.len() < group.batches.len() {
            let old: Vec<String> = group
                .batches
                .iter()
                .map(|b| b.key.to_owned())
                .filter(|k| !fresh.contains(k))
                .collect();
            self.touch(&old)?;
        }
        Ok(fresh)
    }

    /// Restarts the age of the given keys' markers; returns the keys that have one.
    pub(super) fn touch(&self, keys: &[String]) -> Result<Vec<String>, StoreError> {
        let mut touched = Vec::new();
        for chunk in keys.chunks(MAX_PARAMS) {
            let statement = format!(
                "UPDATE consumed_batches SET consumed_at = {NOW} WHERE batch_key IN ({}) \
                 RETURNING batch_key",
                vec!["?"; chunk.len()].join(", ")
            );
            let params: Vec<Value> = chunk.iter().map(|k| t(k)).collect();
            for row in self.run(&statement, &params)?.rows {
                touched.push(text(row.values.first())?);
            }
        }
        Ok(touched)
    }

    /// One batch of one event (a single publish) in one statement: migration 5's `apply_one`
    /// trigger does what [`EventStore::apply`](super::super::EventStore::apply) does in eight.
    pub(super) fn apply_one(&self, key: &str, e: &Event) -> Result<Applied, StoreError> {
        let params = [
            t(key),
            t(e.topic()),
            t(e.event_id()),
            t(e.timestamp()),
            t(e.source()),
            t(e.payload()),
            e.level().map_or(Value::Null, |l| Value::Integer(l.rank())),
            e.message().map_or(Value::Null, t),
            Value::Integer(epoch_minute(e.timestamp())),
        ];
        let rows = self.run(APPLY_ONE, &params)?;
        let row = rows.rows.first().map(|r| &r.values[..]).unwrap_or_default();
        let (fresh, inserted) = (int(row.first())? == 1, count(int(row.get(1))?));
        let duplicate = fresh && inserted == 0;
        Ok(Applied {
            settled: true,
            received: u64::from(fresh),
            inserted,
            duplicate_sample: if duplicate {
                vec![(e.topic().to_owned(), e.event_id().to_owned())]
            } else {
                Vec::new()
            },
            fresh: if fresh {
                vec![key.to_owned()]
            } else {
                Vec::new()
            },
        })
    }
}
