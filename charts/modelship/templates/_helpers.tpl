{{- define "modelship.labels" -}}
app.kubernetes.io/name: modelship-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "modelship.selector" -}}
app.kubernetes.io/name: modelship-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modelship.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
