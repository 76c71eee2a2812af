#!/usr/bin/env bash
# Ready = PONG (a cluster node: on its own port; stack/redis/init.sh then forms the cluster).
. "$(dirname "$0")/../lib.sh"
port="$(node_port REDIS "$(member_number "${1:-redis}")")"
[ "$(REDISCLI_AUTH="$CAMPUS_REDIS_PASSWORD" timeout 2 redis-cli -h "$CAMPUS_HOST" -p "$port" ping 2>/dev/null)" = PONG ]
