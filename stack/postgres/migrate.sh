#!/usr/bin/env bash
# migrate.sh DB PATH...: apply each numbered .sql file once, in name order, each in one
# transaction, under a lock; refuses to run when an applied file has changed (campus_common.migrate).
. "$(dirname "$0")/../lib.sh"
exec "$CAMPUS_ROOT/.venv/bin/python" -m campus_common.migrate "$@"
