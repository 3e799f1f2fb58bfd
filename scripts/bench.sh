#!/usr/bin/env bash
# The benchmark of issue 5, in one command: builds the release edge-host, lab and the
# edgelog component (plus the trivial component lab/fixtures/hello), then runs
# `lab bench`, which
#   - serves edgelog on edge-host with the default stores (SQLite) and runs loadgen's load in
#     batch mode (batch 100, concurrency 16) and single mode (concurrency 16), verification on;
#   - does the same on PostgreSQL (a database it creates and drops) with the queue in Redis
#     (database 15 by default, FLUSHDB before and after);
#   - measures the raw limit of each database: the same rows, same schema, same
#     INSERT … ON CONFLICT (topic, event_id) DO NOTHING, from a native client (no HTTP, no Wasm);
#   - measures edge-host's own floor with the trivial component (and `wasmtime serve`, if
#     installed);
#   - prints a markdown table, every figure beside the raw limit of the same database.
# It fails (non-zero) if any run fails its checks, a service run failing verification included.
#
# Usage: scripts/bench.sh [lab bench flags]   e.g. --events 50000 --single-events 10000,
#        --no-postgres, --redis-db 14, --seed N, --out DIR (default target/bench)
# Environment: BENCH_SKIP_BUILD=1 skips the builds. Needs PostgreSQL on 127.0.0.1:5432 (trust
# auth, user postgres) and Redis on 127.0.0.1:6379 unless --no-postgres: scripts/services.sh.
# Results: stdout (markdown) and target/bench/results.{md,json}; host logs in target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bench] %s\n' "$*" >&2; }

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  scripts/build-release.sh
  say "building the trivial component lab/fixtures/hello"
  # The same build settings as scripts/build-component.sh gives edgelog (fat LTO, one unit).
  CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    cargo build --manifest-path lab/fixtures/hello/Cargo.toml \
    --target wasm32-wasip2 --release --target-dir target/bench-hello
fi

postgres=1
for arg in "$@"; do
  [ "$arg" = "--no-postgres" ] && postgres=0
done
if [ "$postgres" = 1 ]; then
  if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    say "PostgreSQL is not answering on 127.0.0.1:5432: run scripts/services.sh, or pass --no-postgres"
    exit 2
  fi
  if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "Redis is not answering on 127.0.0.1:6379: run scripts/services.sh, or pass --no-postgres"
    exit 2
  fi
fi

exec target/release/lab bench "$@"
