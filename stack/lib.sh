# Sourced by every stack script: project paths and the .env values.
# shellcheck shell=bash
set -euo pipefail
CAMPUS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="$CAMPUS_ROOT/.stack"        # ignored: binaries, data, logs
STACK_SRC="$CAMPUS_ROOT/stack"         # tracked: configs and scripts
mkdir -p "$STACK_DIR"/{data,logs,run,lib,bin}
export CAMPUS_ROOT STACK_DIR STACK_SRC

ensure_env() {
  # First run: .env from .env.example with fresh secrets; later runs keep it.
  if [ ! -f "$CAMPUS_ROOT/.env" ]; then
    local tmp
    tmp="$(mktemp)"
    while IFS= read -r line; do
      if [[ "$line" == *=__generate__ ]]; then
        echo "${line%%=*}=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 48)"
      else
        echo "$line"
      fi
    done <"$CAMPUS_ROOT/.env.example" >"$tmp"
    chmod 600 "$tmp"
    mv "$tmp" "$CAMPUS_ROOT/.env"
    echo "generated $CAMPUS_ROOT/.env"
  fi
  # Names added to .env.example after .env was made get their defaults.
  while IFS= read -r line; do
    [[ "$line" =~ ^[A-Z0-9_]+= ]] || continue
    local name="${line%%=*}"
    grep -q "^$name=" "$CAMPUS_ROOT/.env" || {
      if [[ "$line" == *=__generate__ ]]; then
        echo "$name=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 48)" >>"$CAMPUS_ROOT/.env"
      else
        echo "$line" >>"$CAMPUS_ROOT/.env"
      fi
    }
  done <"$CAMPUS_ROOT/.env.example"
}
# In a container the variables come from the environment, not a file here. CAMPUS_ENV_FILE=none
# (the Helm chart's Jobs, which hold no JWT secret) or CAMPUS_NO_ENV=1 (image builds: no .env,
# so no secret lands in a layer; compose's containers: only what each needs) says so outright.
if [ "${CAMPUS_ENV_FILE:-}" != none ] && [ -z "${CAMPUS_NO_ENV:-}" ] &&
  { [ -z "${CAMPUS_JWT_SECRET:-}" ] || [ -f "$CAMPUS_ROOT/.env" ]; }; then
  ensure_env
  set -a
  # shellcheck disable=SC1091
  . "$CAMPUS_ROOT/.env"
  set +a
fi

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "ERROR: $*" >&2; exit 1; }

# wait_for NAME TIMEOUT_S CMD...: poll CMD until it succeeds; on timeout show the log tail and fail.
wait_for() {
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "ERROR: $name did not become ready within ${timeout}s. Last lines of $STACK_DIR/logs/$name.log:" >&2
      tail -n 40 "$STACK_DIR/logs/$name.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
}

port_free() { ! (exec 3<>"/dev/tcp/$CAMPUS_HOST/$1") 2>/dev/null; }

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ ! -f "$STACK_DIR/run/apt-updated" ]; then
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && touch "$STACK_DIR/run/apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}
