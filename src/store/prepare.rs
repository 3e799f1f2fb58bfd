//! What an apply writes besides the events, worked out in Rust before the statements run: a
//! group's events sorted and deduplicated (the lock order), the counts per topic, which events the
//! store inserted, and the volume counter rows they add. The SQLite store uses it; PostgreSQL's
//! apply function does the same work in SQL.

use super::{Batch, DUPLICATE_SAMPLE};
use crate::validate::{Event, Level};

/// The events of a group's fresh batches made ready for insertion.
///
/// Sorted by `(topic, event_id)` so every transaction takes its locks in the same
/// order (overlapping batches cannot deadlock), and deduplicated first-copy-wins
/// in batch order, then request order.
pub(crate) struct Prepared<'a> {
    /// Events in the fresh batches, duplicates included.
    pub received: u64,
    /// First copy of each key, sorted by key.
    pub unique: Vec<&'a Event>,
    /// Per topic: events received and the latest timestamp (sorted by topic).
    pub per_topic: Vec<(&'a str, u64, &'a str)>,
}

impl<'a> Prepared<'a> {
    /// Prepares the events of the given batches.
    pub fn new<'b>(batches: impl Iterator<Item = &'b Batch<'a>>) -> Prepared<'a>
    where
        'a: 'b,
    {
        let mut all: Vec<&'a Event> = batches.flat_map(|b| b.events.iter()).collect();
        let received = all.len() as u64;
        all.sort_by(|a, b| a.key().cmp(&b.key())); // stable: the first copy stays first
        let mut per_topic: Vec<(&str, u64, &str)> = Vec::new();
        for e in &all {
            match per_topic.last_mut() {
                Some((t, n, last)) if *t == e.topic() => {
                    *n += 1;
                    if e.timestamp() > *last {
                        *last = e.timestamp();
                    }
                }
                _ => per_topic.push((e.topic(), 1, e.timestamp())),
            }
        }
        all.dedup_by(|b, a| a.key() == b.key());
        Prepared {
            received,
            unique: all,
            per_topic,
        }
    }

    /// Names up to [`DUPLICATE_SAMPLE`] dropped keys, given the keys the store inserted (sorted).
    pub fn duplicate_sample(&self, inserted_sorted: &[(String, String)]) -> Vec<(String, String)> {
        self.split(inserted_sorted)
            .filter(|(_, inserted)| !inserted)
            .take(DUPLICATE_SAMPLE)
            .map(|(e, _)| (e.topic().to_owned(), e.event_id().to_owned()))
            .collect()
    }

    /// Each unique event with whether the store inserted it, in one walk beside the inserted
    /// keys (both sorted by key): a comparison or two per event, where a binary search per event
    /// cost a dozen (wasm's `memcmp` is a byte loop, and keys share long prefixes).
    fn split<'s>(
        &'s self,
        inserted_sorted: &'s [(String, String)],
    ) -> impl Iterator<Item = (&'a Event, bool)> + 's {
        let mut rest = inserted_sorted;
        self.unique.iter().map(move |e| {
            while let Some(((t, id), tail)) = rest.split_first() {
                match (t.as_str(), id.as_str()).cmp(&e.key()) {
                    std::cmp::Ordering::Less => rest = tail,
                    std::cmp::Ordering::Equal => {
                        rest = tail;
                        return (*e, true);
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            (*e, false)
        })
    }

    /// Inserted counts per topic (aligned with `per_topic`), from the inserted keys (sorted).
    pub fn inserted_per_topic(&self, inserted_sorted: &[(String, String)]) -> Vec<u64> {
        self.per_topic
            .iter()
            .map(|(topic, _, _)| {
                let from = inserted_sorted.partition_point(|(t, _)| t.as_str() < *topic);
                let to = inserted_sorted.partition_point(|(t, _)| t.as_str() <= *topic);
                (to - from) as u64
            })
            .collect()
    }

    /// The events the store inserted, given their keys (sorted): what levels and volume count.
    pub fn inserted(&self, inserted_sorted: &[(String, String)]) -> Vec<&'a Event> {
        self.split(inserted_sorted)
            .filter_map(|(e, inserted)| inserted.then_some(e))
            .collect()
    }
}

/// A volume counter row, `(grain, bucket, topic, level rank)`, and the events it gains (or loses).
pub type VolumeDelta<'t> = ((i64, i64, &'t str, i64), i64);

/// The minute (since the Unix epoch, rounded down) of a normalised timestamp; 0 if unreadable.
pub fn epoch_minute(timestamp: &str) -> i64 {
    crate::validate::parse_timestamp(timestamp)
        .map(|t| t.and_utc().timestamp().div_euclid(60))
        .unwrap_or(0)
}

/// Volume counter rows of the given events: `(grain, bucket start minute, topic, level rank)`
/// with their counts, for minute rows (grain 1) and hour rows (grain 60), sorted (the lock order).
pub fn volume_rows<'e>(events: &[&'e Event]) -> Vec<VolumeDelta<'e>> {
    let mut rows: std::collections::BTreeMap<(i64, i64, &str, i64), i64> = Default::default();
    for e in events {
        let minute = epoch_minute(e.timestamp());
        let level = e.level().map_or(0, Level::rank);
        for grain in [1, 60] {
            *rows
                .entry((grain, minute.div_euclid(grain) * grain, e.topic(), level))
                .or_default() += 1;
        }
    }
    rows.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(keys: &[(&str, &str)]) -> Vec<Event> {
        let items: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, (t, id))| {
                serde_json::json!({"topic": t, "event_id": id,
                    "timestamp": format!("2024-01-01T00:00:0{}Z", i % 10),
                    "source": format!("copy{i}")})
            })
            .collect();
        crate::testing::parse_events(&serde_json::json!(items))
    }

    #[test]
    fn prepared_sorts_and_keeps_first_copy_across_batches() {
        let first = batch(&[("b", "1"), ("a", "2"), ("b", "1")]);
        let second = batch(&[("a", "1"), ("a", "2")]);
        let batches = [
            Batch {
                key: "k1",
                events: &first,
            },
            Batch {
                key: "k2",
                events: &second,
            },
        ];
        let p = Prepared::new(batches.iter());
        assert_eq!(p.received, 5);
        let keys: Vec<_> = p.unique.iter().map(|e| e.key()).collect();
        assert_eq!(keys, vec![("a", "1"), ("a", "2"), ("b", "1")]);
        assert_eq!(p.unique[1].source(), "copy1", "first batch's copy wins");
        assert_eq!(p.unique[2].source(), "copy0", "first copy in a batch wins");
        let per_topic: Vec<_> = p.per_topic.iter().map(|(t, n, _)| (*t, *n)).collect();
        assert_eq!(per_topic, vec![("a", 3), ("b", 2)]);
        assert_eq!(p.per_topic[0].2, "2024-01-01T00:00:01.000000Z");
    }

    #[test]
    fn duplicate_sample_and_inserted_per_topic() {
        let events = batch(&[("a", "1"), ("a", "1"), ("a", "2"), ("b", "3")]);
        let batches = [Batch {
            key: "k",
            events: &events,
        }];
        let p = Prepared::new(batches.iter());
        let owned = |t: &str, id: &str| (t.to_string(), id.to_string());
        let inserted = vec![owned("a", "2"), owned("b", "3")];
        assert_eq!(p.duplicate_sample(&inserted), vec![owned("a", "1")]);
        assert_eq!(p.inserted_per_topic(&inserted), vec![1, 1]);
        assert_eq!(p.inserted_per_topic(&[]), vec![0, 0]);
    }

    #[test]
    fn the_walk_finds_what_a_search_finds() {
        let mut rng = crate::testing::Rng(0x9e37_79b9);
        let mut next = |n: u64| rng.below(n as usize) as u64;
        for _ in 0..300 {
            let keys: Vec<(String, String)> = (0..1 + next(40))
                .map(|_| (format!("t{}", next(3)), format!("run-{}", next(25))))
                .collect();
            let refs: Vec<(&str, &str)> =
                keys.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let events = batch(&refs);
            let batches = [Batch {
                key: "k",
                events: &events,
            }];
            let p = Prepared::new(batches.iter());
            let mut inserted: Vec<(String, String)> = p
                .unique
                .iter()
                .filter(|_| next(3) > 0)
                .map(|e| (e.topic().to_owned(), e.event_id().to_owned()))
                .collect();
            if next(4) == 0 {
                // A key the batch does not have: the walk must step over it, not stop.
                inserted.push(("t1".to_owned(), "run-1a".to_owned()));
            }
            inserted.sort_unstable();
            let searched = |want: bool| -> Vec<(&str, &str)> {
                p.unique
                    .iter()
                    .filter(|e| {
                        inserted
                            .binary_search_by(|(t, id)| (t.as_str(), id.as_str()).cmp(&e.key()))
                            .is_ok()
                            == want
                    })
                    .map(|e| e.key())
                    .collect()
            };
            let walked: Vec<_> = p.inserted(&inserted).iter().map(|e| e.key()).collect();
            assert_eq!(walked, searched(true));
            let dropped: Vec<(String, String)> = searched(false)
                .into_iter()
                .take(DUPLICATE_SAMPLE)
                .map(|(t, id)| (t.to_owned(), id.to_owned()))
                .collect();
            assert_eq!(p.duplicate_sample(&inserted), dropped);
        }
    }

    #[test]
    fn duplicate_sample_is_capped() {
        let keys: Vec<(String, String)> =
            (0..30).map(|i| ("t".into(), format!("{i:02}"))).collect();
        let refs: Vec<(&str, &str)> = keys.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let events = batch(&refs);
        let batches = [Batch {
            key: "k",
            events: &events,
        }];
        let p = Prepared::new(batches.iter());
        assert_eq!(p.duplicate_sample(&[]).len(), DUPLICATE_SAMPLE);
    }
}
