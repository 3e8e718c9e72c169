{{/*
One process's Deployment: (dict "ctx" $ "component" "api" "entry" "dist/api.mjs" "values" .Values.api "port" 8080 "signs" true)
Probes: /healthz (alive) and /readyz (every dependency up), on the API's port or the process's metrics port.
*/}}
{{- define "countersign.deployment" -}}
{{- $ctx := .ctx -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "countersign.fullname" $ctx }}-{{ .component }}
  labels:
    {{- include "countersign.labels" $ctx | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  replicas: {{ .values.replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "countersign.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate: { maxUnavailable: 0, maxSurge: 1 }
  template:
    metadata:
      labels:
        {{- include "countersign.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 8 }}
      annotations:
        # A changed configuration rolls the pods.
        checksum/config: {{ include (print $ctx.Template.BasePath "/configmap.yaml") $ctx | sha256sum }}
        {{- with $ctx.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "countersign.podSpec" $ctx | nindent 6 }}
      # SIGTERM: the API closes its listener, the worker finishes its tasks, the publisher its batch.
      terminationGracePeriodSeconds: 30
      {{- if .signs }}
      initContainers:
        {{- include "countersign.keysInit" $ctx | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "countersign.image" $ctx }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          args: [{{ .entry | quote }}]
          envFrom:
            {{- include "countersign.envFrom" $ctx | nindent 12 }}
          ports:
            - name: {{ .portName }}
              containerPort: {{ .port }}
              protocol: TCP
          startupProbe:
            httpGet: { path: /healthz, port: {{ .portName }} }
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet: { path: /healthz, port: {{ .portName }} }
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet: { path: /readyz, port: {{ .portName }} }
            periodSeconds: 5
            timeoutSeconds: 5
            failureThreshold: 2
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $ctx.Values.securityContext | nindent 12 }}
          volumeMounts:
            - { name: tmp, mountPath: /tmp }
            {{- if .signs }}
            - { name: keys, mountPath: /keys, readOnly: true }
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: { sizeLimit: 64Mi }
        {{- if .signs }}
        {{- include "countersign.keysVolumes" $ctx | nindent 8 }}
        {{- end }}
{{- end -}}

{{- define "countersign.pdb" -}}
{{- if .values.pdb }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "countersign.fullname" .ctx }}-{{ .component }}
  labels:
    {{- include "countersign.labels" .ctx | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  minAvailable: {{ .values.pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "countersign.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
{{- end }}
{{- end -}}
