#!/usr/bin/env bash
# run.sh NAME: one FastAPI service under uvicorn, on its CAMPUS_<NAME>_PORT. In the cluster
# topology NAME is <service>-N (N = 1, 2) on CAMPUS_<SERVICE>_N_PORT, behind HAProxy.
. "$(dirname "$0")/../lib.sh"
name="$1"
service="$name"
port_var="CAMPUS_${name^^}_PORT"
if [ -n "$(member_number "$name")" ]; then
  service="${name%-*}"
  port_var="CAMPUS_${service^^}_$(member_number "$name")_PORT"
fi
# bench/tracing.py switches tracing off or down for a measurement without editing .env.
override="$STACK_DIR/run/tracing.env"
if [ -f "$override" ]; then set -a; . "$override"; set +a; fi
cd "$CAMPUS_ROOT"
exec "$CAMPUS_ROOT/.venv/bin/uvicorn" "campus_${service}.main:app" \
  --host "$CAMPUS_HOST" --port "${!port_var}" --no-access-log --timeout-graceful-shutdown 10
