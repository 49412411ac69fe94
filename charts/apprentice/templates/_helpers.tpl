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

{{/* The Secret holding the key the operator derives task admin tokens from. */}}
{{- define "apprentice.adminTokenKeySecret" -}}
{{- default (printf "%s-admin-token-key" (include "apprentice.fullname" .)) .Values.adminTokenKey.existingSecret }}
{{- end }}

{{- define "apprentice.peeringName" -}}
{{- default (include "apprentice.fullname" .) .Values.peering.name }}
{{- end }}

{{/*
The rules the operator needs on the namespaces it serves: exactly the calls it makes (kopf's
watches and patches, and apprentice.kube.client's calls), nothing more. The table of calls
is in docs (charts/apprentice/README.md, RBAC); tests/cluster compares these rules with the
verbs the operator used against a real API server.
*/}}
{{- define "apprentice.workloadRules" -}}
# kopf watches the three kinds and patches them (finalizer, progress annotations); the
# operator reads a task by name, lists and creates TrainingJobs, applies ModelVersions.
- apiGroups: [apprentice.dev]
  resources: [distilledtasks]
  verbs: [get, list, watch, patch]
- apiGroups: [apprentice.dev]
  resources: [trainingjobs]
  verbs: [list, watch, create, patch]
# create: a server-side apply that creates an object is also authorised as create.
- apiGroups: [apprentice.dev]
  resources: [modelversions]
  verbs: [list, watch, create, patch]
- apiGroups: [apprentice.dev]
  resources: [distilledtasks/status, trainingjobs/status, modelversions/status]
  verbs: [patch]
# Children carry ownerReferences with blockOwnerDeletion: the OwnerReferencesPermission-
# Enforcement admission plugin (OpenShift, hardened clusters) wants update on the owner's
# finalizers subresource for that (an admission check: it shows in no audit log).
- apiGroups: [apprentice.dev]
  resources: [distilledtasks/finalizers, trainingjobs/finalizers]
  verbs: [update]
# A task's children, server-side applied every poll (level-triggered): patch, and create
# for the apply that creates. Never read back, never deleted (garbage collection does).
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [create, patch]
# The task's volume: created once, never read or changed (a PVC spec is immutable).
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [create]
# Training Jobs: created once per run (a Job's template is immutable); the task's timer
# reads the run's Job by name every poll.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, get]
# Trainer pods, listed by label: "waiting for a GPU" (Unschedulable), and a failed
# trainer's termination message. Never watched.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# Secrets: create only. A task's generated admin token is derived from the chart's key
# (HMAC) and its Secret created once (a 409 means it exists); never read, listed, watched
# or patched (a PATCH would return the Secret's data). Pods read every Secret they need
# (teacher key, DSN, Hugging Face token, admin token) through secretKeyRef.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create{{ if .Values.rbac.readAdminTokenSecrets }}, get{{ end }}]
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
