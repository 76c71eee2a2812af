#!/usr/bin/env bash
. "$(dirname "$0")/lib.sh"
. "$STACK_SRC/components.sh"
. "$STACK_SRC/supervisord.sh"
if supervisord_running; then sctl status || true; else echo "the stack is not running (make up)"; fi
