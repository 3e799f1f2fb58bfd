//! The benchmark's result rows and how they are shown: one row per measurement (service run,
//! raw database limit, host floor), edge-host's own logged request times attached to them, and
//! the markdown tables (throughput beside the raw limit, where the CPU time went, targets).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::BenchConfig;
use super::cpu::Usage;
use loadgen::config::Mode;
use loadgen::measure::Measurement;
use loadgen::report::Report;

/// Which kind of thing a row measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Kind {
    /// edgelog over HTTP, verified.
    Service,
    /// The same on edge-host `--postgres-statements spin`: statements prepared on every call as
    /// on Spin 4.0.2, without the host's statement cache (issue 17 item 3).
    ServiceSpinStatements,
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
    /// Trivial component on edge-host, posted one request at a time: edge-host idle between
    /// requests, as it is while a publish waits on its database.
    HelloOneAtATime,
    /// edgelog draining a backlog of async publishes with `POST /drain`, one caller.
    BacklogDrain,
    /// The same with parallel callers, one per lane (`POST /drain?lane=I&lanes=N`).
    BacklogDrainLanes,
}

/// Server-side request times from edge-host's log (`POST /publish 200 3.2ms`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(super) struct HostTimes {
    count: u64,
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
}

/// One row of the result table.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Row {
    pub(super) label: String,
    pub(super) store: &'static str,
    pub(super) kind: Kind,
    pub(super) mode: Mode,
    /// `ok`, `FAILED`, `not installed`, `skipped`.
    pub(super) status: String,
    pub(super) note: Option<String>,
    pub(super) events_per_sec: Option<f64>,
    pub(super) requests_per_sec: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    pub(super) requests: u64,
    pub(super) usage: Option<Usage>,
    pub(super) host_times: Option<HostTimes>,
    /// Longest `POST /drain` of a backlog row.
    pub(super) longest_drain_ms: Option<f64>,
    /// The full loadgen report or raw/ping measurement.
    pub(super) detail: serde_json::Value,
}

impl Row {
    /// The client-side p99 latency, in ms, when the row measured one.
    pub(super) fn p99(&self) -> Option<f64> {
        self.p99_ms
    }

    /// A row with no figures yet (for skipped or not-installed measurements).
    pub(super) fn empty(
        label: &str,
        store: &'static str,
        kind: Kind,
        mode: Mode,
        status: &str,
    ) -> Row {
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
            longest_drain_ms: None,
            detail: serde_json::Value::Null,
        }
    }

    /// A verified service run's row.
    pub(super) fn from_report(label: &str, store: &'static str, r: &Report, usage: Usage) -> Row {
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

    /// A raw or ping measurement's row.
    pub(super) fn from_measurement(
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

/// Reads `METHOD PATH STATUS 1.2ms` lines of edge-host's request log and attaches the
/// server-side time distribution to the rows of `store` (batch ↔ /publish/batch, single ↔
/// /publish); `rows` holds only rows served by the host that wrote `log`.
pub(super) fn attach_host_times(rows: &mut [Row], store: &str, log: &Path) {
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
    for row in rows.iter_mut().filter(|r| {
        r.store == store
            && matches!(
                r.kind,
                Kind::Service | Kind::ServiceSpinStatements | Kind::HelloEdgeHost
            )
    }) {
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
pub(super) fn machine_line(when: &str) -> String {
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

/// The whole result as markdown: throughput, where the CPU went, targets, failures.
pub(super) fn render_markdown(
    cfg: &BenchConfig,
    seed: u64,
    rows: &[Row],
    took: Duration,
) -> String {
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
            Kind::Service
                | Kind::ServiceSpinStatements
                | Kind::HelloEdgeHost
                | Kind::HelloWasmtime
                | Kind::HelloOneAtATime
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
    for (name, store) in [("PostgreSQL", "postgres"), ("SQLite", "sqlite")] {
        for (kind, callers) in [
            (Kind::BacklogDrain, "1 caller"),
            (Kind::BacklogDrainLanes, "parallel lanes"),
        ] {
            let Some(b) = find(rows, store, kind, Mode::Batch) else {
                continue;
            };
            let r = b
                .events_per_sec
                .zip(eps(rows, store, Kind::RawPlain, Mode::Batch))
                .map(|(v, l)| v / l);
            let _ = writeln!(
                s,
                "- backlog on {name} ({callers}) drains at ≥ 0.8× the raw batched insert rate: \
                 {} events/s = {} ({}); longest POST /drain {} ms",
                b.events_per_sec.map_or("—".into(), fmt_num),
                fmt_ratio(r),
                target(r.map(|r| r >= 0.8)),
                b.longest_drain_ms.map_or("—".into(), fmt_ms)
            );
        }
        let one = eps(rows, store, Kind::BacklogDrain, Mode::Batch);
        let lanes = eps(rows, store, Kind::BacklogDrainLanes, Mode::Batch);
        if let Some((one, lanes)) = one.zip(lanes).filter(|(one, _)| *one > 0.0) {
            let _ = writeln!(
                s,
                "- parallel drain on {name}: lanes / 1 caller = {}",
                fmt_ratio(Some(lanes / one))
            );
        }
    }
    super::targets::render(&mut s, rows);
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
    fn numbers_are_grouped() {
        assert_eq!(fmt_num(1234567.4), "1,234,567");
        assert_eq!(fmt_num(999.0), "999");
        assert_eq!(fmt_ms(0.1234), "0.12");
        assert_eq!(fmt_ms(12.34), "12.3");
    }
}
