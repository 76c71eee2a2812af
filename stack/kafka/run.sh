#!/usr/bin/env bash
# Single-node Kafka (KRaft, combined broker+controller) in the foreground; supervisord owns it.
. "$(dirname "$0")/../lib.sh"

LIB="$STACK_DIR/lib/kafka"
DATA="$STACK_DIR/data/kafka"
CLUSTER_ID_FILE="$STACK_DIR/data/kafka-cluster-id"
PROPS="$STACK_DIR/run/kafka-server.properties"
[ -f "$LIB/.installed" ] || die "kafka is not installed: run stack/kafka/install.sh"
mkdir -p "$DATA"

cat >"$PROPS.tmp" <<PROPS
# Rendered by stack/kafka/run.sh from .env on every start: edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$CAMPUS_HOST:$CAMPUS_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$CAMPUS_HOST:$CAMPUS_KAFKA_PORT,CONTROLLER://$CAMPUS_HOST:$CAMPUS_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$CAMPUS_HOST:$CAMPUS_KAFKA_PORT,CONTROLLER://$CAMPUS_HOST:$CAMPUS_KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA

# one node: every internal topic has replication factor 1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

num.partitions=3
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
mv "$PROPS.tmp" "$PROPS"

# -Xms = -Xmx: a fixed, explicit heap (the JVMs dominate the stack's memory)
JAVA_OPTS=(
  "-Xms$CAMPUS_KAFKA_HEAP" "-Xmx$CAMPUS_KAFKA_HEAP"
  -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$STACK_SRC/kafka/log4j2.properties"
  "-Dkafka.logs.dir=$STACK_DIR/logs"
  -cp "$LIB/*"
)

# Format the storage once. The cluster id is kept beside the data so a re-format reuses it.
if [ ! -f "$DATA/meta.properties" ]; then
  if [ ! -s "$CLUSTER_ID_FILE" ]; then
    java -Xmx128m -cp "$LIB/*" "-Dlog4j2.configurationFile=$STACK_SRC/kafka/log4j2.properties" \
      kafka.tools.StorageTool random-uuid | grep -E '^[A-Za-z0-9_-]{22}$' | tail -n 1 >"$CLUSTER_ID_FILE.tmp" || true
    [ -s "$CLUSTER_ID_FILE.tmp" ] || die "kafka: StorageTool random-uuid printed no cluster id"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
  fi
  log "kafka: formatting $DATA (cluster id $(cat "$CLUSTER_ID_FILE"))"
  java -Xmx256m -cp "$LIB/*" "-Dlog4j2.configurationFile=$STACK_SRC/kafka/log4j2.properties" \
    kafka.tools.StorageTool format --standalone -g -t "$(cat "$CLUSTER_ID_FILE")" -c "$PROPS"
fi

for port in "$CAMPUS_KAFKA_PORT" "$CAMPUS_KAFKA_CONTROLLER_PORT"; do
  port_free "$port" || die "kafka: port $CAMPUS_HOST:$port is already in use (change it in .env)"
done

exec java "${JAVA_OPTS[@]}" kafka.Kafka "$PROPS"
