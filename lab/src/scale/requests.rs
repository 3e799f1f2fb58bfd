//! The timed requests of `lab scale`, the seed that makes both stores answer them
//! with full pages, the alternating timing loop, and the maintenance loop.

use anyhow::{Result, bail};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use hyper::Method;
use loadgen::client::Client;
use std::time::Duration;

use super::{DAYS, LOREM, ScaleArgs, TOPICS, say, utc};

/// What the timed requests ask for, fixed before the load so both phases ask the same.
pub(super) struct Plan {
    /// Start of the loaded event time (the run's start minus 30 days).
    pub(super) t0: DateTime<Utc>,
    /// The cursor where the topic walk starts: half-way into the loaded ids.
    pub(super) cursor: u64,
    /// Topic of the walk.
    pub(super) topic: String,
}

/// Latencies (ms) and first-answer row count of one request kind in one phase.
#[derive(Default, Clone)]
pub(super) struct Timing {
    pub(super) ms: Vec<f64>,
    pub(super) rows: Option<u64>,
    /// Requests not answered 200 (status and error code, or the transport error).
    pub(super) failures: Vec<String>,
}

impl Timing {
    pub(super) fn q(&self, q: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    }
}

pub(super) const KINDS: [&str; 11] = [
    "`GET /stats`",
    "`GET /metrics`",
    "`GET /events?limit=100` (first page)",
    "`GET /events?topic=…&before=…&limit=100` (20 cursors 50–31 % deep)",
    "`GET /events?since=…&until=…&limit=100` (20 one-hour windows)",
    "`POST /publish` (one new event)",
    "`GET /events?topic=…&since=…&until=…&q=conn_reset` (24 h, selective: ≤ 0.1 %)",
    "`GET /events?topic=…&since=…&until=…&q=cache` (24 h, not selective: ~50 %)",
    "`GET /volume?since=…&until=…&step=1h` (7 days, all topics)",
    "`GET /events?order=time&limit=100` (page 1)",
    "`GET /events?order=time&before=…&limit=100` (half-way deep)",
];

/// The target of each kind: (p50 at most, in ms; loaded/empty p50 ratio at most). The first
/// six are issue 10's; then issue 16's: a selective search ≤ 50 ms, the 7-day volume ≤ 20 ms,
/// event-time pages ≤ 1.5× the empty store; the unselective search is reported, not judged.
pub(super) const TARGETS: [(Option<f64>, Option<f64>); 11] = [
    (Some(20.0), Some(1.5)),
    (Some(20.0), Some(1.5)),
    (Some(20.0), Some(1.5)),
    (Some(20.0), Some(1.5)),
    (Some(20.0), Some(1.5)),
    (Some(20.0), Some(1.5)),
    (Some(50.0), None),
    (None, None),
    (Some(20.0), None),
    (None, Some(1.5)),
    (None, Some(1.5)),
];

/// The term of the selective search: the load puts it in one event in 2,000.
pub(super) const RARE: &str = "ERR_CONN_RESET";

pub(super) fn topic_name(k: u32) -> String {
    format!("svc-{k:04}.log")
}

pub(super) fn enc(s: &str) -> String {
    loadgen::client::encode_query_value(s)
}

/// The `i`-th 24-hour window (whole days of the 30, by a stride coprime with 30).
pub(super) fn day(plan: &Plan, i: usize) -> (String, String) {
    let d = ((i % SPOTS) as i64 * 7 + 3) % DAYS;
    let since = plan.t0 + TimeDelta::days(d);
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    (fmt(since), fmt(since + TimeDelta::days(1)))
}

/// The `i`-th one-hour window, spread over the 30 days by a stride coprime with 720.
pub(super) fn window(plan: &Plan, i: usize) -> (String, String) {
    let hour = ((i % SPOTS) as i64 * 37 + 11) % (DAYS * 24);
    let since = plan.t0 + TimeDelta::hours(hour);
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    (fmt(since), fmt(since + TimeDelta::hours(1)))
}

pub(super) fn publish_body(phase: &str, i: usize) -> Bytes {
    let topic = topic_name((i as u32 * 7) % TOPICS + 1);
    Bytes::from(
        serde_json::json!({
            "topic": topic, "event_id": format!("scale-{phase}-{i}-{}", std::process::id()),
            "timestamp": utc(Utc::now()), "source": "host-07",
            "payload": {"level": "info", "msg": &LOREM[..90], "status": 200}
        })
        .to_string(),
    )
}

/// The one publish that makes the component create its schema, and the whole content of
/// the "empty" store: one event in each of the 1,000 topics, 100 in the cursor topic and 100
/// in each time window, so every listing request returns a full page of 100 on both stores
/// and the comparison isolates history (the loaded events) from topic count and page size.
pub(super) async fn seed_store(url: &str, plan: &Plan) -> Result<()> {
    let client = Client::new(url, Duration::from_secs(60), 1)?;
    let event = |topic: String, id: String, at: DateTime<Utc>| {
        serde_json::json!({"topic": topic, "event_id": id, "timestamp": utc(at),
            "source": "host-00", "payload": {"level": "info", "msg": &LOREM[..120], "status": 200}})
    };
    let mut events: Vec<serde_json::Value> = (1..=TOPICS)
        .map(|k| event(topic_name(k), format!("seed-{k}"), Utc::now()))
        .collect();
    events.extend(
        (0..100).map(|j| event(plan.topic.clone(), format!("seed-cursor-{j}"), Utc::now())),
    );
    // The selective search's matches: five in each 24-hour window of the cursor topic.
    for w in 0..SPOTS {
        let d = ((w as i64) * 7 + 3) % DAYS;
        events.extend((0..5).map(|j| {
            let mut e = event(
                plan.topic.clone(),
                format!("seed-rare-{w}-{j}"),
                plan.t0 + TimeDelta::days(d) + TimeDelta::hours(j * 4 + 1),
            );
            e["payload"]["msg"] = format!("upstream {RARE} on req-{w}{j}").into();
            e
        }));
    }
    for w in 0..SPOTS {
        let since = plan.t0 + TimeDelta::hours(((w as i64) * 37 + 11) % (DAYS * 24));
        events.extend((0..100).map(|j| {
            event(
                topic_name(j % TOPICS + 1),
                format!("seed-w{w}-{j}"),
                since + TimeDelta::seconds(j as i64 * 30),
            )
        }));
    }
    let body = Bytes::from(serde_json::json!({ "events": events }).to_string());
    let a = client
        .attempt(Method::POST, "/publish/batch", Some(body))
        .await
        .map_err(|e| anyhow::anyhow!("first publish: {e}"))?;
    if a.status != 200 {
        bail!(
            "first publish answered {}: {}",
            a.status,
            loadgen::client::snippet(&a.body)
        );
    }
    Ok(())
}

/// Distinct cursors and time windows the listing requests cycle through.
pub(super) const SPOTS: usize = 20;

/// The request of kind `k`, number `i`, as (method, path, body).
pub(super) fn request(
    k: usize,
    i: usize,
    plan: &Plan,
    tag: &str,
) -> (Method, String, Option<Bytes>) {
    match k {
        0 => (Method::GET, "/stats".to_string(), None),
        1 => (Method::GET, "/metrics".to_string(), None),
        2 => (Method::GET, "/events?limit=100".to_string(), None),
        3 => {
            let cursor = cursor(plan, i);
            let path = format!(
                "/events?topic={}&before={cursor}&limit=100",
                enc(&plan.topic)
            );
            (Method::GET, path, None)
        }
        4 => {
            let (s, u) = window(plan, i);
            let path = format!("/events?since={}&until={}&limit=100", enc(&s), enc(&u));
            (Method::GET, path, None)
        }
        5 => (
            Method::POST,
            "/publish".to_string(),
            Some(publish_body(tag, i)),
        ),
        6 | 7 => {
            let (s, u) = day(plan, i);
            let q = if k == 6 { "conn_reset" } else { "cache" };
            let path = format!(
                "/events?topic={}&since={}&until={}&q={q}&limit=100",
                enc(&plan.topic),
                enc(&s),
                enc(&u)
            );
            (Method::GET, path, None)
        }
        8 => {
            let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let until = plan.t0 + TimeDelta::days(DAYS - (i % 3) as i64);
            let path = format!(
                "/volume?since={}&until={}&step=1h",
                enc(&fmt(until - TimeDelta::days(7))),
                enc(&fmt(until))
            );
            (Method::GET, path, None)
        }
        9 => (
            Method::GET,
            "/events?order=time&limit=100".to_string(),
            None,
        ),
        _ => {
            // The loaded store: half-way into its ids; the empty one: half-way into the seed.
            let deep = if tag == "empty" {
                1550 - (i % SPOTS) as u64
            } else {
                cursor(plan, i)
            };
            let path = format!("/events?order=time&before={deep}&limit=100");
            (Method::GET, path, None)
        }
    }
}

/// The `i`-th cursor: from half-way into the loaded ids down by 1 % steps.
pub(super) fn cursor(plan: &Plan, i: usize) -> u64 {
    plan.cursor - (i % SPOTS) as u64 * (plan.cursor / 50)
}

/// One timed request: its latency, and its row count or what went wrong (anything but 200).
pub(super) async fn timed(
    client: &Client,
    k: usize,
    i: usize,
    plan: &Plan,
    tag: &str,
) -> (f64, Result<Option<u64>, String>) {
    let (method, path, body) = request(k, i, plan, tag);
    let started = std::time::Instant::now();
    let answer = match client.attempt(method, &path, body).await {
        Ok(a) => a,
        Err(e) => return (started.elapsed().as_secs_f64() * 1000.0, Err(e.to_string())),
    };
    let ms = answer.latency.as_secs_f64() * 1000.0;
    if answer.status != 200 {
        let error = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
        say(&format!(
            "  {tag}: {path} answered {} {error} after {ms:.0} ms",
            answer.status
        ));
        return (ms, Err(format!("{} {error}", answer.status)));
    }
    let field = match k {
        2..=4 | 6 | 7 | 9 | 10 => "count",
        8 => "total",
        _ => return (ms, Ok(None)),
    };
    let rows = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v[field].as_u64());
    (ms, Ok(rows))
}

/// A request slower than this counts as failed (a page of 100 that takes a second is broken,
/// and 200 of them would hold the run for minutes).
const SLOW_MS: f64 = 1000.0;

/// Failed requests of one kind on one store after which that kind stops being timed there
/// (each may have waited for the host's 10 s statement limit).
const GIVE_UP: usize = 3;

/// Times `requests` (after `warmup`) of each kind on the empty and the loaded store,
/// alternating request by request (one keep-alive connection each), so both see the same
/// machine: the ratios hold even while other work shares the CPUs.
pub(super) async fn phase(
    empty_url: &str,
    full_url: &str,
    plan: &Plan,
    a: &ScaleArgs,
) -> Result<(Vec<Timing>, Vec<Timing>)> {
    let clients = [
        Client::new(empty_url, Duration::from_secs(60), 1)?,
        Client::new(full_url, Duration::from_secs(60), 1)?,
    ];
    let mut out = [
        vec![Timing::default(); KINDS.len()],
        vec![Timing::default(); KINDS.len()],
    ];
    for k in 0..KINDS.len() {
        for i in 0..a.warmup + a.requests {
            for (side, client) in clients.iter().enumerate() {
                if out[side][k].failures.len() >= GIVE_UP {
                    continue;
                }
                let (ms, outcome) = timed(client, k, i, plan, ["empty", "loaded"][side]).await;
                let t = &mut out[side][k];
                let outcome = match outcome {
                    Ok(_) if ms > SLOW_MS => Err(format!("200 after {:.1} s", ms / 1000.0)),
                    other => other,
                };
                match outcome {
                    Ok(rows) if i >= a.warmup => {
                        t.ms.push(ms);
                        t.rows = t.rows.max(rows);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        t.ms.push(ms);
                        t.failures.push(e);
                    }
                }
            }
        }
        say(&format!(
            "  {}: empty p50 {:.2} ms, loaded p50 {:.2} ms (p99 {:.2} / {:.2})",
            KINDS[k],
            out[0][k].q(0.5),
            out[1][k].q(0.5),
            out[0][k].q(0.99),
            out[1][k].q(0.99)
        ));
    }
    let [e, f] = out;
    Ok((e, f))
}

/// Calls `POST /maintenance` until it reports nothing more: (calls, compacted, slowest call ms).
pub(super) async fn maintain(url: &str) -> Result<(u64, u64, f64)> {
    let client = Client::new(url, Duration::from_secs(120), 1)?;
    let (mut calls, mut compacted, mut slowest) = (0u64, 0u64, 0f64);
    loop {
        let a = client
            .attempt(Method::POST, "/maintenance", None)
            .await
            .map_err(|e| anyhow::anyhow!("/maintenance: {e}"))?;
        if a.status != 200 {
            bail!(
                "/maintenance answered {}: {}",
                a.status,
                loadgen::client::snippet(&a.body)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&a.body)?;
        calls += 1;
        compacted += v["compacted_markers"].as_u64().unwrap_or(0);
        slowest = slowest.max(a.latency.as_secs_f64() * 1000.0);
        if v["more"] != serde_json::Value::Bool(true) || calls >= 100_000 {
            return Ok((calls, compacted, slowest));
        }
    }
}
