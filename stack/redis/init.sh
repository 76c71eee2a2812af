#!/usr/bin/env bash
# Cluster topology only: once the last node (redis-6) answers, join the six into one Redis
# Cluster (three masters, one replica each) unless it already is one, then wait until every
# slot is served. A single Redis needs nothing.
. "$(dirname "$0")/../lib.sh"
[ "${CAMPUS_COMPONENT:-redis}" = redis-6 ] || exit 0
export REDISCLI_AUTH="$CAMPUS_REDIS_PASSWORD"  # never -a: it would show in `ps`
cli() { timeout 10 redis-cli -h "$CAMPUS_HOST" -p "$CAMPUS_REDIS_PORT" "$@"; }
state() { cli cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p'; }
known() { cli cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_known_nodes://p'; }
if [ "$(known)" != 6 ]; then
  nodes=()
  for n in 1 2 3 4 5 6; do nodes+=("$CAMPUS_HOST:$(node_port REDIS "$n")"); done
  log "redis: creating the cluster ${nodes[*]}"
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null ||
    die "redis: redis-cli --cluster create failed"
fi
cluster_ok() { [ "$(state)" = ok ]; }
wait_for redis-1 60 cluster_ok
log "redis: cluster ok ($(known) nodes)"
