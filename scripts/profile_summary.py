#!/usr/bin/env python3
"""Summarises one load of scripts/profile-publish.sh as markdown: per-request host calls and wall
split (edge-host's `edge_host::calls` lines), CPU per request of edge-host and PostgreSQL, where
edge-host's CPU went (perf samples by part of the system), and the component's own CPU by phase
(innermost `edgelog::` frame of each guest sample, named through wasmtime's perf map).

Usage: profile_summary.py NAME OUT_DIR HOST_TICKS PG_TICKS CLK_TCK
"""
import collections
import json
import re
import statistics
import sys

name, out, host_ticks, pg_ticks, clk = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])

report = json.load(open(f"{out}/{name}.loadgen.json"))
requests = report["requests"]
events = report.get("events_sent") or report.get("events") or 0

# --- host calls and wall split per request -------------------------------------------------
calls = collections.defaultdict(list)
line_re = re.compile(
    r"instantiate (\d+)us handler (\d+)us host calls (\d+) in host (\d+)us guest (\d+)us"
    r"(?: memory (\d+)KiB)?")
for line in open(f"{out}/{name}.calls.log", errors="replace"):
    m = line_re.search(line)
    if m:
        for k, v in zip(["instantiate", "handler", "calls", "in_host", "guest", "memory"],
                        m.groups()):
            if v is not None:
                calls[k].append(int(v))

# --- perf samples --------------------------------------------------------------------------
samples = []  # each: list of (ip, sym), leaf first
current = None
for line in open(f"{out}/{name}.stacks.txt", errors="replace"):
    if not line.strip():
        if current is not None:
            samples.append(current)
        current = None
        continue
    if not line.startswith((" ", "\t")):
        current = []
        continue
    m = re.match(r"\s*([0-9a-f]+) (.*) \((.*)\)$", line.rstrip("\n"))
    if current is None or not m:
        continue
    ip, sym, dso = int(m.group(1), 16), m.group(2), m.group(3)
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym).strip()
    # The component's compiled code: wasmtime's perf map names it (`[JIT] tid N`).
    if dso.startswith("[JIT]") or "perf-" in dso:
        sym = "guest " + sym
    elif sym == "[unknown]" and dso:
        sym = f"[unknown in {dso.rsplit('/', 1)[-1]}]"
    current.append((ip, sym))
if current:
    samples.append(current)

GUEST = re.compile(r"^guest ")


def part(ip, sym):
    """Which part of the system a leaf sample is in."""
    if ip >= 0xFFFF800000000000:
        return "kernel (syscalls, network, scheduling)"
    if GUEST.match(sym):
        return "component (guest code)"
    for pat, label in [
        (r"tokio_postgres|postgres_protocol|postgres_types|edge_host::pg", "host: PostgreSQL client"),
        (r"rusqlite|sqlite3|edge_host::sqlite", "host: SQLite"),
        (r"redis|edge_host::kv", "host: key-value"),
        (r"wasmtime_internal_cranelift|cranelift", "wasmtime: compiler"),
        (r"instantiate|InstancePre|pooling|Instance::new|memory_image|mmap|madvise",
         "wasmtime: instantiation"),
        (r"wasmtime|wasi|component|canonical|lift|lower|trampoline|typed_func",
         "wasmtime: calls, canonical ABI, WASI"),
        (r"hyper|http_body|h2::|httparse", "host: HTTP (hyper)"),
        (r"tokio", "host: tokio runtime"),
        (r"malloc|free|realloc|calloc|_int_|arena|cfree", "host: allocator"),
        (r"memcpy|memmove|memset|memcmp", "host: memcpy"),
        (r"edge_host", "host: edge-host"),
        (r"tracing|fmt::|Formatter|write_str", "host: logging"),
    ]:
        if re.search(pat, sym):
            return label
    return "other"


PHASES = [
    (r"edgelog::config|spin_sdk::variables|variables::", "variables (Config::load)"),
    (r"edgelog::auth", "auth and CORS"),
    (r"edgelog::http::body|read_body|IncomingBody|incoming_body", "body read"),
    (r"edgelog::validate|edgelog::ingest", "JSON parse and validation"),
    (r"edgelog::store::postgres|edgelog::store::sqlite|spin_sdk::pg|spin_sdk::sqlite|ParameterValue",
     "statement parameters and result rows"),
    (r"edgelog::store|edgelog::consume", "store logic"),
    (r"edgelog::http::json|serde_json::ser|Response|outgoing|ResponseOutparam", "the answer"),
    (r"edgelog::routes|edgelog::lib|edgelog::handle|edgelog::", "routing and the rest"),
]


def phase(stack):
    """The phase of a component sample: the innermost frame that names one."""
    for _, sym in stack:
        if not GUEST.match(sym):
            continue
        for pat, label in PHASES:
            if re.search(pat, sym):
                return label
    return "runtime glue (allocator, std, bindings)"


parts = collections.Counter(part(*s[0]) for s in samples if s)
guest = [s for s in samples if s and GUEST.match(s[0][1])]
phases = collections.Counter(phase(s) for s in guest)
leaf_syms = collections.Counter(s[0][1] for s in samples if s)

total = sum(parts.values()) or 1
host_cpu_s = host_ticks / clk
pg_cpu_s = pg_ticks / clk
per_req_us = lambda cpu_s: cpu_s * 1e6 / max(requests, 1)

print(f"\n### {name}: {requests:,} requests, {events:,} events, "
      f"{report.get('events_per_sec', 0):,.0f} events/s, p50 {report['latency_ms']['p50']:.2f} ms, "
      f"p99 {report['latency_ms']['p99']:.2f} ms\n")
print(f"- CPU per request: edge-host {per_req_us(host_cpu_s):.0f} µs, PostgreSQL "
      f"{per_req_us(pg_cpu_s):.0f} µs (from /proc over the run)")
if calls["calls"]:
    med = {k: statistics.median(v) for k, v in calls.items()}
    print(f"- per request (median of {len(calls['calls']):,} logged): host calls "
          f"{med['calls']:.0f}; instantiate {med['instantiate']:.0f} µs, handler "
          f"{med['handler']:.0f} µs = guest {med['guest']:.0f} µs + in host calls "
          f"{med['in_host']:.0f} µs (waits on the database included)"
          + (f"; linear memory at the end {med['memory']:.0f} KiB" if "memory" in med else ""))
print(f"- perf samples: {total:,} (cpu-clock, 1999 Hz)\n")
print("| edge-host CPU by part | share | µs per request |")
print("|---|--:|--:|")
for label, n in parts.most_common():
    print(f"| {label} | {100 * n / total:.1f}% | {per_req_us(host_cpu_s) * n / total:.1f} |")
if guest:
    print("\n| component CPU by phase (innermost edgelog frame) | share of guest | µs per request |")
    print("|---|--:|--:|")
    gshare = len(guest) / total
    for label, n in phases.most_common():
        us = per_req_us(host_cpu_s) * gshare * n / len(guest)
        print(f"| {label} | {100 * n / len(guest):.1f}% | {us:.1f} |")
print("\n| top self-time symbols | share |")
print("|---|--:|")
for sym, n in leaf_syms.most_common(15):
    print(f"| `{sym[:110]}` | {100 * n / total:.1f}% |")
