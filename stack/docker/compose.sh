#!/usr/bin/env bash
# docker-compose for this checkout, with the images chosen for this machine.
#   compose.sh up        official images where they can be pulled, else the ones `make images`
#                        builds (said per image); then wait until the gateway is healthy
#   compose.sh down      remove every container, network and volume of the project
#   compose.sh cli ARGS  the `campus` CLI inside the internal network
#   compose.sh ARGS      any docker-compose command, e.g. `ps`, `logs gateway`, `exec users ...`
. "$(dirname "$0")/../lib.sh"
cd "$CAMPUS_ROOT"
# One project per checkout, so several checkouts on one machine never share containers.
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-campus$(basename "$CAMPUS_ROOT" | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9')}"
compose() { docker-compose "$@"; }

# name in images.txt -> (variable, official image = the compose default) for each store
choose_images() {
  local official local_name var image tag
  while read -r var local_name; do
    official="$(sed -n "s/.*\${$var:-\([^}]*\)}.*/\1/p" docker-compose.yml | head -n1)"
    if [ -n "${!var:-}" ]; then
      continue  # chosen by the caller
    elif docker image inspect "$official" >/dev/null 2>&1 || timeout 60 docker pull -q "$official" >/dev/null 2>&1; then
      log "compose: $var=$official (official)"
    else
      tag="$(awk -v n="$local_name" '$1 == n {print $2}' "$STACK_SRC/docker/images.txt")"
      log "compose: $official cannot be pulled: $var=$tag (built here)"
      export "$var=$tag"
      [ "$local_name" = ferretdb ] && export CAMPUS_COMPOSE_MONGO_AUTH_MECHANISM=PLAIN
    fi
  done <<'MAP'
CAMPUS_IMAGE_POSTGRES postgres
CAMPUS_IMAGE_TIMESCALEDB postgres
CAMPUS_IMAGE_REDIS redis
CAMPUS_IMAGE_KAFKA kafka
CAMPUS_IMAGE_CONNECT connect
CAMPUS_IMAGE_NEO4J neo4j
CAMPUS_IMAGE_MONGO ferretdb
MAP
  # The services image is always ours; stack/docker/images.sh builds it like the stores'.
  : "${CAMPUS_IMAGE_SERVICES:=$(awk '$1 == "services" {print $2}' "$STACK_SRC/docker/images.txt")}"
  export CAMPUS_IMAGE_SERVICES
}

case "${1:-}" in
  up)
    "$STACK_SRC/docker/images.sh"
    choose_images
    # The chosen images are remembered, so `down`, `cli` and `logs` see the same project.
    env | grep -E '^(CAMPUS_IMAGE_|CAMPUS_COMPOSE_MONGO_AUTH_MECHANISM=)' >"$STACK_DIR/run/compose-images.env"
    start=$SECONDS
    compose up -d --no-build
    deadline=$((SECONDS + 600))
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q gateway)" 2>/dev/null)" = healthy ]; do
      ((SECONDS < deadline)) || { compose ps >&2; compose logs --tail 30 >&2; die "compose: the gateway is not healthy after 600s"; }
      sleep 2
    done
    log "compose: up and healthy in $((SECONDS - start))s: http://${CAMPUS_HOST}:${CAMPUS_COMPOSE_GATEWAY_PORT}/docs"
    ;;
  down)
    docker info >/dev/null 2>&1 || exit 0
    set -a
    # shellcheck disable=SC1091
    [ -f "$STACK_DIR/run/compose-images.env" ] && . "$STACK_DIR/run/compose-images.env"
    set +a
    compose --profile tools --profile observability down --volumes --remove-orphans --timeout 20
    rm -f "$STACK_DIR/run/compose-images.env"
    ;;
  cli)
    shift
    set -a
    # shellcheck disable=SC1091
    . "$STACK_DIR/run/compose-images.env"
    set +a
    # Wide output: the demos print one line per step.
    compose --profile tools run --rm --no-deps -T -e COLUMNS=200 campus "$@"
    ;;
  *)
    set -a
    # shellcheck disable=SC1091
    [ -f "$STACK_DIR/run/compose-images.env" ] && . "$STACK_DIR/run/compose-images.env"
    set +a
    compose "$@"
    ;;
esac
