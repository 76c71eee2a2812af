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
extra=()
# The gateway of the single topology runs CAMPUS_GATEWAY_WORKERS uvicorn workers (spawned by
# uvicorn's own supervisor, so each runs its lifespan: its own projection member, probes and
# tracing). A cluster member stays one process: two of them already share the two cores.
if [ "$name" = gateway ]; then
  workers="$(gateway_workers)"
  if [ "$workers" -gt 1 ]; then
    extra=(--workers "$workers")
    # prometheus_client's multiprocess mode: every worker writes its metrics to files here and
    # /metrics sums them. Emptied at every start, so no dead process of a previous run counts.
    export PROMETHEUS_MULTIPROC_DIR="$STACK_DIR/run/prometheus-$name"
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  fi
fi
cd "$CAMPUS_ROOT"
# exec: supervisord's TERM (stopasgroup, killasgroup) reaches uvicorn and every worker with it.
exec "$CAMPUS_ROOT/.venv/bin/uvicorn" "campus_${service}.main:app" \
  --host "$CAMPUS_HOST" --port "${!port_var}" --no-access-log --timeout-graceful-shutdown 10 \
  "${extra[@]}"
