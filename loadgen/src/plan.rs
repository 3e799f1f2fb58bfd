//! What to send: a seeded, deterministic plan of distinct events and of the requests that carry
//! them, with a fixed share of exact replays of earlier events (and, for batches, whole earlier
//! batches resent) the way an at-least-once publisher produces them.
//!
//! Every copy of an event is the same pre-serialized JSON text, so a replay is byte-for-byte the
//! original. Replays only ever point at events of *earlier* requests in plan order.

use std::collections::BTreeSet;

use anyhow::Result;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Mode;

/// Share of the replay budget that batch mode tries to spend on resending whole earlier batches.
const WHOLE_BATCH_SHARE: f64 = 0.25;

/// The `source` of every generated event, so they are recognisable in the store.
pub const SOURCE: &str = "loadgen";

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

/// One distinct event (one dedup key), kept so every copy and the read-back use the same data.
#[derive(Clone, Debug)]
pub struct PlannedEvent {
    /// Index into [`Plan::topics`].
    pub topic: u32,
    /// The event id, unique within the plan.
    pub event_id: String,
    /// RFC 3339 UTC timestamp as sent.
    pub timestamp: String,
    /// The payload as sent, for comparing against what is read back.
    pub payload: Value,
    /// The whole event serialized once; every copy sends exactly these bytes.
    pub json: Box<str>,
}

/// One HTTP request of the plan (its retries resend the same body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRequest {
    /// Route (and so body shape) of the request.
    pub route: Route,
    /// Indices into [`Plan::events`], in body order; may repeat earlier events (replays).
    pub events: Vec<u32>,
    /// When this request is a whole earlier batch resent: the index of that request.
    pub resend_of: Option<usize>,
}

/// The shape of a generated load, shared by `ping` and `raw` (and their command lines), so both
/// measure the same plan from the same settings.
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
            anyhow::bail!("--events, --batch-size and --concurrency must be at least 1");
        }
        let seed = self.seed.unwrap_or_else(|| rand::rng().random());
        let plan = Plan::generate(&PlanParams {
            run_id: run_id.to_string(),
            events: self.events,
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
    /// Total events sent (replays included).
    pub events: u64,
    /// Fraction of `events` that are replays.
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

/// The full, deterministic list of what a run sends.
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
}

#[derive(Serialize)]
struct WireEvent<'a> {
    topic: &'a str,
    event_id: &'a str,
    timestamp: &'a str,
    source: &'a str,
    payload: &'a Value,
}

const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];

impl Plan {
    /// Builds the plan; exactly `round(events * duplicate_rate)` of the sent events are replays
    /// (fewer only if that would leave no distinct event at all).
    pub fn generate(p: &PlanParams) -> Result<Plan> {
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let topics: Vec<String> = (0..p.topics)
            .map(|k| format!("{}.t{k}", p.run_id))
            .collect();
        let total = p.events;
        let mut replay_left = ((total as f64) * p.duplicate_rate).round() as u64;
        replay_left = replay_left.min(total.saturating_sub(1));
        let mut fresh_left = total - replay_left;

        let mut plan = Plan {
            run_id: p.run_id.clone(),
            topics,
            events: Vec::with_capacity(fresh_left as usize),
            requests: Vec::new(),
        };
        let mut batch_requests: Vec<usize> = Vec::new();

        while fresh_left + replay_left > 0 {
            let route = match p.mode {
                Mode::Batch => Route::Batch,
                Mode::Single => Route::Single,
                Mode::Mixed => {
                    if rng.random_bool(0.5) {
                        Route::Batch
                    } else {
                        Route::Single
                    }
                }
            };
            let remaining = fresh_left + replay_left;

            if route == Route::Batch && replay_left > 0 && !batch_requests.is_empty() {
                let p_whole = WHOLE_BATCH_SHARE * replay_left as f64 / remaining as f64;
                if rng.random_bool(p_whole.min(1.0)) {
                    let of = batch_requests[rng.random_range(0..batch_requests.len())];
                    let events = plan.requests[of].events.clone();
                    if events.len() as u64 <= replay_left {
                        replay_left -= events.len() as u64;
                        plan.requests.push(PlannedRequest {
                            route,
                            events,
                            resend_of: Some(of),
                        });
                        continue;
                    }
                }
            }

            let size = match route {
                Route::Batch => (p.batch_size as u64).min(remaining),
                Route::Single => 1,
            };
            // Only events of earlier requests may be replayed.
            let pool = plan.events.len();
            let mut ids = Vec::with_capacity(size as usize);
            for _ in 0..size {
                let remaining = fresh_left + replay_left;
                let replay = pool > 0
                    && replay_left > 0
                    && (fresh_left == 0 || rng.random_range(0..remaining) < replay_left);
                if replay {
                    ids.push(rng.random_range(0..pool) as u32);
                    replay_left -= 1;
                } else if fresh_left > 0 {
                    ids.push(plan.push_fresh_event(p, &mut rng)?);
                    fresh_left -= 1;
                } else {
                    // Nothing fresh left and nothing earlier to replay: end this request early.
                    break;
                }
            }
            if route == Route::Batch {
                batch_requests.push(plan.requests.len());
            }
            plan.requests.push(PlannedRequest {
                route,
                events: ids,
                resend_of: None,
            });
        }
        Ok(plan)
    }

    fn push_fresh_event(&mut self, p: &PlanParams, rng: &mut ChaCha8Rng) -> Result<u32> {
        let seq = self.events.len() as u64;
        let topic = rng.random_range(0..p.topics);
        let event_id = format!("{}-{seq:08}", p.run_id);
        let ts = p.base_time + TimeDelta::microseconds(seq as i64);
        let timestamp = ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let payload = json!({
            "seq": seq,
            "run": p.run_id,
            "level": LEVELS[rng.random_range(0..LEVELS.len())],
            "msg": format!("loadgen event {seq}"),
            "n": rng.random_range(0..1_000_000u32),
        });
        let json = serde_json::to_string(&WireEvent {
            topic: &self.topics[topic as usize],
            event_id: &event_id,
            timestamp: &timestamp,
            source: SOURCE,
            payload: &payload,
        })?
        .into_boxed_str();
        self.events.push(PlannedEvent {
            topic,
            event_id,
            timestamp,
            payload,
            json,
        });
        Ok(seq as u32)
    }

    /// The exact body of a request (also used for its retries, so they are byte-identical).
    pub fn body(&self, req: &PlannedRequest) -> Bytes {
        match req.route {
            Route::Single => {
                Bytes::copy_from_slice(self.events[req.events[0] as usize].json.as_bytes())
            }
            Route::Batch => {
                let len: usize = req
                    .events
                    .iter()
                    .map(|&i| self.events[i as usize].json.len() + 1)
                    .sum();
                let mut s = String::with_capacity(len + 16);
                s.push_str("{\"events\":[");
                for (n, &i) in req.events.iter().enumerate() {
                    if n > 0 {
                        s.push(',');
                    }
                    s.push_str(&self.events[i as usize].json);
                }
                s.push_str("]}");
                Bytes::from(s)
            }
        }
    }

    /// Topic name of a planned event.
    pub fn topic_of(&self, event: u32) -> &str {
        &self.topics[self.events[event as usize].topic as usize]
    }

    /// Events carried by all requests (each request counted once, retries not included).
    pub fn sent_events(&self) -> u64 {
        self.requests.iter().map(|r| r.events.len() as u64).sum()
    }

    /// Copies sent beyond the first of each distinct event.
    pub fn replays(&self) -> u64 {
        self.sent_events() - self.events.len() as u64
    }

    /// Number of requests that resend a whole earlier batch.
    pub fn whole_batch_resends(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| r.resend_of.is_some())
            .count()
    }

    /// Distinct events among the first `n` requests (what a run cut short actually covered).
    pub fn distinct_in_prefix(&self, n: usize) -> u64 {
        // Fresh events are numbered in order of first appearance, so the distinct count of a
        // prefix is one more than the highest index seen in it.
        self.requests[..n.min(self.requests.len())]
            .iter()
            .flat_map(|r| r.events.iter())
            .max()
            .map_or(0, |&m| m as u64 + 1)
    }

    /// Distinct route paths used, for the report.
    pub fn routes_used(&self) -> BTreeSet<&'static str> {
        self.requests.iter().map(|r| r.route.path()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn params(mode: Mode, events: u64, rate: f64, seed: u64) -> PlanParams {
        PlanParams {
            run_id: "testrun".into(),
            events,
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
            let mut known = 0u32;
            for req in &plan.requests {
                let before = known;
                for &i in &req.events {
                    if i >= before {
                        assert!(i == known, "fresh events are numbered in order");
                        known += 1;
                    }
                }
            }
            assert_eq!(known as usize, plan.events.len());
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
            assert!(of < i);
            assert_eq!(plan.body(&plan.requests[i]), plan.body(&plan.requests[of]));
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
    fn distinct_in_prefix_counts_distinct_events() {
        let plan = Plan::generate(&params(Mode::Batch, 2_000, 0.35, 2)).unwrap();
        for n in [0, 1, 5, plan.requests.len()] {
            let distinct: BTreeSet<u32> = plan.requests[..n]
                .iter()
                .flat_map(|r| r.events.iter().copied())
                .collect();
            assert_eq!(plan.distinct_in_prefix(n), distinct.len() as u64);
        }
    }
}
