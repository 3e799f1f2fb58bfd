#!/usr/bin/env bash
# The release builds the measuring commands need (bench.sh, scale-bench.sh, chaos.sh): edge-host,
# lab (the test bench, built on loadgen's library) and the edgelog component. Each separately, as
# everyone else builds them: building them in one command would unify their dependencies'
# features and make the next plain `cargo build -p edge-host` rebuild. The component goes through its own build command, which
# adds the wasm32-wasip2 target when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[build-release] %s\n' "$*" >&2; }

say "building release edge-host"
cargo build --release -p edge-host
say "building release lab"
cargo build --release -p lab
say "building the edgelog component (wasm32-wasip2, release)"
bash scripts/build-component.sh
