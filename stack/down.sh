#!/usr/bin/env bash
# make down: stop every component (by wave, reverse order) and supervisord; leaves no process.
. "$(dirname "$0")/lib.sh"
. "$STACK_SRC/components.sh"
. "$STACK_SRC/supervisord.sh"
if supervisord_running; then
  for wave in 4 3 2 1; do
    for line in "${COMPONENTS[@]}"; do
      read -r name _ _ w <<<"$line"
      [ "$w" = "$wave" ] || continue
      case "$(component_state "$name")" in
        RUNNING | STARTING | BACKOFF) sctl stop "$name" >/dev/null 2>&1 & ;;
      esac
    done
    wait  # a wave stops together; the stores it used stay up until it is gone
  done
  pid="$(cat "$SUP_PID" 2>/dev/null || true)"
  sctl shutdown >/dev/null || true
  for _ in $(seq 1 100); do
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
fi
echo "stopped"
