{{- define "rmqop.name" -}}robustmq-operator{{- end }}
{{- define "rmqop.fullname" -}}
{{- if contains "robustmq-operator" .Release.Name }}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{ else }}{{ printf "%s-robustmq-operator" .Release.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}
{{- define "rmqop.labels" -}}
app.kubernetes.io/name: robustmq-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}
{{- define "rmqop.selector" -}}
app.kubernetes.io/name: robustmq-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- define "rmqop.serviceAccount" -}}
{{- if .Values.serviceAccount.create }}{{ default (include "rmqop.fullname" .) .Values.serviceAccount.name }}{{ else }}{{ default "default" .Values.serviceAccount.name }}{{ end }}
{{- end }}
