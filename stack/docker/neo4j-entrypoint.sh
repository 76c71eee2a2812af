#!/usr/bin/env bash
# The official `neo4j` image's contract, for the server jars our pom resolves: NEO4J_AUTH
# (neo4j/<password>, or none), every NEO4J_<setting> variable as a setting (`_` -> `.`,
# `__` -> `_`), data in /data, listening on every interface.
set -euo pipefail
export NEO4J_HOME=/var/lib/neo4j NEO4J_CONF=/var/lib/neo4j/conf
conf="$NEO4J_CONF/neo4j.conf"
# Defaults first, then every NEO4J_<setting>: Neo4j refuses a setting declared twice.
declare -A settings=(
  [server.default_listen_address]=0.0.0.0
  [server.directories.data]=/data
  [server.directories.logs]=/logs
  [server.bolt.tls_level]=DISABLED
  [server.https.enabled]=false
  [server.logs.config]=conf/server-logs.xml
  [server.logs.user.config]=conf/user-logs.xml
  [dbms.usage_report.enabled]=false
  [db.tx_log.rotation.size]=32M
  [db.tx_log.rotation.retention_policy]="128M size"
)
for name in $(compgen -e | grep '^NEO4J_' || true); do
  case "$name" in NEO4J_AUTH | NEO4J_HOME | NEO4J_CONF | NEO4J_ACCEPT_LICENSE_AGREEMENT) continue ;; esac
  key="${name#NEO4J_}"
  key="${key//__/@}"
  key="${key//_/.}"
  settings["${key//@/_}"]="${!name}"
done
[ "${NEO4J_AUTH:-}" = none ] && settings[dbms.security.auth_enabled]=false
for key in "${!settings[@]}"; do printf '%s=%s\n' "$key" "${settings[$key]}"; done >"$conf"
setting() { sed -n "s/^$1=//p" "$conf" | tail -n 1; }
heap="$(setting server.memory.heap.max_size)"
heap="${heap:-512m}"

auth="${NEO4J_AUTH:-}"
unset NEO4J_AUTH
java_tool=(java -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.disable.jmx=true -cp '/var/lib/neo4j/lib/*')
if [ -n "$auth" ] && [ "$auth" != none ] && [ ! -d /data/databases/system ]; then
  # Through a picocli @-file, so the password never shows in the process list.
  pwfile="$NEO4J_HOME/run/initial-password.args"
  (umask 077 && printf '"%s"\n' "$(printf '%s' "${auth#neo4j/}" | sed 's/[\\"]/\\&/g')" >"$pwfile")
  "${java_tool[@]}" org.neo4j.cli.AdminTool dbms set-initial-password "@$pwfile" >/dev/null
  rm -f "$pwfile"
fi
ulimit -n 65536 2>/dev/null || true
exec java "-Xms$heap" "-Xmx$heap" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow \
  -XX:+UnlockExperimentalVMOptions -XX:+TrustFinalNonStaticFields -XX:+DisableExplicitGC \
  -Djdk.nio.maxCachedBufferSize=1024 -Dio.netty.tryReflectionSetAccessible=true \
  --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --enable-native-access=ALL-UNNAMED \
  -Dlog4j2.disable.jmx=true -Dfile.encoding=UTF-8 -cp '/var/lib/neo4j/lib/*' \
  org.neo4j.server.CommunityEntryPoint --home-dir="$NEO4J_HOME" --config-dir="$NEO4J_CONF" --console-mode
