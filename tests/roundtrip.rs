//! One definition of a storable event, proven on both stores (issue 9, item 1).
//!
//! Generated events — numbers at every edge (`1e999999`, `-1e-20000`, 400-digit integers …),
//! nesting up to and past the 128-level limit, strings up to tens of KB and across the 64 KiB
//! payload limit, unicode spelled raw and as `\uXXXX` / surrogate-pair escapes, repeated keys,
//! empty containers, whitespace between tokens, text fields at 255 and 256 characters, timestamps
//! with every offset form — are published through the real `edgelog.wasm` on `edge-host` over
//! HTTP to BOTH backends in the same run (SQLite; PostgreSQL + Redis) and read back with
//! `GET /events?topic=…`. Both must answer every case alike: what is accepted comes back with
//! its payload byte for byte the sender's compact text (so nothing grew) and its timestamp
//! normalised to the same UTC text; what is rejected gets the same status and the same error
//! body, naming the same fields, and changes no counter. The expected outcome of every case is
//! computed in `roundtrip/cases.rs`, independently of the service.
//!
//! `PROPTEST_CASES` sets the number of generated batches (default 64, each of 20 events);
//! `PROPTEST_RNG_SEED` replays a run (a failure prints its seed).

mod support;

#[path = "roundtrip/cases.rs"]
mod cases;
#[path = "roundtrip/edges.rs"]
mod edges;
#[path = "roundtrip/json.rs"]
mod json;
#[path = "roundtrip/side.rs"]
mod side;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use cases::{Case, Expect, Rendered};
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use serde_json::Value;
use side::{Reply, Side, StoredEvent, both, clip, on_both};

/// Events per generated publish.
const BATCH: usize = 20;
/// Generated batches when `PROPTEST_CASES` is not set: enough to meet every generator branch
/// many times while keeping CI fast.
const DEFAULT_BATCHES: u32 = 64;

/// Where two texts first differ, with the surroundings.
fn first_difference(expected: &str, got: &str) -> String {
    let at = expected
        .bytes()
        .zip(got.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let window = |s: &str| {
        clip(&String::from_utf8_lossy(
            &s.as_bytes()[at.saturating_sub(40)..],
        ))
    };
    format!(
        "lengths sent {} / read back {}; first difference at byte {at}: sent …{} / read back …{}",
        expected.len(),
        got.len(),
        window(expected),
        window(got)
    )
}

/// A fresh 6-character tag, so no two publishes in this process share an event_id.
fn next_tag() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:06}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The `details[].field` list of an error body.
fn detail_fields(body: &Value) -> Vec<Option<String>> {
    body["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|x| x["field"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Publishes one rejected case on both backends: same status, same error body, as expected.
fn check_rejected(apps: &[Side; 2], case: &Rendered) -> Result<(), String> {
    let Expect::Rejected { status, fields } = &case.expect else {
        unreachable!("only rejected cases")
    };
    let [a, b] = on_both(apps, |app| app.publish(&case.body, false));
    if a != b {
        return Err(format!(
            "the backends disagree on {}:\n  sqlite: {} {}\n  postgres+redis: {} {}",
            clip(&case.body),
            a.status,
            clip(&a.text),
            b.status,
            clip(&b.text)
        ));
    }
    let body = a.json();
    let got_fields = if a.status == 400 {
        vec![]
    } else {
        detail_fields(&body)
    };
    if a.status != *status || &got_fields != fields || body["error"].as_str().is_none() {
        return Err(format!(
            "expected {status} naming {fields:?} for {}\n  both answered {} {}",
            clip(&case.body),
            a.status,
            clip(&a.text)
        ));
    }
    Ok(())
}

/// When a batch that should be stored is not, publishes its events one by one to name the culprits.
fn diagnose(apps: &[Side; 2], cases: &[&Case]) -> String {
    let mut out = Vec::new();
    for case in cases {
        let r = case.render(&next_tag());
        let [a, b] = on_both(apps, |app| app.publish(&r.body, false));
        if a.status != 200 || b.status != 200 {
            out.push(format!(
                "  event {}\n    sqlite: {} {}\n    postgres+redis: {} {}",
                clip(&r.body),
                a.status,
                clip(&a.text),
                b.status,
                clip(&b.text)
            ));
        }
    }
    if out.is_empty() {
        "every event of it is stored when published alone".into()
    } else {
        format!(
            "published alone, these are not stored with 200:\n{}",
            out.join("\n")
        )
    }
}

/// Compares one read-back event with what was sent.
fn check_stored(app: &Side, case: &Rendered, got: Option<&StoredEvent>) -> Result<(), String> {
    let Expect::Stored { payload, timestamp } = &case.expect else {
        unreachable!("only stored cases")
    };
    let id = case.event_id.as_deref().unwrap_or_default();
    let got = got.ok_or_else(|| {
        format!(
            "{}: event {id:?} was acknowledged but GET /events?topic={:?} does not return it",
            app.name, case.topic
        )
    })?;
    let text = got.payload.get();
    if text != payload || text.len() != payload.len() {
        return Err(format!(
            "{}: payload of {id:?} is not the sender's compact text: {}",
            app.name,
            first_difference(payload, text)
        ));
    }
    let same = |what: &str, sent: Option<&str>, read: &str| match sent == Some(read) {
        true => Ok(()),
        false => Err(format!(
            "{}: {what} sent {sent:?}, read back {read:?}",
            app.name
        )),
    };
    same("topic", case.topic.as_deref(), &got.topic)?;
    same("event_id", case.event_id.as_deref(), &got.event_id)?;
    same("source", case.source.as_deref(), &got.source)?;
    same("timestamp (normalised)", Some(timestamp), &got.timestamp)
}

/// Publishes a batch of cases to both backends and checks every outcome (see the module doc).
fn check_batch(apps: &[Side; 2], cases: &[Case]) -> Result<(), String> {
    let before = on_both(apps, Side::counters);
    let rendered: Vec<(&Case, Rendered)> =
        cases.iter().map(|c| (c, c.render(&next_tag()))).collect();
    let (good, bad): (Vec<_>, Vec<_>) = rendered
        .iter()
        .partition(|(_, r)| matches!(r.expect, Expect::Stored { .. }));
    for (_, r) in &bad {
        check_rejected(apps, r)?;
    }
    if !good.is_empty() {
        let body = format!(
            "[\n {}\n]",
            good.iter()
                .map(|(_, r)| r.body.as_str())
                .collect::<Vec<_>>()
                .join(" ,\n ")
        );
        let [a, b] = on_both(apps, |app| app.publish(&body, false));
        let processed = |r: &Reply| r.json()["processed"].as_u64();
        let n = Some(good.len() as u64);
        if a.status != 200 || b.status != 200 || processed(&a) != n || processed(&b) != n {
            let culprits: Vec<&Case> = good.iter().map(|(c, _)| *c).collect();
            return Err(format!(
                "a batch of {} valid events was not stored on both with 200:\n  sqlite: {} {}\n  \
                 postgres+redis: {} {}\n{}",
                good.len(),
                a.status,
                clip(&a.text),
                b.status,
                clip(&b.text),
                diagnose(apps, &culprits)
            ));
        }
        let mut by_topic: BTreeMap<&str, HashSet<String>> = BTreeMap::new();
        for (_, r) in &good {
            let (topic, id) = (r.topic.as_deref(), r.event_id.clone());
            by_topic
                .entry(topic.expect("valid"))
                .or_default()
                .insert(id.expect("valid"));
        }
        let read = on_both(
            apps,
            |app| -> Result<HashMap<String, StoredEvent>, String> {
                let mut all = HashMap::new();
                for (topic, ids) in &by_topic {
                    all.extend(app.read_back(topic, ids)?);
                }
                Ok(all)
            },
        );
        for (app, events) in apps.iter().zip(read) {
            let events = events?;
            for (_, r) in &good {
                check_stored(
                    app,
                    r,
                    events.get(r.event_id.as_deref().unwrap_or_default()),
                )?;
            }
        }
    }
    // Rejections changed nothing, acceptances were counted once, nothing is left queued.
    let after = on_both(apps, Side::counters);
    for (app, (b, a)) in apps.iter().zip(before.into_iter().zip(after)) {
        let (b, a) = (b?, a?);
        let stored = good.len() as u64;
        let grew = |i: usize| a[i].checked_sub(b[i]);
        if grew(0) != Some(stored) || grew(1) != Some(stored) || a[3] != 0 || a[4] != 0 {
            return Err(format!(
                "{}: counters [received, unique, duplicates, queued, dead_lettered] went from \
                 {b:?} to {a:?} for {stored} stored and {} rejected events{}",
                app.name,
                bad.len(),
                foreign_events(app)
            ));
        }
    }
    Ok(())
}

/// On PostgreSQL, the stored events this test never published (every event_id it sends starts
/// with six digits): evidence of another process sharing the queue (the same Redis database).
fn foreign_events(app: &Side) -> String {
    let Some(db) = &app.app.db else {
        return String::new();
    };
    let rows = db.connect().query(
        "SELECT topic, event_id FROM events WHERE event_id !~ '^[0-9]{6}' ORDER BY id LIMIT 10",
        &[],
    );
    match rows {
        Ok(rows) if rows.is_empty() => "; every stored event is one of this test's".into(),
        Ok(rows) => {
            let keys: Vec<String> = rows
                .iter()
                .map(|r| format!("{}/{}", r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect();
            format!(
                "; events this test never published are stored (another process shares the \
                 Redis database {}?): {}",
                app.app.redis.as_ref().map_or("", |r| r.url.as_str()),
                keys.join(", ")
            )
        }
        Err(e) => format!("; (could not list stored events: {e})"),
    }
}

/// The status a case must get (200 when it must be stored), for the run summaries.
fn outcome(case: &Case) -> u16 {
    match case.render("000000").expect {
        Expect::Stored { .. } => 200,
        Expect::Rejected { status, .. } => status,
    }
}

/// The proptest configuration: environment overrides, else a modest default and a fixed seed
/// (drawn here so a failure can print it).
fn config() -> (Config, u64) {
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_BATCHES;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        // Each shrink step is a full batch on both backends; the diagnosis names culprits anyway.
        config.max_shrink_iters = 24;
    }
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    config.rng_seed = RngSeed::Fixed(seed);
    (config, seed)
}

#[test]
fn generated_events_round_trip_identically_on_both_backends() {
    let apps = both();
    let (config, seed) = config();
    let cases_run = config.cases;
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(cases::case(), BATCH);
    let tally = std::sync::Mutex::new(BTreeMap::<u16, usize>::new());
    let result = runner.run(&strategy, |batch| {
        for case in &batch {
            *tally.lock().unwrap().entry(outcome(case)).or_default() += 1;
        }
        check_batch(&apps, &batch).map_err(|e| {
            // Every failure seen, shrinking included: the first one is the original defect.
            eprintln!("roundtrip failure: {}", clip(&e));
            TestCaseError::fail(e)
        })
    });
    match result {
        Ok(()) => eprintln!(
            "{cases_run} batches of {BATCH} events round-tripped (seed {seed}); events by \
             expected status: {:?}",
            tally.lock().unwrap()
        ),
        Err(TestError::Fail(reason, batch)) => {
            let bodies: Vec<String> = batch
                .iter()
                .map(|c| clip(&c.render("000000").body))
                .collect();
            panic!(
                "{reason}\n(replay with PROPTEST_RNG_SEED={seed}; smallest failing batch after \
                 shrinking:\n  {})",
                bodies.join("\n  ")
            )
        }
        Err(TestError::Abort(reason)) => panic!("proptest aborted: {reason} (seed {seed})"),
    }
}

#[test]
fn edge_cases_round_trip_identically_on_both_backends() {
    let apps = both();
    let edges = edges::edge_cases();
    let mut outcomes: BTreeMap<u16, usize> = BTreeMap::new();
    for e in &edges {
        *outcomes.entry(outcome(e)).or_default() += 1;
    }
    eprintln!(
        "edge corpus: {} events, expected outcomes by status {outcomes:?}",
        edges.len()
    );
    let mut failures = Vec::new();
    for chunk in edges.chunks(BATCH) {
        if let Err(e) = check_batch(&apps, chunk) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} edge batches failed:\n{}",
        failures.len(),
        edges.len().div_ceil(BATCH),
        failures.join("\n---\n")
    );
}

#[test]
fn poison_numbers_published_async_are_stored_not_stuck() {
    let apps = both();
    let poison = [
        "1e999999",
        "[1e-20000]",
        "{\"n\":1e131071}",
        "-1e-999999",
        "[1e400,-0,4.9e-324]",
    ];
    let event = |id: &str, payload: &str| {
        format!(
            "{{\"topic\":\"poison\",\"event_id\":\"{id}\",\"timestamp\":\"2024-05-01T12:00:00Z\",\
             \"source\":\"s\",\"payload\": {payload} }}"
        )
    };
    let results = on_both(&apps, |app| -> Result<[u64; 5], String> {
        let mut sent = Vec::new();
        let batch: Vec<String> = poison
            .iter()
            .enumerate()
            .map(|(i, p)| {
                sent.push((format!("b{i}"), p.to_string()));
                event(&format!("b{i}"), p)
            })
            .collect();
        let mut bodies = vec![format!("[{}]", batch.join(","))];
        for (i, p) in poison.iter().enumerate() {
            sent.push((format!("s{i}"), p.to_string()));
            bodies.push(event(&format!("s{i}"), p));
        }
        sent.push(("after".into(), "{\"ok\":true}".into()));
        bodies.push(event("after", "{\"ok\": true}"));
        for body in &bodies {
            let r = app.publish(body, true);
            if r.status != 202 {
                return Err(format!(
                    "{}: async publish answered {} {}",
                    app.name, r.status, r.text
                ));
            }
        }
        for round in 0.. {
            let r = app.post("/drain");
            if r.status != 200 {
                return Err(format!(
                    "{}: /drain answered {} {}",
                    app.name,
                    r.status,
                    clip(&r.text)
                ));
            }
            if r.json()["more"] != Value::Bool(true) {
                break;
            }
            if round > 100 {
                return Err(format!(
                    "{}: /drain still says more after 100 calls",
                    app.name
                ));
            }
        }
        let counters = app.counters()?;
        let wanted: HashSet<String> = sent.iter().map(|(id, _)| id.clone()).collect();
        let got = app.read_back("poison", &wanted)?;
        for (id, payload) in &sent {
            let text = got
                .get(id)
                .map(|e| e.payload.get())
                .ok_or_else(|| format!("{}: {id} (payload {payload}) was not stored", app.name))?;
            let expected = json::compact(payload);
            if text != expected {
                return Err(format!(
                    "{}: {id}: {}",
                    app.name,
                    first_difference(&expected, text)
                ));
            }
        }
        let health = app.get("/health");
        if health.status != 200 {
            return Err(format!(
                "{}: /health answered {} {}",
                app.name, health.status, health.text
            ));
        }
        Ok(counters)
    });
    let n = (2 * poison.len() + 1) as u64;
    for (app, r) in apps.iter().zip(results) {
        let c = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c,
            [n, n, 0, 0, 0],
            "{}: [received, unique, duplicates, queued, dead_lettered] after the drain",
            app.name
        );
    }
}

/// The check is not vacuous: with a trigger that makes PostgreSQL store payloads as the old
/// `jsonb` column did (`payload::jsonb::text`), the same checks catch each defect of issue 9
/// item 1 — a reformatted payload, an amplified one, and one the store refuses (`22003`).
#[test]
fn the_check_catches_a_store_that_keeps_payloads_as_jsonb() {
    let apps = both();
    assert_eq!(
        apps[1].get("/stats").status,
        200,
        "migrate the PostgreSQL store"
    );
    let db = apps[1].app.db.as_ref().expect("a test database");
    db.connect()
        .batch_execute(
            "CREATE FUNCTION payload_as_jsonb() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN NEW.payload := (NEW.payload::jsonb)::text; RETURN NEW; END $$; \
             CREATE TRIGGER payload_as_jsonb BEFORE INSERT ON events \
             FOR EACH ROW EXECUTE FUNCTION payload_as_jsonb();",
        )
        .expect("install the jsonb-emulating trigger");
    let value =
        |j: json::Json| cases::Case::with_payload(cases::Payload::Value(j, json::Spacing::none()));
    let obj = |members: &[(&str, &str)]| {
        json::Json::Obj(
            members
                .iter()
                .map(|(k, n)| (json::plain(k), json::Json::Num(n.to_string())))
                .collect(),
        )
    };
    for (what, case) in [
        ("key order", value(obj(&[("b", "1"), ("a", "2")]))),
        ("amplification", value(obj(&[("n", "1e1000")]))),
        ("unstorable number", value(obj(&[("n", "1e999999")]))),
    ] {
        let err = check_batch(&apps, std::slice::from_ref(&case))
            .expect_err(&format!("{what}: a jsonb store must fail the check"));
        assert!(err.contains("postgres+redis"), "{what}: {err}");
        eprintln!("{what}: caught: {}", clip(&err));
    }
}
