//! Maintenance: keeps the store bounded, within the request's work budget.
//!
//! Four chores, each in small chunks so no lock is held long and a publish never
//! waits behind them, stopping when the budget is spent (`more` tells the caller to
//! call again):
//!
//! 1. **Release** queue entries that were applied but not deleted (a consumer crashed
//!    between its commit and its delete): their markers' age restarts now, then the
//!    entries are deleted.
//! 2. **Fold counter shards** (PostgreSQL): the rows concurrent writers spread over 16 shards
//!    are summed into shard 0, so `/stats` reads about one row per topic between runs.
//! 3. **Compact markers** older than the marker horizon whose keys are not queued.
//!    Safe because an entry is only ever applied by a consumer that read it from the
//!    queue, every consumer request ends within the horizon's half, and a marker's age
//!    restarts whenever its entry is seen again (step 1, or a consumer finding the
//!    marker): see docs/DESIGN.md, "Marker horizon".
//! 4. **Retention**: stored events older than `retention` (by storage time) are
//!    deleted oldest first and counted per topic as `expired`.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use serde::Serialize;

use crate::config::Upkeep;
use crate::consume::DrainError;
use crate::queue::Queue;
use crate::stats::now_utc;
use crate::store::EventStore;
use crate::validate::render_utc;

/// Rows deleted per statement: small enough to keep each transaction short.
pub const CHUNK: u32 = 5_000;

/// What one maintenance call did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Stored events removed by retention.
    pub expired_events: u64,
    /// Markers deleted past the horizon.
    pub compacted_markers: u64,
    /// Applied entries found still queued and deleted.
    pub released_entries: u64,
    /// Counter rows of other shards folded into shard 0 (PostgreSQL).
    pub folded_counters: u64,
    /// Whether work was left because the budget ran out.
    pub more: bool,
    /// The retention in force, as configured (`null` when off).
    pub retention: Option<String>,
}

/// The UTC time `age` ago, in the stores' timestamp text.
pub fn cutoff(age: Duration) -> String {
    let age = TimeDelta::from_std(age).unwrap_or(TimeDelta::MAX);
    let then = now_utc()
        .checked_sub_signed(age)
        .unwrap_or(chrono::NaiveDateTime::MIN);
    render_utc(&then)
}

/// Runs the chores until done or the budget is spent.
pub fn run(
    store: &dyn EventStore,
    queue: &Queue,
    upkeep: &Upkeep,
    retention_text: Option<String>,
) -> Result<Report, DrainError> {
    let started = Instant::now();
    let out_of_time = || started.elapsed() >= upkeep.work_budget;
    let mut report = Report {
        retention: retention_text,
        ..Report::default()
    };
    let pending: Vec<String> = queue
        .pending()
        .map_err(DrainError::Queue)?
        .into_iter()
        .map(|p| p.key)
        .collect();
    let applied = store.touch_markers(&pending).map_err(DrainError::Store)?;
    queue.remove_many(&applied).map_err(DrainError::Queue)?;
    report.released_entries = applied.len() as u64;

    loop {
        let folded = store.fold_counters(CHUNK).map_err(DrainError::Store)?;
        report.folded_counters += folded.rows;
        if !folded.more {
            break;
        }
        if out_of_time() {
            report.more = true;
            return Ok(report);
        }
    }

    let horizon = cutoff(upkeep.marker_horizon);
    // Each chore does at least one chunk per call, so every call makes progress.
    loop {
        let n = store
            .compact_markers(&horizon, &pending, CHUNK)
            .map_err(DrainError::Store)?;
        report.compacted_markers += n;
        if n < u64::from(CHUNK) {
            break;
        }
        if out_of_time() {
            report.more = true;
            return Ok(report);
        }
    }
    if let Some(retention) = upkeep.retention {
        let horizon = cutoff(retention);
        loop {
            let n = store.expire(&horizon, CHUNK).map_err(DrainError::Store)?;
            report.expired_events += n;
            if n < u64::from(CHUNK) {
                break;
            }
            if out_of_time() {
                report.more = true;
                return Ok(report);
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_in_the_past_and_formatted_like_stored_times() {
        let c = cutoff(Duration::from_secs(86_400));
        assert_eq!(c.len(), "2024-05-01T12:00:00.000000Z".len());
        assert!(c.ends_with('Z'));
        assert!(c < render_utc(&now_utc()));
    }

    #[test]
    fn absurd_retention_does_not_panic() {
        assert!(!cutoff(Duration::MAX).is_empty());
    }
}
