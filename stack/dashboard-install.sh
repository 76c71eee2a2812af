#!/usr/bin/env bash
# The dashboard's front-end libraries, pinned by package-lock.json; a no-op when installed.
. "$(dirname "$0")/lib.sh"
dir="$CAMPUS_ROOT/services/gateway/dashboard"
stamp="$dir/node_modules/.campus-lock.sha256"
want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && exit 0
command -v npm >/dev/null || apt_install nodejs npm
log "installing the dashboard's npm packages"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
echo "$want" >"$stamp"
