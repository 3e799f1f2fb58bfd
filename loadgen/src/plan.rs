//! What to send: a seeded, lazily generated sequence of requests over the run's events (see
//! [`crate::events`]), with a share of exact replays of earlier events and, for batches, whole
//! recent batches resent, the way an at-least-once publisher produces them.
//!
//! The [`Generator`] holds only its random state, a few counters and the last
//! [`RECENT_BATCHES`] batches (for whole-batch resends), so a plan of any length streams in
//! constant memory. With a fixed event count, exactly `round(events * duplicate_rate)` of the
//! sent events are replays; without one (a `--duration` run), each request is a replay with the
//! same probability. Fresh events are numbered in order of first appearance, and replays only
//! ever point at events of *earlier* requests. [`Plan`] collects a short plan whole, for the
//! lab's harnesses and the tests.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use anyhow::{Result, bail};
use bytes::Bytes;
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
    /// The seeded plan of this shape under the topic prefix `run_id`, with the seed it used.
    pub fn plan(&self, run_id: &str) -> Result<(Plan, u64)> {
        if self.concurrency == 0 || self.batch_size == 0 || self.events == 0 {
            bail!("--events, --batch-size and --concurrency must be at least 1");
        }
        let seed = self.seed.unwrap_or_else(|| rand::rng().random());
        let plan = Plan::generate(&PlanParams {
            run_id: run_id.to_string(),
            events: Some(self.events),
            duplicate_rate: self.duplicate_rate,
            batch_size: self.batch_size,
            topics: self.topics,
            mode: self.mode,
            seed,
            base_time: Utc::now(),
        })?;
        Ok((plan, seed))
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

/// A whole plan collected in memory: for short plans (the lab's harnesses, `ping`, tests).
#[derive(Clone, Debug)]
pub struct Plan {
    /// The run id the topics are prefixed with.
    pub run_id: String,
    /// Topic names, `<run_id>.t<k>`.
    pub topics: Vec<String>,
    /// The distinct events, in order of first appearance.
    pub events: Vec<PlannedEvent>,
    /// The requests, in the order workers pick them up.
    pub requests: Vec<PlannedRequest>,
    factory: Arc<Events>,
}

impl Plan {
    /// Builds the whole plan of `p`, which must have a fixed event count.
    pub fn generate(p: &PlanParams) -> Result<Plan> {
        if p.events.is_none() {
            bail!("a plan collected in memory needs a fixed number of events");
        }
        let mut generator = Generator::new(p);
        let requests: Vec<PlannedRequest> = generator.by_ref().collect();
        let factory = Arc::clone(generator.events());
        Ok(Plan {
            run_id: p.run_id.clone(),
            topics: factory.topics().to_vec(),
            events: (0..generator.distinct())
                .map(|i| factory.event(i))
                .collect(),
            requests,
            factory,
        })
    }

    /// The run's event factory.
    pub fn factory(&self) -> &Arc<Events> {
        &self.factory
    }

    /// The exact body of a request (also used for its retries, so they are byte-identical).
    pub fn body(&self, req: &PlannedRequest) -> Bytes {
        self.factory.body(req)
    }

    /// Topic name of a planned event.
    pub fn topic_of(&self, event: u64) -> &str {
        self.factory.topic_of(event)
    }

    /// Events carried by all requests (each request counted once, retries not included).
    pub fn sent_events(&self) -> u64 {
        self.requests.iter().map(|r| r.events.len() as u64).sum()
    }

    /// Copies sent beyond the first of each distinct event.
    pub fn replays(&self) -> u64 {
        self.sent_events() - self.events.len() as u64
    }

    /// Distinct route paths used.
    pub fn routes_used(&self) -> BTreeSet<&'static str> {
        self.requests.iter().map(|r| r.route.path()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::Value;

    use super::*;

    fn params(mode: Mode, events: u64, rate: f64, seed: u64) -> PlanParams {
        PlanParams {
            run_id: "testrun".into(),
            events: Some(events),
            duplicate_rate: rate,
            batch_size: 100,
            topics: 8,
            mode,
            seed,
            base_time: DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    /// Parses every body the plan would send into (key, raw event text) in send order.
    fn sent_copies(plan: &Plan) -> Vec<((String, String), String)> {
        let mut out = Vec::new();
        for req in &plan.requests {
            let body: Value = serde_json::from_slice(&plan.body(req)).unwrap();
            let events = match req.route {
                Route::Single => {
                    assert_eq!(req.events.len(), 1);
                    vec![body]
                }
                Route::Batch => body["events"].as_array().unwrap().clone(),
            };
            assert_eq!(events.len(), req.events.len());
            for e in events {
                let key = (
                    e["topic"].as_str().unwrap().to_string(),
                    e["event_id"].as_str().unwrap().to_string(),
                );
                out.push((key, serde_json::to_string(&e).unwrap()));
            }
        }
        out
    }

    #[test]
    fn duplicate_rate_and_counts_are_honoured() {
        for mode in [Mode::Batch, Mode::Single, Mode::Mixed] {
            for (n, rate) in [(20_000u64, 0.35), (5_000, 0.0), (1_234, 0.9), (10_000, 0.5)] {
                let plan = Plan::generate(&params(mode, n, rate, 7)).unwrap();
                let copies = sent_copies(&plan);
                assert_eq!(copies.len() as u64, n, "{mode:?} sent count");
                assert_eq!(plan.sent_events(), n);
                let distinct: HashMap<_, _> = copies.iter().cloned().collect();
                let replays = n - distinct.len() as u64;
                assert_eq!(distinct.len(), plan.events.len(), "{mode:?} unique count");
                assert_eq!(replays, plan.replays());
                let want = (n as f64 * rate).round() as u64;
                assert_eq!(replays, want, "{mode:?} n={n} rate={rate}");
                let actual_rate = replays as f64 / n as f64;
                assert!(
                    (actual_rate - rate).abs() < 0.01,
                    "{mode:?}: {actual_rate} vs {rate}"
                );
            }
        }
    }

    #[test]
    fn replays_are_exact_copies_of_earlier_events() {
        for mode in [Mode::Batch, Mode::Single, Mode::Mixed] {
            let plan = Plan::generate(&params(mode, 10_000, 0.35, 3)).unwrap();
            let mut first: HashMap<(String, String), String> = HashMap::new();
            let mut seen_replay = 0;
            for (key, text) in sent_copies(&plan) {
                match first.get(&key) {
                    Some(orig) => {
                        assert_eq!(orig, &text, "replay of {key:?} differs");
                        seen_replay += 1;
                    }
                    None => {
                        first.insert(key, text);
                    }
                }
            }
            assert_eq!(seen_replay, 3_500);
            // A replay never precedes (or shares a request with) its original.
            let mut known = 0u64;
            for req in &plan.requests {
                let before = known;
                for &i in &req.events {
                    if i >= before {
                        assert!(i == known, "fresh events are numbered in order");
                        known += 1;
                    }
                }
            }
            assert_eq!(known, plan.events.len() as u64);
        }
    }

    #[test]
    fn batch_mode_resends_whole_earlier_batches() {
        let plan = Plan::generate(&params(Mode::Batch, 25_000, 0.35, 11)).unwrap();
        let resends: Vec<_> = plan
            .requests
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.resend_of.map(|of| (i, of)))
            .collect();
        assert!(
            resends.len() >= 5,
            "only {} whole-batch resends",
            resends.len()
        );
        for (i, of) in resends {
            assert!(of < i as u64);
            assert!(i as u64 - of <= 2 * RECENT_BATCHES as u64, "a recent batch");
            assert_eq!(
                plan.body(&plan.requests[i]),
                plan.body(&plan.requests[of as usize])
            );
        }
        assert!(plan.requests.iter().all(|r| r.events.len() <= 100));
        assert!(plan.requests.iter().all(|r| r.route == Route::Batch));
    }

    #[test]
    fn single_mode_sends_one_object_and_mixed_uses_both_routes() {
        let plan = Plan::generate(&params(Mode::Single, 500, 0.35, 1)).unwrap();
        assert_eq!(plan.requests.len(), 500);
        let body: Value = serde_json::from_slice(&plan.body(&plan.requests[0])).unwrap();
        assert!(body.is_object() && body.get("events").is_none());
        assert_eq!(body["source"], "loadgen");
        assert_eq!(body["payload"]["run"], "testrun");
        assert_eq!(body["timestamp"], "2030-01-02T03:04:05.000000Z");

        let mixed = Plan::generate(&params(Mode::Mixed, 5_000, 0.35, 1)).unwrap();
        assert_eq!(mixed.routes_used().len(), 2);
    }

    #[test]
    fn topics_and_ids_are_scoped_to_the_run() {
        let plan = Plan::generate(&params(Mode::Batch, 3_000, 0.2, 5)).unwrap();
        assert_eq!(plan.topics.len(), 8);
        let mut ids = std::collections::HashSet::new();
        for e in &plan.events {
            assert!(plan.topics[e.topic as usize].starts_with("testrun.t"));
            assert!(
                ids.insert(e.event_id.clone()),
                "duplicate id {}",
                e.event_id
            );
        }
        // All topics get used with this many events.
        let used: BTreeSet<u32> = plan.events.iter().map(|e| e.topic).collect();
        assert_eq!(used.len(), 8);
        for (i, e) in plan.events.iter().enumerate() {
            assert_eq!(plan.topics[e.topic as usize], plan.topic_of(i as u64));
        }
    }

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        for mode in [Mode::Batch, Mode::Single, Mode::Mixed] {
            let a = Plan::generate(&params(mode, 4_000, 0.35, 42)).unwrap();
            let b = Plan::generate(&params(mode, 4_000, 0.35, 42)).unwrap();
            let c = Plan::generate(&params(mode, 4_000, 0.35, 43)).unwrap();
            let bodies = |p: &Plan| p.requests.iter().map(|r| p.body(r)).collect::<Vec<_>>();
            assert_eq!(a.requests, b.requests);
            assert_eq!(bodies(&a), bodies(&b));
            assert_ne!(bodies(&a), bodies(&c));
        }
    }

    #[test]
    fn tiny_and_extreme_plans_terminate_with_exact_counts() {
        for (n, rate) in [(1u64, 0.35), (2, 0.99), (150, 0.99), (101, 0.5)] {
            let plan = Plan::generate(&params(Mode::Batch, n, rate, 9)).unwrap();
            assert_eq!(plan.sent_events(), n);
            assert!(!plan.events.is_empty());
            assert!(plan.requests.iter().all(|r| !r.events.is_empty()));
        }
    }

    #[test]
    fn an_endless_plan_streams_with_the_asked_share_of_replays() {
        for mode in [Mode::Batch, Mode::Single, Mode::Mixed] {
            let mut p = params(mode, 0, 0.35, 4);
            p.events = None;
            let mut g = Generator::new(&p);
            let mut seen = 0u64;
            let mut max_fresh = 0u64;
            for req in g.by_ref().take(3_000) {
                for &i in &req.events {
                    assert!(i <= max_fresh, "fresh events are numbered in order");
                    if i == max_fresh {
                        max_fresh += 1;
                    }
                    seen += 1;
                }
            }
            assert!(!g.exhausted());
            assert_eq!(g.sent(), seen);
            let share = 1.0 - g.distinct() as f64 / seen as f64;
            assert!(
                (share - 0.35).abs() < 0.03,
                "{mode:?}: replay share {share}"
            );
        }
    }

    #[test]
    fn the_generator_and_the_collected_plan_agree() {
        let p = params(Mode::Mixed, 5_000, 0.35, 12);
        let plan = Plan::generate(&p).unwrap();
        let streamed: Vec<PlannedRequest> = Generator::new(&p).collect();
        assert_eq!(plan.requests, streamed);
    }
}
