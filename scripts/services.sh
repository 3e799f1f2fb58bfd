#!/usr/bin/env bash
# Makes sure what the tests talk to is installed and running: the wasm32-wasip2 target,
# PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres) and Redis on 127.0.0.1:6379, and for
# the web console test Debian's chromium, Node.js and tests/console's npm packages (npm ci), and
# for the ingest tests tests/clients' npm packages (the log shippers' client libraries).
# Safe to run again: it only installs or starts what is missing.
set -euo pipefail

say() { printf '[services] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The component's target: rustup does not add it from rust-toolchain.toml to an installed
# toolchain (grep without -q reads all of rustup's output, so pipefail cannot misfire).
if command -v rustup >/dev/null 2>&1 \
  && ! rustup target list --installed 2>/dev/null | grep -x 'wasm32-wasip2' >/dev/null; then
  say "adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi

# curl: deploy/chores.sh (the SpinKube CronJob's script) is run by tests/deploy.rs.
if ! command -v curl >/dev/null 2>&1; then
  say "installing curl"
  apt_install curl
fi

# PostgreSQL
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    say "installing PostgreSQL"
    apt_install postgresql
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  if ! grep -Eq '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    say "allowing trust auth on 127.0.0.1 (test machine only)"
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  say "starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432

# Redis
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null 2>&1; then
    say "installing Redis"
    apt_install redis-server
  fi
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping

# Web console browser test (tests/console.rs): Debian's chromium, Node.js and playwright-core.
if [ ! -x /usr/bin/chromium ]; then
  say "installing chromium (headless browser for the console test)"
  apt_install chromium
fi
if ! command -v npm >/dev/null 2>&1; then
  say "installing Node.js and npm"
  apt_install nodejs npm
fi
console_dir="$(dirname "$0")/../tests/console"
if ! cmp -s "$console_dir/package-lock.json" "$console_dir/node_modules/.edgelog-lock"; then
  say "npm ci in tests/console"
  (cd "$console_dir" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.edgelog-lock)
fi

# Ingest tests (tests/ingest_*.rs): real log clients (OpenTelemetry JS exporters, winston-loki)
# from tests/clients' lock file.
clients_dir="$(dirname "$0")/../tests/clients"
if ! cmp -s "$clients_dir/package-lock.json" "$clients_dir/node_modules/.edgelog-lock"; then
  say "npm ci in tests/clients"
  (cd "$clients_dir" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.edgelog-lock)
fi

# Contract test (tests/contract.rs): Schemathesis and openapi-spec-validator, pinned, in a venv
# under target/ (scripts/contract.sh install does nothing when they are there).
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then
  say "installing python3 and venv (for the contract test)"
  apt_install python3 python3-venv
fi
"$(dirname "$0")/contract.sh" install
