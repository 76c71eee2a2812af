#!/usr/bin/env bash
# Kafka Connect distributed worker in the foreground; supervisord owns it. `run.sh connect` is
# the single worker; `run.sh connect-N` one of the cluster topology's two workers: one group,
# so a connector's task moves to the surviving worker when the other dies.
# Connectors are registered by stack/connect/init.sh from connectors/*.json.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/auth.sh"

NODE="$(member_number "${1:-connect}")"
PORT="$(node_port CONNECT "$NODE")"
LIB="$STACK_DIR/lib/connect"
PLUGINS="$STACK_DIR/connect-plugins"
PROPS="$STACK_DIR/run/${1:-connect}-worker.properties"
[ -f "$LIB/.installed" ] || die "connect is not installed: run stack/connect/install.sh"
BOOTSTRAP="$CAMPUS_HOST:$CAMPUS_KAFKA_PORT"
RF=1
if [ -n "$NODE" ]; then
  BOOTSTRAP="$CAMPUS_HOST:$CAMPUS_KAFKA_PORT,$CAMPUS_HOST:$CAMPUS_KAFKA_2_PORT,$CAMPUS_HOST:$CAMPUS_KAFKA_3_PORT"
  RF=3
fi

cat >"$PROPS.tmp" <<PROPS
# Rendered by stack/connect/run.sh from .env on every start: edit the script, not this file.
bootstrap.servers=$BOOTSTRAP
group.id=campus-connect

key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false

config.storage.topic=campus-connect-configs
offset.storage.topic=campus-connect-offsets
status.storage.topic=campus-connect-status
config.storage.replication.factor=$RF
offset.storage.replication.factor=$RF
status.storage.replication.factor=$RF
# Source records (Debezium's) are sent with acks=all and idempotence (Connect's defaults,
# spelled out: the CDC stream must not lose an acknowledged change when a broker dies).
producer.acks=all
producer.enable.idempotence=true
offset.flush.interval.ms=1000
# A worker that left the group (Kafka restarted under it, or the worker itself killed) has its
# connector and task kept unassigned this long (default 5 min) before they are given out again:
# to itself when it rejoins, to the other worker of the cluster topology when it does not. CDC
# stops for that time, so wait only as long as a worker restart takes.
scheduled.rebalance.max.delay.ms=10000

listeners=http://$CAMPUS_HOST:$PORT
# Every REST call needs the user and password of .env (JAAS file rendered below).
rest.extension.classes=org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension
rest.advertised.host.name=$CAMPUS_HOST
rest.advertised.port=$PORT

# Plugins live outside the worker classpath; service_load reads their ServiceLoader manifests
# instead of scanning every class (the scan dominates start-up on 2 cores).
plugin.path=$PLUGINS
plugin.discovery=service_load

# Connector configs say "\${env:CAMPUS_DEBEZIUM_PASSWORD}": resolved from this process's
# environment when the connector starts, so no secret is stored in the config topic.
config.providers=env
config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
# Only what connectors/*.json names: a connector posted here cannot read any other variable
# (and the worker's environment holds no other secret anyway, see stack/secrets.sh).
config.providers.env.param.allowlist.pattern=^CAMPUS_(HOST|PG_HOST|PG_PORT|DEBEZIUM_PASSWORD)\$
PROPS
mv "$PROPS.tmp" "$PROPS"

AUTH_DIR="$STACK_DIR/run/${1:-connect}"
render_connect_auth "$AUTH_DIR"
# The worker reads the password from the rendered file; it needs only Debezium's in its env.
unset CAMPUS_CONNECT_PASSWORD

port_free "$PORT" || die "connect: port $CAMPUS_HOST:$PORT is already in use (change it in .env)"

gc="$(jvm_gc_flags)"
read -ra GC_FLAGS <<<"$gc"
exec java "-Xms$CAMPUS_CONNECT_HEAP" "-Xmx$CAMPUS_CONNECT_HEAP" \
  "${GC_FLAGS[@]}" \
  -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
  -Djava.awt.headless=true \
  "-Djava.security.auth.login.config=$AUTH_DIR/connect-jaas.conf" \
  "-Dlog4j2.configurationFile=$STACK_SRC/connect/log4j2.properties" \
  "-Dkafka.logs.dir=$STACK_DIR/logs" \
  -cp "$LIB/*" \
  org.apache.kafka.connect.cli.ConnectDistributed "$PROPS"
