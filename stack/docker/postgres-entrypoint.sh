#!/usr/bin/env bash
# The official `postgres` image's contract, for the Debian PostgreSQL 15 build: on first start
# initdb the data directory with POSTGRES_PASSWORD for POSTGRES_USER (default postgres), accept
# scram passwords from any address, then run `postgres` with the given `-c` flags.
set -euo pipefail
if [ "${1:-}" = postgres ] || [ "${1:0:1}" = - ]; then
  [ "${1:-}" = postgres ] && shift
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "error: POSTGRES_PASSWORD is not set" >&2; exit 1; }
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    printf '%s\n' "host all all all scram-sha-256" "host replication all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "initialised $PGDATA"
  fi
  unset POSTGRES_PASSWORD
  exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
