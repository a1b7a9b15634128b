{{/*
Helpers. Templates here stay within a small Go-template subset (values, include, if/else, range, default,
quote, toYaml | nindent, trunc, trimSuffix) so that test/deploy can render the chart without a helm binary.
*/}}

{{/* Object name: fullnameOverride, else the release name (install the release as `egress-authz`). */}}
{{- define "egress-authz.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the pods: never change them after the first install (selectors are immutable). */}}
{{- define "egress-authz.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "egress-authz.labels" -}}
{{ include "egress-authz.selectorLabels" . }}
app.kubernetes.io/part-of: egress-authz
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "egress-authz.serviceAccountName" -}}
{{- default (include "egress-authz.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "egress-authz.policiesConfigMapName" -}}
{{- if .Values.policies.existingConfigMap -}}
{{- .Values.policies.existingConfigMap -}}
{{- else -}}
{{- include "egress-authz.fullname" . }}-policies
{{- end -}}
{{- end -}}
