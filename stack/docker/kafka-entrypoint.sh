#!/usr/bin/env bash
# The official `apache/kafka` image's contract, for the broker jars our pom resolves: every
# KAFKA_<NAME> variable becomes a server property (`_` -> `.`, `__` -> `_`, `___` -> `-`),
# CLUSTER_ID names the cluster, KAFKA_HEAP_OPTS sizes the heap, KAFKA_JVM_PERFORMANCE_OPTS
# picks the collector. Storage is formatted once.
set -euo pipefail
cd /opt/kafka
props=/opt/kafka/run/server.properties
: >"$props"
for name in $(compgen -e | grep '^KAFKA_' || true); do
  case "$name" in KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_*_OPTS | KAFKA_VERSION) continue ;; esac
  key="${name#KAFKA_}"
  key="${key,,}"
  key="${key//___/-}"
  key="${key//__/@}"
  key="${key//_/.}"
  key="${key//@/_}"
  printf '%s=%s\n' "$key" "${!name}" >>"$props"
done
grep -q '^log.dirs=' "$props" || echo "log.dirs=/var/lib/kafka/data" >>"$props"
log_dir="$(sed -n 's/^log.dirs=//p' "$props" | cut -d, -f1)"
java_cmd=(java -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties -cp '/opt/kafka/libs/*')
if [ ! -f "$log_dir/meta.properties" ]; then
  # A static quorum (controller.quorum.voters) is formatted as is; a dynamic one as --standalone.
  mode=(--standalone)
  grep -q '^controller.quorum.voters=' "$props" && mode=()
  "${java_cmd[@]}" -Xmx256m kafka.tools.StorageTool format "${mode[@]}" -g \
    -t "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" -c "$props"
fi
# shellcheck disable=SC2086 # the heap options are a list of flags
# KAFKA_JVM_PERFORMANCE_OPTS: the collector flags, as kafka-run-class.sh of the official image.
exec "${java_cmd[@]}" ${KAFKA_HEAP_OPTS:--Xms256m -Xmx256m} \
  ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20} -XX:+ExitOnOutOfMemoryError \
  ${KAFKA_OPTS:-} kafka.Kafka "$props"
