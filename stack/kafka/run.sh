#!/usr/bin/env bash
# Kafka (KRaft, combined broker+controller) in the foreground; supervisord owns it.
# `run.sh kafka` is the single node; `run.sh kafka-N` (N = 1..3) a member of the cluster
# topology: three combined nodes, a static controller quorum, replication factor 3, min ISR 2.
. "$(dirname "$0")/../lib.sh"

NODE="$(member_number "${1:-kafka}")"
LIB="$STACK_DIR/lib/kafka"
DATA="$STACK_DIR/data/${1:-kafka}"
CLUSTER_ID_FILE="$STACK_DIR/data/kafka-cluster-id"
PROPS="$STACK_DIR/run/${1:-kafka}-server.properties"
PORT="$(node_port KAFKA "$NODE")"
cvar=CAMPUS_KAFKA_CONTROLLER_PORT
[ -n "$NODE" ] && [ "$NODE" != 1 ] && cvar="CAMPUS_KAFKA_${NODE}_CONTROLLER_PORT"
CONTROLLER_PORT="${!cvar}"
[ -f "$LIB/.installed" ] || die "kafka is not installed: run stack/kafka/install.sh"
mkdir -p "$DATA"

if [ -z "$NODE" ]; then
  QUORUM="controller.quorum.bootstrap.servers=$CAMPUS_HOST:$CAMPUS_KAFKA_CONTROLLER_PORT"
  RF=1 ISR=1
else
  # A static quorum (controller.quorum.voters): a member whose disk was wiped is formatted
  # again with the same cluster id and rejoins as the same voter.
  QUORUM="controller.quorum.voters=1@$CAMPUS_HOST:$CAMPUS_KAFKA_CONTROLLER_PORT,2@$CAMPUS_HOST:$CAMPUS_KAFKA_2_CONTROLLER_PORT,3@$CAMPUS_HOST:$CAMPUS_KAFKA_3_CONTROLLER_PORT"
  RF=3 ISR=2
fi

cat >"$PROPS.tmp" <<PROPS
# Rendered by stack/kafka/run.sh from .env on every start: edit the script, not this file.
process.roles=broker,controller
node.id=${NODE:-1}
$QUORUM
listeners=PLAINTEXT://$CAMPUS_HOST:$PORT,CONTROLLER://$CAMPUS_HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$CAMPUS_HOST:$PORT,CONTROLLER://$CAMPUS_HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA

# Every internal topic and every topic created without its own settings (Debezium's) gets
# the topology's replication factor; acks=all then means "on min.insync.replicas brokers".
offsets.topic.replication.factor=$RF
transaction.state.log.replication.factor=$RF
transaction.state.log.min.isr=$ISR
share.coordinator.state.topic.replication.factor=$RF
share.coordinator.state.topic.min.isr=$ISR
default.replication.factor=$RF
min.insync.replicas=$ISR
# A leader that is not in sync never takes over: an acknowledged write is never dropped.
unclean.leader.election.enable=false

num.partitions=3
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
mv "$PROPS.tmp" "$PROPS"

# -Xms = -Xmx: a fixed, explicit heap (the JVMs dominate the stack's memory)
gc="$(jvm_gc_flags)"
read -ra GC_FLAGS <<<"$gc"
JAVA_OPTS=(
  "-Xms$CAMPUS_KAFKA_HEAP" "-Xmx$CAMPUS_KAFKA_HEAP"
  "${GC_FLAGS[@]}"
  -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$STACK_SRC/kafka/log4j2.properties"
  "-Dkafka.logs.dir=$STACK_DIR/logs"
  -cp "$LIB/*"
)

# Format the storage once. The cluster id is kept beside the data so a re-format reuses it.
if [ ! -f "$DATA/meta.properties" ]; then
  # The three cluster members start together: one of them makes the id, under a lock.
  exec 9>"$CLUSTER_ID_FILE.lock"
  flock 9
  if [ ! -s "$CLUSTER_ID_FILE" ]; then
    java -Xmx128m -cp "$LIB/*" "-Dlog4j2.configurationFile=$STACK_SRC/kafka/log4j2.properties" \
      kafka.tools.StorageTool random-uuid | grep -E '^[A-Za-z0-9_-]{22}$' | tail -n 1 >"$CLUSTER_ID_FILE.tmp" || true
    [ -s "$CLUSTER_ID_FILE.tmp" ] || die "kafka: StorageTool random-uuid printed no cluster id"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
  fi
  log "kafka: formatting $DATA (cluster id $(cat "$CLUSTER_ID_FILE"))"
  standalone=(--standalone)
  [ -n "$NODE" ] && standalone=()  # the static voters are in the properties
  java -Xmx256m -cp "$LIB/*" "-Dlog4j2.configurationFile=$STACK_SRC/kafka/log4j2.properties" \
    kafka.tools.StorageTool format "${standalone[@]}" -g -t "$(cat "$CLUSTER_ID_FILE")" -c "$PROPS"
  flock -u 9
  exec 9>&-
fi

for port in "$PORT" "$CONTROLLER_PORT"; do
  port_free "$port" || die "kafka: port $CAMPUS_HOST:$port is already in use (change it in .env)"
done

exec java "${JAVA_OPTS[@]}" kafka.Kafka "$PROPS"
