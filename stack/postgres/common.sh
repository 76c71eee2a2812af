# shellcheck shell=bash
PG_BIN=/usr/lib/postgresql/15/bin
PG_DATA="$STACK_DIR/data/postgres"
PG_SOCK="$STACK_DIR/run/postgres"
# PostgreSQL refuses to run as root: as root, run it as the Debian package's `postgres` user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# psql as the superuser over TCP (scram), for init and migrations.
pg_super() {
  PGPASSWORD="$CAMPUS_PG_SUPERUSER_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 \
    -h "$CAMPUS_HOST" -p "$CAMPUS_PG_PORT" -U postgres "$@"
}
