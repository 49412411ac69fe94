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

{{/*
The rules the operator needs on the namespaces it serves: exactly the calls it makes (kopf's
watches and patches, and apprentice.kube.client's get/list/create/patch), nothing more. A
test against a real API server compares these with the verbs the operator used.
*/}}
{{- define "apprentice.workloadRules" -}}
# kopf watches the three kinds and patches them (finalizer, progress annotations); the
# operator reads a task by name, creates TrainingJobs and applies ModelVersions.
- apiGroups: [apprentice.dev]
  resources: [distilledtasks]
  verbs: [get, list, watch, patch]
- apiGroups: [apprentice.dev]
  resources: [trainingjobs, modelversions]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apprentice.dev]
  resources: [distilledtasks/status, trainingjobs/status, modelversions/status]
  verbs: [patch]
# Children carry ownerReferences with blockOwnerDeletion: the OwnerReferencesPermission-
# Enforcement admission plugin (OpenShift, hardened clusters) wants update on the owner's
# finalizers subresource for that.
- apiGroups: [apprentice.dev]
  resources: [distilledtasks/finalizers, trainingjobs/finalizers]
  verbs: [update]
# A task's children, applied (read, then created or patched).
- apiGroups: [""]
  resources: [configmaps, services, persistentvolumeclaims]
  verbs: [get, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
# Training Jobs: applied, and watched (kopf) to mirror their state into the TrainingJob.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch]
# A failed trainer pod's termination message (the reason shown in status).
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# Secrets: never list or watch. get: the gateway's admin token, which the operator sends to
# the task's gateway admin API (state, promote, export). create: that token when the task
# names no Secret of its own. Pods read every other Secret (teacher key, DSN) through
# secretKeyRef, which needs no grant for the operator.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
# kopf posts Events (core/v1) on the objects it handles.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* Render-time checks: a bad combination fails `helm install` with a clear message. */}}
{{- define "apprentice.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) }}
{{- fail (printf "replicaCount=%d needs peering.enabled=true: without kopf peering every replica would reconcile every task at once (set replicaCount=1 or enable peering)" (int .Values.replicaCount)) }}
{{- end }}
{{- end }}

{{/* Labels the operator puts on every task's inference pod (apprentice.kube.objects.labels). */}}
{{- define "apprentice.gatewayPodLabels" -}}
app.kubernetes.io/name: apprentice
app.kubernetes.io/component: inference
app.kubernetes.io/managed-by: apprentice-operator
{{- end }}
