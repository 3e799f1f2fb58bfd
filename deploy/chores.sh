#!/bin/sh
# edgelog's scheduled chores, for any scheduler (the SpinKube CronJob in spinkube/chores.yaml
# runs this very script; on Fermyon Cloud / Wasm Functions run it from your own cron):
# POST /drain (store everything queued), then POST /maintenance (release, compact, retention),
# each repeated while the answer says "more": true, at most EDGELOG_MAX_ROUNDS times (the next
# run carries on; a steady stream of publishes can keep "more" true for ever).
#
#   EDGELOG_URL          base URL, e.g. http://edgelog (the SpinApp's Service) or https://….fermyon.app
#   EDGELOG_ADMIN_TOKEN  the admin_tokens value (a comma-separated list: the first token is used);
#                        empty when the admin group is open
#   EDGELOG_MAX_ROUNDS   default 50
#
# Exits non-zero when a call fails (wrong token, service down), so the scheduler shows it.
set -eu
: "${EDGELOG_URL:?set EDGELOG_URL to the service base URL}"
token=${EDGELOG_ADMIN_TOKEN:-}
token=${token%%,*}
max_rounds=${EDGELOG_MAX_ROUNDS:-50}

chore() {
  path=$1
  round=1
  while :; do
    if [ -n "$token" ]; then
      body=$(curl -sS --fail-with-body --max-time 120 -X POST \
        -H "Authorization: Bearer $token" "$EDGELOG_URL$path") || {
        echo "$path failed: $body" >&2
        exit 1
      }
    else
      body=$(curl -sS --fail-with-body --max-time 120 -X POST "$EDGELOG_URL$path") || {
        echo "$path failed: $body" >&2
        exit 1
      }
    fi
    echo "$path round $round: $body"
    case $body in
      *'"more":true'*) ;;
      *) return 0 ;;
    esac
    if [ "$round" -ge "$max_rounds" ]; then
      echo "$path: still more after $max_rounds rounds; the next run carries on"
      return 0
    fi
    round=$((round + 1))
  done
}

chore /drain
chore /maintenance
