//! The measurements of one benchmark: verified service runs (batch and single) against a
//! running edge-host, the raw database limits, and the host's floor with a trivial component.

use std::time::Instant;

use anyhow::Result;

use super::cpu::{Usage, measure, sample, usage_between};
use super::report::{Kind, Row};
use super::services::HostProc;
use super::{BenchConfig, Only, say};
use crate::raw::{Database, RawConfig, Statement, raw_async};
use loadgen::config::{Config, Mode};
use loadgen::ping::{PingConfig, ping_async};
use loadgen::plan::Shape;

fn events_for(cfg: &BenchConfig, mode: Mode) -> u64 {
    match mode {
        Mode::Single => cfg.single_events,
        _ => cfg.events,
    }
}

/// The benchmark's load shape for one mode (and connection count).
fn shape(cfg: &BenchConfig, seed: u64, mode: Mode, concurrency: usize) -> Shape {
    Shape {
        events: events_for(cfg, mode),
        duplicate_rate: cfg.duplicate_rate,
        batch_size: cfg.batch_size,
        concurrency,
        topics: cfg.topics,
        mode,
        seed: Some(seed),
    }
}

fn ping_config(cfg: &BenchConfig, seed: u64, url: &str, mode: Mode) -> PingConfig {
    PingConfig {
        url: url.to_string(),
        token: None,
        tls: Default::default(),
        shape: shape(cfg, seed, mode, cfg.concurrency),
        request_timeout: cfg.request_timeout,
    }
}

/// What the row of edgelog on edge-host `--postgres-statements spin` is called.
pub(super) const SPIN_STATEMENTS: &str = "edgelog, Spin-like statements (no host cache)";

/// The verified runs (in `modes`) against a running service.
pub(super) fn service_runs(
    rt: &tokio::runtime::Runtime,
    cfg: &BenchConfig,
    seed: u64,
    host: &HostProc,
    store: &'static str,
    modes: &[Mode],
) -> Result<Vec<Row>> {
    modes
        .iter()
        .map(|&mode| service_run(rt, cfg, seed, host, store, mode))
        .collect()
}

/// The verified single run against edge-host `--postgres-statements spin` (issue 17 item 3:
/// the component's figures without edge-host's statement cache, which Spin does not have).
pub(super) fn spin_statements_run(
    rt: &tokio::runtime::Runtime,
    cfg: &BenchConfig,
    seed: u64,
    host: &HostProc,
) -> Result<Row> {
    let mut row = service_run(rt, cfg, seed, host, "postgres", Mode::Single)?;
    row.label = SPIN_STATEMENTS.into();
    row.kind = Kind::ServiceSpinStatements;
    Ok(row)
}

/// One verified run against a running service.
fn service_run(
    rt: &tokio::runtime::Runtime,
    cfg: &BenchConfig,
    seed: u64,
    host: &HostProc,
    store: &'static str,
    mode: Mode,
) -> Result<Row> {
    let config = Config {
        url: host.url.clone(),
        events: Some(events_for(cfg, mode)),
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
        events_for(cfg, mode)
    ));
    // Verification (the /stats baseline, the drain and the read-back) runs inside `run`,
    // outside the timed sending phase; CPU is sampled around the sending phase only.
    let pid = Some(host.pid());
    let mut samples = Vec::with_capacity(2);
    let report = rt.block_on(loadgen::run::run_with_probe(&config, &mut |_| {
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
    Ok(Row::from_report(
        "edgelog on edge-host",
        store,
        &report,
        usage,
    ))
}

/// The raw runs on one database: service SQL and plain insert, batch and single.
pub(super) fn raw_runs(
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
    let modes: &[Mode] = match cfg.only {
        None => &[Mode::Batch, Mode::Single],
        Some(Only::Backlog) => {
            // The backlog alone is compared with the limit only: the plain insert, batched.
            variants.retain(|(_, kind, _, _)| *kind == Kind::RawPlain);
            &[Mode::Batch]
        }
        Some(Only::SinglePostgres) => {
            // Single publishes are compared with the service statement, one per event.
            variants.retain(|(_, kind, _, _)| *kind == Kind::RawService);
            &[Mode::Single]
        }
    };
    for (statement, kind, label, concurrency) in variants {
        for &mode in modes {
            let config = RawConfig {
                database: db.clone(),
                shape: shape(cfg, seed, mode, concurrency),
                statement,
                run_id: None,
                migrate: true,
            };
            say(&format!(
                "raw {store} {statement:?} {mode:?}, concurrency {concurrency}: {} events ...",
                config.shape.events
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

/// The host's floor: the same bodies posted to the trivial component (batch and single) on an
/// already running host (`kind` says which: edge-host or `wasmtime serve`).
pub(super) fn hello_runs(
    rt: &tokio::runtime::Runtime,
    cfg: &BenchConfig,
    seed: u64,
    url: &str,
    pid: u32,
    kind: Kind,
) -> Result<Vec<Row>> {
    let label = match kind {
        Kind::HelloWasmtime => "trivial component on `wasmtime serve`",
        _ => "trivial component on edge-host",
    };
    let mut rows = Vec::new();
    for mode in [Mode::Batch, Mode::Single] {
        let (m, usage) = measure(Some(pid), || {
            rt.block_on(ping_async(&ping_config(cfg, seed, url, mode)))
        })?;
        rows.push(Row::from_measurement(label, "none", kind, &m, usage));
    }
    Ok(rows)
}

/// The trivial component on an already running edge-host, single requests posted one at a
/// time: edge-host sits idle between requests, as it does while a publish waits on its
/// database, so this shows how much of a CPU-per-request figure is that regime rather than the
/// component (not a target's baseline; docs/BENCHMARKS.md).
pub(super) fn hello_one_at_a_time_run(
    rt: &tokio::runtime::Runtime,
    cfg: &BenchConfig,
    seed: u64,
    url: &str,
    pid: u32,
) -> Result<Row> {
    let mut ping = ping_config(cfg, seed, url, Mode::Single);
    ping.shape.concurrency = 1;
    let (m, usage) = measure(Some(pid), || rt.block_on(ping_async(&ping)))?;
    Ok(Row::from_measurement(
        "trivial component on edge-host, one request at a time",
        "none",
        Kind::HelloOneAtATime,
        &m,
        usage,
    ))
}
