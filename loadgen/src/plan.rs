//! What to send: a seeded, lazily generated sequence of requests over the run's events (see
//! [`crate::events`]), with a share of exact replays of earlier events and, for batches, whole
//! recent batches resent, the way an at-least-once publisher produces them.
//!
//! The [`Generator`] holds only its random state, a few counters and the last
//! [`RECENT_BATCHES`] batches (for whole-batch resends), so a plan of any length streams in
//! constant memory. With a fixed event count, exactly `round(events * duplicate_rate)` of the
//! sent events are replays; without one (a `--duration` run), each request is a replay with the
//! same probability. Fresh events are numbered in order of first appearance, and replays only
//! ever point at events of *earlier* requests.

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::config::Mode;
pub use crate::events::{Events, PlannedEvent, SOURCE};

/// Share of the replay budget that batch mode tries to spend on resending whole earlier batches.
const WHOLE_BATCH_SHARE: f64 = 0.25;

/// How many recent batch requests a whole-batch resend may pick from (a publisher's retry
/// buffer): bounds the generator's memory.
pub const RECENT_BATCHES: usize = 64;

/// Which publish route a request goes to, because the body shape differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /publish` with one event object.
    Single,
    /// `POST /publish/batch` with `{"events": [...]}`.
    Batch,
}

impl Route {
    /// The path to post to.
    pub fn path(self) -> &'static str {
        match self {
            Route::Single => "/publish",
            Route::Batch => "/publish/batch",
        }
    }
}

/// One HTTP request of the plan (its retries resend the same body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRequest {
    /// Route (and so body shape) of the request.
    pub route: Route,
    /// Event indices, in body order; may repeat earlier events (replays).
    pub events: Vec<u64>,
    /// When this request is a whole earlier batch resent: the index of that request.
    pub resend_of: Option<u64>,
}

/// The shape of a generated load, shared by `ping` and the lab's `raw` (and their command
/// lines), so both measure the same plan from the same settings.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Events carried, replays included.
    pub events: u64,
    /// Fraction of replays (exact copies of earlier events).
    pub duplicate_rate: f64,
    /// Events per batch.
    pub batch_size: usize,
    /// Concurrent connections.
    pub concurrency: usize,
    /// Number of topics.
    pub topics: u32,
    /// Body shape and route.
    pub mode: Mode,
    /// Plan seed; random when absent.
    pub seed: Option<u64>,
}

impl Shape {
    /// The plan parameters of this shape under the topic prefix `run_id` (the seed drawn
    /// when absent), starting now.
    pub fn params(&self, run_id: &str) -> Result<PlanParams> {
        if self.concurrency == 0 || self.batch_size == 0 || self.events == 0 {
            bail!("--events, --batch-size and --concurrency must be at least 1");
        }
        Ok(PlanParams {
            run_id: run_id.to_string(),
            events: Some(self.events),
            duplicate_rate: self.duplicate_rate,
            batch_size: self.batch_size,
            topics: self.topics,
            mode: self.mode,
            seed: self.seed.unwrap_or_else(|| rand::rng().random()),
            base_time: Utc::now(),
        })
    }
}

/// The inputs of plan generation, separate from `Config` so tests can pin the clock.
#[derive(Clone, Debug)]
pub struct PlanParams {
    /// Prefix of every topic and part of every event id and payload.
    pub run_id: String,
    /// Total events sent (replays included); `None`: no end (the caller stops it).
    pub events: Option<u64>,
    /// Fraction of the events that are replays.
    pub duplicate_rate: f64,
    /// Maximum events per batch request.
    pub batch_size: usize,
    /// Number of topics.
    pub topics: u32,
    /// Route selection.
    pub mode: Mode,
    /// RNG seed; the same params always give the same plan.
    pub seed: u64,
    /// Timestamp of event 0; event `n` is `base_time + n µs`.
    pub base_time: DateTime<Utc>,
}

/// The lazy plan: an iterator of requests in the order workers pick them up.
#[derive(Debug)]
pub struct Generator {
    events: Arc<Events>,
    rng: ChaCha8Rng,
    mode: Mode,
    batch_size: u64,
    duplicate_rate: f64,
    /// `(fresh, replays)` still to send when the plan has a fixed size.
    left: Option<(u64, u64)>,
    /// Distinct events generated so far (the next fresh index).
    fresh: u64,
    /// Requests generated so far.
    requests: u64,
    /// Events carried by them.
    sent: u64,
    recent: VecDeque<(u64, Vec<u64>)>,
}

impl Generator {
    /// The generator of `p`'s plan.
    pub fn new(p: &PlanParams) -> Generator {
        let events = Arc::new(Events::new(&p.run_id, p.topics, p.seed, p.base_time));
        let left = p.events.map(|total| {
            let replays =
                ((total as f64 * p.duplicate_rate).round() as u64).min(total.saturating_sub(1));
            (total - replays, replays)
        });
        Generator {
            events,
            rng: ChaCha8Rng::seed_from_u64(p.seed),
            mode: p.mode,
            batch_size: p.batch_size.max(1) as u64,
            duplicate_rate: p.duplicate_rate,
            left,
            fresh: 0,
            requests: 0,
            sent: 0,
            recent: VecDeque::with_capacity(RECENT_BATCHES),
        }
    }

    /// The run's event factory (shared with whoever builds bodies or reads back).
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// Distinct events generated so far.
    pub fn distinct(&self) -> u64 {
        self.fresh
    }

    /// Requests generated so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Events carried by the requests generated so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether a fixed-size plan has nothing left.
    pub fn exhausted(&self) -> bool {
        self.left.is_some_and(|(f, r)| f + r == 0)
    }

    fn route(&mut self) -> Route {
        match self.mode {
            Mode::Batch => Route::Batch,
            Mode::Single => Route::Single,
            Mode::Mixed if self.rng.random_bool(0.5) => Route::Batch,
            Mode::Mixed => Route::Single,
        }
    }

    /// A whole recent batch to resend, if the dice say so and the replay budget allows it.
    fn whole_batch(&mut self) -> Option<(u64, Vec<u64>)> {
        if self.recent.is_empty() {
            return None;
        }
        let p = match self.left {
            Some((_, 0)) => return None,
            Some((f, r)) => WHOLE_BATCH_SHARE * r as f64 / (f + r) as f64,
            None => WHOLE_BATCH_SHARE * self.duplicate_rate,
        };
        if !self.rng.random_bool(p.min(1.0)) {
            return None;
        }
        let k = self.rng.random_range(0..self.recent.len());
        let (of, events) = self.recent[k].clone();
        match &mut self.left {
            Some((_, r)) if events.len() as u64 > *r => None,
            Some((_, r)) => {
                *r -= events.len() as u64;
                Some((of, events))
            }
            None => Some((of, events)),
        }
    }

    /// Whether the next event slot is a replay (only when `pool`, an earlier request's event,
    /// exists); `None` when the plan has nothing left for it.
    fn replay_slot(&mut self, pool: bool) -> Option<bool> {
        match &mut self.left {
            Some((0, 0)) => None,
            Some((f, r)) => {
                let replay = pool && *r > 0 && (*f == 0 || self.rng.random_range(0..*f + *r) < *r);
                if replay {
                    *r -= 1;
                } else if *f > 0 {
                    *f -= 1;
                } else {
                    // Nothing fresh left and nothing earlier to replay.
                    return None;
                }
                Some(replay)
            }
            None => {
                // Whole-batch resends carry part of the replays: the per-slot share makes up
                // the rest, so replays are `duplicate_rate` of the events on average.
                let q = WHOLE_BATCH_SHARE * self.duplicate_rate;
                let p = if matches!(self.mode, Mode::Single) {
                    self.duplicate_rate
                } else {
                    ((self.duplicate_rate - q) / (1.0 - q)).max(0.0)
                };
                Some(pool && self.rng.random_bool(p.min(1.0)))
            }
        }
    }
}

impl Iterator for Generator {
    type Item = PlannedRequest;

    fn next(&mut self) -> Option<PlannedRequest> {
        if self.exhausted() {
            return None;
        }
        let route = self.route();
        let idx = self.requests;
        let resend = if route == Route::Batch {
            self.whole_batch()
        } else {
            None
        };
        let req = match resend {
            Some((of, events)) => PlannedRequest {
                route,
                events,
                resend_of: Some(of),
            },
            None => {
                let size = match route {
                    Route::Batch => self.batch_size,
                    Route::Single => 1,
                };
                let mut ids = Vec::with_capacity(size as usize);
                // Replays point at events of earlier requests only.
                let pool = self.fresh;
                for _ in 0..size {
                    match self.replay_slot(pool > 0) {
                        None => break,
                        Some(true) => ids.push(self.rng.random_range(0..pool)),
                        Some(false) => {
                            ids.push(self.fresh);
                            self.fresh += 1;
                        }
                    }
                }
                if ids.is_empty() {
                    return None;
                }
                if route == Route::Batch {
                    if self.recent.len() == RECENT_BATCHES {
                        self.recent.pop_front();
                    }
                    self.recent.push_back((idx, ids.clone()));
                }
                PlannedRequest {
                    route,
                    events: ids,
                    resend_of: None,
                }
            }
        };
        self.requests += 1;
        self.sent += req.events.len() as u64;
        Some(req)
    }
}
