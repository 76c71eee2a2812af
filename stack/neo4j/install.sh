#!/usr/bin/env bash
# Neo4j 5.26 LTS Community: copy the server's runtime jars from Maven Central into .stack/lib/neo4j.
# Idempotent: the stamp holds the pom's hash, so a second run with an unchanged pom is a no-op.
. "$(dirname "$0")/../lib.sh"

POM="$STACK_SRC/neo4j/pom.xml"
LIB="$STACK_DIR/lib/neo4j"
STAMP="$LIB/.pom.sha256"
want="$(sha256sum "$POM" | cut -d' ' -f1)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && compgen -G "$LIB/neo4j-5.*.jar" >/dev/null; then
  exit 0
fi

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: install them with apt-get"
  log "neo4j: apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

log "neo4j: resolving $(grep -o '<neo4j.version>[^<]*' "$POM" | cut -d'>' -f2) from Maven Central into $LIB"
tmp="$STACK_DIR/lib/.neo4j.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B --no-transfer-progress -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$tmp"
compgen -G "$tmp/neo4j-5.*.jar" >/dev/null || die "neo4j: copy-dependencies produced no neo4j jar"
echo "$want" >"$tmp/.pom.sha256"
rm -rf "$LIB"
mv "$tmp" "$LIB"
trap - EXIT
log "neo4j: installed $(find "$LIB" -name '*.jar' | wc -l) jars ($(du -sh "$LIB" | cut -f1))"
