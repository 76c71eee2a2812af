#!/usr/bin/env bash
# The `debezium/connect` image's contract, for the worker jars and the Debezium plugin our pom
# resolves: BOOTSTRAP_SERVERS, GROUP_ID, the three storage topics, KEY/VALUE_CONVERTER,
# HEAP_OPTS, and every CONNECT_<NAME> variable as a worker property (`_` -> `.`).
set -euo pipefail
props=/kafka/run/worker.properties
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
  for name in $(compgen -e | grep '^CONNECT_' || true); do
    key="${name#CONNECT_}"
    key="${key,,}"
    printf '%s=%s\n' "${key//_/.}" "${!name}"
  done
} >"$props"
# shellcheck disable=SC2086 # the heap options are a list of flags
exec java ${HEAP_OPTS:--Xms256m -Xmx256m} -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
  -Dlog4j2.configurationFile=/kafka/config/log4j2.properties -cp '/kafka/libs/*' \
  org.apache.kafka.connect.cli.ConnectDistributed "$props"
