#!/usr/bin/env bash
# Builds Helm (pinned) into .stack/bin/helm from the Go module proxy, for the chart tests in
# tests/unit/test_helm_chart.py. A no-op when that version is already there. No chart
# repository is ever contacted: the chart has no dependencies, and the tests only lint and render.
# Standalone (does not source lib.sh): the unit tests call it and must not generate .env.
set -euo pipefail
HELM_VERSION=v3.22.0
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN_DIR="$ROOT/.stack/bin"
BIN="$BIN_DIR/helm"

if [ -x "$BIN" ] && [ "$("$BIN" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]; then
  exit 0
fi
die() { echo "ERROR: helm: $*" >&2; exit 1; }
command -v go >/dev/null 2>&1 || die "Go >= 1.26 is needed to build Helm $HELM_VERSION (its go.mod says 'go 1.26.0')"
go_minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
[[ "$go_minor" =~ ^[0-9]+$ ]] && ((go_minor >= 26)) || die "Go >= 1.26 is needed to build Helm $HELM_VERSION, found $(go env GOVERSION)"
mkdir -p "$BIN_DIR"
echo "[$(date +%H:%M:%S)] helm: building $HELM_VERSION into $BIN" >&2
start=$SECONDS
# GOTOOLCHAIN=local: never download another Go toolchain behind our back.
# Built in a scratch GOBIN and moved, so an interrupted build leaves no half-written binary.
tmp="$(mktemp -d "$BIN_DIR/.helm-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# The -X flags are the ones Helm's own Makefile sets for a release: without them `helm version`
# says "v3.22" and Helm assumes Kubernetes v1.20 (the defaults in its source) wherever no
# --kube-version is given. 1.37 is the minor of the client-go (v0.37.0) Helm 3.22.0 is built on.
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=37"
done
GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOBIN="$tmp" \
  go install -trimpath -ldflags="$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mv -f "$tmp/helm" "$BIN"
echo "[$(date +%H:%M:%S)] helm: built in $((SECONDS - start))s" >&2
