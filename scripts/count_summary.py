#!/usr/bin/env python3
"""Summarises one callgrind dump of scripts/count-instructions.sh as markdown: user-space
instructions per request (or per event) by part, and the guest's top functions by self count,
named through wasmtime's perf map (the JIT code has no symbols callgrind can see).

Usage: count_summary.py TITLE DUMP PERF_MAP UNITS UNIT_NAME
"""
import bisect
import re
import subprocess
import sys

title, dump, perf_map, units, unit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]

symbols = []
for line in open(perf_map, errors="replace"):
    parts = line.split(" ", 2)
    if len(parts) == 3:
        symbols.append((int(parts[0], 16), int(parts[1], 16), parts[2].strip()))
symbols.sort()
starts = [s[0] for s in symbols]


def guest_name(addr):
    i = bisect.bisect_right(starts, addr) - 1
    if i >= 0 and symbols[i][0] <= addr < symbols[i][0] + symbols[i][1]:
        name = re.sub(r"::h[0-9a-f]{16}", "", symbols[i][2])
        return re.sub(r"^wasm\[\d+\]::function\[\d+\]::", "", name)
    return "(unnamed guest code)"


PARTS = [  # first match wins
    ("memory reset and other memset/memcpy (see the script)", r"__mem(set|cpy|move)"),
    ("guest code", r"^\?\?\?:0x"),
    ("host allocator", r"malloc|free@|cfree"),
    ("SQLite", r"sqlite|wal[A-Z]|fts5|pager|[bB]tree|[vV]dbe|yy_|pcache"),
    ("PostgreSQL client", r"postgres|deadpool"),
    ("wasmtime", r"wasmtime|cranelift"),
    ("tokio", r"tokio|mio::"),
    ("hyper", r"hyper|httparse|http::"),
    ("edge-host", r"edge_host"),
]
out = subprocess.run(["callgrind_annotate", "--threshold=100", dump],
                     capture_output=True, text=True, check=True).stdout
parts, guest, on = {}, {}, False
for line in out.splitlines():
    if "file:function" in line:
        on = True
        continue
    m = on and re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
    if not m:
        continue
    count, where = int(m.group(1).replace(",", "")), m.group(2)
    part = next((p for p, rx in PARTS if re.search(rx, where)), "other")
    parts[part] = parts.get(part, 0) + count
    g = re.match(r"^\?\?\?:0x([0-9a-f]+)", where)
    if g:
        name = guest_name(int(g.group(1), 16))
        guest[name] = guest.get(name, 0) + count

reset = next(p for p, _ in PARTS)
total = sum(v for p, v in parts.items() if p != reset)
print(f"\n### {title}: {total / units:,.0f} instructions per {unit} (memory reset excluded)\n")
print(f"| part | per {unit} | share |\n|---|--:|--:|")
for p, v in sorted(parts.items(), key=lambda kv: -kv[1]):
    share = "" if p == reset else f"{v / total * 100:.1f} %"
    print(f"| {p} | {v / units:,.0f} | {share} |")
g_total = sum(guest.values())
print(f"\nGuest, top functions by self count ({g_total / units:,.0f} per {unit}):\n")
print(f"| function | per {unit} |\n|---|--:|")
for name, v in sorted(guest.items(), key=lambda kv: -kv[1])[: int(__import__("os").environ.get("COUNT_TOP", "12"))]:
    print(f"| `{name[:90]}` | {v / units:,.0f} |")
