#!/usr/bin/env bash
# Write cost of issue 16 (levels, search index, volume counters, tail column): batched ingest
# through loadgen against release edge-host, in one run, alternating variants:
#   base     the component built from BASE (default: the commit before issue 16)
#   search   this tree's component (everything on)
#   no-trgm  this tree's component with PostgreSQL's trigram index dropped (PostgreSQL only;
#            SQLite's FTS table is kept by the apply transaction, it cannot be switched off)
#
#   scripts/build-release.sh
#   scripts/search-write-cost.sh [--events 100000] [--rounds 2] [--base COMMIT]
#
# Each run gets a fresh state directory (and a fresh PostgreSQL database, Redis database 13
# flushed). Prints one line per run and the median events/s per variant and store.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
EVENTS=100000
ROUNDS=2
BASE=11e9fc6
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
done
WORK=$(mktemp -d -t edgelog-writecost-XXXXXX)
trap 'rm -rf "$WORK"; git worktree remove --force "$WORK/base-tree" 2>/dev/null || true' EXIT

say() { printf '[write-cost] %s\n' "$*" >&2; }

say "building the component of $BASE"
git worktree add --detach "$WORK/base-tree" "$BASE" >/dev/null 2>&1
(cd "$WORK/base-tree" && CARGO_TARGET_DIR="$ROOT/target" cargo build --quiet --target wasm32-wasip2 --release -p edgelog)
cp "$ROOT/target/wasm32-wasip2/release/edgelog.wasm" "$WORK/base.wasm"
say "building this tree's component"
touch src/lib.rs
bash scripts/build-component.sh >/dev/null 2>&1
cp target/wasm32-wasip2/release/edgelog.wasm "$WORK/search.wasm"
for v in base search; do
  sed "s|^source = .*|source = \"$WORK/$v.wasm\"|" spin.toml >"$WORK/spin-$v.toml"
done
printf '[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:6379/13"\n' >"$WORK/rc-redis.toml"

# run STORE VARIANT -> prints events/s
run() {
  local store=$1 variant=$2 manifest=$WORK/spin-$2.toml state=$WORK/state-$RANDOM db=""
  [ "$variant" = no-trgm ] && manifest=$WORK/spin-search.toml
  mkdir -p "$state"
  local args=(up --from "$manifest" --listen 127.0.0.1:0 --state-dir "$state")
  local envs=(RUST_LOG=warn)
  if [ "$store" = postgres ]; then
    db=edgelog_wc_$$_$RANDOM
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
    redis-cli -n 13 flushdb >/dev/null
    args+=(--runtime-config-file "$WORK/rc-redis.toml")
    envs+=(SPIN_VARIABLE_STORE=postgres "SPIN_VARIABLE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db")
  fi
  env "${envs[@]}" "$ROOT/target/release/edge-host" "${args[@]}" >"$state/host.log" 2>&1 &
  local pid=$!
  local url=""
  for _ in $(seq 100); do
    url=$(grep -o 'Serving http://[0-9.:]*' "$state/host.log" | head -1 | cut -d' ' -f2 || true)
    [ -n "$url" ] && break
    sleep 0.2
  done
  curl -fsS "$url/events?limit=1" >/dev/null # migrates
  if [ "$variant" = no-trgm ]; then
    psql -h 127.0.0.1 -U postgres -d "$db" -qc "DROP INDEX events_search_trgm"
  fi
  local out
  out=$("$ROOT/target/release/loadgen" --url "$url" --events "$EVENTS" --batch-size 100 --concurrency 8 2>&1)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ -n "$db" ]; then
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $db WITH (FORCE)"
    redis-cli -n 13 flushdb >/dev/null
  fi
  rm -rf "$state"
  grep -q '^verified' <<<"$out" || { echo "$out" >&2; echo "run not verified" >&2; exit 1; }
  awk '/^throughput/ {print $2}' <<<"$out"
}

declare -A results
for round in $(seq "$ROUNDS"); do
  for store in sqlite postgres; do
    variants=(base search)
    [ "$store" = postgres ] && variants+=(no-trgm)
    for v in "${variants[@]}"; do
      r=$(run "$store" "$v")
      printf 'round %s  %-8s %-8s %8s events/s\n' "$round" "$store" "$v" "$r"
      results[$store/$v]+="$r "
    done
  done
done
echo
for key in sqlite/base sqlite/search postgres/base postgres/search postgres/no-trgm; do
  median=$(tr ' ' '\n' <<<"${results[$key]}" | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
  printf '%-18s median %8s events/s  (runs: %s)\n' "$key" "$median" "${results[$key]}"
done
