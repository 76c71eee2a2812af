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
