#!/usr/bin/env bash
# Docker engine: install Debian's docker.io (and Compose v1) when missing, start dockerd when none
# answers. Part of `make images`, `make test` and CI, as every other install step.
# dockerd is left running afterwards, like an installed system service (its pid in
# .stack/run/dockerd.pid); the test suites remove every container they start.
. "$(dirname "$0")/../lib.sh"

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
if ((${#need[@]})); then
  log "docker: installing ${need[*]} (Debian packages)"
  apt_install "${need[@]}"
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi
[ "$(id -u)" = 0 ] || die "docker: no engine answers and starting dockerd needs root (sudo dockerd &)"
# No init system on our machines: start it in the background, its log beside the stack's logs.
log "docker: starting dockerd (log: $STACK_DIR/logs/dockerd.log)"
setsid nohup dockerd --pidfile "$STACK_DIR/run/dockerd.pid" >>"$STACK_DIR/logs/dockerd.log" 2>&1 </dev/null &
deadline=$((SECONDS + 60))
until docker info >/dev/null 2>&1; do
  ((SECONDS < deadline)) || { tail -n 30 "$STACK_DIR/logs/dockerd.log" >&2; die "docker: dockerd did not answer within 60s"; }
  sleep 0.5
done
log "docker: dockerd $(docker version -f '{{.Server.Version}}') running ($(docker info -f '{{.Driver}}'))"
