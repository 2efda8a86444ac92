{{/* Names and labels */}}
{{- define "streamscribe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streamscribe.fullname" -}}
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

{{/* The name of a component's resources: <fullname>-<component> */}}
{{- define "streamscribe.componentName" -}}
{{- printf "%s-%s" (include "streamscribe.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streamscribe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "streamscribe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: streamscribe
{{- end }}

{{/* Labels of one component: dict "root" $ "component" NAME */}}
{{- define "streamscribe.componentLabels" -}}
{{ include "streamscribe.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "streamscribe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamscribe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "streamscribe.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The topic catalogue and the stages' consumer groups (generated: python -m streamscribe.chart_catalogue) */}}
{{- define "streamscribe.catalogue" -}}
{{- .Files.Get "files/catalogue.yaml" }}
{{- end }}

{{/* Secret names: the one you made (existingSecret) or the chart's */}}
{{- define "streamscribe.secretName" -}}
{{- $cfg := index .root.Values.secrets .secret }}
{{- if $cfg.existingSecret }}{{ $cfg.existingSecret }}{{ else }}{{ include "streamscribe.componentName" (dict "root" .root "component" .suffix) }}{{ end }}
{{- end }}

{{- define "streamscribe.kafkaSasl" -}}
{{- if hasPrefix "SASL" .Values.kafka.security.protocol }}true{{ end }}
{{- end }}

{{/* KEDA's name for the SASL mechanism */}}
{{- define "streamscribe.kedaSasl" -}}
{{- $names := dict "SCRAM-SHA-512" "scram_sha512" "SCRAM-SHA-256" "scram_sha256" "PLAIN" "plaintext" }}
{{- $name := index $names .Values.kafka.security.saslMechanism }}
{{- if not $name }}
{{- fail (printf "kafka.security.saslMechanism %q: use SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN" .Values.kafka.security.saslMechanism) }}
{{- end }}
{{- $name }}
{{- end }}

{{- define "streamscribe.kafkaCa" -}}
{{- if or .Values.secrets.kafka.caSecret .Values.secrets.kafka.caCert }}true{{ end }}
{{- end }}

{{- define "streamscribe.s3Credentials" -}}
{{- if or .Values.secrets.s3.existingSecret .Values.secrets.s3.accessKey }}true{{ end }}
{{- end }}

{{/* Bad values fail the render with a message that says what to set */}}
{{- define "streamscribe.validate" -}}
{{- if not (or .Values.secrets.database.existingSecret .Values.secrets.database.url) }}
{{- fail "secrets.database: set existingSecret (a Secret with key database-url) or url" }}
{{- end }}
{{- if not (has .Values.kafka.security.protocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) }}
{{- fail (printf "kafka.security.protocol %q: use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL" .Values.kafka.security.protocol) }}
{{- end }}
{{- if include "streamscribe.kafkaSasl" . }}
{{- if not .Values.kafka.security.username }}
{{- fail "kafka.security.username is required with SASL" }}
{{- end }}
{{- if not (or .Values.secrets.kafka.existingSecret .Values.secrets.kafka.password) }}
{{- fail "secrets.kafka: SASL needs existingSecret (key sasl-password) or password" }}
{{- end }}
{{- end }}
{{- if not (has .Values.storage.backend (list "s3")) }}
{{- fail "storage.backend: only s3 works with more than one pod" }}
{{- end }}
{{- $catalogue := include "streamscribe.catalogue" . | fromYaml }}
{{- $want := keys $catalogue.stages | sortAlpha }}
{{- $have := keys .Values.stages | sortAlpha }}
{{- if ne (join "," $want) (join "," $have) }}
{{- fail (printf "stages: the values name %s but the catalogue has %s" (join ", " $have) (join ", " $want)) }}
{{- end }}
{{- end }}

{{/* The STREAMSCRIBE_* settings every pod gets (foundation/settings.py) */}}
{{- define "streamscribe.env" -}}
- name: STREAMSCRIBE_PROFILE
  value: production
- name: STREAMSCRIBE_HOME
  value: /var/lib/streamscribe
- name: HOME
  value: /var/lib/streamscribe
- name: STREAMSCRIBE_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: STREAMSCRIBE_LOG_FORMAT
  value: json
- name: STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: STREAMSCRIBE_KAFKA__TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: STREAMSCRIBE_KAFKA__PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: STREAMSCRIBE_KAFKA__REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
- name: STREAMSCRIBE_KAFKA__SESSION_TIMEOUT_MS
  value: {{ .Values.kafka.sessionTimeoutMs | quote }}
- name: STREAMSCRIBE_KAFKA__FETCH_WAIT_MAX_MS
  value: {{ .Values.kafka.fetchWaitMaxMs | quote }}
{{- if ne .Values.kafka.security.protocol "PLAINTEXT" }}
- name: STREAMSCRIBE_KAFKA__SECURITY_PROTOCOL
  value: {{ .Values.kafka.security.protocol | quote }}
- name: STREAMSCRIBE_KAFKA__SSL_ENDPOINT_IDENTIFICATION
  value: {{ .Values.kafka.security.endpointIdentification | quote }}
{{- end }}
{{- if include "streamscribe.kafkaSasl" . }}
- name: STREAMSCRIBE_KAFKA__SASL_MECHANISM
  value: {{ .Values.kafka.security.saslMechanism | quote }}
- name: STREAMSCRIBE_KAFKA__SASL_USERNAME
  value: {{ .Values.kafka.security.username | quote }}
- name: STREAMSCRIBE_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "streamscribe.secretName" (dict "root" . "secret" "kafka" "suffix" "kafka") }}
      key: sasl-password
{{- end }}
{{- if include "streamscribe.kafkaCa" . }}
- name: STREAMSCRIBE_KAFKA__SSL_CA_LOCATION
  value: /etc/streamscribe/kafka-ca/ca.crt
{{- end }}
{{- with .Values.schemaRegistry.url }}
- name: STREAMSCRIBE_SCHEMA_REGISTRY__URL
  value: {{ . | quote }}
{{- end }}
- name: STREAMSCRIBE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "streamscribe.secretName" (dict "root" . "secret" "database" "suffix" "database") }}
      key: database-url
- name: STREAMSCRIBE_STORAGE__BACKEND
  value: {{ .Values.storage.backend | quote }}
- name: STREAMSCRIBE_STORAGE__S3_ENDPOINT_URL
  value: {{ .Values.storage.s3.endpointUrl | quote }}
- name: STREAMSCRIBE_STORAGE__S3_REGION
  value: {{ .Values.storage.s3.region | quote }}
- name: STREAMSCRIBE_STORAGE__S3_BUCKET
  value: {{ .Values.storage.s3.bucket | quote }}
{{- if include "streamscribe.s3Credentials" . }}
- name: STREAMSCRIBE_STORAGE__S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "streamscribe.secretName" (dict "root" . "secret" "s3" "suffix" "s3") }}
      key: access-key
- name: STREAMSCRIBE_STORAGE__S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "streamscribe.secretName" (dict "root" . "secret" "s3" "suffix" "s3") }}
      key: secret-key
{{- end }}
- name: STREAMSCRIBE_STORAGE__KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "streamscribe.secretName" (dict "root" . "secret" "storageKeys" "suffix" "storage-keys") }}
      key: keys
{{- with .Values.storage.currentKeyId }}
- name: STREAMSCRIBE_STORAGE__CURRENT_KEY_ID
  value: {{ . | quote }}
{{- end }}
- name: STREAMSCRIBE_AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "streamscribe.secretName" (dict "root" . "secret" "auth" "suffix" "auth") }}
      key: jwt-secret
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{- define "streamscribe.volumes" -}}
- name: home
  emptyDir:
    sizeLimit: {{ .Values.homeVolume.sizeLimit }}
- name: tmp
  emptyDir: {}
{{- if .Values.secrets.kafka.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.secrets.kafka.caSecret }}
    items:
      - key: {{ .Values.secrets.kafka.caKey }}
        path: ca.crt
{{- else if .Values.secrets.kafka.caCert }}
- name: kafka-ca
  secret:
    secretName: {{ include "streamscribe.secretName" (dict "root" . "secret" "kafka" "suffix" "kafka") }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end }}

{{- define "streamscribe.volumeMounts" -}}
- name: home
  mountPath: /var/lib/streamscribe
- name: tmp
  mountPath: /tmp
{{- if include "streamscribe.kafkaCa" . }}
- name: kafka-ca
  mountPath: /etc/streamscribe/kafka-ca
  readOnly: true
{{- end }}
{{- end }}

{{/* Pod-level scheduling and security shared by every workload */}}
{{- define "streamscribe.podCommon" -}}
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
{{- end }}

{{/* Annotations of the chart-made Secrets: made before the migration hook runs, kept on uninstall */}}
{{- define "streamscribe.secretAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: "-10"
helm.sh/hook-delete-policy: before-hook-creation
helm.sh/resource-policy: keep
{{- end }}

{{/* The gateway's view of every stage's health endpoint (its /health/detailed), through the stages' Services */}}
{{- define "streamscribe.workerHealthUrls" -}}
{{- $urls := dict }}
{{- range $stage, $_ := .Values.stages }}
{{- $_ := set $urls $stage (printf "http://%s:%d/health" (include "streamscribe.componentName" (dict "root" $ "component" $stage)) (int $.Values.metricsPort)) }}
{{- end }}
{{- toJson $urls }}
{{- end }}
