#!/usr/bin/env bash
# Neo4j 5.26 LTS Community server in the foreground (supervisord owns the process).
# Home: .stack/data/neo4j (conf/ rendered from .env on every start, data/ survives restarts).
. "$(dirname "$0")/../lib.sh"

LIB="$STACK_DIR/lib/neo4j"
NEO4J_HOME="$STACK_DIR/data/neo4j"
NEO4J_CONF="$NEO4J_HOME/conf"
export NEO4J_HOME NEO4J_CONF   # read by the admin tool (org.neo4j.cli.AdminTool)

compgen -G "$LIB/neo4j-5.*.jar" >/dev/null || die "neo4j jars missing in $LIB: run stack/neo4j/install.sh"
((${#CAMPUS_NEO4J_PASSWORD} >= 8)) || die "CAMPUS_NEO4J_PASSWORD must have at least 8 characters (Neo4j's minimum)"

# Neo4j 5.26 runs on Java 17 or 21 (not 25): take the first such JVM.
java_major() { "$1" -version 2>&1 | sed -n 's/^[^"]* version "\([0-9]*\).*/\1/p' | head -n1; }
JAVA=""
for c in "$(command -v java || true)" /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/java-21-openjdk-*/bin/java \
         /usr/lib/jvm/temurin-21*/bin/java /usr/lib/jvm/temurin-17*/bin/java; do
  [ -n "$c" ] && [ -x "$c" ] || continue
  case "$(java_major "$c")" in 17 | 21) JAVA="$c"; break ;; esac
done
[ -n "$JAVA" ] || die "neo4j needs Java 17 or 21 (apt-get install openjdk-17-jre-headless)"

mkdir -p "$NEO4J_CONF" "$NEO4J_HOME"/{data,logs,plugins,import,run,licenses}

# --- configuration (rendered on every start, so .env changes apply) ---
install -m 644 "$STACK_SRC/neo4j/user-logs.xml" "$NEO4J_CONF/user-logs.xml"
install -m 644 "$STACK_SRC/neo4j/server-logs.xml" "$NEO4J_CONF/server-logs.xml"
cat >"$NEO4J_CONF/neo4j.conf.tmp" <<CONF
# Rendered by stack/neo4j/run.sh from .env on every start; edits here are lost.
server.default_listen_address=$CAMPUS_HOST
server.default_advertised_address=$CAMPUS_HOST
server.bolt.enabled=true
server.bolt.listen_address=$CAMPUS_HOST:$CAMPUS_NEO4J_BOLT_PORT
server.bolt.advertised_address=$CAMPUS_HOST:$CAMPUS_NEO4J_BOLT_PORT
server.bolt.tls_level=DISABLED
server.http.enabled=true
server.http.listen_address=$CAMPUS_HOST:$CAMPUS_NEO4J_HTTP_PORT
server.http.advertised_address=$CAMPUS_HOST:$CAMPUS_NEO4J_HTTP_PORT
server.https.enabled=false

# memory: the heap is set by -Xms/-Xmx below (these two only document it for the admin tools)
server.memory.heap.initial_size=$CAMPUS_NEO4J_HEAP
server.memory.heap.max_size=$CAMPUS_NEO4J_HEAP
server.memory.pagecache.size=$CAMPUS_NEO4J_PAGECACHE

# security: authentication on; the initial password of user neo4j is set before the first start
dbms.security.auth_enabled=true

# no outbound network
dbms.usage_report.enabled=false

# logging (log4j2 files next to this one)
server.logs.config=conf/server-logs.xml
server.logs.user.config=conf/user-logs.xml

# keep transaction logs small on a dev machine (the default preallocates 256 MiB per database)
db.tx_log.rotation.size=32M
db.tx_log.rotation.retention_policy=128M size

# Bolt's two netty event-loop groups each wait a 5 s quiet period on shutdown (10 s of the
# SIGTERM stop time, after the databases are already checkpointed and closed): 1 s is plenty here.
internal.dbms.bolt.netty_server_shutdown_quiet_period=1
CONF
mv "$NEO4J_CONF/neo4j.conf.tmp" "$NEO4J_CONF/neo4j.conf"

# --- initial password: only before the very first start (the system database does not exist yet).
# Later starts keep the password stored in the system database (change it with ALTER USER).
if [ ! -d "$NEO4J_HOME/data/databases/system" ]; then
  log "neo4j: first start, setting the initial password of user neo4j"
  # The password goes through a picocli @-file so it never shows up in the process list.
  pwfile="$NEO4J_HOME/run/initial-password.args"
  (umask 077 && printf '"%s"\n' "$(printf '%s' "$CAMPUS_NEO4J_PASSWORD" | sed 's/[\\"]/\\&/g')" >"$pwfile")
  rc=0
  "$JAVA" -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.disable.jmx=true -Dfile.encoding=UTF-8 \
    -cp "$LIB/*" org.neo4j.cli.AdminTool dbms set-initial-password "@$pwfile" || rc=$?
  rm -f "$pwfile"
  ((rc == 0)) || die "neo4j: set-initial-password failed (exit $rc)"
fi

# The server keeps its password in the system database: it needs no copy in its environment.
unset CAMPUS_NEO4J_PASSWORD

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# JVM flags follow the distribution's neo4j.conf (server.jvm.additional), minus AlwaysPreTouch
# (keeps idle RSS low); the collector is the one every JVM server here gets (.env).
gc="$(jvm_gc_flags)"
read -ra GC_FLAGS <<<"$gc"
exec "$JAVA" \
  -Xms"$CAMPUS_NEO4J_HEAP" -Xmx"$CAMPUS_NEO4J_HEAP" \
  "${GC_FLAGS[@]}" -XX:-OmitStackTraceInFastThrow -XX:+ExitOnOutOfMemoryError \
  -XX:+UnlockExperimentalVMOptions -XX:+TrustFinalNonStaticFields -XX:+DisableExplicitGC \
  -XX:MaxMetaspaceSize=1024m -XX:ReservedCodeCacheSize=512m \
  -Djdk.nio.maxCachedBufferSize=1024 -Dio.netty.tryReflectionSetAccessible=true \
  --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --enable-native-access=ALL-UNNAMED \
  -Dlog4j2.disable.jmx=true -Dfile.encoding=UTF-8 \
  -cp "$LIB/*" org.neo4j.server.CommunityEntryPoint \
  --home-dir="$NEO4J_HOME" --config-dir="$NEO4J_CONF" --console-mode
