{{/*
Names and labels follow the `helm create` scaffold.
*/}}
{{- define "atproto-relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "atproto-relay.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "atproto-relay.metricsName" -}}
{{- printf "%s-metrics" (include "atproto-relay.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "atproto-relay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "atproto-relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atproto-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "atproto-relay.labels" -}}
helm.sh/chart: {{ include "atproto-relay.chart" . }}
{{ include "atproto-relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "atproto-relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "atproto-relay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
"true" when the relay runs its embedded PostgreSQL (no DATABASE_URL), "" otherwise.
*/}}
{{- define "atproto-relay.embedded" -}}
{{- if not (or .Values.database.existingSecret .Values.database.url) }}true{{ end }}
{{- end }}

{{/*
Name of the Secret the chart creates for database.url / admin.password.
*/}}
{{- define "atproto-relay.secretName" -}}
{{- include "atproto-relay.fullname" . }}
{{- end }}

{{- define "atproto-relay.claimName" -}}
{{- default (printf "%s-data" (include "atproto-relay.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
Refuses value combinations that would lose data or break the single-writer invariant.
*/}}
{{- define "atproto-relay.validate" -}}
{{- $embedded := include "atproto-relay.embedded" . }}
{{- if and $embedded (not .Values.persistence.enabled) }}
{{- fail "embedded PostgreSQL (no database.existingSecret or database.url) requires persistence.enabled=true: without a PersistentVolumeClaim a restart loses the event log and reuses relay seqs" }}
{{- end }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- if $embedded }}
{{- fail "replicaCount > 1 needs an external database: each embedded PostgreSQL would be a separate event log" }}
{{- end }}
{{- if not .Values.unsafeMultiReplica }}
{{- fail "replicaCount > 1: ingest is single-writer (seqs are assigned in memory), so two relays on one database would hand out the same seqs; set unsafeMultiReplica=true only if you know this release supports it" }}
{{- end }}
{{- end }}
{{- if and .Values.database.existingSecret .Values.database.url }}
{{- fail "set database.existingSecret or database.url, not both" }}
{{- end }}
{{- if and .Values.admin.existingSecret .Values.admin.password }}
{{- fail "set admin.existingSecret or admin.password, not both" }}
{{- end }}
{{- range $name := list "DATABASE_URL" "RELAY_DATABASE_URL" "RELAY_ADMIN_PASSWORD" }}
{{- if hasKey $.Values.config $name }}
{{- fail (printf "config.%s: secrets do not go in config; use the database / admin values (a Secret reference)" $name) }}
{{- end }}
{{- end }}
{{- if and .Values.persistence.enabled (not (hasPrefix "/" (toString .Values.config.RELAY_DATA_DIR))) }}
{{- fail "config.RELAY_DATA_DIR must be an absolute path: the data volume is mounted there" }}
{{- end }}
{{- end }}

{{/*
A config value as an env value string. YAML numbers arrive as float64 and would print as 1e+06.
*/}}
{{- define "atproto-relay.envValue" -}}
{{- if kindIs "float64" . }}{{ int64 . | toString }}{{ else }}{{ toString . }}{{ end }}
{{- end }}
