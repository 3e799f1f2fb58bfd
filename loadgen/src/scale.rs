//! `loadgen scale`: do reads stay flat when the store holds months of history (issue 10)?
//!
//! For each backend (PostgreSQL + Redis, then SQLite on edge-host's defaults) it starts
//! edge-host with the real component on a fresh database, lets the component create its
//! schema (one publish), and times six requests sequentially on the EMPTY store: `/stats`,
//! `/metrics`, the first page of `/events`, a topic page behind a cursor half-way into the
//! ids (following `next_cursor` from there), one-hour time windows spread over the 30 days,
//! and single `POST /publish`. It then stops the host, bulk-loads `--events` events through
//! the service's own schema with SQL (a skewed mix of 1,000 topics, 50 sources, 30 days of
//! timestamps, 100–300-byte JSON payloads), the `topic_counters` those publishes would have
//! left (5 % duplicates), and markers — some inside the marker horizon, some past it — runs
//! `ANALYZE`, restarts the host, times the same six requests, calls `POST /maintenance`
//! until it has nothing left, and prints one markdown table per backend (each figure beside
//! its empty-store twin from the same run), storage per event, marker counts, and the plans
//! of the component's listing statements (text copied from `src/store/*.rs`).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use hyper::Method;
use loadgen::client::Client;

/// Flags of `loadgen scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Events to bulk-load (10 million is the figure; 200000 is a quick check).
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Timed requests of each kind, per phase (after `--warmup` untimed ones).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Untimed requests of each kind before the timed ones.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Markers younger than the 1 h horizon (kept by maintenance); default `events / 10`.
    #[arg(long)]
    recent_markers: Option<u64>,
    /// Markers older than the horizon (compacted by maintenance); default `events / 10`.
    #[arg(long)]
    old_markers: Option<u64>,
    /// The edge-host binary.
    #[arg(long, default_value = "target/release/edge-host")]
    host: PathBuf,
    /// The edgelog manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// PostgreSQL server, without a database: the run creates and drops its own.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// Skip PostgreSQL + Redis.
    #[arg(long)]
    no_postgres: bool,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
    /// Redis server, without a database number.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Redis database number the run owns (FLUSHDB before and after).
    #[arg(long, default_value_t = 14)]
    redis_db: u32,
    /// Directory for state, logs, plans and results.
    #[arg(long, default_value = "target/scale")]
    out: PathBuf,
    /// Keep the loaded database and state (to profile afterwards); dropped by default.
    #[arg(long)]
    keep: bool,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 10)]
    seed: u64,
}

/// Topics in the mix (log-uniform popularity: the first has ~10 %, the 20th ~0.7 %).
const TOPICS: u32 = 1000;
/// Days of event time covered by the load, ending at the start of the run.
const DAYS: i64 = 30;
/// Share of received events that were duplicates (dropped), for the counters.
const DUP_RATE: f64 = 0.05;
/// Topic whose pages the cursor request walks (rank 20: ~0.7 % of the events).
const CURSOR_TOPIC: u32 = 20;
/// Words of the generated log messages (no quotes, no backslashes: valid inside JSON text).
const LOREM: &str = "request served from cache after upstream timeout while the client retried \
     the connection pool was resized because latency rose above the objective for this route \
     and the scheduler moved two workers to the other zone before the deploy finished cleanly";

fn say(s: &str) {
    eprintln!("[scale] {s}");
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

// ---------------------------------------------------------------------------------------------
// edge-host and Redis.

/// A running `edge-host up`, stopped with SIGTERM (then SIGKILL) when dropped.
struct Host {
    child: Option<Child>,
    url: String,
}

impl Host {
    fn start(
        a: &ScaleArgs,
        state: &Path,
        rc: Option<&Path>,
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<Host> {
        let log_file = File::create(log)?;
        let mut cmd = Command::new(&a.host);
        cmd.arg("up").arg("--from").arg(&a.manifest).args([
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ]);
        cmd.arg(state);
        if let Some(rc) = rc {
            cmd.arg("--runtime-config-file").arg(rc);
        }
        for var in [
            "SPIN_VARIABLE_STORE",
            "SPIN_VARIABLE_DATABASE_URL",
            "SPIN_VARIABLE_DB_HOST",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file.try_clone()?));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", a.host.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log_file = log_file;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Serving ") {
                    let _ = tx.send(addr.trim().to_string());
                }
                let _ = writeln!(log_file, "{line}");
            }
        });
        let mut host = Host {
            child: Some(child),
            url: String::new(),
        };
        host.url = rx
            .recv_timeout(Duration::from_secs(120))
            .with_context(|| format!("edge-host printed no banner; see {}", log.display()))?;
        Ok(host)
    }

    fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `SELECT db` + `FLUSHDB` on the run's own Redis database number.
fn redis_flush(url: &str, db: u32) -> Result<()> {
    let addr = url
        .strip_prefix("redis://")
        .unwrap_or(url)
        .trim_end_matches('/');
    let mut s =
        TcpStream::connect(addr).with_context(|| format!("connecting to Redis at {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let db = db.to_string();
    write!(
        s,
        "*2\r\n$6\r\nSELECT\r\n${}\r\n{db}\r\n*1\r\n$7\r\nFLUSHDB\r\n",
        db.len()
    )?;
    let mut reply = [0u8; 10];
    let n = s.read(&mut reply)?;
    if !reply[..n].starts_with(b"+OK") {
        bail!("Redis answered {:?}", String::from_utf8_lossy(&reply[..n]));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The six timed requests.

/// What the timed requests ask for, fixed before the load so both phases ask the same.
struct Plan {
    /// Start of the loaded event time (the run's start minus 30 days).
    t0: DateTime<Utc>,
    /// The cursor where the topic walk starts: half-way into the loaded ids.
    cursor: u64,
    /// Topic of the walk.
    topic: String,
}

/// Latencies (ms) and first-answer row count of one request kind in one phase.
#[derive(Default, Clone)]
struct Timing {
    ms: Vec<f64>,
    rows: Option<u64>,
}

impl Timing {
    fn q(&self, q: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    }
}

const KINDS: [&str; 6] = [
    "`GET /stats`",
    "`GET /metrics`",
    "`GET /events?limit=100` (first page)",
    "`GET /events?topic=…&before=…&limit=100` (20 cursors 50–31 % deep)",
    "`GET /events?since=…&until=…&limit=100` (20 one-hour windows)",
    "`POST /publish` (one new event)",
];

fn topic_name(k: u32) -> String {
    format!("svc-{k:04}.log")
}

fn enc(s: &str) -> String {
    loadgen::client::encode_query_value(s)
}

/// The `i`-th one-hour window, spread over the 30 days by a stride coprime with 720.
fn window(plan: &Plan, i: usize) -> (String, String) {
    let hour = ((i % SPOTS) as i64 * 37 + 11) % (DAYS * 24);
    let since = plan.t0 + TimeDelta::hours(hour);
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    (fmt(since), fmt(since + TimeDelta::hours(1)))
}

fn publish_body(phase: &str, i: usize) -> Bytes {
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
async fn seed_store(url: &str, plan: &Plan) -> Result<()> {
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
const SPOTS: usize = 20;

/// The request of kind `k`, number `i`, as (method, path, body).
fn request(k: usize, i: usize, plan: &Plan, tag: &str) -> (Method, String, Option<Bytes>) {
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
        _ => (
            Method::POST,
            "/publish".to_string(),
            Some(publish_body(tag, i)),
        ),
    }
}

/// The `i`-th cursor: from half-way into the loaded ids down by 1 % steps.
fn cursor(plan: &Plan, i: usize) -> u64 {
    plan.cursor - (i % SPOTS) as u64 * (plan.cursor / 50)
}

/// One timed request; fails on anything but 200.
async fn timed(
    client: &Client,
    k: usize,
    i: usize,
    plan: &Plan,
    tag: &str,
) -> Result<(f64, Option<u64>)> {
    let (method, path, body) = request(k, i, plan, tag);
    let answer = client
        .attempt(method, &path, body)
        .await
        .map_err(|e| anyhow::anyhow!("{tag}: {path}: {e}"))?;
    if answer.status != 200 {
        bail!(
            "{tag}: {path} answered {}: {}",
            answer.status,
            loadgen::client::snippet(&answer.body)
        );
    }
    let rows = if (2..=4).contains(&k) {
        serde_json::from_slice::<serde_json::Value>(&answer.body)?["count"].as_u64()
    } else {
        None
    };
    Ok((answer.latency.as_secs_f64() * 1000.0, rows))
}

/// Times `requests` (after `warmup`) of each kind on the empty and the loaded store,
/// alternating request by request (one keep-alive connection each), so both see the same
/// machine: the ratios hold even while other work shares the CPUs.
async fn phase(
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
                let (ms, rows) = timed(client, k, i, plan, ["empty", "loaded"][side]).await?;
                let t = &mut out[side][k];
                if i >= a.warmup {
                    t.ms.push(ms);
                    t.rows = t.rows.max(rows);
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
async fn maintain(url: &str) -> Result<(u64, u64, f64)> {
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

// ---------------------------------------------------------------------------------------------
// The component's listing statements (copied from src/store/*.rs, for the plans).

/// The statement `sql::list_events` builds for request kind `k`, with its parameters as text
/// or integers, in the dialect's form; `None` for non-listing kinds.
fn listing_sql(pg: bool, k: usize, plan: &Plan, cursor: u64) -> Option<(String, Vec<Param>)> {
    let cols = if pg {
        "id, topic, event_id, to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         source, payload, to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    } else {
        "id, topic, event_id, \"timestamp\", source, payload, processed_at"
    };
    let ts = |n: usize| {
        if pg {
            format!("${n}::text::timestamptz")
        } else {
            format!("${n}")
        }
    };
    let (filter, mut params) = match k {
        2 => (String::new(), vec![]),
        3 => (
            " WHERE topic = $1 AND id < $2".to_string(),
            vec![Param::T(plan.topic.clone()), Param::I(cursor as i64)],
        ),
        4 => {
            let (s, u) = window(plan, 0);
            let norm = |x: &str| format!("{}.000000Z", x.trim_end_matches('Z'));
            (
                format!(
                    " WHERE \"timestamp\" >= {} AND \"timestamp\" < {}",
                    ts(1),
                    ts(2)
                ),
                vec![Param::T(norm(&s)), Param::T(norm(&u))],
            )
        }
        _ => return None,
    };
    let n = params.len();
    params.extend([Param::I(100), Param::I(0)]);
    Some((
        format!(
            "SELECT {cols} FROM events{filter} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        ),
        params,
    ))
}

/// A bound parameter of a listing statement.
#[derive(Debug, Clone)]
enum Param {
    T(String),
    I(i64),
}

mod lite;
mod pg;

// ---------------------------------------------------------------------------------------------
// One backend, both phases, and the report.

/// Everything one backend measured.
struct Outcome {
    store: &'static str,
    empty: Vec<Timing>,
    full: Vec<Timing>,
    loaded: u64,
    load_secs: f64,
    storage: String,
    markers_before: u64,
    markers_after: u64,
    maintenance: (u64, u64, f64),
    plans: String,
    load: Vec<String>,
}

fn ratio_ok(e: &Timing, f: &Timing) -> (f64, bool) {
    let r = f.q(0.5) / e.q(0.5);
    (r, f.q(0.5) <= 20.0 && r <= 1.5)
}

fn render(o: &Outcome, events: u64) -> String {
    let mut s = String::new();
    let m = if events.is_multiple_of(1_000_000) {
        format!("{}M", events / 1_000_000)
    } else {
        events.to_string()
    };
    let _ = writeln!(
        s,
        "### {} ({} events loaded in {:.0} s)\n",
        o.store, o.loaded, o.load_secs
    );
    let _ = writeln!(
        s,
        "| request | empty p50 / p99 (ms) | {m} p50 / p99 (ms) | rows | ratio p50 | ≤ 20 ms p50 and ≤ 1.5×? |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
    for (k, name) in KINDS.iter().enumerate() {
        let (e, f) = (&o.empty[k], &o.full[k]);
        let (r, ok) = ratio_ok(e, f);
        let rows = f.rows.map_or("—".into(), |n| n.to_string());
        let _ = writeln!(
            s,
            "| {name} | {:.2} / {:.2} | {:.2} / {:.2} | {rows} | {r:.2}× | {} |",
            e.q(0.5),
            e.q(0.99),
            f.q(0.5),
            f.q(0.99),
            if ok { "yes" } else { "**no**" }
        );
    }
    let (calls, compacted, slowest) = o.maintenance;
    let _ = writeln!(s, "\n- storage: {}", o.storage);
    let _ = writeln!(
        s,
        "- markers: {} before maintenance, {} after ({} compacted in {} `POST /maintenance` calls, slowest {:.0} ms)",
        o.markers_before, o.markers_after, compacted, calls, slowest
    );
    for l in &o.load {
        let _ = writeln!(s, "- {l}");
    }
    s
}

fn fresh_dir(p: &Path) -> Result<PathBuf> {
    let _ = std::fs::remove_dir_all(p);
    std::fs::create_dir_all(p)?;
    Ok(p.canonicalize()?)
}

fn markers(a: &ScaleArgs) -> (u64, u64) {
    (
        a.recent_markers.unwrap_or(a.events / 10),
        a.old_markers.unwrap_or(a.events / 10),
    )
}

/// One store of a backend: the empty one or the one to load.
struct Side {
    state: PathBuf,
    db: String,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
}

fn run_backend(
    a: &ScaleArgs,
    rt: &tokio::runtime::Runtime,
    plan: &Plan,
    pg_backend: bool,
) -> Result<Outcome> {
    let store = if pg_backend {
        "PostgreSQL + Redis"
    } else {
        "SQLite (edge-host defaults)"
    };
    let tag = if pg_backend { "pg" } else { "sqlite" };
    let server = a.postgres.trim_end_matches('/').to_string();
    let authority = server.split_once("://").map_or(server.as_str(), |(_, r)| r);
    let hostport = authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_string();
    let hostport = if hostport.contains(':') {
        hostport
    } else {
        format!("{hostport}:5432")
    };
    let mut sides = Vec::new();
    for which in ["empty", "loaded"] {
        let db = format!("edgelog_scale_{}_{which}", std::process::id());
        let env = if pg_backend {
            vec![
                ("SPIN_VARIABLE_STORE", "postgres".to_string()),
                ("SPIN_VARIABLE_DATABASE_URL", format!("{server}/{db}")),
                ("SPIN_VARIABLE_DB_HOST", hostport.clone()),
            ]
        } else {
            vec![]
        };
        sides.push(Side {
            state: fresh_dir(&a.out.join(format!("{tag}-{which}-state")))?,
            db,
            env,
            log: a.out.join(format!("edge-host-{tag}-{which}.log")),
        });
    }
    let mut rc = None;
    if pg_backend {
        redis_flush(&a.redis, a.redis_db)?;
        let path = a.out.join("runtime-config-scale.toml");
        let url = format!("{}/{}", a.redis.trim_end_matches('/'), a.redis_db);
        std::fs::write(
            &path,
            format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n"),
        )?;
        rc = Some(path);
    }
    let result = (|| -> Result<Outcome> {
        let start = |s: &Side| Host::start(a, &s.state, rc.as_deref(), &s.env, &s.log);
        if pg_backend {
            for s in &sides {
                rt.block_on(pg::admin(
                    &server,
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", s.db),
                ))?;
                rt.block_on(pg::admin(&server, &format!("CREATE DATABASE {}", s.db)))?;
            }
        }
        let empty_host = start(&sides[0])?;
        rt.block_on(seed_store(&empty_host.url, plan))?;
        let host = start(&sides[1])?;
        rt.block_on(seed_store(&host.url, plan))?;
        host.stop();
        say(&format!(
            "{store}: both stores seeded; loading {} events; load average {}",
            a.events,
            loadavg()
        ));
        let (recent, old) = markers(a);
        let started = Instant::now();
        let db_url = format!("{server}/{}", sides[1].db);
        let sqlite_file = sides[1].state.join("sqlite_db.db");
        let load = if pg_backend {
            rt.block_on(pg::load(&db_url, a.events, recent, old, plan, a.seed))?
        } else {
            lite::load(&sqlite_file, a.events, recent, old, plan, a.seed)?
        };
        let load_secs = started.elapsed().as_secs_f64();
        say(&format!(
            "{store}: loaded in {load_secs:.0} s; load average {}",
            loadavg()
        ));
        let host = start(&sides[1])?;
        let (empty, full) = rt.block_on(phase(&empty_host.url, &host.url, plan, a))?;
        empty_host.stop();
        let count = || -> Result<u64> {
            if pg_backend {
                rt.block_on(pg::markers(&db_url))
            } else {
                lite::markers(&sqlite_file)
            }
        };
        let markers_before = count()?;
        let maintenance = rt.block_on(maintain(&host.url))?;
        let markers_after = count()?;
        host.stop();
        let (storage, plans) = if pg_backend {
            (
                rt.block_on(pg::storage(&db_url))?,
                rt.block_on(pg::plans(&db_url, plan, plan.cursor))?,
            )
        } else {
            (
                lite::storage(&sqlite_file)?,
                lite::plans(&sqlite_file, plan, plan.cursor)?,
            )
        };
        Ok(Outcome {
            store,
            empty,
            full,
            loaded: a.events,
            load_secs,
            storage,
            markers_before,
            markers_after,
            maintenance,
            plans,
            load,
        })
    })();
    for s in &sides {
        if a.keep {
            say(&format!(
                "kept {} {} (--keep)",
                s.state.display(),
                if pg_backend { &s.db } else { "" }
            ));
            continue;
        }
        if pg_backend
            && let Err(e) = rt.block_on(pg::admin(
                &server,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", s.db),
            ))
        {
            say(&format!("cleanup: {e:#}"));
        }
        let _ = std::fs::remove_dir_all(&s.state);
    }
    if pg_backend
        && !a.keep
        && let Err(e) = redis_flush(&a.redis, a.redis_db)
    {
        say(&format!("cleanup: {e:#}"));
    }
    result
}

/// Runs the scale benchmark; exit 0 when every target was met, 1 when one was missed, 2 on error.
pub fn main(a: ScaleArgs) -> ExitCode {
    match run(&a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen scale: a target was missed (see the tables and plans)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("loadgen scale: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(a: &ScaleArgs) -> Result<bool> {
    if a.requests == 0 || a.events < 1000 {
        bail!("--requests must be positive and --events at least 1000");
    }
    std::fs::create_dir_all(&a.out)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let now = Utc::now();
    let plan = Plan {
        t0: now - TimeDelta::days(DAYS),
        cursor: a.events / 2,
        topic: topic_name(CURSOR_TOPIC),
    };
    let started = Instant::now();
    let mut report = format!(
        "Run {}: `loadgen scale --events {}`, {} timed requests per kind (after {} warm-up), seed {}; \
         {} CPUs; load average at the start {}.\n\n",
        now.format("%Y-%m-%d %H:%M UTC"),
        a.events,
        a.requests,
        a.warmup,
        a.seed,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let mut all_ok = true;
    let mut plans = String::new();
    for pg_backend in [true, false] {
        if (pg_backend && a.no_postgres) || (!pg_backend && a.no_sqlite) {
            continue;
        }
        let o = run_backend(a, &rt, &plan, pg_backend)?;
        all_ok &= o.empty.iter().zip(&o.full).all(|(e, f)| ratio_ok(e, f).1);
        report.push_str(&render(&o, a.events));
        report.push('\n');
        let _ = writeln!(plans, "## {}\n\n{}", o.store, o.plans);
    }
    let _ = writeln!(
        report,
        "Whole run {:.0} s; load average at the end {}.",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    print!("{report}");
    std::fs::write(a.out.join("results.md"), &report)?;
    std::fs::write(a.out.join("plans.md"), &plans)?;
    say(&format!(
        "plans of the listing statements: {}",
        a.out.join("plans.md").display()
    ));
    Ok(all_ok)
}
