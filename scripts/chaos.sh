#!/usr/bin/env bash
# The chaos harness (issue 9), in one command: builds the release edge-host, lab and the
# edgelog component, then runs `lab chaos`, which, within --seconds of load,
#   - SIGKILLs edge-host again and again under at-least-once load (replays, whole-batch
#     resends, retries on the next host) on the embedded default (SQLite, one host) and on
#     PostgreSQL + Redis with 3 hosts sharing one Redis database (14 by default, FLUSHDB before
#     and after) and one PostgreSQL database (created for the run, dropped after);
#   - fills a backlog with async publishes and drains it with POST /drain in a loop;
#   - sends the hostile-input corpus (every answer must be < 500 and JSON);
#   - kills and restarts a redis-server of its own (free port, not 6379) mid-load;
#   - reads every acknowledged (topic, event_id) back and prints one table: kills, requests,
#     acknowledged keys, lost, stored twice, 5xx, longest request.
# Exit status: 0 all zeros; 1 something was lost, stored twice, answered 5xx or broke a rule;
# 2 the harness could not set up.
#
# Usage: scripts/chaos.sh [lab chaos flags]   e.g. --seconds 300, --no-postgres, --seed N,
#        --hosts 3, --redis-db 14, --out DIR (default target/chaos; host logs there)
# Environment: CHAOS_SKIP_BUILD=1 skips the builds. Needs PostgreSQL on 127.0.0.1:5432 (trust,
# user postgres), Redis on 127.0.0.1:6379 and redis-server on PATH (scripts/services.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "${CHAOS_SKIP_BUILD:-0}" = 1 ] || scripts/build-release.sh

exec target/release/lab chaos "$@"
