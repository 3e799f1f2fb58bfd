//! The consumer: moves queue entries into the store, exactly once, within a time budget.
//!
//! Spin components live for one request, so there is no background consumer: the
//! read routes and `POST /drain` consume what is pending, for at most the request's
//! work budget, and say what remains. Entries are consumed in groups (group commit):
//! one key-value read for the group, ONE store transaction for all its entries, one
//! key-value delete; so a backlog drains at the store's batched rate.
//!
//! Every step is safe to repeat. A group is applied with [`EventStore::apply`], keyed
//! by the entry keys, and only then deleted from the queue. A crash between the two
//! leaves the entries queued; the next consumer re-applies them, the store sees the
//! markers and changes nothing, and the entries are deleted.
//!
//! Several consumers may run at once (parallel `POST /drain` callers, reads). Which entries each
//! takes, and in what order, is its [`Share`] (`lanes`): the read routes take everything oldest
//! first; `POST /drain` takes one lane of the queue, or everything from a random group, so
//! parallel callers rarely work on the same entries. When they do, nothing is applied twice.
//!
//! No entry can block the others. When a group fails for a reason that is not the
//! store being unreachable, its entries are applied one by one; an entry the store
//! refuses for good (data or integrity errors), or that keeps failing with an unclear
//! error while the store answers otherwise ([`MAX_ATTEMPTS`] times), becomes a dead letter — its batch and reason kept
//! in the store, atomically with its marker — and the consumer goes on. An outage
//! (connection, deadlock, overload) never dead-letters: the drain stops and the
//! entries wait.

mod lanes;

use std::time::{Duration, Instant};

use crate::config::DuplicateLog;
use crate::log::{self, logln};
use crate::queue::{self, Loaded, Pending, Queue, QueueError};
use crate::store::{Applied, Batch, ErrorKind, EventStore, Group, NewDeadLetter, StoreError};
use crate::validate::Event;

pub use lanes::{MAX_LANES, Share};

/// Entries applied per store transaction at most.
pub const GROUP_ENTRIES: usize = 256;
/// Events applied per store transaction at most (an entry is never split).
pub const GROUP_EVENTS: u64 = 10_000;
/// Failed attempts with an unclear error after which an entry becomes a dead letter.
pub const MAX_ATTEMPTS: u32 = 3;
/// Counter shards on stores with concurrent writers (see `store`).
pub const SHARDS: u64 = 16;

/// Why a drain stopped early; names the part that failed.
#[derive(Debug)]
pub enum DrainError {
    /// The key-value queue failed.
    Queue(QueueError),
    /// The store is unreachable or overloaded; the remaining entries stay queued.
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
    /// Events this call moved to dead letters.
    pub dead_lettered: u64,
    /// Whether entries were left because the budget ran out.
    pub more: bool,
}

/// A counter shard for one transaction.
pub fn shard() -> i16 {
    (queue::random() % SHARDS) as i16
}

/// The counter shard of a fresh key's transaction, from the key's own random nonce: as spread
/// as [`shard`], without reading the clock again (a host call) on the publish path.
fn shard_of(key: &str) -> i16 {
    queue::nonce_of(key).map_or_else(shard, |nonce| (nonce % SHARDS) as i16)
}

/// Applies one batch straight to the store under `key` (its marker, and its queue key if
/// it has to be queued after all).
pub fn apply_direct(
    store: &dyn EventStore,
    key: &str,
    events: &[Event],
    log: DuplicateLog,
) -> Result<Applied, StoreError> {
    let group = Group {
        batches: vec![Batch { key, events }],
        settles: None,
        shard: shard_of(key),
    };
    let applied = store.apply(&group)?;
    log_duplicates(log, key, &applied);
    Ok(applied)
}

/// Consumes pending entries, oldest first, in groups, until done or `budget` is spent.
pub fn drain(
    store: &dyn EventStore,
    queue: &Queue,
    budget: Duration,
    log: DuplicateLog,
) -> Result<DrainReport, DrainError> {
    drain_share(store, queue, budget, log, Share::Oldest)
}

/// Consumes the pending entries of `share`, in its order, in groups, until done or `budget` is
/// spent (`more` then says entries of the share were left).
pub fn drain_share(
    store: &dyn EventStore,
    queue: &Queue,
    budget: Duration,
    log: DuplicateLog,
    share: Share,
) -> Result<DrainReport, DrainError> {
    let started = Instant::now();
    let pending = share.arrange(queue.pending().map_err(DrainError::Queue)?);
    let mut report = DrainReport::default();
    let mut rest: &[Pending] = &pending;
    let mut slowest = Duration::ZERO;
    while !rest.is_empty() {
        // At least one group per call, however small the budget: every call makes progress.
        // After that, a group starts only if one as slow as the slowest so far still fits.
        if rest.len() < pending.len() && started.elapsed() + slowest > budget {
            report.more = true;
            break;
        }
        let take = group_size(rest);
        let (group, tail) = rest.split_at(take);
        rest = tail;
        let group_started = Instant::now();
        consume_group(store, queue, group, log, &mut report)?;
        slowest = slowest.max(group_started.elapsed());
    }
    Ok(report)
}

/// How many of the next entries form one group.
fn group_size(pending: &[Pending]) -> usize {
    let mut events = 0;
    let mut n = 0;
    for p in pending.iter().take(GROUP_ENTRIES) {
        if n > 0 && events + p.count > GROUP_EVENTS {
            break;
        }
        events += p.count;
        n += 1;
    }
    n.max(1)
}

/// Loads, applies and deletes one group; isolates a failing entry instead of stopping.
fn consume_group(
    store: &dyn EventStore,
    queue: &Queue,
    entries: &[Pending],
    log: DuplicateLog,
    report: &mut DrainReport,
) -> Result<(), DrainError> {
    let loaded = queue.load_many(entries).map_err(DrainError::Queue)?;
    let mut ready: Vec<(&str, Vec<Event>)> = Vec::with_capacity(entries.len());
    for (entry, loaded) in entries.iter().zip(loaded) {
        match loaded {
            Loaded::Gone => {}
            Loaded::Events(events) => ready.push((&entry.key, events)),
            Loaded::Corrupt(reason, raw) => {
                let text = String::from_utf8_lossy(&raw);
                let reason = format!("unreadable queue entry: {reason}");
                bury(store, queue, entry, &reason, &text, 1, report)?;
            }
        }
    }
    if ready.is_empty() {
        return Ok(());
    }
    let group = Group {
        batches: ready
            .iter()
            .map(|(key, events)| Batch { key, events })
            .collect(),
        settles: None,
        shard: shard(),
    };
    match store.apply(&group) {
        Ok(applied) => {
            let keys: Vec<String> = ready.iter().map(|(k, _)| (*k).to_owned()).collect();
            settle(queue, &keys, &applied, log, report);
            Ok(())
        }
        Err(e) if e.kind == ErrorKind::Transient => Err(DrainError::Store(e)),
        Err(e) => {
            logln!(
                "WARN group of {} entries failed ({e}); applying them one by one",
                ready.len()
            );
            for (key, events) in &ready {
                consume_alone(store, queue, key, events, log, report)?;
            }
            Ok(())
        }
    }
}

/// Applies one entry alone; a permanent or persistent failure makes it a dead letter.
fn consume_alone(
    store: &dyn EventStore,
    queue: &Queue,
    key: &str,
    events: &[Event],
    log: DuplicateLog,
    report: &mut DrainReport,
) -> Result<(), DrainError> {
    let group = Group {
        batches: vec![Batch { key, events }],
        settles: None,
        shard: shard(),
    };
    let e = match store.apply(&group) {
        Ok(applied) => {
            settle(queue, &[key.to_owned()], &applied, log, report);
            return Ok(());
        }
        Err(e) => e,
    };
    let attempts = match e.kind {
        ErrorKind::Transient => return Err(DrainError::Store(e)),
        ErrorKind::Permanent => 1,
        // An unclear error counts against the entry only if the store answers otherwise:
        // a store that cannot even be pinged is down, and nobody's entry is to blame.
        ErrorKind::Unknown => match store.ping() {
            Err(_) => return Err(DrainError::Store(e)),
            Ok(()) => store
                .record_failure(key, &e.summary)
                .map_err(DrainError::Store)?,
        },
    };
    if e.kind == ErrorKind::Unknown && attempts < MAX_ATTEMPTS {
        logln!("WARN entry {key} failed (attempt {attempts} of {MAX_ATTEMPTS}): {e}");
        return Ok(());
    }
    let entry = Pending {
        key: key.to_owned(),
        count: events.len() as u64,
    };
    let batch = String::from_utf8(queue::encode(events).unwrap_or_default()).unwrap_or_default();
    bury(store, queue, &entry, &e.summary, &batch, attempts, report)
}

/// Moves an entry aside (dead letter + marker in one transaction), then deletes it.
fn bury(
    store: &dyn EventStore,
    queue: &Queue,
    entry: &Pending,
    reason: &str,
    batch: &str,
    attempts: u32,
    report: &mut DrainReport,
) -> Result<(), DrainError> {
    let letter = NewDeadLetter {
        key: &entry.key,
        id: queue::id_of(&entry.key),
        received: entry.count,
        reason,
        batch,
        attempts,
    };
    store.bury(&letter).map_err(DrainError::Store)?;
    logln!(
        "ERROR entry {} moved to dead letters after {attempts} attempt(s): {reason}",
        entry.key
    );
    report.dead_lettered += entry.count;
    if let Err(e) = queue.remove(&entry.key) {
        logln!(
            "WARN could not delete dead-lettered entry {}: {e}",
            entry.key
        );
    }
    Ok(())
}

/// Counts what a group applied and deletes its entries (the store result stands even if
/// the delete fails: the markers make the next consumer's re-apply a no-op).
fn settle(
    queue: &Queue,
    keys: &[String],
    applied: &Applied,
    log: DuplicateLog,
    report: &mut DrainReport,
) {
    report.batches += applied.fresh.len() as u64;
    report.processed += applied.inserted;
    report.duplicates += applied.duplicates();
    if let Some(key) = keys.first() {
        log_duplicates(log, key, applied);
    }
    if let Err(e) = queue.remove_many(keys) {
        logln!("WARN could not delete {} applied entries: {e}", keys.len());
    }
}

/// Logs dropped duplicates as configured (`duplicate_log`), in one write: every write to stderr
/// is a host call.
fn log_duplicates(log: DuplicateLog, key: &str, applied: &Applied) {
    let mut text = String::new();
    for line in duplicate_log_lines(log, key, applied) {
        text.push_str(&line);
        text.push('\n');
    }
    if !text.is_empty() {
        log::write(text.as_bytes());
    }
}

/// Log lines for dropped duplicates: each (capped at the sample), one summary, or none.
pub fn duplicate_log_lines(log: DuplicateLog, key: &str, applied: &Applied) -> Vec<String> {
    let total = applied.duplicates();
    if total == 0 || log == DuplicateLog::Off {
        return Vec::new();
    }
    let named = |(topic, event_id): &(String, String)| format!("{topic:?}/{event_id:?}");
    if log == DuplicateLog::Summary {
        let sample: Vec<String> = applied.duplicate_sample.iter().take(3).map(named).collect();
        // PostgreSQL's sample leaves out repeats inside the batch itself: then there is none.
        let examples = if sample.is_empty() {
            String::new()
        } else {
            format!("; e.g. {}", sample.join(", "))
        };
        return vec![format!(
            "INFO {total} duplicate(s) dropped of {} received (entry {key}{examples})",
            applied.received
        )];
    }
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
            fresh: vec!["q/k".into()],
            received,
            inserted,
            duplicate_sample: (0..sample).map(|i| ("t".into(), format!("e{i}"))).collect(),
            settled: true,
        }
    }

    #[test]
    fn no_duplicates_no_lines() {
        for log in [DuplicateLog::Each, DuplicateLog::Summary] {
            assert!(duplicate_log_lines(log, "q/k", &applied(5, 5, 0)).is_empty());
        }
    }

    #[test]
    fn each_names_every_sampled_duplicate() {
        let lines = duplicate_log_lines(DuplicateLog::Each, "q/k", &applied(5, 2, 3));
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            "WARN duplicate dropped: topic=\"t\" event_id=\"e0\" (entry q/k)"
        );
    }

    #[test]
    fn duplicate_storm_is_capped_with_a_summary() {
        let lines = duplicate_log_lines(DuplicateLog::Each, "q/k", &applied(10_000, 0, 10));
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[10], "WARN ... and 9990 more duplicates (entry q/k)");
    }

    #[test]
    fn summary_is_one_line_and_off_is_none() {
        let lines = duplicate_log_lines(DuplicateLog::Summary, "q/k", &applied(10, 4, 6));
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("INFO 6 duplicate(s) dropped of 10 received"));
        assert!(duplicate_log_lines(DuplicateLog::Off, "q/k", &applied(10, 4, 6)).is_empty());
    }

    #[test]
    fn a_summary_without_a_sample_names_no_examples() {
        let lines = duplicate_log_lines(DuplicateLog::Summary, "q/k", &applied(10, 8, 0));
        assert_eq!(
            lines,
            ["INFO 2 duplicate(s) dropped of 10 received (entry q/k)"]
        );
        let lines = duplicate_log_lines(DuplicateLog::Summary, "q/k", &applied(10, 8, 1));
        assert_eq!(
            lines,
            [r#"INFO 2 duplicate(s) dropped of 10 received (entry q/k; e.g. "t"/"e0")"#]
        );
    }

    #[test]
    fn log_lines_escape_control_characters() {
        let mut a = applied(1, 0, 0);
        a.duplicate_sample = vec![("t\nFAKE LOG LINE".into(), "e".into())];
        for log in [DuplicateLog::Each, DuplicateLog::Summary] {
            let lines = duplicate_log_lines(log, "q/k", &a);
            assert_eq!(lines.len(), 1);
            assert!(!lines[0].contains('\n'));
        }
    }

    #[test]
    fn groups_respect_entry_and_event_caps() {
        let p = |count| Pending {
            key: String::new(),
            count,
        };
        let many: Vec<Pending> = (0..300).map(|_| p(1)).collect();
        assert_eq!(group_size(&many), GROUP_ENTRIES);
        assert_eq!(group_size(&[p(6000), p(6000), p(1)]), 1);
        assert_eq!(group_size(&[p(20_000)]), 1, "a big entry still goes alone");
        assert_eq!(group_size(&[p(5000), p(5000), p(1)]), 2);
    }
}
