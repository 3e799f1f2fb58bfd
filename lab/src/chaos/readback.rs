//! The end of every scenario (after [`crate::drain::drain`]): read every stored event of the
//! run's topics back through `GET /events` (keyset pages, `before=next_cursor`) and compare with the
//! client-side ledger: an acknowledged `(topic, event_id)` missing is **lost**, one that comes
//! back more than once is **stored twice**.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hyper::Method;
use serde_json::Value;

use crate::plan::Plan;
use loadgen::client::{Client, encode_query_value, snippet};
use loadgen::ledger::Ledger;

/// Page size of the read-back (the service's maximum).
const PAGE: usize = 1000;

/// Lost and stored-twice counts of one scenario.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Tally {
    /// Distinct `(topic, event_id)` acknowledged at least once.
    pub acknowledged: u64,
    /// Acknowledged keys that did not read back.
    pub lost: u64,
    /// Keys that read back more than once.
    pub stored_twice: u64,
    /// Rows read back in all.
    pub rows: u64,
}

/// Reads every row of the plan's topics and compares with the ledger.
pub(super) async fn compare(client: &Client, plan: &Plan, ledger: &Ledger) -> Result<Tally> {
    let mut index: HashMap<(u32, &str), u32> = HashMap::with_capacity(plan.events.len());
    for (i, e) in plan.events.iter().enumerate() {
        index.insert((e.topic, e.event_id.as_str()), i as u32);
    }
    let mut seen = vec![0u32; plan.events.len()];
    let mut rows = 0u64;
    for (t, topic) in plan.topics.iter().enumerate() {
        let mut cursor: Option<String> = None;
        // Bounded: every page moves the cursor down; a service that loops is a failure.
        for page_no in 0.. {
            if page_no > plan.events.len() / PAGE + 1_000 {
                bail!("read-back of {topic} did not end");
            }
            let mut path = format!("/events?topic={}&limit={PAGE}", encode_query_value(topic));
            if let Some(c) = &cursor {
                path.push_str(&format!("&before={}", encode_query_value(c)));
            }
            let page = get_with_retries(client, &path).await?;
            let events = page
                .get("events")
                .and_then(Value::as_array)
                .with_context(|| format!("GET {path}: no events array"))?;
            for e in events {
                rows += 1;
                let id = e.get("event_id").and_then(Value::as_str).unwrap_or("");
                if let Some(&i) = index.get(&(t as u32, id)) {
                    seen[i as usize] += 1;
                }
            }
            cursor = match page.get("next_cursor") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            if cursor.is_none() || events.is_empty() {
                break;
            }
        }
    }
    Ok(Tally {
        acknowledged: ledger.acked.count(),
        lost: ledger
            .acked
            .iter()
            .filter(|&i| seen[i as usize] == 0)
            .count() as u64,
        stored_twice: seen.iter().filter(|&&n| n > 1).count() as u64,
        rows,
    })
}

/// A read that survives a host still coming up: up to ~30 s of retries.
pub(super) async fn get_with_retries(client: &Client, path: &str) -> Result<Value> {
    let mut last = String::new();
    for _ in 0..60 {
        match client.attempt(Method::GET, path, None).await {
            Ok(a) if a.status == 200 => {
                return serde_json::from_slice(&a.body)
                    .with_context(|| format!("GET {path}: not JSON: {}", snippet(&a.body)));
            }
            Ok(a) if a.status < 500 => {
                bail!("GET {path}: {} {}", a.status, snippet(&a.body))
            }
            Ok(a) => last = format!("{} {}", a.status, snippet(&a.body)),
            Err(f) => last = f.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("GET {path}: no answer after retries; last: {last}")
}
