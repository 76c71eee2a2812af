#!/usr/bin/env bash
# PostgreSQL 15 from Debian; the cluster itself is project-local (run.sh initdb's it).
. "$(dirname "$0")/../lib.sh"
[ -x /usr/lib/postgresql/15/bin/postgres ] && exit 0
log "installing postgresql-15"
apt_install postgresql-15 postgresql-contrib
