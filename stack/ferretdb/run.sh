#!/usr/bin/env bash
# Runs FerretDB (MongoDB wire protocol on PostgreSQL) in the foreground; logs go to stdout.
#
# Authentication is pass-through: FerretDB v1 accepts the PLAIN mechanism and opens its
# PostgreSQL connections with the client's username/password, so the URL below carries no
# secret. Clients connect with
#   mongodb://campus_docs:$CAMPUS_DOCS_DB_PASSWORD@$CAMPUS_HOST:$CAMPUS_MONGO_PORT/campus?authMechanism=PLAIN&authSource=%24external
# and their MongoDB database `campus` is a schema `campus` inside PostgreSQL database campus_docs.
#
# FERRETDB_LISTEN / FERRETDB_POSTGRESQL_URL / FERRETDB_LOG_LEVEL override the defaults (tests).
. "$(dirname "$0")/../lib.sh"

BIN="$STACK_DIR/bin/ferretdb"
[ -x "$BIN" ] || die "ferretdb: $BIN is missing; run stack/ferretdb/install.sh"

export FERRETDB_LISTEN="${FERRETDB_LISTEN:-$CAMPUS_HOST:$CAMPUS_MONGO_PORT}"
export FERRETDB_POSTGRESQL_URL="${FERRETDB_POSTGRESQL_URL:-postgres://$CAMPUS_HOST:$CAMPUS_PG_PORT/campus_docs?sslmode=disable}"
export FERRETDB_LOG_LEVEL="${FERRETDB_LOG_LEVEL:-info}"
exec "$BIN"
