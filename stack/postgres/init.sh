#!/usr/bin/env bash
# Idempotent: roles (one per service, least privilege), databases, migrations, grants.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/common.sh"

# The passwords reach psql through its environment (\getenv), never its arguments (`ps`).
export CAMPUS_USERS_DB_PASSWORD CAMPUS_TS_DB_PASSWORD CAMPUS_DOCS_DB_PASSWORD CAMPUS_DEBEZIUM_PASSWORD
pg_super postgres <<'SQL'
\getenv users_pw CAMPUS_USERS_DB_PASSWORD
\getenv ts_pw CAMPUS_TS_DB_PASSWORD
\getenv docs_pw CAMPUS_DOCS_DB_PASSWORD
\getenv dbz_pw CAMPUS_DEBEZIUM_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', r) FROM unnest(ARRAY['campus_users','campus_ts','campus_docs','campus_debezium']) r
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE campus_users PASSWORD :'users_pw';
ALTER ROLE campus_ts PASSWORD :'ts_pw';
ALTER ROLE campus_docs PASSWORD :'docs_pw';
-- Debezium streams the WAL: it needs REPLICATION, and SELECT for its snapshot (granted below).
ALTER ROLE campus_debezium PASSWORD :'dbz_pw' REPLICATION;
SELECT 'CREATE DATABASE campus' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'campus') \gexec
SELECT 'CREATE DATABASE campus_ts' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'campus_ts') \gexec
-- FerretDB creates its own schemas and tables, so it owns its database.
SELECT 'CREATE DATABASE campus_docs OWNER campus_docs' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'campus_docs') \gexec
REVOKE ALL ON DATABASE campus FROM PUBLIC;
REVOKE ALL ON DATABASE campus_ts FROM PUBLIC;
REVOKE ALL ON DATABASE campus_docs FROM PUBLIC;
GRANT CONNECT ON DATABASE campus TO campus_users, campus_debezium;
GRANT CONNECT ON DATABASE campus_ts TO campus_ts;
SQL

if ts_separate; then
  pg_super ts:postgres <<'SQL'
\getenv ts_pw CAMPUS_TS_DB_PASSWORD
SELECT 'CREATE ROLE campus_ts LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'campus_ts') \gexec
ALTER ROLE campus_ts PASSWORD :'ts_pw';
SELECT 'CREATE DATABASE campus_ts' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'campus_ts') \gexec
REVOKE ALL ON DATABASE campus_ts FROM PUBLIC;
GRANT CONNECT ON DATABASE campus_ts TO campus_ts;
SQL
fi

"$STACK_SRC/postgres/migrate.sh" campus "$CAMPUS_ROOT/sql"
"$STACK_SRC/postgres/migrate.sh" campus_ts "$CAMPUS_ROOT/TimeScaleDB.sql"

pg_super campus <<'SQL'
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO campus_users, campus_debezium;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO campus_users;
REVOKE ALL ON schema_migrations FROM campus_users;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO campus_users;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO campus_debezium;
-- The connector itself beats: heartbeat.action.query updates this row every interval.
GRANT UPDATE ON heartbeats TO campus_debezium;
REVOKE ALL ON schema_migrations FROM campus_debezium;
SQL
pg_super campus_ts <<'SQL'
GRANT USAGE ON SCHEMA public TO campus_ts;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO campus_ts;
REVOKE ALL ON schema_migrations FROM campus_ts;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO campus_ts;
SQL
