//! The cost-per-event targets (issue 17), as ratios against baselines measured in the same run:
//! the composed floor of a single publish (the trivial component's rate and the raw service
//! statement's, in series), the trivial component's CPU per request, the raw statement's
//! PostgreSQL CPU, the raw plain insert and the raw batched rate for the backlog drain.

use std::fmt::Write as _;

use super::report::{Kind, Row};
use loadgen::config::Mode;

fn row<'a>(rows: &'a [Row], store: &str, kind: Kind, mode: Mode) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.store == store && r.kind == kind && r.mode == mode && r.status == "ok")
}

/// Events one row sent per second.
fn eps(r: Option<&Row>) -> Option<f64> {
    r.and_then(|r| r.events_per_sec)
}

/// CPU seconds of edge-host (`host`) or PostgreSQL per request of a row.
fn cpu_per_request(r: Option<&Row>, postgres: bool) -> Option<f64> {
    let r = r?;
    let u = r.usage?;
    (r.requests > 0).then(|| {
        let secs = if postgres {
            u.postgres_cpu_secs
        } else {
            u.host_cpu_secs
        };
        secs / r.requests as f64
    })
}

/// edge-host CPU seconds per event of a row.
fn host_cpu_per_event(r: Option<&Row>) -> Option<f64> {
    let r = r?;
    let u = r.usage?;
    let events = r.events_per_sec? * u.wall_secs;
    (events > 0.0).then(|| u.host_cpu_secs / events)
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}×"))
}

/// Appends the "Targets (issue 17)" block to `s`.
pub(super) fn render(s: &mut String, rows: &[Row]) {
    let _ = writeln!(s, "\n### Targets: cost per event (issue 17)\n");
    let trivial = |mode| {
        rows.iter()
            .find(|r| r.kind == Kind::HelloEdgeHost && r.mode == mode && r.status == "ok")
    };
    let hello = trivial(Mode::Single);
    let one_at_a_time = rows
        .iter()
        .find(|r| r.kind == Kind::HelloOneAtATime && r.status == "ok");
    for (name, store, goal) in [("PostgreSQL", "postgres", 0.75), ("SQLite", "sqlite", 0.8)] {
        let single = row(rows, store, Kind::Service, Mode::Single);
        let raw = row(rows, store, Kind::RawService, Mode::Single);
        let floor = eps(hello)
            .zip(eps(raw))
            .map(|(a, b)| 1.0 / (1.0 / a + 1.0 / b));
        let r = eps(single).zip(floor).map(|(v, f)| v / f);
        let _ = writeln!(
            s,
            "- single publish on {name} ≥ {goal}× the composed floor (1 / (1/trivial + 1/raw \
             service statement) = {} events/s): {} events/s = {} ({})",
            floor.map_or("—".into(), |f| format!("{f:.0}")),
            eps(single).map_or("—".into(), |v| format!("{v:.0}")),
            ratio(r),
            verdict(r.map(|r| r >= goal))
        );
        let cpu = cpu_per_request(single, false)
            .zip(cpu_per_request(hello, false))
            .map(|(a, b)| a / b);
        let _ = writeln!(
            s,
            "- edge-host CPU per single publish on {name} ≤ 2× the trivial component's: {} µs vs \
             {} µs = {} ({})",
            cpu_per_request(single, false).map_or("—".into(), |v| format!("{:.0}", v * 1e6)),
            cpu_per_request(hello, false).map_or("—".into(), |v| format!("{:.0}", v * 1e6)),
            ratio(cpu),
            verdict(cpu.map(|r| r <= 2.0))
        );
        // Not a target: the trivial component in a publish's regime (edge-host idle between
        // requests), to tell the component's cost from the regime's (docs/BENCHMARKS.md).
        if let Some(one) = cpu_per_request(one_at_a_time, false) {
            let _ = writeln!(
                s,
                "  - (not a target) against the trivial component posted one request at a time, \
                 {:.0} µs: {}",
                one * 1e6,
                ratio(cpu_per_request(single, false).map(|a| a / one))
            );
        }
        let p99 = single.and_then(|r| r.p99());
        let _ = writeln!(
            s,
            "- single publish on {name}: p99 < 20 ms at the run's concurrency: {} ms ({})",
            p99.map_or("—".into(), |v| format!("{v:.1}")),
            verdict(p99.map(|v| v < 20.0))
        );
    }
    let single = row(rows, "postgres", Kind::Service, Mode::Single);
    let raw = row(rows, "postgres", Kind::RawService, Mode::Single);
    let pg = cpu_per_request(single, true)
        .zip(cpu_per_request(raw, true))
        .map(|(a, b)| a / b);
    let _ = writeln!(
        s,
        "- PostgreSQL CPU per single publish ≤ 1.2× the raw service statement's: {} µs vs {} µs \
         = {} ({})",
        cpu_per_request(single, true).map_or("—".into(), |v| format!("{:.0}", v * 1e6)),
        cpu_per_request(raw, true).map_or("—".into(), |v| format!("{:.0}", v * 1e6)),
        ratio(pg),
        verdict(pg.map(|r| r <= 1.2))
    );
    let batch = row(rows, "postgres", Kind::Service, Mode::Batch);
    let plain = row(rows, "postgres", Kind::RawPlain, Mode::Batch);
    let b = eps(batch).zip(eps(plain)).map(|(v, l)| v / l);
    let _ = writeln!(
        s,
        "- batched on PostgreSQL ≥ 0.75× the raw plain insert: {} ({})",
        ratio(b),
        verdict(b.map(|r| r >= 0.75))
    );
    let hello_batch = trivial(Mode::Batch);
    let per_event = host_cpu_per_event(batch);
    let trivial = host_cpu_per_event(hello_batch);
    let ok = per_event.map(|v| v <= 4e-6 || trivial.is_some_and(|t| v <= 2.0 * t));
    let _ = writeln!(
        s,
        "- edge-host CPU per batched event on PostgreSQL ≤ 4 µs (or ≤ 2× the trivial \
         component's {} µs): {} µs ({})",
        trivial.map_or("—".into(), |v| format!("{:.1}", v * 1e6)),
        per_event.map_or("—".into(), |v| format!("{:.1}", v * 1e6)),
        verdict(ok)
    );
    let lanes = row(rows, "postgres", Kind::BacklogDrainLanes, Mode::Batch);
    let d = eps(lanes).zip(eps(plain)).map(|(v, l)| v / l);
    let _ = writeln!(
        s,
        "- backlog drain on PostgreSQL with parallel /drain callers ≥ 0.8× the raw batched \
         rate: {} ({}){}",
        ratio(d),
        verdict(d.map(|r| r >= 0.8)),
        lanes
            .and_then(|r| r.note.as_deref())
            .map_or(String::new(), |n| format!("; {n}"))
    );
}
