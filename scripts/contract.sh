#!/usr/bin/env bash
# The API contract (docs/openapi.json) checked against a live edgelog by Schemathesis.
#
#   scripts/contract.sh install                 # the pinned tools, in a venv under target/ (idempotent)
#   scripts/contract.sh validate [FILE]         # FILE (default docs/openapi.json) is valid OpenAPI 3.1
#   scripts/contract.sh run URL [ST-OPTIONS...] # Schemathesis against a running service at URL
#   scripts/contract.sh [--max-examples N]      # the long run: tests/contract.rs's Schemathesis tests
#                                               # on both backends, open and with tokens, with N
#                                               # examples per operation (500)
#
# `run` applies every check Schemathesis has (`--checks all`, less one that assumes DELETE removes:
# see below) to the document the service serves, with the repository's schemathesis.toml (413
# counts as a refusal) plus bearer tokens read from EDGELOG_PUBLISH_TOKEN / EDGELOG_READ_TOKEN /
# EDGELOG_ADMIN_TOKEN. The served document declares security only for the groups that have
# tokens, so the same checks fit an open service (no variables set) and a protected one (give the
# tokens of every protected group).
# CONTRACT_SCHEMA=docs/openapi.json tests the file instead of the document the service serves
# (the file declares every group's security: give all three tokens).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
VENV="${CONTRACT_VENV:-$PWD/target/contract-venv}"

install() {
  if [ -x "$VENV/bin/st" ] && [ -x "$VENV/bin/openapi-spec-validator" ] &&
     "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    return 0
  fi
  echo "[contract] installing schemathesis $SCHEMATHESIS_VERSION and openapi-spec-validator $VALIDATOR_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION" >&2
}

run() {
  local url="${1:?usage: scripts/contract.sh run URL [ST-OPTIONS...]}"
  shift
  install
  local config
  config="$(mktemp -t edgelog-schemathesis-XXXXXX.toml)"
  trap 'rm -f "$config"' RETURN
  {
    cat schemathesis.toml
    # The live tail's wait (up to 25 s per request) is tested by tests/search.rs; here it
    # would make generated examples wait instead of test.
    printf '[parameters]\n"query.wait" = 0\n'
    local scheme var
    for pair in publishToken:EDGELOG_PUBLISH_TOKEN readToken:EDGELOG_READ_TOKEN adminToken:EDGELOG_ADMIN_TOKEN; do
      scheme="${pair%%:*}"; var="${pair#*:}"
      if [ -n "${!var:-}" ]; then
        printf '[auth.openapi.%s]\nbearer = "%s"\n' "$scheme" "${!var}"
      fi
    done
  } >"$config"
  local schema="${CONTRACT_SCHEMA:-$url/openapi.json}"
  case "$schema" in http://*|https://*|/*) ;; *) schema="$PWD/$schema" ;; esac
  # Schemathesis keeps its example database in ./.schemathesis: under target/, not in the tree.
  mkdir -p target/contract-st
  # Every check but one. use_after_free expects a resource to answer 404 once a DELETE of it
  # succeeded; `DELETE /dead-letters/{id}` is documented as a discard, not a removal: the letter
  # stays listed and readable with status `discarded` (what an operator gave up on) and stays
  # counted in `dead_lettered`, which `received = unique + duplicates + queued + dead_lettered`
  # needs. Reading it afterwards is that documented state, not a use after free. (A config file
  # cannot switch a check off under `--checks all`, hence the option here.)
  #
  # The foreign protocols' routes (OTLP/HTTP, Loki push) run separately, without the stateful
  # phase (they have no links to follow), with every check: their JSON bodies' schemas are the
  # exact grammar the component reads (opentelemetry-proto's JSON mapping, Loki's push JSON), so a
  # body that fits them is accepted (positive_data_acceptance) and one that breaks them refused.
  # The event rules that apply per record on top (no NUL, see schemathesis.toml) are documented on
  # the schemas.
  local foreign=(--include-path /v1/logs --include-path /loki/api/v1/push)
  (cd target/contract-st && "$VENV/bin/st" --config-file "$config" --no-color run "$schema" --url "$url" \
    --checks all --exclude-checks use_after_free \
    --exclude-path /v1/logs --exclude-path /loki/api/v1/push \
    --output-truncate true --request-timeout 30 "$@")
  (cd target/contract-st && "$VENV/bin/st" --config-file "$config" --no-color run "$schema" --url "$url" \
    --checks all --exclude-checks use_after_free "${foreign[@]}" \
    --phases examples,coverage,fuzzing \
    --output-truncate true --request-timeout 30 "$@")
}

case "${1:-}" in
  install) install ;;
  validate) install; "$VENV/bin/openapi-spec-validator" "${2:-docs/openapi.json}" ;;
  run) shift; run "$@" ;;
  ""|--max-examples)
    examples="${2:-500}"
    install
    CONTRACT_MAX_EXAMPLES="$examples" cargo test -p edge-host --test contract schemathesis -- --nocapture --test-threads 1
    ;;
  *) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 2 ;;
esac
