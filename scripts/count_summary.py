#!/usr/bin/env python3
"""Summarises one callgrind dump of scripts/count-instructions.sh as markdown: user-space
instructions per request (or per event) by part, and the guest's top functions by self count,
named through wasmtime's perf map (the JIT code has no symbols callgrind can see).

Usage: count_summary.py TITLE DUMP PERF_MAP UNITS UNIT_NAME
"""
import bisect
import re
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
def self_costs(path):
    """Self cost (Ir) per `file:function [object]`, read from the dump itself.

    Not through `callgrind_annotate`: when wasmtime switches to a guest's fiber, callgrind
    records a call with `calls=0`, and `callgrind_annotate` adds the cost line after it (the
    inclusive cost of everything run on that fiber) to the caller's self cost, so a handful of
    entries — `fiber_start`, a trampoline, the guest functions that made host calls — each
    counted most of the program again. Here the line after any `calls=` line is skipped, and
    the self costs add up to the dump's `totals`.
    """
    names = {"ob": {}, "fl": {}, "fn": {}}
    cur = {"ob": "???", "fl": "???", "fn": "???"}
    costs, skip_next, summary = {}, False, None

    def name(kind, rest):
        if rest.startswith("("):
            ident, _, text = rest.partition(")")
            text = text.strip()
            if text:
                names[kind][ident] = text
            return names[kind].get(ident, "???")
        return rest

    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            if skip_next:
                skip_next = False
                continue
            fields = line.split()
            if len(fields) >= 2:
                where = f"{cur['fl']}:{cur['fn']} [{cur['ob']}]"
                costs[where] = costs.get(where, 0) + int(fields[1])
            continue
        key, _, rest = line.partition("=")
        if key in ("ob", "fl", "fn"):
            cur[key] = name(key, rest)
        elif key in ("fi", "fe"):
            name("fl", rest)  # defines a file name; costs stay with the function's file
        elif key in ("cob", "cfi", "cfl", "cfn"):
            name({"cob": "ob", "cfi": "fl", "cfl": "fl", "cfn": "fn"}[key], rest)
        elif key == "calls":
            skip_next = True
        elif line.startswith("totals:"):
            summary = int(line.split()[1])
    return costs, summary


costs, summary = self_costs(dump)
parts, guest = {}, {}
for where, count in costs.items():
    # Unknown code (the guest's JIT-compiled functions) is named by address: "???:0x… [???]".
    where = re.sub(r"^\?\?\?:(0x[0-9a-fA-F]+)", r"???:\1", where)
    part = next((p for p, rx in PARTS if re.search(rx, where)), "other")
    parts[part] = parts.get(part, 0) + count
    g = re.match(r"^\?\?\?:0x([0-9a-f]+)", where)
    if g:
        name = guest_name(int(g.group(1), 16))
        guest[name] = guest.get(name, 0) + count
if summary is not None and sum(costs.values()) != summary:
    print(f"warning: self costs add up to {sum(costs.values()):,}, the dump's totals to {summary:,}",
          file=sys.stderr)

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
