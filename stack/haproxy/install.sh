#!/usr/bin/env bash
# HAProxy from Debian 12's packages (the cluster topology's load balancer), at the version
# Debian 12 ships, pinned. The package's own service is not used: supervisord runs haproxy.
. "$(dirname "$0")/../lib.sh"
HAPROXY_VERSION=2.6.12-1+deb12u4
[ "$(dpkg-query -W -f='${Version}' haproxy 2>/dev/null || true)" = "$HAPROXY_VERSION" ] && exit 0
log "installing haproxy $HAPROXY_VERSION"
apt_install "haproxy=$HAPROXY_VERSION"
