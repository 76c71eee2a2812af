#!/usr/bin/env bash
# HAProxy in front of the cluster topology's two instances of every service: it listens on the
# services' usual ports (CAMPUS_GATEWAY_PORT, CAMPUS_USERS_PORT, ...), so every client keeps
# its address, and sends each request to an instance that passes its /health/live check.
. "$(dirname "$0")/../lib.sh"
CFG="$STACK_DIR/run/haproxy.cfg"
{
  cat <<CFG
# Rendered by stack/haproxy/run.sh from .env on every start: edit the script, not this file.
global
  log stdout format raw local0 notice
  maxconn 4096

defaults
  mode http
  log global
  option httplog
  option dontlognull
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  # A request that found a dead instance (connection refused or reset before an answer) is
  # sent again to the other one; no answer is ever replayed after it has started.
  retries 2
  option redispatch
  retry-on conn-failure empty-response

frontend stats
  bind $CAMPUS_HOST:$CAMPUS_HAPROXY_STATS_PORT
  monitor-uri /ready
  stats enable
  stats uri /stats
  stats refresh 5s
CFG
  # Plain round robin for every service, documents included: likes and comments are inserts
  # with unique keys and a post's updates hold a lease in the documents database that both
  # instances honour (services/documents/campus_documents/locks.py), so any instance may take
  # any request of any post.
  for svc in gateway users documents graph timeseries; do
    port_var="CAMPUS_${svc^^}_PORT"
    cat <<CFG

frontend ${svc}
  bind $CAMPUS_HOST:${!port_var}
  default_backend ${svc}

backend ${svc}
  balance roundrobin
  # Up = the process serves HTTP (/health/live asks no dependency: both instances share the
  # stores, so a store that is down would take both out and route around nothing; /health
  # would also fan out to every store each second).
  option httpchk GET /health/live
  http-check expect status 200
  default-server inter 1s fall 2 rise 2
CFG
    for i in 1 2; do
      port_var="CAMPUS_${svc^^}_${i}_PORT"
      echo "  server ${svc}-$i $CAMPUS_HOST:${!port_var} check"
    done
  done
} >"$CFG.tmp"
mv "$CFG.tmp" "$CFG"
haproxy -c -q -f "$CFG" || die "haproxy: invalid $CFG"
# -db: foreground, supervisord owns the process; -W: master-worker (reload with SIGUSR2).
exec haproxy -W -db -f "$CFG"
