#!/usr/bin/env bash
# Ready = Zipkin's health endpoint says UP (the collector and the query API share its port).
. "$(dirname "$0")/../lib.sh"
curl -sS -f -m 2 "http://$CAMPUS_HOST:$CAMPUS_ZIPKIN_PORT/health" 2>/dev/null | grep -q '"UP"'
