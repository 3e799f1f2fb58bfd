#!/usr/bin/env bash
# The ingest-protocol throughput benchmark of issue 15, in one command: builds the release
# edge-host, lab and the edgelog component, then runs `lab ingest-bench`, which
#   - starts one release edge-host with the real component on PostgreSQL (a database created
#     for the run and dropped after) with the queue in Redis (database 12 by default, FLUSHDB
#     before and after);
#   - after a warm-up, runs loadgen's verified load in rounds, each round every variant once with
#     the same plan (same seed, --events, --batch-size 512, --concurrency 16), rotating which
#     variant goes first: native JSON, otlp-proto (also gzipped), otlp-json, loki, loki-json,
#     ndjson, native gzipped;
#   - samples edge-host's and PostgreSQL's CPU time (/proc) around each sending phase and prints
#     a markdown table: events/s, the ratio to native in the same round, body bytes per event,
#     edge-host CPU seconds per 1,000 events and the difference to native in µs per event (the
#     decode cost per record).
# Exit 0 when every run verified and otlp-proto reached 0.8 × native (--target), 1 otherwise,
# 2 when it could not be set up.
#
# Usage: scripts/ingest-bench.sh [lab ingest-bench flags]   e.g. --events 300000 --rounds 3,
#        --variants native,otlp-proto,loki, --seed N, --redis-db N, --out DIR
#        (default target/ingest-bench: results.md, results.json, edge-host.log)
# Environment: BENCH_SKIP_BUILD=1 skips the builds. Needs PostgreSQL on 127.0.0.1:5432 (trust,
# user postgres) and Redis on 127.0.0.1:6379: scripts/services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || scripts/build-release.sh

exec target/release/lab ingest-bench "$@"
