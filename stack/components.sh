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

# The topology: `single` (the default) or `cluster` (make up TOPOLOGY=cluster). The one a
# stack was started with is kept in .stack/data/topology, so down/status/logs and the next
# `make up` follow it until `make clean`.
TOPOLOGY_FILE="$STACK_DIR/data/topology"
TOPOLOGY_ENV="$STACK_DIR/data/topology.env"
if [ -z "${TOPOLOGY:-}" ]; then
  TOPOLOGY="$(cat "$TOPOLOGY_FILE" 2>/dev/null || echo single)"
fi
case "$TOPOLOGY" in single | cluster) ;; *) die "TOPOLOGY must be single or cluster, not '$TOPOLOGY'" ;; esac

# The cluster topology: three KRaft brokers, two Connect workers, Redis Cluster 3+3, every
# Python service twice behind HAProxy (which takes the services' usual ports, so every client
# keeps its address). PostgreSQL, Neo4j, FerretDB and Zipkin stay single (docs/scaling.md).
if [ "$TOPOLOGY" = cluster ]; then
  COMPONENTS=(
    "postgres      CAMPUS_PG_PORT                  60   1"
    "redis-1       CAMPUS_REDIS_PORT               30   1"
    "redis-2       CAMPUS_REDIS_2_PORT             30   1"
    "redis-3       CAMPUS_REDIS_3_PORT             30   1"
    "redis-4       CAMPUS_REDIS_4_PORT             30   1"
    "redis-5       CAMPUS_REDIS_5_PORT             30   1"
    "redis-6       CAMPUS_REDIS_6_PORT             60   1"
    "kafka-1       CAMPUS_KAFKA_PORT               240  1"
    "kafka-2       CAMPUS_KAFKA_2_PORT             240  1"
    "kafka-3       CAMPUS_KAFKA_3_PORT             240  1"
    "neo4j         CAMPUS_NEO4J_BOLT_PORT          240  1"
    "ferretdb      CAMPUS_MONGO_PORT               60   1"
    "connect-1     CAMPUS_CONNECT_PORT             300  2"
    "connect-2     CAMPUS_CONNECT_2_PORT           300  2"
    "zipkin        CAMPUS_ZIPKIN_PORT              180  2"
    "haproxy       CAMPUS_HAPROXY_STATS_PORT       30   3"
  )
  for svc in users documents graph timeseries gateway; do
    wave=3
    [ "$svc" = gateway ] && wave=4
    for i in 1 2; do
      COMPONENTS+=("$svc-$i  CAMPUS_${svc^^}_${i}_PORT  120  $wave")
    done
  done
fi

# A cluster member is named <component>-<n>: its scripts are the component's, given the name.
base_name() { if [[ "$1" =~ ^(.+)-([0-9]+)$ ]]; then echo "${BASH_REMATCH[1]}"; else echo "$1"; fi; }
is_service() { [[ "$SERVICES" == *" $(base_name "$1") "* ]]; }
component_dir() { if is_service "$1"; then echo "$STACK_SRC/services"; else echo "$STACK_SRC/$(base_name "$1")"; fi; }
