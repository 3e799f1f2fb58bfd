#!/usr/bin/env bash
# Instructions per request of a publish (issue 17), counted by valgrind's callgrind: the same
# figure on a busy machine as on a quiet one, so a change to the component can be weighed in
# minutes without a quiet machine. CPU-time figures (scripts/bench.sh, profile-publish.sh)
# stay the goal; this is the instrument for the steps between them.
#
# For each of the trivial component (lab/fixtures/hello) and edgelog, single publishes and
# 100-event batches: edge-host (built with symbols) runs under callgrind with wasmtime's perf
# map on; loadgen warms it up, the counters are zeroed, N requests are sent (concurrency 4), the
# counters are dumped. Printed per request (per event for batches): user-space instructions by
# part — the guest's code, wasmtime, the allocator, the PostgreSQL client, ... — and the guest's
# top functions by name (the JIT addresses mapped through the perf map).
#
# One caveat: after each request wasmtime's pooling allocator clears the instance's whole linear
# memory (up to the 2 MiB kept resident; neither Spin nor edge-host turns on wasmtime's
# PAGEMAP_SCAN, which would clear only dirty pages). valgrind counts that memset/memcpy almost
# byte by byte, far above its share of the time, so it is printed on its own line and left out
# of the totals compared; it scales with the component's linear memory (512 KiB for edgelog).
# Kernel work (syscalls, the network) is not counted at all.
#
# Usage: scripts/count-instructions.sh [postgres|sqlite] [--requests N]  (default postgres, 300)
# Needs valgrind; PostgreSQL on 127.0.0.1:5432 for postgres. COUNT_SKIP_BUILD=1 reuses builds.
# loadgen runs with fixed seeds: the same events, and the same duplicates, in every run.
# COUNT_ONLY=REGEX runs only the matching runs (hello-single, edgelog-batch, ...); COUNT_TOP=N
# lists N guest functions instead of 12.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE_DEFAULT_REQUESTS=300
. scripts/profiling.sh
command -v valgrind >/dev/null || { say "valgrind is not installed (apt install valgrind)"; exit 2; }

out=target/count
mkdir -p "$out"
if [ "${COUNT_SKIP_BUILD:-0}" != 1 ]; then
  build_profiled
  # The same build settings as scripts/build-component.sh gives edgelog (fat LTO, one unit).
  CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    cargo build --manifest-path lab/fixtures/hello/Cargo.toml \
    --target wasm32-wasip2 --release --target-dir target/bench-hello
fi
host=target/profile/host/release/edge-host
# COUNT_EDGELOG_WASM weighs another build of the component (one with other flags, say).
edgelog=${COUNT_EDGELOG_WASM:-$PWD/target/profile/wasm/wasm32-wasip2/release/edgelog.wasm}
hello=$PWD/target/bench-hello/wasm32-wasip2/release/bench_hello.wasm

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# count NAME WASM MODE: one callgrind run; leaves $out/NAME.callgrind and $out/NAME.map.
count() {
  local name=$1 wasm=$2 mode=$3 manifest="$out/$1.spin.toml" state db="" pid
  local envs=(EDGE_HOST_PERFMAP=1 RUST_LOG=warn) loadgen=(target/release/loadgen) batch=1 n=$requests
  if [ "$wasm" = "$hello" ]; then
    printf 'spin_manifest_version = 2\n[application]\nname = "hello"\n[[trigger.http]]\nroute = "/..."\ncomponent = "hello"\n[component.hello]\nsource = "%s"\n' \
      "$wasm" >"$manifest"
    loadgen+=(ping)
  else
    sed "s|^source = \"target/wasm32-wasip2/release/edgelog.wasm\"|source = \"$wasm\"|" spin.toml >"$manifest"
    loadgen+=(--no-verify)
    if [ "$store" = postgres ]; then
      db=edgelog_count_$$
      psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
      envs+=(SPIN_VARIABLE_STORE=postgres
        "SPIN_VARIABLE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db?sslmode=disable")
    fi
  fi
  [ "$mode" = batch ] && { batch=100; n=$((requests / 5)); }
  state=$(mktemp -d)
  local port
  port=$(free_port)
  rm -f "$out/$name.callgrind"*
  # --max-instances 4: valgrind cannot reserve the pooling allocator's default address space.
  env "${envs[@]}" valgrind --tool=callgrind --smc-check=all-non-file \
    --callgrind-out-file="$out/$name.callgrind" \
    "$host" up --from "$manifest" --listen "127.0.0.1:$port" --state-dir "$state" --max-instances 4 \
    >"$out/$name.host.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    curl -s -m 5 -o /dev/null "http://127.0.0.1:$port/health" && break
    kill -0 "$pid" 2>/dev/null || { say "edge-host died; see $out/$name.host.log"; exit 1; }
    sleep 0.5
  done
  local lg=(--url "http://127.0.0.1:$port" --mode "$mode" --batch-size "$batch" --concurrency 4 --timeout 60)
  "${loadgen[@]}" "${lg[@]}" --seed 1 --events $((n * batch / 4)) >/dev/null
  callgrind_control -z "$pid" >/dev/null
  "${loadgen[@]}" "${lg[@]}" --seed 2 --events $((n * batch)) >/dev/null
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  cp "/tmp/perf-$pid.map" "$out/$name.map"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$state" "/tmp/perf-$pid.map"
  [ -n "$db" ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null
  local dump unit=request per=$n
  dump="$out/$name.callgrind.1" # the dump after the measured requests (not the one at exit)
  [ "$mode" = batch ] && { unit=event; per=$((n * batch)); }
  python3 scripts/count_summary.py "$name ($store, $mode)" "$dump" "$out/$name.map" "$per" "$unit"
}

# COUNT_ONLY (a regex, e.g. 'edgelog-batch') runs only the matching runs.
for mode in single batch; do
  for name in hello edgelog; do
    [[ "$name-$mode" =~ ${COUNT_ONLY:-.} ]] || continue
    wasm=$edgelog
    [ "$name" = hello ] && wasm=$hello
    count "$name-$mode" "$wasm" "$mode"
  done
done
