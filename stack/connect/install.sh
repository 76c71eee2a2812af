#!/usr/bin/env bash
# Kafka Connect worker jars into .stack/lib/connect and the Debezium PostgreSQL connector plugin
# into .stack/connect-plugins (the plugin path; never on the worker classpath), both via the
# checked-in stack/kafka/pom.xml (profile "connect"). Idempotent: a stamp holding the hash of the
# pom (and of this script) makes a re-run a no-op.
. "$(dirname "$0")/../lib.sh"

POM="$STACK_SRC/kafka/pom.xml"
LIB="$STACK_DIR/lib/connect"
PLUGINS="$STACK_DIR/connect-plugins"
STAMP="$LIB/.installed"
want="$(cat "$POM" "$0" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -d "$PLUGINS/debezium-connector-postgres" ]; then
  exit 0
fi

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ((${#missing[@]})); then
  log "connect: apt-get install ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

log "connect: resolving worker jars and the Debezium plugin (pom $POM)"
tmp_lib="$STACK_DIR/lib/.connect.tmp"
tmp_plugins="$STACK_DIR/.connect-plugins.tmp"
markers="$(mktemp -d)"
trap 'rm -rf "$markers"' EXIT
rm -rf "$tmp_lib" "$tmp_plugins"
if ! out="$(mvn -B -q -Dstyle.color=never -f "$POM" -P connect -Dstack.dir="$STACK_DIR" -Dlib.dir="$tmp_lib" \
  -Dplugins.dir="$tmp_plugins" -Dmarkers.dir="$markers" \
  dependency:copy-dependencies dependency:unpack@debezium-plugin 2>&1)"; then
  printf '%s\n' "$out" >&2
  die "connect: maven failed"
fi
ls "$tmp_lib"/connect-runtime-*.jar >/dev/null 2>&1 || die "connect: no connect-runtime jar resolved"
ls "$tmp_plugins"/debezium-connector-postgres/debezium-connector-postgres-*.jar >/dev/null 2>&1 ||
  die "connect: Debezium plugin not unpacked into $tmp_plugins"
rm -rf "$LIB" "$PLUGINS"
mv "$tmp_lib" "$LIB"
mv "$tmp_plugins" "$PLUGINS"
echo "$want" >"$STAMP"
log "connect: installed $(ls "$LIB"/*.jar | wc -l) worker jars into $LIB, plugins: $(ls "$PLUGINS" | tr '\n' ' ')"
