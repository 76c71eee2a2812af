#!/usr/bin/env bash
# Installs everything the stack needs that is missing; a fast no-op when all is there.
. "$(dirname "$0")/lib.sh"
. "$STACK_SRC/components.sh"

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v go >/dev/null || need_apt+=(golang-go)
command -v kcat >/dev/null || need_apt+=(kcat)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v wrk >/dev/null || need_apt+=(wrk)  # bench/ load generator
command -v jq >/dev/null || need_apt+=(jq)    # the teaching guide's curl examples
if ((${#need_apt[@]})); then log "installing ${need_apt[*]}"; apt_install "${need_apt[@]}"; fi

UV_VERSION=0.13.9
if ! command -v uv >/dev/null || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  log "installing uv $UV_VERSION"
  python3 -m pip install -q --disable-pip-version-check "uv==$UV_VERSION" 2>&1 | grep -v "as the 'root' user" || true
fi
(cd "$CAMPUS_ROOT" && uv sync --frozen --quiet)
"$STACK_SRC/dashboard-install.sh"

seen=" "
for line in "${COMPONENTS[@]}"; do
  read -r name _ _ <<<"$line"
  is_service "$name" && continue
  name="$(base_name "$name")"  # a cluster's members share their component's install
  [[ "$seen" == *" $name "* ]] && continue
  seen+="$name "
  if [ -x "$STACK_SRC/$name/install.sh" ]; then "$STACK_SRC/$name/install.sh"; fi
done
