#!/usr/bin/env bash
# The `debezium/connect` image's contract, for the worker jars and the Debezium plugin our pom
# resolves: BOOTSTRAP_SERVERS, GROUP_ID, the three storage topics, KEY/VALUE_CONVERTER,
# HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS (the collector), and every CONNECT_<NAME> variable as a worker property (`_` -> `.`).
# With CAMPUS_CONNECT_PASSWORD (and CAMPUS_CONNECT_USER) set, the REST API takes basic auth, as
# natively (stack/connect/run.sh): stack/connect/auth.sh renders the JAAS file and the
# credentials (mode 600) at start, and the worker runs without the password in its environment
# or its arguments.
set -euo pipefail
props=/kafka/run/worker.properties
auth_opts=()
if [ -n "${CAMPUS_CONNECT_PASSWORD:-}" ]; then
  # shellcheck source=stack/connect/auth.sh
  . /kafka/auth.sh
  render_connect_auth /kafka/run/auth
  unset CAMPUS_CONNECT_PASSWORD
  auth_opts=(-Djava.security.auth.login.config=/kafka/run/auth/connect-jaas.conf)
fi
{
  echo "bootstrap.servers=${BOOTSTRAP_SERVERS:?BOOTSTRAP_SERVERS is required}"
  echo "group.id=${GROUP_ID:-1}"
  echo "config.storage.topic=${CONFIG_STORAGE_TOPIC:?CONFIG_STORAGE_TOPIC is required}"
  echo "offset.storage.topic=${OFFSET_STORAGE_TOPIC:?OFFSET_STORAGE_TOPIC is required}"
  echo "status.storage.topic=${STATUS_STORAGE_TOPIC:-connect-status}"
  echo "config.storage.replication.factor=1"
  echo "offset.storage.replication.factor=1"
  echo "status.storage.replication.factor=1"
  echo "key.converter=${KEY_CONVERTER:-org.apache.kafka.connect.json.JsonConverter}"
  echo "value.converter=${VALUE_CONVERTER:-org.apache.kafka.connect.json.JsonConverter}"
  echo "listeners=http://0.0.0.0:${REST_PORT:-8083}"
  echo "rest.advertised.host.name=${ADVERTISED_HOST_NAME:-$(hostname -i | cut -d' ' -f1)}"
  echo "rest.advertised.port=${ADVERTISED_PORT:-${REST_PORT:-8083}}"
  echo "plugin.path=/kafka/connect"
  [ "${#auth_opts[@]}" = 0 ] ||
    echo "rest.extension.classes=org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension"
  for name in $(compgen -e | grep '^CONNECT_' || true); do
    key="${name#CONNECT_}"
    key="${key,,}"
    printf '%s=%s\n' "${key//_/.}" "${!name}"
  done
} >"$props"
# shellcheck disable=SC2086 # the heap options are a list of flags
# shellcheck disable=SC2086 # so are the collector's (KAFKA_JVM_PERFORMANCE_OPTS, as the image's)
exec java ${HEAP_OPTS:--Xms256m -Xmx256m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20} \
  -XX:+ExitOnOutOfMemoryError "${auth_opts[@]}" \
  -Dlog4j2.configurationFile=/kafka/config/log4j2.properties -cp '/kafka/libs/*' \
  org.apache.kafka.connect.cli.ConnectDistributed "$props"
