#!/usr/bin/env bash
# make images: Docker (installed and started if needed), the base image, then every image in
# images.txt. Layers are cached, so a second run only rebuilds what changed.
# images.sh NAME...: only those images.
. "$(dirname "$0")/../lib.sh"
"$STACK_SRC/docker/engine.sh"
"$STACK_SRC/docker/base-image.sh"
# The classic builder: Debian's docker.io has no buildx, and BuildKit's frontends would be
# pulled from Docker Hub.
export DOCKER_BUILDKIT=0
# The build stages trust what this host trusts (see trust-host-ca.sh); git-ignored.
mkdir -p "$CAMPUS_ROOT/.docker-ca"
cmp -s /etc/ssl/certs/ca-certificates.crt "$CAMPUS_ROOT/.docker-ca/ca-certificates.crt" ||
  cp /etc/ssl/certs/ca-certificates.crt "$CAMPUS_ROOT/.docker-ca/ca-certificates.crt"
start=$SECONDS
while read -r name tag file target; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  (($# == 0)) || [[ " $* " == *" $name "* ]] || continue
  args=(-f "$CAMPUS_ROOT/$file" -t "$tag")
  [ "$target" = - ] || args+=(--target "$target")
  t=$SECONDS
  if ! docker build -q "${args[@]}" "$CAMPUS_ROOT" >"$STACK_DIR/logs/image-$name.log" 2>&1; then
    tail -n 40 "$STACK_DIR/logs/image-$name.log" >&2
    die "docker: building $tag failed (log: $STACK_DIR/logs/image-$name.log)"
  fi
  log "docker: $tag ready in $((SECONDS - t))s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}'))"
done <"$STACK_SRC/docker/images.txt"
log "docker: images ready in $((SECONDS - start))s"
