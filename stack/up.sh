#!/usr/bin/env bash
# make up: install what is missing, then start every component in order behind its readiness check.
. "$(dirname "$0")/lib.sh"
requested="${TOPOLOGY:-}"
. "$STACK_SRC/components.sh"
. "$STACK_SRC/supervisord.sh"

# One topology per data directory: the single node's Kafka log, Connect offsets and Redis
# data mean nothing to the cluster's members (and the other way round).
current="$(cat "$TOPOLOGY_FILE" 2>/dev/null || true)"
if [ -z "$current" ] && [ -d "$STACK_DIR/data/postgres" ]; then current=single; fi
if [ -n "$requested" ] && [ -n "$current" ] && [ "$requested" != "$current" ]; then
  die "this stack's data is for TOPOLOGY=$current: run \`make clean\` before \`make up TOPOLOGY=$requested\`"
fi
echo "$TOPOLOGY" >"$TOPOLOGY_FILE"
if [ "$TOPOLOGY" = cluster ]; then
  # What every client of the cluster needs besides .env (read by stack/scoped.sh and by
  # campus_common.config for the CLI, the tests and the bench). No secret in it.
  cat >"$TOPOLOGY_ENV" <<ENV
CAMPUS_TOPOLOGY=cluster
CAMPUS_KAFKA_BOOTSTRAP_SERVERS=$CAMPUS_HOST:$CAMPUS_KAFKA_PORT,$CAMPUS_HOST:$CAMPUS_KAFKA_2_PORT,$CAMPUS_HOST:$CAMPUS_KAFKA_3_PORT
CAMPUS_KAFKA_REPLICATION_FACTOR=3
CAMPUS_KAFKA_MIN_INSYNC_REPLICAS=2
CAMPUS_REDIS_CLUSTER=true
ENV
else
  rm -f "$TOPOLOGY_ENV"
fi

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
    # A cluster's members share one init (it acts once, for the member it names).
    [ "$name" = connect-2 ] && continue
    if [ -x "$dir/init.sh" ] && ! is_service "$name"; then
      CAMPUS_COMPONENT="$name" "$dir/init.sh" || die "$name init failed"
    fi
  done
done
trap - INT TERM

cat <<TXT

CampusConnect is up ($( ((started_supervisord)) && echo started || echo already running); topology: $TOPOLOGY).
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
$([ "$TOPOLOGY" = cluster ] && echo "  Cluster: Kafka brokers $CAMPUS_KAFKA_PORT $CAMPUS_KAFKA_2_PORT $CAMPUS_KAFKA_3_PORT; Connect $CAMPUS_CONNECT_PORT $CAMPUS_CONNECT_2_PORT; Redis Cluster from $CAMPUS_REDIS_PORT; HAProxy stats http://$CAMPUS_HOST:$CAMPUS_HAPROXY_STATS_PORT/stats")
Credentials are in .env. Logs: .stack/logs/<component>.log (make logs).  Stop: make down.

Next: make seed    (loads a sample campus), then open the dashboard:
  http://$CAMPUS_HOST:$CAMPUS_GATEWAY_PORT/dashboard   (sign in with CAMPUS_ADMIN_EMAIL / CAMPUS_ADMIN_PASSWORD from .env)
TXT
