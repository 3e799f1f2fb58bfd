#!/usr/bin/env bash
# The scale benchmark of issue 10, in one command: builds the release edge-host, lab and
# the edgelog component, then runs `lab scale`, which on PostgreSQL + Redis and on SQLite
# (edge-host defaults)
#   - starts two edge-hosts with the real component on two fresh stores (PostgreSQL: databases
#     created for the run and dropped after; Redis database 13 (must be empty; 14 is lab
#     chaos's), FLUSHDB before and after;
#     SQLite: fresh state directories), seeds both with the same 3,100 events (one publish,
#     which also creates the schema: one event per topic, a full page per cursor and window);
#   - bulk-loads --events events (10,000,000 by default) into ONE of them through the
#     service's own schema with SQL (PostgreSQL: INSERT … SELECT … FROM generate_series in
#     1M-row statements; SQLite: prepared inserts from rusqlite with that edge-host stopped),
#     plus the topic_counters those publishes would leave (5 % duplicates) and markers inside
#     and past the 1 h marker horizon, then VACUUM (ANALYZE) / ANALYZE;
#   - times /stats, /metrics, the first /events page, /events by topic behind deep cursors,
#     one-hour time windows, a selective q (one topic, 24 h; target p50 ≤ 50 ms), a
#     non-selective q (reported), /volume over 7 days by the hour (p50 ≤ 20 ms), order=time
#     page 1 and half-way deep, and single POST /publish on both stores, alternating request
#     by request, then calls POST /maintenance until done and counts the markers;
#   - prints one markdown table per backend (empty vs loaded, ratio, the kind's target: p50
#     and ≤ 1.5× the empty store), storage per event, and writes the plans of the component's statements
#     (EXPLAIN (ANALYZE, BUFFERS) / EXPLAIN QUERY PLAN) to target/scale/plans.md.
# Exit 0 when every target is met, 1 when one is missed (the tables say which), 2 on error.
#
# Usage: scripts/scale-bench.sh [lab scale flags]   e.g. --events 200000 (about 30 s),
#        --requests 200, --no-postgres, --no-sqlite, --redis-db N, --keep, --out DIR
# The default 10 M run takes 8–15 minutes on 2 cores and needs ~13 GB of free disk.
# Environment: BENCH_SKIP_BUILD=1 skips the builds. Needs PostgreSQL on 127.0.0.1:5432 (trust,
# user postgres) and Redis on 127.0.0.1:6379 unless --no-postgres: scripts/services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."


[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || scripts/build-release.sh

exec target/release/lab scale "$@"
