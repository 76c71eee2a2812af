# shellcheck shell=bash
# Dependency order, each with its port variable (checked before start), readiness timeout and
# wave: a wave's components start together and the next wave waits for all of them to be ready.
# Connect needs Kafka and PostgreSQL's roles (postgres init); the services need every store.
# name         port-variable            ready-timeout-s  wave
COMPONENTS=(
  "postgres    CAMPUS_PG_PORT           60               1"
  "redis       CAMPUS_REDIS_PORT        30               1"
  "kafka       CAMPUS_KAFKA_PORT        120              1"
  "connect     CAMPUS_CONNECT_PORT      180              2"
  "zipkin      CAMPUS_ZIPKIN_PORT       120              2"
  "neo4j       CAMPUS_NEO4J_BOLT_PORT   180              1"
  "ferretdb    CAMPUS_MONGO_PORT        60               1"
  "users       CAMPUS_USERS_PORT        60               3"
  "documents   CAMPUS_DOCUMENTS_PORT    60               3"
  "graph       CAMPUS_GRAPH_PORT        60               3"
  "timeseries  CAMPUS_TIMESERIES_PORT   60               3"
  "gateway     CAMPUS_GATEWAY_PORT      60               4"
)
SERVICES=" users documents graph timeseries gateway "
is_service() { [[ "$SERVICES" == *" $1 "* ]]; }
component_dir() { if is_service "$1"; then echo "$STACK_SRC/services"; else echo "$STACK_SRC/$1"; fi; }
