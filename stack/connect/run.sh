#!/usr/bin/env bash
# Kafka Connect distributed worker (one node) in the foreground; supervisord owns it.
# Connectors are registered by stack/connect/init.sh from connectors/*.json.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/auth.sh"

LIB="$STACK_DIR/lib/connect"
PLUGINS="$STACK_DIR/connect-plugins"
PROPS="$STACK_DIR/run/connect-worker.properties"
[ -f "$LIB/.installed" ] || die "connect is not installed: run stack/connect/install.sh"

cat >"$PROPS.tmp" <<PROPS
# Rendered by stack/connect/run.sh from .env on every start: edit the script, not this file.
bootstrap.servers=$CAMPUS_HOST:$CAMPUS_KAFKA_PORT
group.id=campus-connect

key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false

config.storage.topic=campus-connect-configs
offset.storage.topic=campus-connect-offsets
status.storage.topic=campus-connect-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
offset.flush.interval.ms=1000
# A worker that lost its group session (Kafka restarted under it) rejoins as a new member; its old
# connector and task stay unassigned this long (default 5 min) before they are given out again.
# CDC stops for that time, so wait only as long as a worker restart takes.
scheduled.rebalance.max.delay.ms=10000

listeners=http://$CAMPUS_HOST:$CAMPUS_CONNECT_PORT
# Every REST call needs the user and password of .env (JAAS file rendered below).
rest.extension.classes=org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension
rest.advertised.host.name=$CAMPUS_HOST
rest.advertised.port=$CAMPUS_CONNECT_PORT

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

AUTH_DIR="$STACK_DIR/run/connect"
render_connect_auth "$AUTH_DIR"
# The worker reads the password from the rendered file; it needs only Debezium's in its env.
unset CAMPUS_CONNECT_PASSWORD

port_free "$CAMPUS_CONNECT_PORT" || die "connect: port $CAMPUS_HOST:$CAMPUS_CONNECT_PORT is already in use (change it in .env)"

exec java "-Xms$CAMPUS_CONNECT_HEAP" "-Xmx$CAMPUS_CONNECT_HEAP" \
  -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
  -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
  -Djava.awt.headless=true \
  "-Djava.security.auth.login.config=$AUTH_DIR/connect-jaas.conf" \
  "-Dlog4j2.configurationFile=$STACK_SRC/connect/log4j2.properties" \
  "-Dkafka.logs.dir=$STACK_DIR/logs" \
  -cp "$LIB/*" \
  org.apache.kafka.connect.cli.ConnectDistributed "$PROPS"
