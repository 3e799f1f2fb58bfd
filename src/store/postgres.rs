//! PostgreSQL dialect of the event store, over Spin's `spin:postgres@4.0.0`.
//!
//! Every write is ONE statement, which Postgres runs as one transaction (a guest that
//! dies mid-transaction must not hand a pooled connection back inside one): `apply`
//! is a single data-modifying CTE over arrays, and migrations are a single `DO` block.
//! Timestamps travel as text and are cast to `timestamptz` on the way in and rendered with
//! `to_char` on the way out, because Spin's Postgres host maps `timestamptz` to a naive
//! date-time.
//!
//! The apply CTE lives in the database, as the PL/pgSQL function `edgelog_apply_v5` of
//! migration 5 (its only copy), and `apply` sends `SELECT * FROM edgelog_apply_v7($1..$12)`:
//! migration 7's function takes each text column as one text (`postgres_pack.rs`) and calls
//! `_v5` with the arrays it splits; a group whose text cannot be packed calls `_v5` directly.
//! Spin 4.0.2's host prepares every statement anew (`query_raw` on the statement text, no
//! statement cache), so the server used to parse and plan the whole CTE on every publish
//! (0.6-1.2 ms of planning against ~0.45 ms of execution); PL/pgSQL keeps its statements' plans
//! for the session (a generic plan after five calls) and Spin's pooled connections live long,
//! so only the one-line call is planned per request, on every host (edge-host's default
//! statement cache, which Spin lacks, then saves little; the call costs PL/pgSQL's ~40 µs).
//! A dead-letter retry is the same call with `$12` set (NULL otherwise): the function then
//! settles the letter first (`UPDATE … WHERE id = $12 AND status = 'pending'`) and applies
//! nothing unless it was pending, so a publish never touches `dead_letters` (in one CTE with
//! the rest, the NULL guard cost every publish ~30 µs of PostgreSQL CPU). A change to the
//! statement is a new migration with a new function (`_v8`), so a newer component's migration
//! never changes what an older one still running calls.
//!
//! Every query yields at least one row: Spin 4.0.2's host never answers a query with an empty
//! result, so statements that may match nothing go through `PostgresStore::rows`.

use spin_sdk::pg4::{Connection, DbValue, Decode, ParameterValue, RowSet};

#[path = "postgres_error.rs"]
mod errors;
#[path = "postgres_migrate.rs"]
mod migrate;
#[path = "postgres_pack.rs"]
mod pack;
#[path = "postgres_sql.rs"]
mod statements;

use errors::pg_error;
use migrate::{MIGRATIONS, migration_block};
use statements::*;

use super::query::{self, Dialect};
use super::sql::{self, Param};
use super::{
    Applied, DeadLetter, ErrorKind, EventQuery, EventStore, Folded, Group, LevelCounts,
    NewDeadLetter, Snapshot, StoreError, StoredEvent, TailCursor, TailPage, TopicFilter,
    TopicStats, VolumeCell, VolumeQuery,
};
use crate::validate::{Level, render_utc};

/// The event store on PostgreSQL.
pub struct PostgresStore {
    db: Connection,
}

fn decode<T: Decode>(row: &[DbValue], i: usize) -> Result<T, StoreError> {
    let value = row.get(i).unwrap_or(&DbValue::DbNull);
    T::decode(value).map_err(|e| StoreError::new("unexpected postgres value", e.to_string()))
}

fn bind(p: &Param<'_>) -> ParameterValue {
    match p {
        Param::Text(s) => ParameterValue::Str((*s).to_owned()),
        Param::Int(n) => ParameterValue::Int64(*n),
        Param::Owned(s) => ParameterValue::Str(s.clone()),
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn text(s: &str) -> ParameterValue {
    ParameterValue::Str(s.to_owned())
}

/// A message as PostgreSQL `text` can hold it (no NUL); copied once, and searched only when
/// it has one (payload strings never do: validation refuses `\u0000`).
fn without_nul(m: &str) -> String {
    if m.as_bytes().contains(&0) {
        m.replace('\0', "")
    } else {
        m.to_owned()
    }
}

fn int(n: u64) -> ParameterValue {
    ParameterValue::Int64(i64::try_from(n).unwrap_or(i64::MAX))
}

fn text_array<'a>(values: impl Iterator<Item = &'a str>) -> ParameterValue {
    ParameterValue::ArrayStr(values.map(|s| Some(s.to_owned())).collect())
}

fn strings(row: &[DbValue], i: usize) -> Result<Vec<String>, StoreError> {
    Ok(decode::<Vec<Option<String>>>(row, i)?
        .into_iter()
        .flatten()
        .collect())
}

/// The snapshot's per-topic page from its two arrays (see [`SNAPSHOT`]).
fn topic_page(
    topics: Vec<String>,
    numbers: Vec<Option<i64>>,
) -> Result<Vec<TopicStats>, StoreError> {
    if numbers.len() != topics.len() * TOPIC_NUMBERS {
        return Err(StoreError::new(
            "unexpected postgres value",
            format!("{} numbers for {} topics", numbers.len(), topics.len()),
        ));
    }
    let runs = topics.len();
    Ok(topics
        .into_iter()
        .enumerate()
        .map(|(t, topic)| {
            let number = |k: usize| numbers[k * runs + t];
            let at = |k: usize| count(number(k).unwrap_or(0));
            let received = at(0);
            let unique_processed = at(1);
            let levels = LevelCounts {
                trace: at(4),
                debug: at(5),
                info: at(6),
                warn: at(7),
                error: at(8),
                fatal: at(9),
                none: 0,
            };
            TopicStats {
                topic,
                received,
                unique_processed,
                duplicate_dropped: received.saturating_sub(unique_processed),
                expired: at(2),
                last_event_at: number(3)
                    .and_then(chrono::DateTime::from_timestamp_micros)
                    .map(|t| render_utc(&t.naive_utc())),
                levels: LevelCounts {
                    none: unique_processed.saturating_sub(levels.total()),
                    ..levels
                },
            }
        })
        .collect())
}

fn first_row(rows: &RowSet, what: &str) -> Result<Vec<DbValue>, StoreError> {
    rows.rows
        .first()
        .cloned()
        .ok_or_else(|| StoreError::new("empty result", format!("{what} returned no row")))
}

fn letter(r: &[DbValue], with_batch: bool) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        seq: decode(r, 0)?,
        id: decode(r, 1)?,
        received: count(decode(r, 2)?),
        reason: decode(r, 3)?,
        attempts: u32::try_from(decode::<i32>(r, 4)?).unwrap_or(0),
        failed_at: decode(r, 5)?,
        status: decode(r, 6)?,
        batch: if with_batch { decode(r, 7)? } else { None },
    })
}

/// A transaction id (`xid8`) read back as text.
fn parse_xid(text: &str) -> Result<u64, StoreError> {
    text.trim()
        .parse()
        .map_err(|_| StoreError::new("unexpected postgres value", format!("xid8 {text:?}")))
}

/// An event row in `LIST_COLUMNS` order.
fn stored_event(r: &[DbValue]) -> Result<StoredEvent, StoreError> {
    let payload = serde_json::value::RawValue::from_string(decode(r, 5)?)
        .map_err(|e| StoreError::new("stored payload is not JSON", e.to_string()))?;
    let level = match r.get(7) {
        Some(DbValue::Int16(n)) => Level::from_rank(i64::from(*n)),
        _ => None,
    };
    Ok(StoredEvent {
        id: decode(r, 0)?,
        topic: decode(r, 1)?,
        event_id: decode(r, 2)?,
        timestamp: decode(r, 3)?,
        source: decode(r, 4)?,
        level,
        payload,
        processed_at: decode(r, 6)?,
    })
}

impl PostgresStore {
    /// Connects to `database_url`; failure means "store unavailable".
    pub fn open(database_url: &str) -> Result<PostgresStore, StoreError> {
        Connection::open(database_url)
            .map(|db| PostgresStore { db })
            .map_err(pg_error)
    }

    fn query(&self, statement: &str, params: &[ParameterValue]) -> Result<RowSet, StoreError> {
        self.db.query(statement, params).map_err(pg_error)
    }

    /// Runs a statement that may match no row. Spin 4.0.2's Postgres host never answers a
    /// `query` whose result is empty (it awaits the column list, which comes with the first
    /// row), so the statement is wrapped to yield at least one row: a leading flag tells the
    /// statement's rows (in their order) from the one padding row.
    fn rows(
        &self,
        statement: &str,
        params: &[ParameterValue],
    ) -> Result<Vec<Vec<DbValue>>, StoreError> {
        let padded = format!(
            "WITH found AS ({statement}) SELECT true, found.* FROM found \
             UNION ALL SELECT false, found.* FROM (SELECT 1) AS one LEFT JOIN found ON false \
             WHERE NOT EXISTS (SELECT 1 FROM found)"
        );
        let set = self.query(&padded, params)?;
        Ok(set
            .rows
            .into_iter()
            .filter(|r| matches!(r.first(), Some(DbValue::Boolean(true))))
            .map(|mut r| {
                r.remove(0);
                r
            })
            .collect())
    }

    fn scalar(&self, statement: &str, params: &[ParameterValue]) -> Result<i64, StoreError> {
        let rows = self.query(statement, params)?;
        decode(&first_row(&rows, "scalar")?, 0)
    }
}

impl EventStore for PostgresStore {
    fn migrate(&self) -> Result<(), StoreError> {
        let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        let current =
            self.query(sql::SCHEMA_VERSION, &[])
                .and_then(|rows| match rows.rows.first() {
                    Some(row) => decode::<i64>(row, 0),
                    None => Ok(0),
                });
        if current.is_ok_and(|v| v >= latest) {
            return Ok(());
        }
        self.db
            .execute(&migration_block(), &[])
            .map(|_| ())
            .map_err(pg_error)
    }

    fn apply(&self, group: &Group<'_>) -> Result<Applied, StoreError> {
        let batches = &group.batches;
        let events = || batches.iter().flat_map(|b| b.events.iter());
        let batch_index: Vec<Option<i64>> = batches
            .iter()
            .enumerate()
            .flat_map(|(i, b)| std::iter::repeat_n(Some(i as i64 + 1), b.events.len()))
            .collect();
        let mut params = vec![
            text_array(batches.iter().map(|b| b.key)),
            ParameterValue::ArrayInt64(
                batches
                    .iter()
                    .map(|b| Some(b.events.len() as i64))
                    .collect(),
            ),
            ParameterValue::ArrayInt64(batch_index),
        ];
        let packed = pack::pack(events());
        let (statement, messages) = match packed {
            Some(packed) => {
                params.extend(packed.columns.map(ParameterValue::Str));
                (APPLY, ParameterValue::Str(packed.messages))
            }
            None => {
                params.extend([
                    text_array(events().map(|e| e.topic())),
                    text_array(events().map(|e| e.event_id())),
                    text_array(events().map(|e| e.timestamp())),
                    text_array(events().map(|e| e.source())),
                    text_array(events().map(|e| e.payload())),
                ]);
                let messages = events().map(|e| e.message().map(without_nul)).collect();
                (APPLY_ARRAYS, ParameterValue::ArrayStr(messages))
            }
        };
        params.extend([
            ParameterValue::Int16(group.shard),
            ParameterValue::ArrayInt32(
                events()
                    .map(|e| e.level().map(|l| l.rank() as i32))
                    .collect(),
            ),
            messages,
            group.settles.map_or(ParameterValue::DbNull, text),
        ]);
        let rows = self.query(statement, &params)?;
        let row = first_row(&rows, "apply")?;
        let fresh = strings(&row, 0)?;
        let topics = strings(&row, 3)?;
        let ids = strings(&row, 4)?;
        Ok(Applied {
            settled: group.settles.is_none() || !fresh.is_empty(),
            fresh,
            received: count(decode(&row, 1)?),
            inserted: count(decode(&row, 2)?),
            duplicate_sample: topics.into_iter().zip(ids).collect(),
        })
    }

    fn snapshot(&self, pending: &[String], topics: &TopicFilter) -> Result<Snapshot, StoreError> {
        let topic = match &topics.topic {
            Some(t) => text(t),
            None => ParameterValue::DbNull,
        };
        let rows = self.query(
            SNAPSHOT,
            &[
                text_array(pending.iter().map(String::as_str)),
                topic,
                int(u64::from(topics.limit)),
            ],
        )?;
        let row = first_row(&rows, "snapshot")?;
        let per_topic = topic_page(strings(&row, 6)?, decode(&row, 10)?)?;
        Ok(Snapshot {
            received: count(decode(&row, 0)?),
            unique: count(decode(&row, 1)?),
            expired: count(decode(&row, 2)?),
            dead_lettered: count(decode(&row, 3)?),
            dead_letters_pending: count(decode(&row, 4)?),
            topic_count: count(decode(&row, 5)?),
            topics: per_topic,
            consumed: strings(&row, 7)?,
            started_at: decode(&row, 8)?,
            levels: serde_json::from_str::<LevelCounts>(&decode::<String>(&row, 9)?)
                .map_err(|e| StoreError::new("unexpected postgres value", e.to_string()))?,
        })
    }

    fn list(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let (statement, params) = query::list_events(LIST_COLUMNS, query, Dialect::Postgres);
        let params: Vec<ParameterValue> = params.iter().map(bind).collect();
        let rows = self.rows(&statement, &params)?;
        rows.iter().map(|r| stored_event(r)).collect()
    }

    fn tail(&self, query: &EventQuery, after: TailCursor) -> Result<TailPage, StoreError> {
        let columns = format!("{LIST_COLUMNS}, tx::text");
        let (statement, params) = query::tail_events(&columns, query, after, Dialect::Postgres);
        let params: Vec<ParameterValue> = params.iter().map(bind).collect();
        let rows = self.query(&statement, &params)?;
        let first = first_row(&rows, "tail")?;
        let scanned: i64 = decode(&first, 0)?;
        let horizon = TailCursor {
            tx: parse_xid(&decode::<String>(&first, 1)?)?,
            id: 0,
        };
        let last_scanned = match (
            decode::<Option<String>>(&first, 2)?,
            decode::<Option<i64>>(&first, 3)?,
        ) {
            (Some(tx), Some(id)) => Some(TailCursor {
                tx: parse_xid(&tx)?,
                id,
            }),
            _ => None,
        };
        let mut events = Vec::new();
        let mut last_hit = None;
        for r in rows
            .rows
            .iter()
            .filter(|r| !matches!(r.get(4), None | Some(DbValue::DbNull)))
        {
            let event = stored_event(&r[4..])?;
            last_hit = Some(TailCursor {
                tx: parse_xid(&decode::<String>(r, 12)?)?,
                id: event.id,
            });
            events.push(event);
        }
        let next = super::next_tail_cursor(super::TailScan {
            after,
            hits: events.len(),
            last_hit,
            limit: query.limit,
            scanned,
            last_scanned,
            horizon,
        });
        Ok(TailPage { events, next })
    }

    fn tail_moved(&self, after: TailCursor) -> Result<bool, StoreError> {
        let params = [
            ParameterValue::Str(after.tx.to_string()),
            ParameterValue::Int64(after.id),
        ];
        let rows = self.query(query::tail_moved(Dialect::Postgres), &params)?;
        decode(&first_row(&rows, "tail moved")?, 0)
    }

    fn tail_position(&self) -> Result<TailCursor, StoreError> {
        let rows = self.query(query::tail_position(Dialect::Postgres), &[])?;
        let xmin: String = decode(&first_row(&rows, "tail position")?, 0)?;
        Ok(TailCursor {
            tx: parse_xid(&xmin)?,
            id: 0,
        })
    }

    fn volume(&self, v: &VolumeQuery) -> Result<Vec<VolumeCell>, StoreError> {
        let (statement, params) = query::volume(v, Dialect::Postgres);
        let params: Vec<ParameterValue> = params.iter().map(bind).collect();
        let rows = self.rows(&statement, &params)?;
        rows.iter()
            .map(|r| {
                let level = match r.get(1) {
                    Some(DbValue::Int16(n)) => i64::from(*n),
                    Some(DbValue::Int32(n)) => i64::from(*n),
                    _ => decode::<i64>(r, 1)?,
                };
                Ok((decode(r, 0)?, level, count(decode(r, 2)?)))
            })
            .collect()
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.query(sql::PING, &[]).map(|_| ())
    }

    fn has_dead_letter_table(&self) -> Result<bool, StoreError> {
        // `to_regclass` follows the search path, like the unqualified names of the migrations.
        let exists = "SELECT count(to_regclass('dead_letters'))";
        Ok(self.scalar(exists, &[])? > 0)
    }

    fn bury(&self, letter: &NewDeadLetter<'_>) -> Result<(), StoreError> {
        let params = [
            text(letter.key),
            int(letter.received),
            text(letter.id),
            text(letter.reason),
            text(&letter.batch.replace('\0', "")),
            ParameterValue::Int32(i32::try_from(letter.attempts).unwrap_or(i32::MAX)),
        ];
        self.db.execute(BURY, &params).map(|_| ()).map_err(pg_error)
    }

    fn record_failure(&self, key: &str, error: &str) -> Result<u32, StoreError> {
        let rows = self.query(RECORD_FAILURE, &[text(key), text(error)])?;
        let attempts: i32 = decode(&first_row(&rows, "record_failure")?, 0)?;
        Ok(u32::try_from(attempts).unwrap_or(0))
    }

    fn dead_letters(&self, after: i64, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let statement = format!(
            "SELECT {LETTER_COLUMNS} FROM dead_letters WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows = self.rows(
            &statement,
            &[ParameterValue::Int64(after), int(u64::from(limit))],
        )?;
        rows.iter().map(|r| letter(r, false)).collect()
    }

    fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let statement = format!("SELECT {LETTER_COLUMNS}, batch FROM dead_letters WHERE id = $1");
        let rows = self.rows(&statement, &[text(id)])?;
        rows.first().map(|r| letter(r, true)).transpose()
    }

    fn discard(&self, id: &str) -> Result<Option<String>, StoreError> {
        let rows = self.query(DISCARD, &[text(id)])?;
        decode(&first_row(&rows, "discard")?, 0)
    }

    fn expire(&self, cutoff: &str, chunk: u32) -> Result<u64, StoreError> {
        self.scalar(EXPIRE, &[text(cutoff), int(u64::from(chunk))])
            .map(count)
    }

    fn compact_markers(
        &self,
        cutoff: &str,
        queued: &[String],
        chunk: u32,
    ) -> Result<u64, StoreError> {
        let params = [
            text(cutoff),
            text_array(queued.iter().map(String::as_str)),
            int(u64::from(chunk)),
        ];
        self.scalar(COMPACT, &params).map(count)
    }

    fn fold_counters(&self, chunk: u32) -> Result<Folded, StoreError> {
        let mut folded = Folded::default();
        for statement in [FOLD, FOLD_VOLUME, FOLD_TOTALS] {
            let n = self
                .scalar(statement, &[int(u64::from(chunk))])
                .map(count)?;
            folded.rows += n;
            folded.more |= n >= u64::from(chunk);
        }
        Ok(folded)
    }

    fn touch_markers(&self, keys: &[String]) -> Result<Vec<String>, StoreError> {
        let rows = self.rows(TOUCH, &[text_array(keys.iter().map(String::as_str))])?;
        rows.iter().map(|r| decode(r, 0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rendered_as_utc_text() {
        assert!(LIST_COLUMNS.contains(
            "to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        ));
    }
}
