#!/usr/bin/env bash
# scoped.sh NAME CMD...: run CMD (a component of the stack) with only the secrets NAME needs.
# supervisord itself starts with no CAMPUS_* secrets (stack/up.sh); this reads .env (natively)
# or the container's environment, drops every secret not in stack/secrets.sh for NAME, marks
# the environment as scoped (so lib.sh and the Python settings do not read .env back) and execs.
# Values travel as environment only, never as arguments, so `ps` shows none of them.
set -euo pipefail
name="$1"; shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=stack/secrets.sh
. "$root/stack/secrets.sh"
if [ -f "$root/.env" ]; then
  set -a
  # shellcheck disable=SC1091
  . "$root/.env"
  set +a
fi
# The cluster topology's settings (bootstrap list, replication factor, Redis Cluster mode);
# none of them is a secret. Written by stack/up.sh, removed by `make clean`.
if [ -f "$root/.stack/data/topology.env" ]; then
  set -a
  # shellcheck disable=SC1091
  . "$root/.stack/data/topology.env"
  set +a
fi
allowed=" $(component_secrets "$name") "
while IFS= read -r var; do
  if is_secret_name "$var" && [[ "$allowed" != *" $var "* ]]; then
    unset "$var"
  fi
done < <(compgen -e)
export CAMPUS_ENV_SCOPED=1
exec "$@"
