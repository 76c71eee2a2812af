# shellcheck shell=bash
# Basic auth on Kafka Connect's REST API, for the worker (stack/connect/run.sh, or a container's
# entrypoint) and its clients. Needs CAMPUS_CONNECT_USER and CAMPUS_CONNECT_PASSWORD.
#
# render_connect_auth DIR: write DIR/connect-jaas.conf and DIR/connect-credentials.properties
# (mode 600) for Kafka Connect's BasicAuthSecurityRestExtension; the worker then runs with
# -Djava.security.auth.login.config=DIR/connect-jaas.conf. The password is in a file, never in
# the worker's arguments or environment.
render_connect_auth() {
  local dir="$1"
  [ -n "${CAMPUS_CONNECT_PASSWORD:-}" ] || { echo "ERROR: CAMPUS_CONNECT_PASSWORD is not set" >&2; return 1; }
  mkdir -p "$dir"
  (
    umask 077
    printf '%s=%s\n' "${CAMPUS_CONNECT_USER:-campus}" "$CAMPUS_CONNECT_PASSWORD" \
      >"$dir/connect-credentials.properties.tmp"
    cat >"$dir/connect-jaas.conf.tmp" <<JAAS
KafkaConnect {
  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required
  file="$dir/connect-credentials.properties";
};
JAAS
  )
  mv "$dir/connect-credentials.properties.tmp" "$dir/connect-credentials.properties"
  mv "$dir/connect-jaas.conf.tmp" "$dir/connect-jaas.conf"
}

# connect_curl CURL_ARGS...: curl with the REST API's credentials fed as a config on stdin, so
# they never show in `ps`. Callers cannot use stdin for anything else (use --data-binary @file).
connect_curl() {
  printf 'user = "%s:%s"\n' "${CAMPUS_CONNECT_USER:-campus}" "$CAMPUS_CONNECT_PASSWORD" |
    curl -K - "$@"
}
