#!/usr/bin/env bash
# make up: install what is missing, then start every component in order behind its readiness check.
. "$(dirname "$0")/lib.sh"
. "$STACK_SRC/components.sh"
. "$STACK_SRC/supervisord.sh"

started_supervisord=0
on_interrupt() {
  echo >&2
  log "interrupted: stopping what was started"
  "$STACK_SRC/down.sh"
  exit 130
}
trap on_interrupt INT TERM

"$STACK_SRC/install.sh"
render_supervisord_conf

if ! supervisord_running; then
  # Check every port before anything starts, so a clash is reported up front.
  for line in "${COMPONENTS[@]}"; do
    read -r name var _ <<<"$line"
    port_free "${!var}" || die "port ${!var} (for $name) is already in use: stop what holds it, or set $var to a free port in .env"
  done
  # A clean environment: each program gets its own variables through stack/scoped.sh.
  env -i PATH="$PATH" HOME="$HOME" LANG="${LANG:-C.UTF-8}" \
    "$CAMPUS_ROOT/.venv/bin/supervisord" -c "$SUP_CONF"
  started_supervisord=1
  wait_for supervisord 10 supervisord_running
else
  sctl reread >/dev/null && sctl update >/dev/null
fi

for wave in 1 2 3 4; do
  for line in "${COMPONENTS[@]}"; do
    read -r name var _ w <<<"$line"
    [ "$w" = "$wave" ] || continue
    [ "$(component_state "$name")" = RUNNING ] && continue
    port_free "${!var}" || die "port ${!var} (for $name) is already in use: stop what holds it, or set $var to a free port in .env"
    log "starting $name"
    sctl start "$name" >/dev/null 2>&1 &  # started together; readiness is checked below
  done
  wait
  for line in "${COMPONENTS[@]}"; do
    read -r name _ timeout w <<<"$line"
    [ "$w" = "$wave" ] || continue
    dir="$(component_dir "$name")"
    if ! wait_for "$name" "$timeout" "$dir/ready.sh" "$name"; then
      die "$name failed its readiness check (log: .stack/logs/$name.log)"
    fi
    if [ -x "$dir/init.sh" ] && ! is_service "$name"; then
      "$dir/init.sh" || die "$name init failed"
    fi
  done
done
trap - INT TERM

cat <<TXT

CampusConnect is up ($( ((started_supervisord)) && echo started || echo already running)).
  API gateway     http://$CAMPUS_HOST:$CAMPUS_GATEWAY_PORT        docs: /docs   dashboard: /dashboard
  users           http://$CAMPUS_HOST:$CAMPUS_USERS_PORT
  documents       http://$CAMPUS_HOST:$CAMPUS_DOCUMENTS_PORT
  graph           http://$CAMPUS_HOST:$CAMPUS_GRAPH_PORT
  timeseries      http://$CAMPUS_HOST:$CAMPUS_TIMESERIES_PORT
  PostgreSQL      postgresql://$CAMPUS_HOST:$CAMPUS_PG_PORT (databases campus, campus_ts, campus_docs)
  Redis           redis://$CAMPUS_HOST:$CAMPUS_REDIS_PORT
  Kafka           $CAMPUS_HOST:$CAMPUS_KAFKA_PORT
  Kafka Connect   http://$CAMPUS_HOST:$CAMPUS_CONNECT_PORT/connectors
  Neo4j           bolt://$CAMPUS_HOST:$CAMPUS_NEO4J_BOLT_PORT   browser: http://$CAMPUS_HOST:$CAMPUS_NEO4J_HTTP_PORT (user neo4j)
  MongoDB wire    mongodb://$CAMPUS_HOST:$CAMPUS_MONGO_PORT (FerretDB)
  Zipkin (traces) http://$CAMPUS_HOST:$CAMPUS_ZIPKIN_PORT/zipkin/
Credentials are in .env. Logs: .stack/logs/<component>.log (make logs).  Stop: make down.

Next: make seed    (loads a sample campus), then open the dashboard:
  http://$CAMPUS_HOST:$CAMPUS_GATEWAY_PORT/dashboard   (sign in with CAMPUS_ADMIN_EMAIL / CAMPUS_ADMIN_PASSWORD from .env)
TXT
