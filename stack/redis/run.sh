#!/usr/bin/env bash
. "$(dirname "$0")/../lib.sh"
mkdir -p "$STACK_DIR/data/redis"
# The password goes through stdin-fed config so it never shows in `ps`.
exec redis-server - <<CONF
bind $CAMPUS_HOST
port $CAMPUS_REDIS_PORT
protected-mode yes
requirepass $CAMPUS_REDIS_PASSWORD
dir $STACK_DIR/data/redis
appendonly yes
appendfsync everysec
save 300 10
daemonize no
logfile ""
maxmemory 512mb
maxmemory-policy volatile-lru
CONF
