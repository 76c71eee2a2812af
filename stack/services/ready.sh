#!/usr/bin/env bash
# ready.sh NAME: the service answers /health (200, or 503 = up but a dependency is down).
. "$(dirname "$0")/../lib.sh"
name="$1"
port_var="CAMPUS_${name^^}_PORT"
code="$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://$CAMPUS_HOST:${!port_var}/health")"
[ "$code" = 200 ] || [ "$code" = 503 ]
