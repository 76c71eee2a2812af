#!/usr/bin/env bash
# ready.sh NAME: the service serves HTTP (/health/live: no dependency is asked, so a store that
# is down later does not hold back the start of the rest). NAME may be a cluster member,
# <service>-N, on CAMPUS_<SERVICE>_N_PORT.
. "$(dirname "$0")/../lib.sh"
name="$1"
port_var="CAMPUS_${name^^}_PORT"
[ -n "$(member_number "$name")" ] && port_var="CAMPUS_${name%-*}_$(member_number "$name")_PORT" && port_var="${port_var^^}"
code="$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://$CAMPUS_HOST:${!port_var}/health/live")"
[ "$code" = 200 ]
