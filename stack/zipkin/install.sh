#!/usr/bin/env bash
# Zipkin server 3.x (exec jar, UI included) from Maven Central into .stack/lib/zipkin.
# Idempotent: a stamp holding the hash of the pom and this script makes a re-run a no-op.
. "$(dirname "$0")/../lib.sh"

POM="$STACK_SRC/zipkin/pom.xml"
LIB="$STACK_DIR/lib/zipkin"
STAMP="$LIB/.installed"
want="$(cat "$POM" "$0" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && compgen -G "$LIB/zipkin-server-*-exec.jar" >/dev/null; then
  exit 0
fi

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ((${#missing[@]})); then log "zipkin: installing ${missing[*]}"; apt_install "${missing[@]}"; fi

log "zipkin: resolving $(grep -o '<zipkin.version>[^<]*' "$POM" | cut -d'>' -f2) from Maven Central into $LIB"
tmp="$STACK_DIR/lib/.zipkin.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
if ! out="$(mvn -B -q -Dstyle.color=never --no-transfer-progress -f "$POM" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1)"; then
  printf '%s\n' "$out" >&2
  die "zipkin: maven failed"
fi
compgen -G "$tmp/zipkin-server-*-exec.jar" >/dev/null || die "zipkin: no zipkin-server exec jar resolved"
echo "$want" >"$tmp/.installed"
rm -rf "$LIB"
mv "$tmp" "$LIB"
trap - EXIT
log "zipkin: installed $(basename "$LIB"/zipkin-server-*-exec.jar) ($(du -sh "$LIB" | cut -f1))"
