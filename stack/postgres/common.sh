# shellcheck shell=bash
PG_BIN=/usr/lib/postgresql/15/bin
PG_DATA="$STACK_DIR/data/postgres"
PG_SOCK="$STACK_DIR/run/postgres"
# As root the server runs as `postgres`, which must be able to reach its data directory. If the
# checkout sits below a folder it cannot enter, the data lives under /var/lib and is linked here.
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$STACK_DIR/data" 2>/dev/null; then
  PG_BASE="/var/lib/campusconnect/$(printf '%s' "$CAMPUS_ROOT" | sha1sum | cut -c1-12)"
  mkdir -p "$PG_BASE/data" "$PG_BASE/run"
  chown postgres:postgres "$PG_BASE/data" "$PG_BASE/run"
  [ -L "$PG_DATA" ] || { rm -rf "$PG_DATA"; ln -s "$PG_BASE/data" "$PG_DATA"; }
  PG_DATA="$PG_BASE/data"
  PG_SOCK="$PG_BASE/run"
fi
# PostgreSQL refuses to run as root: as root, run it as the Debian package's `postgres` user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# pg_super DB [psql args]: psql as the superuser over TCP (scram), for init and migrations.
# campus_ts lives on the same server natively, on its own TimescaleDB server in docker-compose.
pg_super() {
  local db="$1"; shift
  local host="${CAMPUS_PG_HOST:-$CAMPUS_HOST}" port="$CAMPUS_PG_PORT"
  if [ "$db" = campus_ts ] || [ "$db" = ts:postgres ]; then
    host="${CAMPUS_TS_PG_HOST:-$host}" port="${CAMPUS_TS_PG_PORT:-$port}"
    [ "$db" = ts:postgres ] && db=postgres
  fi
  PGPASSWORD="$CAMPUS_PG_SUPERUSER_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 \
    -h "$host" -p "$port" -U postgres -d "$db" "$@"
}
# True when campus_ts has a server of its own (docker-compose), so roles are made there too.
ts_separate() {
  [ "${CAMPUS_TS_PG_HOST:-${CAMPUS_PG_HOST:-$CAMPUS_HOST}}" != "${CAMPUS_PG_HOST:-$CAMPUS_HOST}" ] ||
    [ "${CAMPUS_TS_PG_PORT:-$CAMPUS_PG_PORT}" != "$CAMPUS_PG_PORT" ]
}
