# shellcheck shell=bash
# Least privilege for secrets: which secret variables each supervised component receives
# (stack/scoped.sh applies it). A secret is a name ending in _PASSWORD, _SECRET or _SIGNING_KEY;
# every other CAMPUS_* variable (hosts, ports, heaps, public keys) goes to every component.
# docker-compose lists the same names per service; tests/e2e/security/test_security_secrets.py
# checks the running processes against its own copy of this table.
is_secret_name() { [[ "$1" =~ _(PASSWORD|SECRET|SIGNING_KEY)$ ]]; }
component_secrets() {
  # A cluster member (redis-2, gateway-1, ...) gets what its component gets.
  local name="$1"
  [[ "$name" =~ ^(.+)-[0-9]+$ ]] && name="${BASH_REMATCH[1]}"
  case "$name" in
    postgres) echo CAMPUS_PG_SUPERUSER_PASSWORD ;; # initdb's first start only; run.sh drops it
    redis) echo CAMPUS_REDIS_PASSWORD ;;           # rendered into the config on stdin
    connect) echo CAMPUS_DEBEZIUM_PASSWORD CAMPUS_CONNECT_PASSWORD ;; # run.sh drops the latter
    neo4j) echo CAMPUS_NEO4J_PASSWORD ;;           # the initial password; run.sh drops it
    users) echo CAMPUS_USERS_DB_PASSWORD ;;
    documents) echo CAMPUS_DOCS_DB_PASSWORD CAMPUS_DOCUMENTS_SIGNING_KEY ;;
    graph) echo CAMPUS_NEO4J_PASSWORD CAMPUS_GRAPH_SIGNING_KEY ;;
    timeseries) echo CAMPUS_TS_DB_PASSWORD ;;
    gateway) echo CAMPUS_REDIS_PASSWORD CAMPUS_JWT_SECRET CAMPUS_ADMIN_PASSWORD \
      CAMPUS_GATEWAY_SIGNING_KEY CAMPUS_CONNECT_PASSWORD ;;
    *) ;; # kafka, ferretdb, zipkin: none
  esac
}
