//! What one backend measured, and its markdown table (each figure beside its empty-store twin).

use std::fmt::Write as _;

use super::KINDS;
use super::requests::TARGETS;
use super::requests::Timing;

/// Everything one backend measured.
pub(super) struct Outcome {
    pub(super) store: &'static str,
    pub(super) empty: Vec<Timing>,
    pub(super) full: Vec<Timing>,
    pub(super) loaded: u64,
    pub(super) load_secs: f64,
    pub(super) storage: String,
    pub(super) markers_before: u64,
    pub(super) markers_after: u64,
    pub(super) maintenance: (u64, u64, f64),
    pub(super) plans: String,
    pub(super) load: Vec<String>,
}

/// The loaded/empty p50 ratio of kind `k`, and whether its target (`TARGETS`) was met.
pub(super) fn ratio_ok(k: usize, e: &Timing, f: &Timing) -> (f64, bool) {
    let r = f.q(0.5) / e.q(0.5);
    let clean = e.failures.is_empty() && f.failures.is_empty();
    let (max_ms, max_ratio) = TARGETS[k];
    let ok = clean && max_ms.is_none_or(|m| f.q(0.5) <= m) && max_ratio.is_none_or(|m| r <= m);
    (r, ok)
}

fn target_text(k: usize) -> String {
    match TARGETS[k] {
        (Some(ms), Some(r)) => format!("≤ {ms:.0} ms p50 and ≤ {r}×"),
        (Some(ms), None) => format!("≤ {ms:.0} ms p50"),
        (None, Some(r)) => format!("≤ {r}×"),
        (None, None) => "reported".into(),
    }
}

fn verdict(ok: bool, e: &Timing, f: &Timing) -> String {
    if ok {
        return "yes".into();
    }
    let mut notes = Vec::new();
    for (which, t) in [("empty", e), ("loaded", f)] {
        if let Some(first) = t.failures.first() {
            notes.push(format!(
                "{} of {} {which} requests failed ({first}); stopped timing after {}",
                t.failures.len(),
                t.ms.len(),
                t.failures.len()
            ));
        }
    }
    if notes.is_empty() {
        "**no**".into()
    } else {
        format!("**no**: {}", notes.join("; "))
    }
}

pub(super) fn render(o: &Outcome, events: u64) -> String {
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
        "| request | empty p50 / p99 (ms) | {m} p50 / p99 (ms) | rows | ratio p50 | target | met? |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- |");
    for (k, name) in KINDS.iter().enumerate() {
        let (e, f) = (&o.empty[k], &o.full[k]);
        let (r, ok) = ratio_ok(k, e, f);
        let rows = f.rows.map_or("—".into(), |n| n.to_string());
        let _ = writeln!(
            s,
            "| {name} | {:.2} / {:.2} | {:.2} / {:.2} | {rows} | {r:.2}× | {} | {} |",
            e.q(0.5),
            e.q(0.99),
            f.q(0.5),
            f.q(0.99),
            target_text(k),
            verdict(ok, e, f)
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
