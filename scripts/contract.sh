#!/usr/bin/env bash
# The API contract (docs/openapi.json) checked against a live edgelog by Schemathesis.
#
#   scripts/contract.sh install                 # the pinned tools, in a venv under target/ (idempotent)
#   scripts/contract.sh validate [FILE]         # FILE (default docs/openapi.json) is valid OpenAPI 3.1
#   scripts/contract.sh run URL [ST-OPTIONS...] # Schemathesis against a running service at URL
#   scripts/contract.sh [--max-examples N]      # the long run: tests/contract.rs's Schemathesis tests
#                                               # on both backends with N examples per operation (500)
#
# `run` reads bearer tokens from EDGELOG_PUBLISH_TOKEN / EDGELOG_READ_TOKEN / EDGELOG_ADMIN_TOKEN
# and applies the checks the test suite relies on: no 5xx, every status and content type
# documented, every body and header valid against its schema (so every 4xx is the JSON error
# shape), undocumented methods answered 405 + Allow, and, with tokens (access control on),
# invalid requests rejected and protected operations refusing requests without a token.
# CONTRACT_SCHEMA=docs/openapi.json tests the file instead of the document the service serves.
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
    # 413 (over a limit) is a rejection too.
    printf '[checks.negative_data_rejection]\n'
    printf 'expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "415", "422"]\n'
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
  local checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,unsupported_method
  if [ -n "${EDGELOG_PUBLISH_TOKEN:-}${EDGELOG_READ_TOKEN:-}${EDGELOG_ADMIN_TOKEN:-}" ]; then
    # With access control on, a request without a token must be refused, like any invalid one.
    checks="$checks,negative_data_rejection,ignored_auth"
  else
    echo "[contract] no EDGELOG_*_TOKEN set: assuming an open service (no auth or rejection checks)" >&2
  fi
  local schema="${CONTRACT_SCHEMA:-$url/openapi.json}"
  case "$schema" in http://*|https://*|/*) ;; *) schema="$PWD/$schema" ;; esac
  # Schemathesis keeps its example database in ./.schemathesis: under target/, not in the tree.
  mkdir -p target/contract-st
  (cd target/contract-st && "$VENV/bin/st" --config-file "$config" --no-color run "$schema" --url "$url" \
    --checks "$checks" \
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
