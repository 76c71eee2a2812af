#!/usr/bin/env bash
# Ready = the default database answers an authenticated Cypher call over the HTTP tx API
# and the Bolt port accepts TCP. No Python needed; the password never appears on a command line.
. "$(dirname "$0")/../lib.sh"

timeout 0.5 bash -c "exec 3<>/dev/tcp/$CAMPUS_HOST/$CAMPUS_NEO4J_BOLT_PORT" 2>/dev/null || exit 1

resp="$(printf 'user = "neo4j:%s"\n' "$CAMPUS_NEO4J_PASSWORD" |
  curl -sS -f -m 1 -K - -H 'Content-Type: application/json' -H 'Accept: application/json' \
    -d '{"statements":[{"statement":"RETURN 1 AS ok"}]}' \
    "http://$CAMPUS_HOST:$CAMPUS_NEO4J_HTTP_PORT/db/neo4j/tx/commit" 2>/dev/null)" || exit 1
[[ "$resp" == *'"errors":[]'* ]]
