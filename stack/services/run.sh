#!/usr/bin/env bash
# run.sh NAME: one FastAPI service under uvicorn, on its CAMPUS_<NAME>_PORT.
. "$(dirname "$0")/../lib.sh"
name="$1"
port_var="CAMPUS_${name^^}_PORT"
cd "$CAMPUS_ROOT"
exec "$CAMPUS_ROOT/.venv/bin/uvicorn" "campus_${name}.main:app" \
  --host "$CAMPUS_HOST" --port "${!port_var}" --no-access-log --timeout-graceful-shutdown 10
