#!/bin/sh
# Build stages only: trust the CA certificates the building host trusts (copied by images.sh to
# .docker-ca/), so HTTPS to Maven Central, PyPI, npm and the Go proxy works behind a
# TLS-inspecting proxy as it does on the host. The shipped images do not carry them.
set -eu
apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
mkdir -p /usr/local/share/ca-certificates/host
awk 'BEGIN { n = 0 } /BEGIN CERTIFICATE/ { n++; f = sprintf("/usr/local/share/ca-certificates/host/%03d.crt", n) }
     f { print > f } /END CERTIFICATE/ { close(f); f = "" }' /tmp/host-ca/ca-certificates.crt
update-ca-certificates >/dev/null
