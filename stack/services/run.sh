#!/usr/bin/env bash
# run.sh NAME: one FastAPI service under uvicorn, on its CAMPUS_<NAME>_PORT.
. "$(dirname "$0")/../lib.sh"
name="$1"
port_var="CAMPUS_${name^^}_PORT"
# bench/tracing.py switches tracing off or down for a measurement without editing .env.
override="$STACK_DIR/run/tracing.env"
if [ -f "$override" ]; then set -a; . "$override"; set +a; fi
cd "$CAMPUS_ROOT"
exec "$CAMPUS_ROOT/.venv/bin/uvicorn" "campus_${name}.main:app" \
  --host "$CAMPUS_HOST" --port "${!port_var}" --no-access-log --timeout-graceful-shutdown 10
