#!/usr/bin/env bash
# Zipkin server in the foreground (supervisord owns the process): in-memory storage, UI at /zipkin/.
# In-memory is the classroom's choice: traces are for looking at now, and a restart forgets them.
. "$(dirname "$0")/../lib.sh"

jar="$(compgen -G "$STACK_DIR/lib/zipkin/zipkin-server-*-exec.jar" | head -n1 || true)"
[ -n "$jar" ] || die "zipkin jar missing in $STACK_DIR/lib/zipkin: run stack/zipkin/install.sh"

# Zipkin reads its settings from the environment (zipkin-server-shared.yml).
export QUERY_PORT="$CAMPUS_ZIPKIN_PORT"
export STORAGE_TYPE=mem
# Bounds the memory the spans may take inside the heap below (Zipkin evicts the oldest traces).
# 100,000 did not fit in 384 MiB: at 100 % sampling under load (wrk on an uncached read) Zipkin
# died of OutOfMemoryError, and supervisord's restarts took the cores from everything else.
export MEM_MAX_SPANS="${CAMPUS_ZIPKIN_MAX_SPANS:-20000}"
# Zipkin's own self-tracing and its Armeria / Spring banners add nothing here.
export SELF_TRACING_ENABLED=false
export COLLECTOR_KAFKA_ENABLED=false COLLECTOR_RABBITMQ_ENABLED=false COLLECTOR_ACTIVEMQ_ENABLED=false
export COLLECTOR_SCRIBE_ENABLED=false

exec java -Xms"$CAMPUS_ZIPKIN_HEAP" -Xmx"$CAMPUS_ZIPKIN_HEAP" -XX:+ExitOnOutOfMemoryError \
  -XX:TieredStopAtLevel=1 -Dfile.encoding=UTF-8 \
  -Darmeria.ports[0].ip="$CAMPUS_HOST" -Darmeria.ports[0].port="$CAMPUS_ZIPKIN_PORT" \
  -Darmeria.ports[0].protocols[0]=http \
  -jar "$jar"
