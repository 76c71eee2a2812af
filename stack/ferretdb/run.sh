#!/usr/bin/env bash
# Runs FerretDB (MongoDB wire protocol on PostgreSQL) in the foreground; logs go to stdout.
#
# Authentication is pass-through: FerretDB v1 accepts the PLAIN mechanism and opens its
# PostgreSQL connections with the client's username/password, so the URL below carries no
# secret. Clients connect with
#   mongodb://campus_docs:$CAMPUS_DOCS_DB_PASSWORD@$CAMPUS_HOST:$CAMPUS_MONGO_PORT/campus?authMechanism=PLAIN
# and their MongoDB database `campus` is a schema `campus` inside PostgreSQL database campus_docs.
# PLAIN is the only mechanism (without authMechanism PyMongo tries SCRAM and fails); authSource
# is ignored (PyMongo defaults it to $external for PLAIN). A wrong password is not rejected at
# the handshake but by the first command that reaches PostgreSQL (code 1, InternalError).
#
# Pass-through auth is only as strict as PostgreSQL's pg_hba.conf: host lines for $CAMPUS_HOST
# must use scram-sha-256 (never trust). A client that does not authenticate reaches PostgreSQL
# with no user and no password; the binary clears the libpq-style environment (PGUSER,
# PGPASSWORD, ~/.pgpass) so that it cannot lend credentials to anonymous MongoDB clients.
#
# FERRETDB_LISTEN / FERRETDB_POSTGRESQL_URL / FERRETDB_LOG_LEVEL override the defaults (tests).
. "$(dirname "$0")/../lib.sh"

BIN="$STACK_DIR/bin/ferretdb"
[ -x "$BIN" ] || die "ferretdb: $BIN is missing; run stack/ferretdb/install.sh"

export FERRETDB_LISTEN="${FERRETDB_LISTEN:-$CAMPUS_HOST:$CAMPUS_MONGO_PORT}"
# One pgx pool per credential pair; cap it well below PostgreSQL's max_connections (100).
export FERRETDB_POSTGRESQL_URL="${FERRETDB_POSTGRESQL_URL:-postgres://$CAMPUS_HOST:$CAMPUS_PG_PORT/campus_docs?sslmode=disable&pool_max_conns=40}"
export FERRETDB_LOG_LEVEL="${FERRETDB_LOG_LEVEL:-info}"
exec "$BIN"
