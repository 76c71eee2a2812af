#!/usr/bin/env bash
# migrate.sh DB PATH...: apply each numbered .sql file once, in name order, each in one transaction.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/common.sh"
db="$1"; shift
pg_super "$db" -c "CREATE TABLE IF NOT EXISTS schema_migrations (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
files=()
for p in "$@"; do
  if [ -d "$p" ]; then files+=("$p"/*.sql); elif [ -f "$p" ]; then files+=("$p"); fi
done
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  name="$(basename "$f")"
  sum="$(sha256sum "$f" | cut -d' ' -f1)"
  applied="$(pg_super "$db" -tAc "SELECT checksum FROM schema_migrations WHERE name = '$name'")"
  if [ -z "$applied" ]; then
    log "migrating $db: $name"
    { cat "$f"; echo; echo "INSERT INTO schema_migrations (name, checksum) VALUES ('$name', '$sum');"; } \
      | pg_super "$db" -1 -f -
  elif [ "$applied" != "$sum" ]; then
    log "WARNING: $name changed after it was applied to $db; add a new migration instead"
  fi
done
