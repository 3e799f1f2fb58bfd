#!/usr/bin/env bash
# Where one publish spends its time (issue 17), in one command. Builds the component WITH its
# symbols (a separate target dir; the shipped .wasm stays stripped), starts edge-host on a
# fresh store with wasmtime's perf map (EDGE_HOST_PERFMAP=1, so `perf` names the component's
# functions) and per-request host-call counting (EDGE_HOST_PROFILE_CALLS=1), then for each
# load — single publishes (concurrency 16) and 100-event batches — records `perf` samples of
# edge-host (and PostgreSQL's CPU time) while loadgen runs, and prints:
#   - per request: host calls, instantiate / guest / in-host wall time (edge-host's
#     `edge_host::calls` log lines, averaged);
#   - CPU per request of edge-host and of PostgreSQL (from /proc, like `lab bench`);
#   - the component's inclusive CPU per phase (variables, auth, body read, JSON parse and
#     validation, statement parameters, the host call, the answer), from the perf call
#     chains of the guest's frames; and the top self-time symbols.
# Results: stdout (markdown) and target/profile/{single,batch}.{perf.data,txt}.
#
# Usage: scripts/profile-publish.sh [postgres|sqlite] [--requests N]   (default postgres, 20000)
# Needs perf (linux-perf), PostgreSQL on 127.0.0.1:5432 (trust, user postgres) for postgres.
# Environment: PROFILE_SKIP_BUILD=1 reuses the last builds.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE_DEFAULT_REQUESTS=20000
. scripts/profiling.sh
command -v perf >/dev/null || { say "perf is not installed (apt install linux-perf)"; exit 2; }

out=target/profile
mkdir -p "$out"
[ "${PROFILE_SKIP_BUILD:-0}" = 1 ] || build_profiled
wasm=$PWD/$out/wasm/wasm32-wasip2/release/edgelog.wasm
sed "s|^source = \"target/wasm32-wasip2/release/edgelog.wasm\"|source = \"$wasm\"|" spin.toml \
  >"$out/spin.toml"

state=$(mktemp -d)
db=edgelog_profile_$$
env_store=()
if [ "$store" = postgres ]; then
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
  env_store=(SPIN_VARIABLE_STORE=postgres
    "SPIN_VARIABLE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db?sslmode=disable")
fi
host_pid=
cleanup() {
  [ -n "$host_pid" ] && kill "$host_pid" 2>/dev/null && wait "$host_pid" 2>/dev/null || true
  [ "$store" = postgres ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env "${env_store[@]}" EDGE_HOST_PERFMAP=1 EDGE_HOST_PROFILE_CALLS=1 RUST_LOG=info \
  "$out/host/release/edge-host" up --from "$out/spin.toml" --listen "127.0.0.1:$port" \
  --state-dir "$state" >"$out/host.log" 2>&1 &
host_pid=$!
url=http://127.0.0.1:$port
for _ in $(seq 600); do
  curl -sf "$url/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "$url/health" >/dev/null || { say "edge-host did not come up; see $out/host.log"; exit 1; }
say "edge-host pid $host_pid on $url, store $store"

pg_cpu() { # CPU ticks of every postgres process
  if [ "$store" = postgres ]; then
    for p in $(pgrep -x postgres); do awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null; done |
      awk '{s+=$1} END {print s+0}'
  else echo 0; fi
}
host_cpu() { awk '{print $14+$15}' "/proc/$host_pid/stat"; }

profile() { # name mode batch events
  local name=$1 mode=$2 batch=$3 events=$4
  # Warm-up: compiled code, connections, the schema.
  target/release/loadgen --url "$url" --mode "$mode" --batch-size "$batch" \
    --events $((events / 10)) --no-verify >/dev/null
  local mark
  mark=$(wc -l <"$out/host.log")
  local h0 p0
  h0=$(host_cpu)
  p0=$(pg_cpu)
  perf record -q -e cpu-clock -F 1999 --call-graph "${PERF_CALLGRAPH:-fp}" -p "$host_pid" -o "$out/$name.perf.data" 2>/dev/null &
  local perf_pid=$!
  sleep 0.5
  target/release/loadgen --url "$url" --mode "$mode" --batch-size "$batch" --events "$events" \
    --json >"$out/$name.loadgen.json"
  kill -INT "$perf_pid"
  wait "$perf_pid" 2>/dev/null || true
  local h1 p1
  h1=$(host_cpu)
  p1=$(pg_cpu)
  tail -n +"$((mark + 1))" "$out/host.log" | grep 'edge_host::calls' >"$out/$name.calls.log" || true
  perf script -i "$out/$name.perf.data" -F comm,tid,ip,sym,dso 2>/dev/null >"$out/$name.stacks.txt"
  python3 scripts/profile_summary.py "$name" "$out" "$((h1 - h0))" "$((p1 - p0))" \
    "$(getconf CLK_TCK)"
}

profile single single 1 "$requests"
profile batch batch 100 $((requests * 20))
