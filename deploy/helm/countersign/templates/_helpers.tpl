{{- define "countersign.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "countersign.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "countersign.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "countersign.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one process: (dict "ctx" $ "component" "api") */}}
{{- define "countersign.selectorLabels" -}}
app.kubernetes.io/name: {{ include "countersign.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "countersign.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "countersign.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "countersign.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "countersign.secretName" -}}
{{- default (printf "%s-env" (include "countersign.fullname" .)) .Values.secretEnv.existingSecret -}}
{{- end -}}

{{/* The Secret holding DATABASE_ADMIN_URL, read by the migration job only; empty when there is none. */}}
{{- define "countersign.adminSecretName" -}}
{{- if .Values.adminSecret.existingSecret -}}
{{- .Values.adminSecret.existingSecret -}}
{{- else if .Values.secretEnv.values.DATABASE_ADMIN_URL -}}
{{- printf "%s-admin" (include "countersign.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The configuration every process reads: the ConfigMap, then the Secret. */}}
{{- define "countersign.envFrom" -}}
- configMapRef:
    name: {{ include "countersign.fullname" . }}
- secretRef:
    name: {{ include "countersign.secretName" . }}
{{- end -}}

{{/* Pod-level settings shared by every process. */}}
{{- define "countersign.podSpec" -}}
serviceAccountName: {{ include "countersign.serviceAccountName" . }}
{{ include "countersign.podCommon" . }}
{{- end -}}

{{/* The same without the service account (a hook runs before the chart's own account exists). */}}
{{- define "countersign.podCommon" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The keyring for the processes that sign: the Secret's files copied into a memory volume with the private key at
mode 0600, as the keyring loader demands (a Secret volume under fsGroup is group-readable, which it refuses).
*/}}
{{- define "countersign.keysInit" -}}
- name: keys
  image: {{ include "countersign.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["sh", "-c", "cp -L /keys-secret/* /keys/ && chmod 0600 /keys/*"]
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    requests: { cpu: 10m, memory: 16Mi }
    limits: { memory: 32Mi }
  volumeMounts:
    - { name: keys-secret, mountPath: /keys-secret, readOnly: true }
    - { name: keys, mountPath: /keys }
{{- end -}}

{{- define "countersign.keysVolumes" -}}
- name: keys-secret
  secret:
    secretName: {{ required "keys.existingSecret: the Secret made from the deployment's keys directory" .Values.keys.existingSecret }}
    defaultMode: 256 # 0400
- name: keys
  emptyDir: { medium: Memory, sizeLimit: 1Mi }
{{- end -}}
