//! `lab slow-clients`: how normal publishes fare while many connections dribble request
//! bodies (the slow-client attack of issue 9).
//!
//! It first measures normal publish latency alone (the baseline), then opens `--connections`
//! raw TCP connections that each send the headers of a 1 MB publish and then one body byte per
//! `--interval-ms` (never finishing, never idle long enough to be timed out), and measures the
//! same publishes again while they are held open. A connection the server answers or closes is
//! counted (by status) and reopened, so the pressure stays on. The report compares both phases
//! in one table; the figure of interest is the p99 with slow clients and its ratio to the
//! baseline, measured in the same run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::{Method, Uri};
use loadgen::client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Flags of `lab slow-clients`.
#[derive(Debug, clap::Args)]
pub struct SlowArgs {
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Connections dribbling bodies at once.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Milliseconds between two body bytes on each slow connection.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Seconds of normal publishes in each phase (baseline, then with slow clients).
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Concurrent normal publishers.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds before one normal publish counts as failed.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// Counts by label (a mutex-guarded map is plenty at this rate).
#[derive(Default)]
struct Counts(Mutex<BTreeMap<String, u64>>);

impl Counts {
    fn add(&self, label: impl Into<String>) {
        *self.0.lock().unwrap().entry(label.into()).or_default() += 1;
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }
}

/// One phase's normal publishes.
struct Phase {
    name: &'static str,
    latency_us: Histogram<u64>,
    ok: u64,
    failures: BTreeMap<String, u64>,
    secs: f64,
}

impl Phase {
    fn ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "phase": self.name,
            "ok": self.ok,
            "failures": self.failures,
            "requests_per_sec": self.ok as f64 / self.secs,
            "p50_ms": self.ms(0.50),
            "p99_ms": self.ms(0.99),
            "max_ms": self.latency_us.max() as f64 / 1000.0,
        })
    }
}

/// Publishes single events from `concurrency` workers for `secs`, timing each.
async fn publish_phase(
    client: &Client,
    name: &'static str,
    concurrency: usize,
    secs: Duration,
    run: &str,
) -> Phase {
    let deadline = Instant::now() + secs;
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, run) = (client.clone(), run.to_string());
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let failures = Counts::default();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let body = serde_json::json!({
                    "topic": format!("slowclients.{run}"),
                    "event_id": format!("{name}-{w}-{n}"),
                    "timestamp": "2026-01-01T00:00:00Z",
                    "source": "loadgen-slow-clients",
                    "payload": {"n": n},
                });
                let attempt = client
                    .attempt(
                        Method::POST,
                        "/publish",
                        Some(Bytes::from(body.to_string())),
                    )
                    .await;
                match attempt {
                    Ok(a) if a.status == 200 || a.status == 202 => {
                        let _ = hist.record(a.latency.as_micros() as u64);
                    }
                    Ok(a) => failures.add(format!("status {}", a.status)),
                    Err(f) => failures.add(f.label()),
                }
            }
            (hist, failures.snapshot())
        }));
    }
    let mut phase = Phase {
        name,
        latency_us: Histogram::<u64>::new(3).expect("histogram"),
        ok: 0,
        failures: BTreeMap::new(),
        secs: secs.as_secs_f64(),
    };
    for w in workers {
        if let Ok((hist, failures)) = w.await {
            phase.ok += hist.len();
            let _ = phase.latency_us.add(&hist);
            for (k, v) in failures {
                *phase.failures.entry(k).or_default() += v;
            }
        }
    }
    phase
}

/// What the slow connections saw, shared by their tasks.
#[derive(Default)]
struct SlowStats {
    /// Connections currently holding a request open.
    holding: AtomicU64,
    /// Connections opened in total (reopens included).
    opened: AtomicU64,
    /// Answers the server gave them, by status, or how they ended without one.
    endings: Counts,
}

/// One slow connection, reopened whenever the server ends it, until `stop`.
async fn dribble(
    addr: String,
    head: Arc<String>,
    every: Duration,
    stats: Arc<SlowStats>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let mut stream = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(e) => {
                stats.endings.add(format!("connect error: {}", e.kind()));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        stats.opened.fetch_add(1, Ordering::Relaxed);
        if stream.write_all(head.as_bytes()).await.is_err() {
            stats.endings.add("closed before the headers were sent");
            continue;
        }
        stats.holding.fetch_add(1, Ordering::Relaxed);
        let (mut reader, mut writer) = stream.split();
        let mut buf = [0u8; 512];
        let ending = loop {
            tokio::select! {
                read = reader.read(&mut buf) => break match read {
                    Ok(0) | Err(_) => "closed without an answer".to_string(),
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        let status = text.split(' ').nth(1).unwrap_or("?").to_string();
                        format!("answered {status}")
                    }
                },
                () = tokio::time::sleep(every) => {
                    if stop.load(Ordering::Relaxed) {
                        break String::new();
                    }
                    if writer.write_all(b" ").await.is_err() {
                        break "closed without an answer".to_string();
                    }
                }
            }
        };
        stats.holding.fetch_sub(1, Ordering::Relaxed);
        if !ending.is_empty() {
            stats.endings.add(ending);
            // Not a tight reconnect loop if the server turns connections away.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn run(a: &SlowArgs) -> Result<serde_json::Value> {
    let timeout = Duration::try_from_secs_f64(a.timeout).map_err(|e| anyhow!("--timeout: {e}"))?;
    let secs = Duration::try_from_secs_f64(a.secs).map_err(|e| anyhow!("--secs: {e}"))?;
    let client = Client::new(&a.url, timeout, a.concurrency)?;
    let uri: Uri = a.url.parse().context("--url")?;
    let authority = uri.authority().context("--url has no host")?.to_string();
    let addr = if uri.port().is_some() {
        authority.clone()
    } else {
        format!("{authority}:80")
    };
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );

    eprintln!(
        "baseline: {} publishers for {:?}, no slow clients",
        a.concurrency, secs
    );
    let baseline = publish_phase(&client, "baseline", a.concurrency, secs, &run_id).await;

    let head = Arc::new(format!(
        "POST /publish HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{"
    ));
    let stats = Arc::new(SlowStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let every = Duration::from_millis(a.interval_ms.max(1));
    let mut tasks = Vec::new();
    for i in 0..a.connections {
        tasks.push(tokio::spawn(dribble(
            addr.clone(),
            head.clone(),
            every,
            stats.clone(),
            stop.clone(),
        )));
        // Open them in waves, so the listen backlog is not the thing being measured.
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let ramp = Instant::now();
    while (stats.holding.load(Ordering::Relaxed) as usize) < a.connections
        && ramp.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held_at_start = stats.holding.load(Ordering::Relaxed);
    eprintln!("{held_at_start} slow connections open; publishing again for {secs:?}");
    let loaded = publish_phase(&client, "with_slow_clients", a.concurrency, secs, &run_id).await;
    let held_at_end = stats.holding.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let ratio = if baseline.ms(0.99) > 0.0 {
        loaded.ms(0.99) / baseline.ms(0.99)
    } else {
        f64::NAN
    };
    Ok(serde_json::json!({
        "url": a.url,
        "connections": a.connections,
        "interval_ms": a.interval_ms,
        "concurrency": a.concurrency,
        "secs": a.secs,
        "slow_connections_held": {"at_start": held_at_start, "at_end": held_at_end},
        "slow_connections_opened": stats.opened.load(Ordering::Relaxed),
        "slow_connection_endings": stats.endings.snapshot(),
        "phases": [baseline.json(), loaded.json()],
        "p99_ratio": ratio,
        "target_p99_under_100ms": loaded.ms(0.99) < 100.0 && loaded.ok > 0,
    }))
}

fn render(r: &serde_json::Value) -> String {
    let mut out = format!(
        "slow-clients: {} connections dribbling 1 byte every {} ms (held: {} at start, {} at end; {} opened)\n",
        r["connections"],
        r["interval_ms"],
        r["slow_connections_held"]["at_start"],
        r["slow_connections_held"]["at_end"],
        r["slow_connections_opened"]
    );
    out.push_str(&format!(
        "normal publishes: {} concurrent, {} s per phase\n\n",
        r["concurrency"], r["secs"]
    ));
    out.push_str("| phase | ok | failures | req/s | p50 ms | p99 ms | max ms |\n|---|---:|---|---:|---:|---:|---:|\n");
    for p in r["phases"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |\n",
            p["phase"].as_str().unwrap_or(""),
            p["ok"],
            p["failures"],
            p["requests_per_sec"].as_f64().unwrap_or(0.0),
            p["p50_ms"].as_f64().unwrap_or(0.0),
            p["p99_ms"].as_f64().unwrap_or(0.0),
            p["max_ms"].as_f64().unwrap_or(0.0),
        ));
    }
    out.push_str(&format!(
        "\np99 with slow clients / baseline p99: {:.2}x; target p99 < 100 ms: {}\nslow connections ended: {}\n",
        r["p99_ratio"].as_f64().unwrap_or(f64::NAN),
        if r["target_p99_under_100ms"] == true { "met" } else { "NOT met" },
        r["slow_connection_endings"],
    ));
    out
}

/// Runs the subcommand; exit 0 when every normal publish succeeded, 1 otherwise, 2 when the run
/// could not take place.
pub fn main(a: SlowArgs) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lab slow-clients: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let report = match runtime.block_on(run(&a)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lab slow-clients: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    if a.json {
        println!("{report}");
    } else {
        print!("{}", render(&report));
    }
    let failed = report["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["failures"].as_object().is_some_and(|f| !f.is_empty()) || p["ok"] == 0);
    if failed {
        eprintln!("lab slow-clients: some normal publishes failed (see the table)");
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}
