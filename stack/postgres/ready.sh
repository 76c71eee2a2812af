#!/usr/bin/env bash
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/common.sh"
"$PG_BIN/pg_isready" -q -h "$CAMPUS_HOST" -p "$CAMPUS_PG_PORT" -t 2
