//! One property-test case on one backend: publish the generated events, then ask every
//! generated question of `/events` (paged through the cursor) and `/volume`, and compare with
//! what the naive filter of `model.rs` says.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::model::{Ask, Ev, LEVELS};
use super::support::app::App;
use super::{get, ids, publish};

/// A fresh case number: each case gets its own day, so cases never see each other's events.
pub fn next_case() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `(day, next day)` of a case, `YYYY-MM-DD`.
fn day_of(case: u64) -> (String, String) {
    let base = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let d = base + chrono::Days::new(case);
    (d.to_string(), (d + chrono::Days::new(1)).to_string())
}

/// 8,000 events of another day and topic: outside every scope a case asks about.
fn filler(case: u64, chunk: usize) -> Value {
    let events: Vec<Value> = (0..8_000)
        .map(|i| {
            json!({"topic": "filler", "event_id": format!("f{case}-{chunk}-{i}"),
                   "timestamp": "2019-06-01T00:00:00Z", "source": "filler",
                   "payload": {"msg": "filler"}})
        })
        .collect();
    json!(events)
}

/// Publishes the case's events, then checks every question against the naive filter.
pub fn check_case(
    app: &App,
    name: &str,
    events: &[Ev],
    asks: &[Ask],
    case: u64,
) -> Result<(), String> {
    let (day, next_day) = day_of(case);
    let published: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| e.to_json(&day, &format!("c{case}-{i}")))
        .collect();
    let third = published.len() / 3;
    for (i, chunk) in [
        &published[..third],
        &published[third..2 * third],
        &published[2 * third..],
    ]
    .into_iter()
    .enumerate()
    {
        if chunk.is_empty() {
            continue;
        }
        let status = publish(app, &json!(chunk), i == 1);
        if status != 200 && status != 202 {
            return Err(format!("{name}: publish answered {status}"));
        }
        if case % 2 == 1 && i < 2 {
            // Odd cases: thousands of other events between the chunks, so a scope's ids spread
            // far wider than its rows and SQLite checks its rows with LIKE instead of reading
            // the FTS matches between them (query.rs, ROW_CHECK_RATIO); even cases read them.
            let status = publish(app, &filler(case, i), false);
            if status != 200 {
                return Err(format!("{name}: filler publish answered {status}"));
            }
        }
    }
    let range = [
        ("since", format!("{day}T00:00:00Z")),
        ("until", format!("{next_day}T00:00:00Z")),
    ];
    // Ids and levels as stored (the stored-order listing of the whole day; drains the queue).
    let mut all = range.to_vec();
    all.extend([("limit", "1000".into()), ("order", "stored".into())]);
    let (status, page) = get(app, "/events", &all);
    if status != 200 {
        return Err(format!("{name}: listing answered {status} {page}"));
    }
    let mut id_of: HashMap<String, i64> = HashMap::new();
    for e in page["events"].as_array().unwrap() {
        let event_id = e["event_id"].as_str().unwrap().to_owned();
        let i: usize = event_id.rsplit('-').next().unwrap().parse().unwrap();
        let want = events[i].level_name();
        if e["level"].as_str() != want {
            return Err(format!(
                "{name}: {event_id} stored with level {} instead of {want:?} (sent {})",
                e["level"], published[i]
            ));
        }
        id_of.insert(event_id, e["id"].as_i64().unwrap());
    }
    if id_of.len() != events.len() {
        return Err(format!(
            "{name}: {} of {} events stored",
            id_of.len(),
            events.len()
        ));
    }
    let key = |i: usize| (events[i].timestamp(&day), id_of[&format!("c{case}-{i}")]);
    for ask in asks {
        // /events, paged through the cursor.
        let mut expected: Vec<usize> = (0..events.len())
            .filter(|i| ask.accepts(&events[*i]))
            .collect();
        if ask.time_order {
            expected.sort_by_key(|i| std::cmp::Reverse(key(*i)));
        } else {
            expected.sort_by_key(|i| std::cmp::Reverse(key(*i).1));
        }
        let expected: Vec<String> = expected.iter().map(|i| format!("c{case}-{i}")).collect();
        let mut params = ask.params();
        params.extend(range.iter().cloned());
        params.push(("limit", ask.limit.to_string()));
        params.push((
            "order",
            if ask.time_order { "time" } else { "stored" }.into(),
        ));
        let mut got = Vec::new();
        let mut before: Option<i64> = None;
        for _ in 0..200 {
            let mut p = params.clone();
            if let Some(b) = before {
                p.push(("before", b.to_string()));
            }
            let (status, page) = get(app, "/events", &p);
            if status != 200 {
                return Err(format!("{name}: /events {p:?} answered {status} {page}"));
            }
            got.extend(ids(&page));
            match page["next_cursor"].as_i64() {
                Some(c) => before = Some(c),
                None => break,
            }
        }
        if got != expected {
            return Err(format!(
                "{name}: /events {params:?}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
        // /volume over the day.
        let mut params = ask.params();
        params.extend(range.iter().cloned());
        params.push(("step", format!("{}m", ask.step)));
        let (status, body) = get(app, "/volume", &params);
        if status != 200 {
            return Err(format!(
                "{name}: /volume {params:?} answered {status} {body}"
            ));
        }
        let mut want: BTreeMap<(i64, &str), u64> = BTreeMap::new();
        for e in events.iter().filter(|e| ask.accepts(e)) {
            let level = e.level_name().unwrap_or("none");
            *want.entry((e.minute / ask.step, level)).or_default() += 1;
        }
        let mut have: BTreeMap<(i64, &str), u64> = BTreeMap::new();
        let buckets = body["buckets"].as_array().unwrap();
        for (i, b) in buckets.iter().enumerate() {
            for level in LEVELS.iter().chain(&["none"]) {
                let n = b["levels"][*level].as_u64().unwrap();
                if n > 0 {
                    have.insert((i as i64, level), n);
                }
            }
            let sum: u64 = b["levels"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum();
            if b["count"].as_u64() != Some(sum) {
                return Err(format!(
                    "{name}: bucket {i} count is not the sum of its levels: {b}"
                ));
            }
        }
        let direct = ask.source.is_none() && ask.q.is_empty();
        let from = if direct { "counters" } else { "events" };
        if have != want
            || buckets.len() as i64 != 1440 / ask.step
            || body["counted_from"] != from
            || body["total"].as_u64() != Some(want.values().sum())
        {
            return Err(format!(
                "{name}: /volume {params:?} ({} buckets, from {})\n  expected {want:?}\n  got      {have:?}",
                buckets.len(),
                body["counted_from"]
            ));
        }
    }
    Ok(())
}
