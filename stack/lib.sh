# Sourced by every stack script: project paths and the .env values.
# shellcheck shell=bash
set -euo pipefail
CAMPUS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="$CAMPUS_ROOT/.stack"        # ignored: binaries, data, logs
STACK_SRC="$CAMPUS_ROOT/stack"         # tracked: configs and scripts
mkdir -p "$STACK_DIR"/{data,logs,run,lib,bin}
export CAMPUS_ROOT STACK_DIR STACK_SRC

random_secret() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 48; }

# keypair_lines NAME_SIGNING_KEY: a fresh Ed25519 pair as two .env lines, the private key (raw,
# base64url) under NAME_SIGNING_KEY and its public key under NAME_VERIFY_KEY.
keypair_lines() {
  local name="$1" der priv pub
  der="$(mktemp)"
  openssl genpkey -algorithm ed25519 -outform DER -out "$der" 2>/dev/null
  priv="$(tail -c 32 "$der" | base64 -w0 | tr '+/' '-_' | tr -d '=')"
  pub="$(openssl pkey -inform DER -in "$der" -pubout -outform DER 2>/dev/null | tail -c 32 | base64 -w0 | tr '+/' '-_' | tr -d '=')"
  rm -f "$der"
  echo "$name=$priv"
  echo "${name%_SIGNING_KEY}_VERIFY_KEY=$pub"
}

ensure_env() {
  # First run: .env from .env.example with fresh secrets; later runs keep it.
  if [ ! -f "$CAMPUS_ROOT/.env" ]; then
    local tmp
    tmp="$(mktemp)"
    while IFS= read -r line; do
      if [[ "$line" == *=__generate__ ]]; then
        echo "${line%%=*}=$(random_secret)"
      elif [[ "$line" == *=__ed25519__ ]]; then
        keypair_lines "${line%%=*}"
      elif [[ "$line" == *=__ed25519_public__ ]]; then
        continue # written by keypair_lines with its signing key
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
    [[ "$line" == *=__ed25519_public__ ]] && continue # comes with its signing key
    local name="${line%%=*}"
    grep -q "^$name=" "$CAMPUS_ROOT/.env" || {
      if [[ "$line" == *=__generate__ ]]; then
        echo "$name=$(random_secret)" >>"$CAMPUS_ROOT/.env"
      elif [[ "$line" == *=__ed25519__ ]]; then
        keypair_lines "$name" >>"$CAMPUS_ROOT/.env"
      else
        echo "$line" >>"$CAMPUS_ROOT/.env"
      fi
    }
  done <"$CAMPUS_ROOT/.env.example"
}
# In a container the variables come from the environment, not a file here. CAMPUS_ENV_FILE=none
# (the Helm chart's Jobs, which hold no JWT secret) or CAMPUS_NO_ENV=1 (image builds: no .env,
# so no secret lands in a layer; compose's containers: only what each needs) says so outright.
# Under supervisord (CAMPUS_ENV_SCOPED=1, see stack/scoped.sh) a component has been given only
# the variables it needs: it must not read the others back from .env.
if [ "${CAMPUS_ENV_FILE:-}" != none ] && [ -z "${CAMPUS_NO_ENV:-}" ] && [ -z "${CAMPUS_ENV_SCOPED:-}" ] &&
  { [ -z "${CAMPUS_JWT_SECRET:-}" ] || [ -f "$CAMPUS_ROOT/.env" ]; }; then
  ensure_env
  set -a
  # shellcheck disable=SC1091
  . "$CAMPUS_ROOT/.env"
  set +a
fi

# jvm_gc_flags: the collector flags every JVM server (Kafka, Connect, Neo4j) starts with.
jvm_gc_flags() {
  case "${CAMPUS_JVM_GC:-G1}" in
    G1) echo "-XX:+UseG1GC -XX:MaxGCPauseMillis=${CAMPUS_JVM_GC_PAUSE_MS:-20} -XX:InitiatingHeapOccupancyPercent=35" ;;
    ZGC) echo "-XX:+UseZGC" ;;
    *) echo "ERROR: CAMPUS_JVM_GC must be G1 or ZGC, not '$CAMPUS_JVM_GC'" >&2; return 1 ;;
  esac
}

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

# gateway_workers: the gateway's uvicorn worker count, from CAMPUS_GATEWAY_WORKERS; `auto` (the
# default) is the cores this process may use (`nproc`), as bench/api.py resolves it for its anchor.
gateway_workers() {
  local workers="${CAMPUS_GATEWAY_WORKERS:-auto}"
  [ "$workers" = auto ] && workers="$(nproc)"
  [[ "$workers" =~ ^[1-9][0-9]*$ ]] ||
    die "CAMPUS_GATEWAY_WORKERS must be a positive whole number or auto, not '$workers'"
  echo "$workers"
}

# member_number NAME: N for a cluster member named <component>-N, empty for a single node.
member_number() { if [[ "$1" =~ -([0-9]+)$ ]]; then echo "${BASH_REMATCH[1]}"; fi; }

# node_port VAR_BASE N: the port of cluster member N (member 1, or none, uses the plain name):
# node_port KAFKA 2 -> $CAMPUS_KAFKA_2_PORT, node_port KAFKA 1 -> $CAMPUS_KAFKA_PORT.
node_port() {
  local var="CAMPUS_${1}_PORT"
  [ -n "${2:-}" ] && [ "$2" != 1 ] && var="CAMPUS_${1}_${2}_PORT"
  echo "${!var}"
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
