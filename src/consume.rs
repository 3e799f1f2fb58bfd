//! The consumer: moves queue entries into the store, exactly once.
//!
//! Spin components live for one request, so there is no background consumer:
//! a publish consumes its own entry, and `GET /events`, `/stats`, `/metrics` and
//! `POST /drain` first consume everything pending (read-your-writes).
//!
//! Every step is safe to repeat. An entry is applied with
//! [`EventStore::apply_batch`] (one transaction, keyed by the entry key) and only
//! then deleted from the queue. A crash between the two leaves the entry queued;
//! the next consumer re-applies it, the store sees the marker and changes nothing,
//! and the entry is deleted. Several consumers on the same entry behave the same way.

use crate::queue::{Loaded, Queue, QueueError};
use crate::store::{Applied, EventStore, StoreError};
use crate::validate::Event;

/// Why a drain stopped early; names the part that failed.
#[derive(Debug)]
pub enum DrainError {
    /// The key-value queue failed.
    Queue(QueueError),
    /// The store failed (probably unreachable); the remaining entries stay queued.
    Store(StoreError),
}

/// What one drain did (only entries this call applied itself are counted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Entries this call applied.
    pub batches: u64,
    /// Events those entries newly stored.
    pub processed: u64,
    /// Events those entries dropped as duplicates.
    pub duplicates: u64,
}

/// Applies one entry, then deletes it; the store result stands even if the delete fails.
pub fn apply_entry(
    store: &dyn EventStore,
    queue: &Queue,
    key: &str,
    events: &[Event],
) -> Result<Applied, StoreError> {
    let applied = store.apply_batch(key, events)?;
    if applied.fresh {
        for line in duplicate_log_lines(key, &applied) {
            eprintln!("{line}");
        }
    }
    if let Err(e) = queue.remove(key) {
        // Harmless: the marker makes the next consumer's re-apply a no-op.
        eprintln!("WARN could not delete applied entry {key}: {e}");
    }
    Ok(applied)
}

/// Consumes every pending entry, oldest first; stops at the first store or queue failure.
pub fn drain(store: &dyn EventStore, queue: &Queue) -> Result<DrainReport, DrainError> {
    let mut report = DrainReport::default();
    for entry in queue.pending().map_err(DrainError::Queue)? {
        let events = match queue.load(&entry).map_err(DrainError::Queue)? {
            Loaded::Gone => continue,
            Loaded::Events(events) => events,
            Loaded::Corrupt(reason) => {
                eprintln!(
                    "ERROR skipping unreadable queue entry {}: {reason}",
                    entry.key
                );
                continue;
            }
        };
        let applied = apply_entry(store, queue, &entry.key, &events).map_err(|mut e| {
            e.detail = format!("{} (applying {}; it stays queued)", e.detail, entry.key);
            DrainError::Store(e)
        })?;
        if applied.fresh {
            report.batches += 1;
            report.processed += applied.inserted;
            report.duplicates += applied.duplicates();
        }
    }
    Ok(report)
}

/// WARN lines for dropped duplicates: at most the sample, then one summary line.
pub fn duplicate_log_lines(key: &str, applied: &Applied) -> Vec<String> {
    let total = applied.duplicates();
    let mut lines: Vec<String> = applied
        .duplicate_sample
        .iter()
        .take(total as usize)
        .map(|(topic, event_id)| {
            format!("WARN duplicate dropped: topic={topic:?} event_id={event_id:?} (entry {key})")
        })
        .collect();
    let more = total.saturating_sub(lines.len() as u64);
    if more > 0 {
        lines.push(format!("WARN ... and {more} more duplicates (entry {key})"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(received: u64, inserted: u64, sample: usize) -> Applied {
        Applied {
            fresh: true,
            received,
            inserted,
            duplicate_sample: (0..sample).map(|i| ("t".into(), format!("e{i}"))).collect(),
        }
    }

    #[test]
    fn no_duplicates_no_lines() {
        assert!(duplicate_log_lines("q/k", &applied(5, 5, 0)).is_empty());
    }

    #[test]
    fn few_duplicates_each_named() {
        let lines = duplicate_log_lines("q/k", &applied(5, 2, 3));
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            "WARN duplicate dropped: topic=\"t\" event_id=\"e0\" (entry q/k)"
        );
    }

    #[test]
    fn duplicate_storm_is_capped_with_a_summary() {
        let lines = duplicate_log_lines("q/k", &applied(10_000, 0, 10));
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[10], "WARN ... and 9990 more duplicates (entry q/k)");
    }

    #[test]
    fn log_lines_escape_control_characters() {
        let mut a = applied(1, 0, 0);
        a.duplicate_sample = vec![("t\nFAKE LOG LINE".into(), "e".into())];
        let lines = duplicate_log_lines("q/k", &a);
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].contains('\n'));
    }
}
