{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "apprentice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "apprentice.fullname" -}}
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

{{- define "apprentice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the chart. */}}
{{- define "apprentice.labels" -}}
helm.sh/chart: {{ include "apprentice.chart" . }}
{{ include "apprentice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels the operator's Deployment selects its pods by. */}}
{{- define "apprentice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "apprentice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "apprentice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "apprentice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}; the tag defaults to appVersion. */}}
{{- define "apprentice.image" -}}
{{- $image := index . 0 }}{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "apprentice.peeringName" -}}
{{- default (include "apprentice.fullname" .) .Values.peering.name }}
{{- end }}

{{/* The rules the operator needs on the namespaces it serves. */}}
{{- define "apprentice.workloadRules" -}}
- apiGroups: [apprentice.dev]
  resources: [distilledtasks, trainingjobs, modelversions]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [apprentice.dev]
  resources: [distilledtasks/status, trainingjobs/status, modelversions/status]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [configmaps, services, persistentvolumeclaims]
  verbs: [get, list, watch, create, patch]
# Secrets: read the admin token, create it when the task names none. Never list or watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
# Trainer pods: read their termination message when training fails.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
