#!/usr/bin/env bash
# Kafka broker (KRaft) jars from Maven Central into .stack/lib/kafka, via the checked-in pom.
# Idempotent: a stamp holding the hash of the pom (and of this script) makes a re-run a no-op.
. "$(dirname "$0")/../lib.sh"

POM="$STACK_SRC/kafka/pom.xml"
LIB="$STACK_DIR/lib/kafka"
STAMP="$LIB/.installed"
want="$(cat "$POM" "$0" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

# java (OpenJDK 17 is Debian 12's default) and maven, only if missing
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ((${#missing[@]})); then
  log "kafka: apt-get install ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

log "kafka: resolving broker jars (pom $POM)"
tmp="$STACK_DIR/lib/.kafka.tmp"
rm -rf "$tmp"
if ! out="$(mvn -B -q -Dstyle.color=never -f "$POM" -P broker -Dstack.dir="$STACK_DIR" -Dlib.dir="$tmp" dependency:copy-dependencies 2>&1)"; then
  printf '%s\n' "$out" >&2
  die "kafka: maven failed"
fi
ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka: no kafka_2.13 jar resolved into $tmp"
rm -rf "$LIB"
mv "$tmp" "$LIB"
echo "$want" >"$STAMP"
log "kafka: installed $(ls "$LIB"/*.jar | wc -l) jars into $LIB"
