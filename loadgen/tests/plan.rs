//! The lazy plan through loadgen's public API: exact replay counts for fixed-size plans, replays
//! that are byte-for-byte copies of earlier events, whole recent batches resent, determinism by
//! seed, and endless plans that stream with the asked share of replays.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use loadgen::Mode;
use loadgen::plan::{Events, Generator, PlanParams, PlannedRequest, RECENT_BATCHES, Route};
use serde_json::Value;

/// A whole plan, collected from the generator (what the lab's `Plan` does).
struct Plan {
    topics: Vec<String>,
    events: Vec<loadgen::plan::PlannedEvent>,
    requests: Vec<PlannedRequest>,
    factory: Arc<Events>,
}

impl Plan {
    fn generate(p: &PlanParams) -> Option<Plan> {
        let mut g = Generator::new(p);
        let requests: Vec<PlannedRequest> = g.by_ref().collect();
        let factory = Arc::clone(g.events());
        Some(Plan {
            topics: factory.topics().to_vec(),
            events: (0..g.distinct()).map(|i| factory.event(i)).collect(),
            requests,
            factory,
        })
    }

    fn body(&self, r: &PlannedRequest) -> Bytes {
        self.factory.body(r)
    }

    fn topic_of(&self, i: u64) -> &str {
        self.factory.topic_of(i)
    }

    fn sent_events(&self) -> u64 {
        self.requests.iter().map(|r| r.events.len() as u64).sum()
    }

    fn replays(&self) -> u64 {
        self.sent_events() - self.events.len() as u64
    }

    fn routes_used(&self) -> BTreeSet<&'static str> {
        self.requests.iter().map(|r| r.route.path()).collect()
    }
}

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
fn a_fixed_plan_ends_and_says_so() {
    let p = params(Mode::Mixed, 5_000, 0.35, 12);
    let mut g = Generator::new(&p);
    let n = g.by_ref().count() as u64;
    assert!(g.exhausted());
    assert_eq!(g.requests(), n);
    assert_eq!(g.sent(), 5_000);
    assert_eq!(g.next(), None);
}
