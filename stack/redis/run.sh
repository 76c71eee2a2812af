#!/usr/bin/env bash
# `run.sh redis`: the single Redis. `run.sh redis-N` (N = 1..6): a node of the cluster
# topology's Redis Cluster (stack/redis/init.sh joins them: three masters, three replicas).
. "$(dirname "$0")/../lib.sh"
NAME="${1:-redis}"
NODE="$(member_number "$NAME")"
PORT="$(node_port REDIS "$NODE")"
DATA="$STACK_DIR/data/redis${NODE:+-$NODE}"
mkdir -p "$DATA"
CLUSTER=""
if [ -n "$NODE" ]; then
  # A replica authenticates to its master with the same password; nodes.conf keeps the
  # cluster's shape across restarts.
  CLUSTER="cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 3000
masterauth $CAMPUS_REDIS_PASSWORD"
fi
# The password goes through stdin-fed config so it never shows in `ps`.
exec redis-server - <<CONF
bind $CAMPUS_HOST
port $PORT
protected-mode yes
requirepass $CAMPUS_REDIS_PASSWORD
dir $DATA
appendonly yes
appendfsync everysec
save 300 10
daemonize no
logfile ""
maxmemory 512mb
maxmemory-policy volatile-lru
$CLUSTER
CONF
