# shellcheck shell=bash
# Start order, with each component's port variable (checked before start) and readiness timeout.
# name         port-variable            ready-timeout-s
COMPONENTS=(
  "postgres    CAMPUS_PG_PORT           60"
  "redis       CAMPUS_REDIS_PORT        30"
  "kafka       CAMPUS_KAFKA_PORT        120"
  "connect     CAMPUS_CONNECT_PORT      180"
  "neo4j       CAMPUS_NEO4J_BOLT_PORT   180"
  "ferretdb    CAMPUS_MONGO_PORT        60"
  "users       CAMPUS_USERS_PORT        60"
  "documents   CAMPUS_DOCUMENTS_PORT    60"
  "graph       CAMPUS_GRAPH_PORT        60"
  "timeseries  CAMPUS_TIMESERIES_PORT   60"
  "gateway     CAMPUS_GATEWAY_PORT      60"
)
SERVICES=" users documents graph timeseries gateway "
is_service() { [[ "$SERVICES" == *" $1 "* ]]; }
component_dir() { if is_service "$1"; then echo "$STACK_SRC/services"; else echo "$STACK_SRC/$1"; fi; }
