#!/usr/bin/env bash
# The Connect image's healthcheck: the REST API lists connectors. With basic auth on, the
# credentials come from the file the entrypoint rendered, fed to curl on stdin (never in `ps`).
creds=/kafka/run/auth/connect-credentials.properties
if [ -r "$creds" ]; then
  IFS= read -r line <"$creds"
  printf 'user = "%s:%s"\n' "${line%%=*}" "${line#*=}" | curl -fs -o /dev/null -K - localhost:8083/connectors
else
  curl -fs -o /dev/null localhost:8083/connectors
fi
