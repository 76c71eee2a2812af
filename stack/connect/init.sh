#!/usr/bin/env bash
# Register every connector in connectors/*.json (or in the directory given as $1) with the
# Connect worker and wait until it and all its tasks are RUNNING.
# Each file is a bare JSON object of connector config; the connector name is the file name
# without .json. PUT /connectors/<name>/config creates or updates, so re-running is safe.
# Secrets stay out of the files: write "${env:CAMPUS_DEBEZIUM_PASSWORD}" (resolved by the worker).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/auth.sh"

DIR="${1:-$CAMPUS_ROOT/connectors}"
URL="http://${CAMPUS_CONNECT_HOST:-$CAMPUS_HOST}:$CAMPUS_CONNECT_PORT"
TIMEOUT="${CAMPUS_CONNECT_INIT_TIMEOUT:-120}"

shopt -s nullglob
files=("$DIR"/*.json)
if ((${#files[@]} == 0)); then
  log "connect: no connector configs in $DIR"
  exit 0
fi

fail() { # fail NAME MESSAGE [STATUS_JSON]
  echo "ERROR: connector $1: $2" >&2
  if [ -n "${3:-}" ]; then
    # pretty JSON, then any stack traces with real line breaks
    printf '%s' "$3" | python3 -c '
import json, sys
raw = sys.stdin.read()
try:
    s = json.loads(raw)
except ValueError:
    print(raw); sys.exit()
parts = [s.get("connector", {})] + s.get("tasks", []) if isinstance(s, dict) else []
traces = [(p.get("id", "connector"), p.pop("trace")) for p in parts if isinstance(p, dict) and p.get("trace")]
print(json.dumps(s, indent=2))
for who, trace in traces:
    print("--- trace (%s):" % who); print(trace)
' >&2 || printf '%s\n' "$3" >&2
  fi
  echo "--- last lines of $STACK_DIR/logs/connect.log:" >&2
  tail -n 60 "$STACK_DIR/logs/connect.log" >&2 2>/dev/null || true
  exit 1
}

body="$(mktemp)"
trap 'rm -f "$body"' EXIT

for f in "${files[@]}"; do
  name="$(basename "$f" .json)"
  python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert isinstance(c, dict), "not a JSON object"' "$f" ||
    die "connect: $f is not a JSON object of connector config"
  code="$(connect_curl -sS -o "$body" -w '%{http_code}' --max-time 60 -X PUT -H 'Content-Type: application/json' \
    --data-binary "@$f" "$URL/connectors/$name/config")" || fail "$name" "PUT failed (worker not reachable at $URL?)"
  case "$code" in
    200) log "connect: $name updated" ;;
    201) log "connect: $name created" ;;
    *) fail "$name" "PUT /connectors/$name/config answered HTTP $code" "$(cat "$body")" ;;
  esac
done

# Wait for every connector and all its tasks to be RUNNING; a FAILED one fails at once.
for f in "${files[@]}"; do
  name="$(basename "$f" .json)"
  deadline=$((SECONDS + TIMEOUT))
  while :; do
    status="$(connect_curl -sS --max-time 5 "$URL/connectors/$name/status" 2>/dev/null || true)"
    verdict="$(printf '%s' "$status" | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)
except ValueError:
    print("wait"); sys.exit()
states = [s.get("connector", {}).get("state")] + [t.get("state") for t in s.get("tasks", [])]
if "FAILED" in states:
    print("failed")
elif s.get("tasks") and all(x == "RUNNING" for x in states):
    print("running")
else:
    print("wait")
' 2>/dev/null || echo wait)"
    case "$verdict" in
      running) log "connect: $name RUNNING"; break ;;
      failed) fail "$name" "FAILED" "$status" ;;
    esac
    ((SECONDS < deadline)) || fail "$name" "not RUNNING after ${TIMEOUT}s" "$status"
    sleep 1
  done
done
