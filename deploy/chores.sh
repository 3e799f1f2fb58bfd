#!/bin/sh
# edgelog's scheduled chores, for any scheduler (the SpinKube CronJob in spinkube/chores.yaml
# runs this very script; on Fermyon Cloud / Wasm Functions run it from your own cron):
# POST /drain (store everything queued), then POST /maintenance (release, compact, retention),
# each repeated while the answer says "more": true, at most EDGELOG_MAX_ROUNDS times (the next
# run carries on; a steady stream of publishes can keep "more" true for ever).
# The drain runs as EDGELOG_DRAIN_LANES loops in parallel, one per lane
# (POST /drain?lane=I&lanes=N): each takes its own part of the queue, so a backlog drains
# over N store connections without two loops working on the same entries.
#
#   EDGELOG_URL          base URL, e.g. http://edgelog (the SpinApp's Service) or https://….fermyon.app
#   EDGELOG_ADMIN_TOKEN  the admin_tokens value (a comma-separated list: the first token is used);
#                        empty when the admin group is open
#   EDGELOG_MAX_ROUNDS   default 50 (per drain loop)
#   EDGELOG_DRAIN_LANES  parallel drain loops, 1 to 64; default 4 (1: one plain POST /drain loop,
#                        the faster choice on SQLite, whose writers take turns)
#
# Exits non-zero when a call fails (wrong token, service down), so the scheduler shows it.
set -eu
: "${EDGELOG_URL:?set EDGELOG_URL to the service base URL}"
token=${EDGELOG_ADMIN_TOKEN:-}
token=${token%%,*}
max_rounds=${EDGELOG_MAX_ROUNDS:-50}
lanes=${EDGELOG_DRAIN_LANES:-4}
case $lanes in
  '' | *[!0-9]*) lanes=0 ;;
esac
if [ "$lanes" -lt 1 ] || [ "$lanes" -gt 64 ]; then
  echo "EDGELOG_DRAIN_LANES must be a number from 1 to 64, not '${EDGELOG_DRAIN_LANES:-}'" >&2
  exit 2
fi

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

# One drain loop per lane, each in a background subshell; fails if any of them failed.
drain() {
  if [ "$lanes" -eq 1 ]; then
    chore /drain
    return 0
  fi
  pids=
  lane=0
  while [ "$lane" -lt "$lanes" ]; do
    chore "/drain?lane=$lane&lanes=$lanes" &
    pids="$pids $!"
    lane=$((lane + 1))
  done
  failed=0
  for pid in $pids; do
    wait "$pid" || failed=$((failed + 1))
  done
  if [ "$failed" -gt 0 ]; then
    echo "/drain: $failed of $lanes lanes failed" >&2
    exit 1
  fi
}

drain
chore /maintenance
