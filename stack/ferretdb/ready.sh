#!/usr/bin/env bash
# Exits 0 when FerretDB answers `hello` on its wire port (≤ 2 s, no side effects).
#   ready.sh --deep   also authenticates as campus_docs (PLAIN) and sends `ping`, which makes
#                     FerretDB connect to PostgreSQL with those credentials (end-to-end check).
. "$(dirname "$0")/../lib.sh"

BIN="$STACK_DIR/bin/ferretdb"
[ -x "$BIN" ] || exit 1
listen="${FERRETDB_LISTEN:-$CAMPUS_HOST:$CAMPUS_MONGO_PORT}"

if [ "${1:-}" = "--deep" ]; then
  FERRETDB_PING_PASSWORD="$CAMPUS_DOCS_DB_PASSWORD" exec timeout 2 "$BIN" -ping -timeout 1800ms \
    -listen "$listen" -ping-user campus_docs -ping-password-env FERRETDB_PING_PASSWORD
fi
exec timeout 2 "$BIN" -ping -timeout 1500ms -listen "$listen"
