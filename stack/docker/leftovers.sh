#!/usr/bin/env bash
# Fails when a test run left a container, network or volume behind: this checkout's compose
# project, or anything testcontainers labelled.
. "$(dirname "$0")/../lib.sh"
project="${COMPOSE_PROJECT_NAME:-campus$(basename "$CAMPUS_ROOT" | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9')}"
left=""
for filter in "label=com.docker.compose.project=$project" "label=org.testcontainers=true"; do
  left+="$(docker ps -aq --filter "$filter")"
  left+="$(docker network ls -q --filter "$filter")"
  left+="$(docker volume ls -q --filter "$filter")"
done
if [ -n "$left" ]; then
  docker ps -a --filter "label=com.docker.compose.project=$project" >&2
  docker ps -a --filter "label=org.testcontainers=true" >&2
  docker network ls >&2
  docker volume ls >&2
  die "docker: containers, networks or volumes were left behind (above)"
fi
log "docker: nothing left behind"
