#!/usr/bin/env bash
# Prints a Kubernetes Secret holding every credential the chart reads (secrets.keys), for
# secrets.existingSecret:
#   deploy/helm/credentials.sh [NAME] | kubectl -n campus create -f -
# or, with --keys-only, a patch adding only the Ed25519 pairs to a Secret made before the
# services signed their calls (docs/kubernetes.md, "Upgrading from a chart without keys"):
#   deploy/helm/credentials.sh --keys-only |
#     kubectl -n campus patch secret campusconnect-credentials --type merge --patch-file /dev/stdin
# The values come from the same generators as the native .env (stack/lib.sh): 48 random letters
# and digits for each `__generate__` name of .env.example, and for each `__ed25519__` name a
# fresh Ed25519 pair, the private *_SIGNING_KEY with its public *_VERIFY_KEY (the raw keys as
# unpadded base64url, the form libs/common/campus_common/internal_auth.py reads).
# Nothing is written to disk, and no value appears in a process's arguments; pipe it to
# `kubectl create` (not `apply`, which would copy every value into an annotation).
set -euo pipefail
KEYS_ONLY=""
if [ "${1:-}" = --keys-only ]; then KEYS_ONLY=1; shift; fi
NAME="${1:-campusconnect-credentials}"
[[ "$NAME" =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || { echo "ERROR: '$NAME' is not a valid Secret name" >&2; exit 1; }
# Only lib.sh's generators: CAMPUS_ENV_FILE=none keeps it from writing or reading a .env.
CAMPUS_ENV_FILE=none . "$(dirname "$0")/../../stack/lib.sh"

if [ -z "$KEYS_ONLY" ]; then
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata:"
  echo "  name: $NAME"
  echo "  labels:"
  echo "    app.kubernetes.io/part-of: campusconnect"
  echo "type: Opaque"
fi
echo "stringData:"
while IFS= read -r line; do
  case "$line" in
    # Grafana runs only in docker-compose (profile observability): the chart deploys none.
    CAMPUS_GRAFANA_ADMIN_PASSWORD=*) ;;
    *=__generate__) [ -n "$KEYS_ONLY" ] || echo "  ${line%%=*}: \"$(random_secret)\"" ;;
    *=__ed25519__)
      # keypair_lines prints NAME_SIGNING_KEY=... then NAME_VERIFY_KEY=...
      keypair_lines "${line%%=*}" | while IFS='=' read -r key value; do
        [[ "$value" =~ ^[A-Za-z0-9_-]{43}$ ]] || { echo "ERROR: openssl made no Ed25519 key for $key" >&2; exit 1; }
        echo "  $key: \"$value\""
      done
      ;;
  esac
done <"$CAMPUS_ROOT/.env.example"
