#!/usr/bin/env bash
# Ready = the worker's REST API lists connectors (200 only once the herder has started).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/auth.sh"
connect_curl -fsS -o /dev/null --max-time 2 "http://$CAMPUS_HOST:$(node_port CONNECT "$(member_number "${1:-connect}")")/connectors"
