#!/usr/bin/env bash
# Ready = HAProxy answers its monitor URI (the services behind it are checked on their own).
. "$(dirname "$0")/../lib.sh"
curl -fsS -o /dev/null -m 2 "http://$CAMPUS_HOST:$CAMPUS_HAPROXY_STATS_PORT/ready"
