# shellcheck shell=bash
# Renders .stack/run/supervisord.conf and wraps supervisorctl.
# shellcheck source=stack/secrets.sh
. "$STACK_SRC/secrets.sh"
SUP_CONF="$STACK_DIR/run/supervisord.conf"
SUP_PID="$STACK_DIR/run/supervisord.pid"
SUP_SOCK="$STACK_DIR/run/supervisor.sock"

render_supervisord_conf() {
  local prio=10 name
  {
    cat <<CONF
[unix_http_server]
file=$SUP_SOCK
chmod=0700

[supervisord]
logfile=$STACK_DIR/logs/supervisord.log
pidfile=$SUP_PID
childlogdir=$STACK_DIR/logs
nodaemon=false
silent=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$SUP_SOCK
CONF
    for line in "${COMPONENTS[@]}"; do
      read -r name _ _ <<<"$line"
      # Every run.sh gets the component's name (a cluster member's carries its number).
      local cmd="$(component_dir "$name")/run.sh $name" stopsignal=TERM
      # PostgreSQL's TERM waits for clients to leave; INT is its fast, clean shutdown.
      [ "$name" = postgres ] && stopsignal=INT
      cat <<CONF

[program:$name]
; secrets (stack/secrets.sh; scoped.sh drops every other): $(component_secrets "$name")
command=bash $STACK_SRC/scoped.sh $name bash $cmd
directory=$CAMPUS_ROOT
priority=$prio
autostart=false
autorestart=unexpected
startsecs=2
startretries=3
stopsignal=$stopsignal
stopwaitsecs=30
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=$STACK_DIR/logs/$name.log
stdout_logfile_maxbytes=20MB
stdout_logfile_backups=2
CONF
      prio=$((prio + 10))
    done
  } >"$SUP_CONF"
}

supervisord_running() { [ -S "$SUP_SOCK" ] && sctl pid >/dev/null 2>&1; }
sctl() { "$CAMPUS_ROOT/.venv/bin/supervisorctl" -c "$SUP_CONF" "$@"; }
component_state() { { sctl status "$1" 2>/dev/null || true; } | awk '{print $2}'; }
