//! `loadgen bench`: the whole benchmark in one run on one machine, every figure beside the raw
//! limit of the same database measured in the same run.
//!
//! 1. edgelog on edge-host with the default stores (SQLite queue and SQLite events): a verified
//!    batch run and a verified single-event run.
//! 2. The raw SQLite limit (`loadgen raw`): the same rows straight into a fresh file with the
//!    service's schema, with the bare insert (`plain`) and with the service's own statements.
//! 3. The same two steps on PostgreSQL (a database created for the run) with the queue in Redis
//!    (a database number of its own, flushed before and after).
//! 4. The host's own floor: the same bodies posted to a trivial component
//!    (`loadgen/fixtures/hello`) on edge-host, and on `wasmtime serve` when it is installed.
//!
//! Around every measurement it samples CPU time (machine, edge-host, this process, PostgreSQL,
//! Redis) from `/proc`, and afterwards reads edge-host's per-request log lines, so the report
//! can say where the time went. It prints a markdown table and writes everything as JSON.
//! Exit status: 0 when every run passed its checks, 1 when one failed (a service run failing
//! verification included), 2 when the benchmark could not be set up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;

use crate::config::{Config, Mode};
use crate::measure::Measurement;
use crate::ping::{PingConfig, ping_async};
use crate::raw::{Database, RawConfig, Statement, raw_async};
use crate::report::Report;

/// Everything the benchmark needs; paths may be relative to the current directory.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The `edge-host` binary.
    pub host: PathBuf,
    /// The edgelog manifest.
    pub manifest: PathBuf,
    /// The hello fixture's manifest.
    pub hello_manifest: PathBuf,
    /// The hello fixture's component, for `wasmtime serve`.
    pub hello_wasm: PathBuf,
    /// Events per batch-mode run.
    pub events: u64,
    /// Events per single-mode run.
    pub single_events: u64,
    /// Events per batch.
    pub batch_size: usize,
    /// Concurrent connections of every run.
    pub concurrency: usize,
    /// Topics.
    pub topics: u32,
    /// Replay fraction.
    pub duplicate_rate: f64,
    /// Seed of every plan; random when absent.
    pub seed: Option<u64>,
    /// PostgreSQL server (`postgres://user@host:port`, no database); `None` skips PostgreSQL.
    pub postgres: Option<String>,
    /// Redis server (`redis://host:port`, no database number).
    pub redis: String,
    /// Redis database number the benchmark owns (flushed before and after).
    pub redis_db: u32,
    /// Directory for state, logs and results (its bench files are replaced).
    pub out: PathBuf,
    /// Per-request timeout of the service runs.
    pub request_timeout: Duration,
}

/// Which kind of thing a row measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    /// edgelog over HTTP, verified.
    Service,
    /// Native client, the service's statements.
    RawService,
    /// Native client, the bare insert: the limit.
    RawPlain,
    /// Native client, the bare insert, one connection (SQLite's single-writer limit).
    RawPlainOneWriter,
    /// Trivial component on edge-host.
    HelloEdgeHost,
    /// Trivial component on `wasmtime serve`.
    HelloWasmtime,
}

/// CPU seconds spent during one measurement, from `/proc`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Usage {
    wall_secs: f64,
    machine_busy_pct: f64,
    host_cpu_secs: f64,
    client_cpu_secs: f64,
    postgres_cpu_secs: f64,
    redis_cpu_secs: f64,
}

/// Server-side request times from edge-host's log (`POST /publish 200 3.2ms`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct HostTimes {
    count: u64,
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
}

/// One row of the result table.
#[derive(Clone, Debug, Serialize)]
struct Row {
    label: String,
    store: &'static str,
    kind: Kind,
    mode: Mode,
    /// `ok`, `FAILED`, `not installed`, `skipped`.
    status: String,
    note: Option<String>,
    events_per_sec: Option<f64>,
    requests_per_sec: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    requests: u64,
    usage: Option<Usage>,
    host_times: Option<HostTimes>,
    /// The full loadgen report or raw/ping measurement.
    detail: serde_json::Value,
}

impl Row {
    fn empty(label: &str, store: &'static str, kind: Kind, mode: Mode, status: &str) -> Row {
        Row {
            label: label.into(),
            store,
            kind,
            mode,
            status: status.into(),
            note: None,
            events_per_sec: None,
            requests_per_sec: None,
            p50_ms: None,
            p99_ms: None,
            requests: 0,
            usage: None,
            host_times: None,
            detail: serde_json::Value::Null,
        }
    }

    fn from_report(label: &str, store: &'static str, r: &Report, usage: Usage) -> Row {
        let mut row = Row::empty(
            label,
            store,
            Kind::Service,
            r.mode,
            if r.passed() { "ok" } else { "FAILED" },
        );
        row.events_per_sec = Some(r.events_per_sec);
        row.requests_per_sec = Some(r.requests_per_sec);
        row.p50_ms = Some(r.latency_ms.p50);
        row.p99_ms = Some(r.latency_ms.p99);
        row.requests = r.requests;
        row.usage = Some(usage);
        row.note = Some(match r.verified_line() {
            Some(_) => format!(
                "verified: +{} received, +{} unique, {}/{} read back",
                r.verification.as_ref().map_or(0, |v| v.deltas.received),
                r.verification
                    .as_ref()
                    .map_or(0, |v| v.deltas.unique_processed),
                r.verification.as_ref().map_or(0, |v| v.sample_ok),
                r.verification.as_ref().map_or(0, |v| v.sampled),
            ),
            None => r.failure_lines().join("; "),
        });
        row.detail = serde_json::from_str(&r.to_json()).unwrap_or_default();
        row
    }

    fn from_measurement(
        label: &str,
        store: &'static str,
        kind: Kind,
        m: &Measurement,
        usage: Usage,
    ) -> Row {
        let mut row = Row::empty(
            label,
            store,
            kind,
            m.mode,
            if m.passed { "ok" } else { "FAILED" },
        );
        row.events_per_sec = Some(m.events_per_sec);
        row.requests_per_sec = Some(m.requests_per_sec);
        row.p50_ms = Some(m.latency_ms.p50);
        row.p99_ms = Some(m.latency_ms.p99);
        row.requests = m.requests;
        row.usage = Some(usage);
        row.note = Some(if m.passed {
            m.checked.clone()
        } else {
            m.errors.join("; ")
        });
        row.detail = serde_json::from_str(&m.to_json()).unwrap_or_default();
        row
    }
}

/// Runs the benchmark, prints the table, writes `results.json` and `results.md` under `out`;
/// returns whether every run passed.
pub fn bench(cfg: &BenchConfig) -> Result<bool> {
    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("cannot create {}", cfg.out.display()))?;
    let out = cfg
        .out
        .canonicalize()
        .context("resolving the output directory")?;
    for p in [&cfg.host, &cfg.manifest, &cfg.hello_manifest] {
        if !p.exists() {
            bail!(
                "{} does not exist (build first: scripts/bench.sh)",
                p.display()
            );
        }
    }
    let seed = cfg
        .seed
        .unwrap_or_else(|| rand::RngExt::random(&mut rand::rng()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut cleanup = Cleanup::default();
    let result = (|| -> Result<()> {
        say(&machine_line("at the start"));
        say(&format!(
            "seed {seed}; {} events per batch run, {} per single run, batch {}, concurrency {}",
            cfg.events, cfg.single_events, cfg.batch_size, cfg.concurrency
        ));

        // 1. SQLite service.
        let state = fresh_dir(&out.join("sqlite-state"))?;
        let host = HostProc::start(
            &cfg.host,
            &cfg.manifest,
            &state,
            None,
            &[],
            &out.join("edge-host-sqlite.log"),
        )?;
        rows.extend(service_runs(&rt, cfg, seed, &host, "sqlite")?);
        host.stop()?;
        attach_host_times(&mut rows, "sqlite", &out.join("edge-host-sqlite.log"));

        // 2. Raw SQLite.
        let raw_db = out.join("raw-sqlite.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", raw_db.display()));
        }
        rows.extend(raw_runs(
            &rt,
            cfg,
            seed,
            &Database::Sqlite(raw_db),
            "sqlite",
        )?);

        // 3 and 4. PostgreSQL + Redis.
        match &cfg.postgres {
            None => {
                for (label, kind) in [
                    ("edgelog on edge-host", Kind::Service),
                    ("raw native client, service SQL", Kind::RawService),
                    ("raw native client, plain INSERT (limit)", Kind::RawPlain),
                ] {
                    for mode in [Mode::Batch, Mode::Single] {
                        rows.push(Row::empty(label, "postgres", kind, mode, "skipped"));
                    }
                }
            }
            Some(server) => {
                let server = server.trim_end_matches('/');
                let tag = format!("edgelog_bench_{}", std::process::id());
                let svc_db = format!("{tag}_svc");
                let raw_db = format!("{tag}_raw");
                for db in [&svc_db, &raw_db] {
                    rt.block_on(pg_admin(server, &format!("DROP DATABASE IF EXISTS {db}")))?;
                    rt.block_on(pg_admin(server, &format!("CREATE DATABASE {db}")))?;
                    cleanup.databases.push((server.to_string(), db.clone()));
                }
                redis_flush(&cfg.redis, cfg.redis_db)?;
                cleanup.redis = Some((cfg.redis.clone(), cfg.redis_db));
                let rc = out.join("runtime-config-bench.toml");
                std::fs::write(
                    &rc,
                    format!(
                        "# Written by loadgen bench.\n[key_value_store.default]\ntype = \"redis\"\n\
                         url = \"{}/{}\"\n",
                        cfg.redis.trim_end_matches('/'),
                        cfg.redis_db
                    ),
                )?;
                let state = fresh_dir(&out.join("pg-state"))?;
                let db_url = format!("{server}/{svc_db}");
                let env = [
                    ("SPIN_VARIABLE_STORE", "postgres".to_string()),
                    ("SPIN_VARIABLE_DATABASE_URL", db_url),
                    ("SPIN_VARIABLE_DB_HOST", host_port(server)),
                ];
                let host = HostProc::start(
                    &cfg.host,
                    &cfg.manifest,
                    &state,
                    Some(&rc),
                    &env,
                    &out.join("edge-host-postgres.log"),
                )?;
                rows.extend(service_runs(&rt, cfg, seed, &host, "postgres")?);
                host.stop()?;
                attach_host_times(&mut rows, "postgres", &out.join("edge-host-postgres.log"));
                let raw_url = format!("{server}/{raw_db}");
                rows.extend(raw_runs(
                    &rt,
                    cfg,
                    seed,
                    &Database::Postgres(raw_url),
                    "postgres",
                )?);
            }
        }

        // 5. The host's floor.
        let state = fresh_dir(&out.join("hello-state"))?;
        let host = HostProc::start(
            &cfg.host,
            &cfg.hello_manifest,
            &state,
            None,
            &[],
            &out.join("edge-host-hello.log"),
        )?;
        for mode in [Mode::Batch, Mode::Single] {
            let (m, usage) = measure(Some(host.pid()), || {
                rt.block_on(ping_async(&ping_config(cfg, seed, &host.url, mode)))
            })?;
            rows.push(Row::from_measurement(
                "trivial component on edge-host",
                "none",
                Kind::HelloEdgeHost,
                &m,
                usage,
            ));
        }
        host.stop()?;
        attach_host_times(&mut rows, "none", &out.join("edge-host-hello.log"));

        // 6. The same on wasmtime serve, when installed.
        match which("wasmtime") {
            None => {
                for mode in [Mode::Batch, Mode::Single] {
                    let mut row = Row::empty(
                        "trivial component on `wasmtime serve`",
                        "none",
                        Kind::HelloWasmtime,
                        mode,
                        "not installed",
                    );
                    row.note = Some("`wasmtime` is not on PATH".into());
                    rows.push(row);
                }
            }
            Some(bin) => {
                let ws = WasmtimeServe::start(&bin, &cfg.hello_wasm, &out.join("wasmtime.log"))?;
                for mode in [Mode::Batch, Mode::Single] {
                    let (m, usage) = measure(Some(ws.pid()), || {
                        rt.block_on(ping_async(&ping_config(cfg, seed, &ws.url, mode)))
                    })?;
                    rows.push(Row::from_measurement(
                        "trivial component on `wasmtime serve`",
                        "none",
                        Kind::HelloWasmtime,
                        &m,
                        usage,
                    ));
                }
                ws.stop();
            }
        }
        Ok(())
    })();
    cleanup.run(&rt);
    if let Err(e) = result {
        if !rows.is_empty() {
            print!("{}", render_markdown(cfg, seed, &rows, started.elapsed()));
        }
        return Err(e);
    }

    let markdown = render_markdown(cfg, seed, &rows, started.elapsed());
    print!("{markdown}");
    std::fs::write(out.join("results.md"), &markdown)?;
    let json = json!({
        "seed": seed,
        "events": cfg.events,
        "single_events": cfg.single_events,
        "batch_size": cfg.batch_size,
        "concurrency": cfg.concurrency,
        "duplicate_rate": cfg.duplicate_rate,
        "elapsed_secs": started.elapsed().as_secs_f64(),
        "rows": rows,
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    say(&format!(
        "results: {} and {}",
        out.join("results.md").display(),
        out.join("results.json").display()
    ));
    Ok(rows.iter().all(|r| r.status != "FAILED"))
}

fn say(msg: &str) {
    eprintln!("[bench] {msg}");
}

fn fresh_dir(p: &Path) -> Result<PathBuf> {
    if p.exists() {
        std::fs::remove_dir_all(p).with_context(|| format!("cannot clear {}", p.display()))?;
    }
    std::fs::create_dir_all(p)?;
    Ok(p.to_path_buf())
}

fn events_for(cfg: &BenchConfig, mode: Mode) -> u64 {
    match mode {
        Mode::Single => cfg.single_events,
        _ => cfg.events,
    }
}

fn ping_config(cfg: &BenchConfig, seed: u64, url: &str, mode: Mode) -> PingConfig {
    PingConfig {
        url: url.to_string(),
        events: events_for(cfg, mode),
        duplicate_rate: cfg.duplicate_rate,
        batch_size: cfg.batch_size,
        concurrency: cfg.concurrency,
        topics: cfg.topics,
        mode,
        seed: Some(seed),
        request_timeout: cfg.request_timeout,
    }
}

/// The verified batch and single runs against a running service.
fn service_runs(
    rt: &tokio::runtime::Runtime,
    cfg: &BenchConfig,
    seed: u64,
    host: &HostProc,
    store: &'static str,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for mode in [Mode::Batch, Mode::Single] {
        let config = Config {
            url: host.url.clone(),
            events: events_for(cfg, mode),
            duplicate_rate: cfg.duplicate_rate,
            batch_size: cfg.batch_size,
            concurrency: cfg.concurrency,
            topics: cfg.topics,
            mode,
            seed: Some(seed),
            request_timeout: cfg.request_timeout,
            ..Config::default()
        };
        say(&format!(
            "edgelog on {store}, {mode:?}: {} events ...",
            config.events
        ));
        // Verification (the /stats baseline, the drain and the read-back) runs inside `run`,
        // outside the timed sending phase; CPU is sampled around the sending phase only.
        let pid = Some(host.pid());
        let mut samples = Vec::with_capacity(2);
        let report = rt.block_on(crate::run::run_with_probe(&config, &mut |_| {
            samples.push((sample(pid), Instant::now()));
        }))?;
        let usage = match samples.as_slice() {
            [(a, t0), (b, t1)] => usage_between(a, b, t1.duration_since(*t0)),
            _ => Usage::default(),
        };
        say(&format!(
            "  {:.0} events/s, p50 {:.2} ms, p99 {:.2} ms, {}",
            report.events_per_sec,
            report.latency_ms.p50,
            report.latency_ms.p99,
            if report.passed() {
                "verified".to_string()
            } else {
                format!("FAILED: {}", report.failure_lines().join("; "))
            }
        ));
        rows.push(Row::from_report(
            "edgelog on edge-host",
            store,
            &report,
            usage,
        ));
    }
    Ok(rows)
}

/// The raw runs on one database: service SQL and plain insert, batch and single.
fn raw_runs(
    rt: &tokio::runtime::Runtime,
    cfg: &BenchConfig,
    seed: u64,
    db: &Database,
    store: &'static str,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut variants = vec![
        (
            Statement::Service,
            Kind::RawService,
            "raw native client, service SQL",
            cfg.concurrency,
        ),
        (
            Statement::Plain,
            Kind::RawPlain,
            "raw native client, plain INSERT (limit)",
            cfg.concurrency,
        ),
    ];
    if matches!(db, Database::Sqlite(_)) {
        // SQLite has one writer at a time: show what it does without lock contention too.
        variants.push((
            Statement::Plain,
            Kind::RawPlainOneWriter,
            "raw native client, plain INSERT, 1 connection",
            1,
        ));
    }
    for (statement, kind, label, concurrency) in variants {
        for mode in [Mode::Batch, Mode::Single] {
            let config = RawConfig {
                database: db.clone(),
                events: events_for(cfg, mode),
                duplicate_rate: cfg.duplicate_rate,
                batch_size: cfg.batch_size,
                concurrency,
                topics: cfg.topics,
                mode,
                seed: Some(seed),
                statement,
                run_id: None,
                migrate: true,
            };
            say(&format!(
                "raw {store} {statement:?} {mode:?}, concurrency {concurrency}: {} events ...",
                config.events
            ));
            let (m, usage) = measure(None, || rt.block_on(raw_async(&config)))?;
            say(&format!(
                "  {:.0} events/s, p50 {:.2} ms, p99 {:.2} ms{}",
                m.events_per_sec,
                m.latency_ms.p50,
                m.latency_ms.p99,
                if m.passed { "" } else { " FAILED" }
            ));
            rows.push(Row::from_measurement(label, store, kind, &m, usage));
        }
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc.

#[derive(Clone, Copy, Default)]
struct CpuSample {
    machine_total: u64,
    machine_idle: u64,
    host: u64,
    client: u64,
    postgres: u64,
    redis: u64,
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every mainstream Linux configuration.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `(comm, utime + stime, cutime + cstime)` of a process, in clock ticks. The children's part
/// matters for PostgreSQL: a backend that exited (a closed connection) is only counted in the
/// postmaster's `cutime`/`cstime` once reaped.
fn proc_cpu(stat_path: &Path) -> Option<(String, u64, u64)> {
    let s = std::fs::read_to_string(stat_path).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let fields: Vec<&str> = s[close + 2..].split_whitespace().collect();
    // After the comm: state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let cutime: u64 = fields.get(13)?.parse().ok()?;
    let cstime: u64 = fields.get(14)?.parse().ok()?;
    Some((comm, utime + stime, cutime + cstime))
}

fn sample(host: Option<u32>) -> CpuSample {
    let mut s = CpuSample::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/stat")
        && let Some(line) = stat.lines().next()
    {
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        s.machine_total = v.iter().take(8).sum();
        s.machine_idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    }
    if let Some(pid) = host {
        s.host = proc_cpu(Path::new(&format!("/proc/{pid}/stat"))).map_or(0, |(_, t, _)| t);
    }
    s.client = proc_cpu(Path::new("/proc/self/stat")).map_or(0, |(_, t, _)| t);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Some((comm, t, children)) = proc_cpu(&entry.path().join("stat")) {
                if comm == "postgres" {
                    s.postgres += t + children;
                } else if comm == "redis-server" {
                    s.redis += t;
                }
            }
        }
    }
    s
}

/// The CPU time everyone spent between two samples.
fn usage_between(before: &CpuSample, after: &CpuSample, wall: Duration) -> Usage {
    let hz = clock_ticks();
    let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / hz;
    let total = after.machine_total.saturating_sub(before.machine_total) as f64;
    let idle = after.machine_idle.saturating_sub(before.machine_idle) as f64;
    Usage {
        wall_secs: wall.as_secs_f64(),
        machine_busy_pct: if total > 0.0 {
            100.0 * (total - idle) / total
        } else {
            0.0
        },
        host_cpu_secs: d(after.host, before.host),
        client_cpu_secs: d(after.client, before.client),
        postgres_cpu_secs: d(after.postgres, before.postgres),
        redis_cpu_secs: d(after.redis, before.redis),
    }
}

/// Runs `f`, returning its value and the CPU time everyone spent meanwhile.
fn measure<T>(host: Option<u32>, f: impl FnOnce() -> Result<T>) -> Result<(T, Usage)> {
    let before = sample(host);
    let t0 = Instant::now();
    let value = f()?;
    let wall = t0.elapsed();
    let after = sample(host);
    Ok((value, usage_between(&before, &after, wall)))
}

// ---------------------------------------------------------------------------------------------
// edge-host and wasmtime processes.

/// A running `edge-host up`, stopped (SIGTERM, then SIGKILL) when dropped.
struct HostProc {
    child: Option<Child>,
    url: String,
}

impl HostProc {
    fn start(
        bin: &Path,
        manifest: &Path,
        state_dir: &Path,
        runtime_config: Option<&Path>,
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<HostProc> {
        let log_file = File::create(log)?;
        let mut cmd = Command::new(bin);
        cmd.arg("up")
            .arg("--from")
            .arg(manifest)
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state_dir);
        if let Some(rc) = runtime_config {
            cmd.arg("--runtime-config-file").arg(rc);
        }
        for var in [
            "SPIN_VARIABLE_STORE",
            "SPIN_VARIABLE_DATABASE_URL",
            "SPIN_VARIABLE_DB_HOST",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file.try_clone()?));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut log_file = log_file;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Serving ") {
                    let _ = tx.send(addr.trim().to_string());
                }
                let _ = writeln!(log_file, "{line}");
            }
        });
        let mut proc = HostProc {
            child: Some(child),
            url: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => proc.url = url,
            Err(_) => bail!(
                "edge-host did not print its banner within 120 s; see {}",
                log.display()
            ),
        }
        say(&format!(
            "edge-host {} on {} (log {})",
            manifest.display(),
            proc.url,
            log.display()
        ));
        Ok(proc)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn stop(mut self) -> Result<()> {
        if let Some(child) = self.child.take() {
            terminate(child, Duration::from_secs(40))?;
        }
        Ok(())
    }
}

impl Drop for HostProc {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = terminate(child, Duration::from_secs(5));
        }
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
fn terminate(mut child: Child, grace: Duration) -> Result<()> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    say(&format!("pid {} ignored SIGTERM; killing it", child.id()));
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// A running `wasmtime serve` of the hello component.
struct WasmtimeServe {
    child: Option<Child>,
    url: String,
}

impl WasmtimeServe {
    fn start(bin: &Path, wasm: &Path, log: &Path) -> Result<WasmtimeServe> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log_file = File::create(log)?;
        let child = Command::new(bin)
            .args(["serve", "--addr", &addr, "-S", "cli=y"])
            .arg(wasm)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let ws = WasmtimeServe {
            child: Some(child),
            url: format!("http://{addr}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "wasmtime serve did not listen on {addr}; see {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(ws)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn stop(mut self) {
        if let Some(child) = self.child.take() {
            let _ = terminate(child, Duration::from_secs(10));
        }
    }
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = terminate(child, Duration::from_secs(5));
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Reads `METHOD PATH STATUS 1.2ms` lines of edge-host's request log and attaches the
/// server-side time distribution to the rows of `store` (batch ↔ /publish/batch, single ↔
/// /publish).
fn attach_host_times(rows: &mut [Row], store: &str, log: &Path) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return;
    };
    let mut by_path: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.split("edge_host::request: ").nth(1) else {
            continue;
        };
        let parts: Vec<&str> = rest.split_whitespace().collect();
        if parts.len() != 4 || parts[0] != "POST" {
            continue;
        }
        if let Some(ms) = parts[3]
            .strip_suffix("ms")
            .and_then(|v| v.parse::<f64>().ok())
        {
            by_path.entry(parts[1].to_string()).or_default().push(ms);
        }
    }
    for row in rows
        .iter_mut()
        .filter(|r| r.store == store && matches!(r.kind, Kind::Service | Kind::HelloEdgeHost))
    {
        let path = match row.mode {
            Mode::Single => "/publish",
            _ => "/publish/batch",
        };
        if let Some(v) = by_path.get_mut(path) {
            v.sort_by(f64::total_cmp);
            let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
            row.host_times = Some(HostTimes {
                count: v.len() as u64,
                p50_ms: q(0.5),
                p99_ms: q(0.99),
                mean_ms: v.iter().sum::<f64>() / v.len() as f64,
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and Redis administration.

fn host_port(server: &str) -> String {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    }
}

async fn pg_admin(server: &str, sql: &str) -> Result<()> {
    let url = format!("{server}/postgres");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .batch_execute(sql)
        .await
        .with_context(|| format!("PostgreSQL: {sql}"))?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Sends RESP commands and checks each reply is not an error.
fn redis_cmd(url: &str, commands: &[&[&str]]) -> Result<()> {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let addr = rest.split('/').next().unwrap_or(rest);
    let mut stream =
        TcpStream::connect(addr).with_context(|| format!("connecting to Redis at {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    for c in commands {
        buf.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
        for arg in *c {
            buf.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
    }
    stream.write_all(&buf)?;
    let mut reader = BufReader::new(stream);
    for c in commands {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if !line.starts_with('+') && !line.starts_with(':') {
            bail!("Redis {:?} answered {:?}", c, line.trim_end());
        }
    }
    let _ = reader.into_inner().read(&mut [0u8; 0]);
    Ok(())
}

fn redis_flush(url: &str, db: u32) -> Result<()> {
    let db = db.to_string();
    redis_cmd(url, &[&["SELECT", &db], &["FLUSHDB"]])
}

/// Databases to drop and the Redis database to flush, whatever happened.
#[derive(Default)]
struct Cleanup {
    databases: Vec<(String, String)>,
    redis: Option<(String, u32)>,
}

impl Cleanup {
    fn run(&mut self, rt: &tokio::runtime::Runtime) {
        for (server, db) in self.databases.drain(..) {
            let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
            if let Err(e) = rt.block_on(pg_admin(&server, &sql)) {
                say(&format!("cleanup: {e:#}"));
            }
        }
        if let Some((url, db)) = self.redis.take()
            && let Err(e) = redis_flush(&url, db)
        {
            say(&format!("cleanup: {e:#}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

fn fmt_num(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_ratio(v: Option<f64>) -> String {
    match v {
        Some(r) if r.is_finite() => format!("{r:.2}×"),
        _ => "—".into(),
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Batch => "batch",
        Mode::Single => "single",
        Mode::Mixed => "mixed",
    }
}

fn find<'a>(rows: &'a [Row], store: &str, kind: Kind, mode: Mode) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.store == store && r.kind == kind && r.mode == mode && r.events_per_sec.is_some()
    })
}

fn eps(rows: &[Row], store: &str, kind: Kind, mode: Mode) -> Option<f64> {
    find(rows, store, kind, mode).and_then(|r| r.events_per_sec)
}

/// nproc, CPU model, RAM and the load average, so a reader can judge a noisy run.
fn machine_line(when: &str) -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, v)| v.trim())
        .to_string();
    let meminfo = read("/proc/meminfo");
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = read("/proc/loadavg");
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "machine: {cpus} CPUs ({model}), {mem_gib:.0} GiB RAM; load average {when} {}",
        load.join(" ")
    )
}

fn render_markdown(cfg: &BenchConfig, seed: u64, rows: &[Row], took: Duration) -> String {
    let mut s = String::new();
    let store_name = |s: &str| match s {
        "sqlite" => "SQLite (queue: SQLite KV)",
        "postgres" => "PostgreSQL (queue: Redis)",
        _ => "—",
    };
    let _ = writeln!(
        s,
        "\n### Results (seed {seed}; batch runs {} events, single runs {}; batch size {}; \
         concurrency {}; {:.0}% replays; took {:.0} s)\n",
        fmt_num(cfg.events as f64),
        fmt_num(cfg.single_events as f64),
        cfg.batch_size,
        cfg.concurrency,
        cfg.duplicate_rate * 100.0,
        took.as_secs_f64()
    );
    let _ = writeln!(s, "{}\n", machine_line("at the end"));
    let _ = writeln!(
        s,
        "| # | what | store | mode | events/s | requests/s | p50 ms | p99 ms | × raw limit \
         (plain, batch) | × raw same mode (plain) | check |"
    );
    let _ = writeln!(s, "|---|---|---|---|--:|--:|--:|--:|--:|--:|---|");
    for (i, r) in rows.iter().enumerate() {
        let limit = eps(rows, r.store, Kind::RawPlain, Mode::Batch);
        let same = eps(rows, r.store, Kind::RawPlain, r.mode);
        let ratio = |base: Option<f64>| match (r.events_per_sec, base) {
            (Some(v), Some(b)) if b > 0.0 && r.store != "none" => Some(v / b),
            _ => None,
        };
        let opt = |v: Option<f64>, f: fn(f64) -> String| v.map_or("—".to_string(), f);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            r.label,
            store_name(r.store),
            mode_name(r.mode),
            opt(r.events_per_sec, fmt_num),
            opt(r.requests_per_sec, fmt_num),
            opt(r.p50_ms, fmt_ms),
            opt(r.p99_ms, fmt_ms),
            fmt_ratio(ratio(limit)),
            fmt_ratio(ratio(same)),
            r.status
        );
    }

    let _ = writeln!(
        s,
        "\n### Where the time goes (CPU seconds per 1,000 requests, during the sending phase)\n"
    );
    let _ = writeln!(
        s,
        "| # | what | store | mode | wall s | machine busy | edge-host | loadgen | postgres | \
         redis | edge-host logged p50 / p99 ms |"
    );
    let _ = writeln!(s, "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|");
    for (i, r) in rows.iter().enumerate() {
        let Some(u) = r.usage else { continue };
        let per_k = |secs: f64| {
            if r.requests == 0 {
                "—".to_string()
            } else {
                format!("{:.2}", secs * 1000.0 / r.requests as f64)
            }
        };
        let host = if matches!(
            r.kind,
            Kind::Service | Kind::HelloEdgeHost | Kind::HelloWasmtime
        ) {
            per_k(u.host_cpu_secs)
        } else {
            "—".into()
        };
        let logged = r.host_times.map_or("—".to_string(), |h| {
            format!("{} / {}", fmt_ms(h.p50_ms), fmt_ms(h.p99_ms))
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} | {:.0}% | {} | {} | {} | {} | {} |",
            i + 1,
            r.label,
            store_name(r.store),
            mode_name(r.mode),
            u.wall_secs,
            u.machine_busy_pct,
            host,
            per_k(u.client_cpu_secs),
            per_k(u.postgres_cpu_secs),
            per_k(u.redis_cpu_secs),
            logged
        );
    }

    let _ = writeln!(s, "\n### Targets\n");
    let target = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let pg_batch = eps(rows, "postgres", Kind::Service, Mode::Batch);
    let pg_limit = eps(rows, "postgres", Kind::RawPlain, Mode::Batch);
    let pg_single = find(rows, "postgres", Kind::Service, Mode::Single);
    let sq_single = find(rows, "sqlite", Kind::Service, Mode::Single);
    let sq_batch = eps(rows, "sqlite", Kind::Service, Mode::Batch);
    let _ = writeln!(
        s,
        "- batched on PostgreSQL ≥ 50,000 events/s: {} ({})",
        pg_batch.map_or("—".into(), fmt_num),
        target(pg_batch.map(|v| v >= 50_000.0))
    );
    let half = pg_batch.zip(pg_limit).map(|(v, l)| v / l);
    let _ = writeln!(
        s,
        "- batched on PostgreSQL ≥ half the raw limit: {} of {} events/s ({})",
        fmt_ratio(half),
        pg_limit.map_or("—".into(), fmt_num),
        target(half.map(|h| h >= 0.5))
    );
    for (name, row) in [("PostgreSQL", pg_single), ("SQLite", sq_single)] {
        let _ = writeln!(
            s,
            "- single-event on {name} ≥ 10,000 events/s with p99 < 20 ms: {} events/s, p99 {} ms ({})",
            row.and_then(|r| r.events_per_sec)
                .map_or("—".into(), fmt_num),
            row.and_then(|r| r.p99_ms).map_or("—".into(), fmt_ms),
            target(row.and_then(|r| Some(r.events_per_sec? >= 10_000.0 && r.p99_ms? < 20.0)))
        );
    }
    for (mode, sq, pg) in [
        ("batched", sq_batch, pg_batch),
        (
            "single",
            sq_single.and_then(|r| r.events_per_sec),
            pg_single.and_then(|r| r.events_per_sec),
        ),
    ] {
        let r = sq.zip(pg).map(|(a, b)| a / b);
        let _ = writeln!(
            s,
            "- SQLite within 2× of PostgreSQL, {mode}: SQLite/PostgreSQL = {} ({})",
            fmt_ratio(r),
            target(r.map(|r| r >= 0.5))
        );
    }
    let failed: Vec<String> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == "FAILED")
        .map(|(i, r)| {
            format!(
                "#{} {}: {}",
                i + 1,
                r.label,
                r.note.clone().unwrap_or_default()
            )
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\n### FAILED\n");
        for f in failed {
            let _ = writeln!(s, "- {f}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_of_server_urls() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432"),
            "127.0.0.1:5432"
        );
        assert_eq!(host_port("postgres://u:p@db.example/x"), "db.example:5432");
        assert_eq!(host_port("postgresql://h:6000"), "h:6000");
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(fmt_num(1234567.4), "1,234,567");
        assert_eq!(fmt_num(999.0), "999");
        assert_eq!(fmt_ms(0.1234), "0.12");
        assert_eq!(fmt_ms(12.34), "12.3");
    }

    #[test]
    fn proc_stat_of_self_parses() {
        let (comm, _, _) = proc_cpu(Path::new("/proc/self/stat")).unwrap();
        assert!(!comm.is_empty());
    }
}
