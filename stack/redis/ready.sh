#!/usr/bin/env bash
. "$(dirname "$0")/../lib.sh"
[ "$(REDISCLI_AUTH="$CAMPUS_REDIS_PASSWORD" timeout 2 redis-cli -h "$CAMPUS_HOST" -p "$CAMPUS_REDIS_PORT" ping 2>/dev/null)" = PONG ]
