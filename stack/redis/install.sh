#!/usr/bin/env bash
. "$(dirname "$0")/../lib.sh"
command -v redis-server >/dev/null && command -v redis-cli >/dev/null && exit 0
apt_install redis-server redis-tools
