#!/usr/bin/env bash
# The test command: starts what the tests need, then runs every test of the workspace
# (unit tests, the edge-host suite and the API suite, which build the real .wasm and drive
# it through edge-host over HTTP against real SQLite files, PostgreSQL and Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo test --workspace "$@"
