#!/usr/bin/env bash
# make down: stop every component (reverse order) and supervisord; no process is left behind.
. "$(dirname "$0")/lib.sh"
. "$STACK_SRC/components.sh"
. "$STACK_SRC/supervisord.sh"
if supervisord_running; then
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    read -r name _ _ <<<"${COMPONENTS[$i]}"
    [ "$(component_state "$name")" = RUNNING ] || [ "$(component_state "$name")" = STARTING ] || continue
    sctl stop "$name" >/dev/null || true
  done
  pid="$(cat "$SUP_PID" 2>/dev/null || true)"
  sctl shutdown >/dev/null || true
  for _ in $(seq 1 100); do
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
fi
echo "stopped"
