#!/usr/bin/env bash
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/common.sh"
mkdir -p "$PG_DATA" "$PG_SOCK"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DATA" "$PG_SOCK"
if [ ! -s "$PG_DATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "$CAMPUS_PG_SUPERUSER_PASSWORD" >"$pwfile"
  [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --pwfile="$pwfile" \
    --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
fi
# The server never needs it: keep it out of its environment.
unset CAMPUS_PG_SUPERUSER_PASSWORD
# Copied next to the data, so the server never reads from the checkout (see common.sh).
install -m 644 "$STACK_SRC/postgres/postgresql.conf" "$STACK_SRC/postgres/pg_hba.conf" "$PG_DATA/"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DATA/postgresql.conf" "$PG_DATA/pg_hba.conf"
# Settings that follow .env are passed on the command line so a changed port needs no edit.
exec_args=(
  -D "$PG_DATA"
  -c "listen_addresses=$CAMPUS_HOST"
  -c "port=$CAMPUS_PG_PORT"
  -c "unix_socket_directories=$PG_SOCK"
)
if [ "$(id -u)" = 0 ]; then exec runuser -u postgres -- "$PG_BIN/postgres" "${exec_args[@]}"; fi
exec "$PG_BIN/postgres" "${exec_args[@]}"
