{{/* Names, labels and the environment every workload shares. */}}

{{- define "campusconnect.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or just the release when it already contains the chart name. */}}
{{- define "campusconnect.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "campusconnect.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Kubernetes recommended labels. Call with (dict "root" $ "component" "users"). */}}
{{- define "campusconnect.labels" -}}
helm.sh/chart: {{ include "campusconnect.chart" .root }}
{{ include "campusconnect.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: campusconnect
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* Immutable in a Deployment's selector: name, instance and component only. */}}
{{- define "campusconnect.selectorLabels" -}}
app.kubernetes.io/name: {{ include "campusconnect.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Object name of one component: <fullname>-<component>, at most 63 characters. */}}
{{- define "campusconnect.componentName" -}}
{{- printf "%s-%s" (include "campusconnect.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "campusconnect.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "campusconnect.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "campusconnect.secretName" -}}
{{- default (printf "%s-credentials" (include "campusconnect.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "campusconnect.image" -}}
{{- $img := .Values.image -}}
{{- $repo := $img.repository -}}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $img.repository }}{{ end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* The time-series server: its own (TimescaleDB) or, with an empty host, the users' server. */}}
{{- define "campusconnect.tsHost" -}}
{{- default .Values.engines.postgres.host .Values.engines.timescaledb.host -}}
{{- end -}}
{{- define "campusconnect.tsPort" -}}
{{- if .Values.engines.timescaledb.host }}{{ .Values.engines.timescaledb.port }}{{ else }}{{ .Values.engines.postgres.port }}{{ end -}}
{{- end -}}

{{/*
The CAMPUS_* variables every service container and hook Job shares: where each server and each
sibling service lives. The same names as .env.example and docker-compose.yml.
*/}}
{{- define "campusconnect.commonEnv" -}}
{{- $root := . -}}
{{- $e := .Values.engines -}}
- name: CAMPUS_ENVIRONMENT
  value: {{ .Values.environment | quote }}
- name: CAMPUS_HOST
  value: "0.0.0.0"
- name: CAMPUS_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: CAMPUS_PG_HOST
  value: {{ $e.postgres.host | quote }}
- name: CAMPUS_PG_PORT
  value: {{ $e.postgres.port | quote }}
- name: CAMPUS_TS_PG_HOST
  value: {{ include "campusconnect.tsHost" . | quote }}
- name: CAMPUS_TS_PG_PORT
  value: {{ include "campusconnect.tsPort" . | quote }}
- name: CAMPUS_REDIS_HOST
  value: {{ $e.redis.host | quote }}
- name: CAMPUS_REDIS_PORT
  value: {{ $e.redis.port | quote }}
- name: CAMPUS_KAFKA_HOST
  value: {{ $e.kafka.host | quote }}
- name: CAMPUS_KAFKA_PORT
  value: {{ $e.kafka.port | quote }}
- name: CAMPUS_CONNECT_HOST
  value: {{ $e.connect.host | quote }}
- name: CAMPUS_CONNECT_PORT
  value: {{ $e.connect.port | quote }}
- name: CAMPUS_CONNECT_USER
  value: {{ $e.connect.user | quote }}
- name: CAMPUS_NEO4J_HOST
  value: {{ $e.neo4j.host | quote }}
- name: CAMPUS_NEO4J_BOLT_PORT
  value: {{ $e.neo4j.boltPort | quote }}
- name: CAMPUS_MONGO_HOST
  value: {{ $e.mongo.host | quote }}
- name: CAMPUS_MONGO_PORT
  value: {{ $e.mongo.port | quote }}
{{- range $name := list "users" "documents" "graph" "timeseries" "gateway" }}
{{- $svc := index $root.Values.services $name }}
- name: CAMPUS_{{ upper $name }}_HOST
  value: {{ include "campusconnect.componentName" (dict "root" $root "component" $name) | quote }}
- name: CAMPUS_{{ upper $name }}_PORT
  value: {{ $svc.port | quote }}
{{- end }}
{{- end -}}

{{/*
Tracing, for the service containers only: the CampusSettings every service shares read these,
while the hook Jobs are shell scripts that send no spans. Off is said explicitly, since the
services' own default is on and would export to CAMPUS_HOST.
*/}}
{{- define "campusconnect.tracingEnv" -}}
{{- $t := .Values.tracing -}}
- name: CAMPUS_OTEL_ENABLED
  value: {{ $t.enabled | quote }}
{{- if $t.enabled }}
- name: CAMPUS_OTEL_SAMPLE_RATIO
  value: {{ $t.sampleRatio | quote }}
- name: CAMPUS_ZIPKIN_HOST
  value: {{ $t.collector.host | quote }}
- name: CAMPUS_ZIPKIN_PORT
  value: {{ $t.collector.port | quote }}
- name: CAMPUS_ZIPKIN_PUBLIC_URL
  value: {{ $t.publicUrl | quote }}
{{- end }}
{{- end -}}

{{/* The secret keys one workload receives (secrets.keys), each from the one Secret. */}}
{{- define "campusconnect.secretEnv" -}}
{{- $root := .root -}}
{{- range $key, $workloads := $root.Values.secrets.keys }}
{{- if has $.workload $workloads }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "campusconnect.secretName" $root }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* name: value pairs from one or more maps, later maps winning, sorted by name. */}}
{{- define "campusconnect.extraEnv" -}}
{{- $merged := dict -}}
{{- range .maps }}{{ $merged = merge (deepCopy .) $merged }}{{ end -}}
{{- range $k := keys $merged | sortAlpha }}
- name: {{ $k }}
  value: {{ index $merged $k | toString | quote }}
{{- end }}
{{- end -}}

{{/* A probe from {path, ...timings} on the named container port. */}}
{{- define "campusconnect.probe" -}}
httpGet:
  path: {{ .probe.path }}
  port: http
{{- range $k := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" }}
{{- if hasKey $.probe $k }}
{{ $k }}: {{ index $.probe $k }}
{{- end }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress to one engine: its port, at its peers (or anywhere when none). */}}
{{- define "campusconnect.egressTo" -}}
- ports:
    - port: {{ .port }}
      protocol: TCP
  {{- with .peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/*
Pod-level security shared by every workload. A hook Job (.hook) runs under the namespace's default
ServiceAccount, still without a token: a pre-install hook runs before the chart's ServiceAccount
exists, and a pod naming a missing ServiceAccount is refused.
*/}}
{{- define "campusconnect.podCommon" -}}
{{- if not .hook }}
serviceAccountName: {{ include "campusconnect.serviceAccountName" .root }}
{{- end }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountToken }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/*
Ed25519 keys in the form internal_auth.py reads: the raw 32-byte key (private seed or public
key) as unpadded base64url, 43 characters. Sprig only speaks PEM, so the bytes are cut out:
- a PKCS#8 Ed25519 private key is a fixed 16-byte prefix and then the 32-byte seed (RFC 8410);
- sprig cannot print a public key, but it can sign a certificate with a given private key, and
  the certificate's SubjectPublicKeyInfo holds the public key right after its fixed header
  (OID 1.3.101.112, then a 33-byte BIT STRING with no unused bits: 06 03 2b 65 70 03 21 00).
  That header occurs once: elsewhere the same OID is followed by a Name or the signature's
  64-byte BIT STRING (03 41 00).
tests/unit/test_helm_chart.py signs and verifies tokens with rendered pairs using the project's
own Signer and Verifier, so a change in sprig's output fails there, not in a cluster.
*/}}
{{- define "campusconnect.ed25519.pkcs8Prefix" -}}
{{- b64dec "MC4CAQAwBQYDK2VwBCIEIA==" -}}
{{- end -}}

{{/* A new Ed25519 private key, raw and base64url. */}}
{{- define "campusconnect.ed25519.new" -}}
{{- $pem := genPrivateKey "ed25519" -}}
{{- $der := $pem | replace "-----BEGIN PRIVATE KEY-----" "" | replace "-----END PRIVATE KEY-----" "" | nospace | b64dec -}}
{{- if or (ne (len $der) 48) (ne (substr 0 16 $der) (include "campusconnect.ed25519.pkcs8Prefix" .)) -}}
{{- fail "genPrivateKey \"ed25519\" did not return a PKCS#8 Ed25519 key: set the *_SIGNING_KEY values yourself (deploy/helm/credentials.sh)" -}}
{{- end -}}
{{- substr 16 48 $der | b64enc | replace "+" "-" | replace "/" "_" | trimSuffix "=" -}}
{{- end -}}

{{/* Fails unless (dict "key" NAME "value" V) is a raw Ed25519 key in unpadded base64url. */}}
{{- define "campusconnect.ed25519.check" -}}
{{- if not (regexMatch "^[A-Za-z0-9_-]{43}$" .value) -}}
{{- fail (printf "%s must be a raw Ed25519 key as unpadded base64url (43 characters), as deploy/helm/credentials.sh writes it" .key) -}}
{{- end -}}
{{- end -}}

{{/* The public key (base64url) of a raw base64url Ed25519 private key. */}}
{{- define "campusconnect.ed25519.public" -}}
{{- $seed := printf "%s=" (. | replace "-" "+" | replace "_" "/") | b64dec -}}
{{- $pem := printf "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" (printf "%s%s" (include "campusconnect.ed25519.pkcs8Prefix" .) $seed | b64enc) -}}
{{- $cert := genSelfSignedCertWithKey "campusconnect-key-derivation" nil nil 1 $pem -}}
{{- $der := $cert.Cert | replace "-----BEGIN CERTIFICATE-----" "" | replace "-----END CERTIFICATE-----" "" | nospace | b64dec -}}
{{- $parts := splitList "\x06\x03\x2b\x65\x70\x03\x21\x00" $der -}}
{{- if ne (len $parts) 2 -}}
{{- fail "could not read the Ed25519 public key back from sprig's certificate: set the *_VERIFY_KEY values yourself (deploy/helm/credentials.sh)" -}}
{{- end -}}
{{- index $parts 1 | substr 0 32 | b64enc | replace "+" "-" | replace "/" "_" | trimSuffix "=" -}}
{{- end -}}
