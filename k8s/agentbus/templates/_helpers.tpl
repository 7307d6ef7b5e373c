{{/* Names, labels, image, and the environment every agentbus container gets. */}}

{{- define "agentbus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentbus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "agentbus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The services, in pipeline order. */}}
{{- define "agentbus.serviceNames" -}}
ingress memory reasoner scheduler egress
{{- end -}}

{{- define "agentbus.labels" -}}
helm.sh/chart: {{ include "agentbus.chart" . }}
app.kubernetes.io/name: {{ include "agentbus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agentbus
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "ingress"). */}}
{{- define "agentbus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentbus.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "agentbus.componentLabels" -}}
{{ include "agentbus.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "agentbus.componentName" -}}
{{- printf "%s-%s" (include "agentbus.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentbus.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret the chart creates for inline credentials (throw-away installs). */}}
{{- define "agentbus.secretName" -}}
{{- printf "%s-credentials" (include "agentbus.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Inline credentials that go into the chart's Secret: a dict of key -> value (empty when none). */}}
{{- define "agentbus.inlineSecrets" -}}
{{- $s := dict -}}
{{- if and (not .Values.database.existingSecret) .Values.database.url -}}
{{- $_ := set $s "database-url" .Values.database.url -}}
{{- end -}}
{{- if and .Values.kafka.sasl.mechanism (not .Values.kafka.sasl.existingSecret) .Values.kafka.sasl.password -}}
{{- $_ := set $s "kafka-sasl-password" .Values.kafka.sasl.password -}}
{{- end -}}
{{- if and (not .Values.llm.existingSecret) .Values.llm.apiKey -}}
{{- $_ := set $s "llm-api-key" .Values.llm.apiKey -}}
{{- end -}}
{{- if and (not .Values.qdrant.existingSecret) .Values.qdrant.apiKey -}}
{{- $_ := set $s "qdrant-api-key" .Values.qdrant.apiKey -}}
{{- end -}}
{{- if and (not .Values.embeddings.existingSecret) .Values.embeddings.apiKey -}}
{{- $_ := set $s "embeddings-api-key" .Values.embeddings.apiKey -}}
{{- end -}}
{{- toJson $s -}}
{{- end -}}

{{/* One env entry read from a Secret: (dict "name" ENV "secret" NAME "key" KEY). */}}
{{- define "agentbus.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .key | quote }}
{{- end -}}

{{/* Where a credential comes from: an existing Secret, or the chart's own for an inline value. */}}
{{- define "agentbus.credentialEnv" -}}
{{- $root := .root -}}
{{- if .existingSecret -}}
{{ include "agentbus.secretEnv" (dict "name" .name "secret" .existingSecret "key" .key) }}
{{- else if .inline -}}
{{ include "agentbus.secretEnv" (dict "name" .name "secret" (include "agentbus.secretName" $root) "key" .chartKey) }}
{{- end -}}
{{- end -}}

{{/* Checks that fail the render with a message naming the value. */}}
{{- define "agentbus.validate" -}}
{{- if not (or .Values.database.existingSecret .Values.database.url) -}}
{{- fail "database: set database.existingSecret (a Secret with the PostgreSQL URL) or database.url" -}}
{{- end -}}
{{- if and .Values.kafka.sasl.mechanism (not (or .Values.kafka.sasl.existingSecret .Values.kafka.sasl.password)) -}}
{{- fail "kafka.sasl: with kafka.sasl.mechanism set, set kafka.sasl.existingSecret (or kafka.sasl.password)" -}}
{{- end -}}
{{- if and .Values.kafka.sasl.mechanism (not .Values.kafka.sasl.username) -}}
{{- fail "kafka.sasl.username: required with kafka.sasl.mechanism" -}}
{{- end -}}
{{- if and .Values.kafka.sasl.mechanism (not (hasPrefix "SASL_" .Values.kafka.securityProtocol)) -}}
{{- fail (printf "kafka.securityProtocol: %s does not use SASL; use SASL_SSL (or SASL_PLAINTEXT) with kafka.sasl.mechanism" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if and (hasPrefix "SASL_" .Values.kafka.securityProtocol) (not .Values.kafka.sasl.mechanism) -}}
{{- fail (printf "kafka.sasl.mechanism: required with kafka.securityProtocol %s" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if and .Values.kafka.tls.enabled (not .Values.kafka.tls.caSecret.name) -}}
{{- fail "kafka.tls.caSecret.name: required with kafka.tls.enabled (the Secret holding the cluster CA)" -}}
{{- end -}}
{{- if and .Values.kafka.tls.enabled (not (or (eq .Values.kafka.securityProtocol "SSL") (eq .Values.kafka.securityProtocol "SASL_SSL"))) -}}
{{- fail (printf "kafka.securityProtocol: %s does not use TLS; use SSL or SASL_SSL with kafka.tls.enabled" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if and .Values.init.enabled (gt (int .Values.init.topics.minInsyncReplicas) (int .Values.init.topics.replicationFactor)) -}}
{{- fail (printf "init.topics.minInsyncReplicas: %v is more than init.topics.replicationFactor %v" .Values.init.topics.minInsyncReplicas .Values.init.topics.replicationFactor) -}}
{{- end -}}
{{- end -}}

{{/* The mount paths of the Kafka TLS files. */}}
{{- define "agentbus.kafkaTlsDir" -}}/etc/agentbus/kafka-tls{{- end -}}

{{/*
The environment of an agentbus container: (dict "root" $ "component" NAME "port" PORT).
Where things are comes in as plain values; every credential comes from a Secret (secretKeyRef).
*/}}
{{- define "agentbus.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $c := .component -}}
- name: AGENTBUS_ENVIRONMENT
  value: {{ $v.environment | quote }}
{{- if ne $c "init" }}
- name: AGENTBUS_CONFIG_FILE
  value: /etc/agentbus/config/agentbus.yaml
{{- end }}
- name: AGENTBUS_LOG_LEVEL
  value: {{ $v.logLevel | quote }}
- name: AGENTBUS_LOG_JSON
  value: "true"
{{- if .port }}
- name: AGENTBUS_HTTP_HOST
  value: "0.0.0.0"
- name: AGENTBUS_HTTP_PORT
  value: {{ .port | quote }}
- name: AGENTBUS_SHUTDOWN_GRACE_S
  value: {{ $v.shutdownGraceSeconds | quote }}
{{- end }}
{{- if or (eq $c "reasoner") (eq $c "ingress") }}
{{- /* memory's admin endpoints: the agent's memory tool, and the operator API's conversations */}}
- name: AGENTBUS_MEMORY_URL
  value: {{ printf "http://%s:%v" (include "agentbus.componentName" (dict "root" $root "component" "memory")) $v.services.memory.port | quote }}
{{- end }}
{{- if or (eq $c "reasoner") (eq $c "ingress") }}
{{- /* the scheduler's jobs, read by the schedule tool and the operator API */}}
- name: AGENTBUS_SCHEDULER_URL
  value: {{ printf "http://%s:%v" (include "agentbus.componentName" (dict "root" $root "component" "scheduler")) $v.services.scheduler.port | quote }}
{{- end }}
{{- if eq $c "ingress" }}
{{- /* the models' health, which the operator API reads from the reasoner */}}
- name: AGENTBUS_REASONER_URL
  value: {{ printf "http://%s:%v" (include "agentbus.componentName" (dict "root" $root "component" "reasoner")) $v.services.reasoner.port | quote }}
{{- /* the delivery ledger, which the operator API reads from egress */}}
- name: AGENTBUS_EGRESS_URL
  value: {{ printf "http://%s:%v" (include "agentbus.componentName" (dict "root" $root "component" "egress")) $v.services.egress.port | quote }}
{{- end }}
- name: AGENTBUS_KAFKA_BOOTSTRAP_SERVERS
  value: {{ $v.kafka.bootstrapServers | quote }}
- name: AGENTBUS_KAFKA_SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
- name: AGENTBUS_KAFKA_IDEMPOTENT_PRODUCER
  value: {{ $v.kafka.idempotentProducer | quote }}
- name: AGENTBUS_TOPIC_PREFIX
  value: {{ $v.kafka.topicPrefix | quote }}
- name: AGENTBUS_CONSUMER_GROUP_PREFIX
  value: {{ $v.kafka.consumerGroupPrefix | quote }}
- name: AGENTBUS_CREATE_TOPICS
  value: {{ not $v.init.enabled | quote }}
- name: AGENTBUS_TOPIC_PARTITIONS
  value: {{ $v.init.topics.partitions | quote }}
- name: AGENTBUS_TOPIC_REPLICATION_FACTOR
  value: {{ $v.init.topics.replicationFactor | quote }}
- name: AGENTBUS_TOPIC_RETENTION_MS
  value: {{ $v.init.topics.retentionMs | int64 | quote }}
{{- if $v.kafka.sasl.mechanism }}
- name: AGENTBUS_KAFKA_SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: AGENTBUS_KAFKA_SASL_USERNAME
  value: {{ $v.kafka.sasl.username | quote }}
{{ include "agentbus.credentialEnv" (dict "root" $root "name" "AGENTBUS_KAFKA_SASL_PASSWORD" "existingSecret" $v.kafka.sasl.existingSecret "key" $v.kafka.sasl.passwordKey "inline" $v.kafka.sasl.password "chartKey" "kafka-sasl-password") }}
{{- end }}
{{- if $v.kafka.tls.enabled }}
- name: AGENTBUS_KAFKA_SSL_CAFILE
  value: {{ printf "%s/ca/%s" (include "agentbus.kafkaTlsDir" $root) $v.kafka.tls.caSecret.key | quote }}
{{- if $v.kafka.tls.clientSecret.name }}
- name: AGENTBUS_KAFKA_SSL_CERTFILE
  value: {{ printf "%s/client/%s" (include "agentbus.kafkaTlsDir" $root) $v.kafka.tls.clientSecret.certKey | quote }}
- name: AGENTBUS_KAFKA_SSL_KEYFILE
  value: {{ printf "%s/client/%s" (include "agentbus.kafkaTlsDir" $root) $v.kafka.tls.clientSecret.keyKey | quote }}
{{- end }}
{{- end }}
{{ include "agentbus.credentialEnv" (dict "root" $root "name" "AGENTBUS_DATABASE_URL" "existingSecret" $v.database.existingSecret "key" $v.database.urlKey "inline" $v.database.url "chartKey" "database-url") }}
- name: AGENTBUS_DB_POOL_MAX
  value: {{ $v.database.poolMax | quote }}
{{- if $v.otel.endpoint }}
- name: AGENTBUS_OTLP_ENDPOINT
  value: {{ $v.otel.endpoint | quote }}
{{- end }}
{{- if $v.otel.jaegerUrl }}
- name: AGENTBUS_JAEGER_URL
  value: {{ $v.otel.jaegerUrl | quote }}
{{- end }}
{{- if eq $c "memory" }}
{{- if $v.qdrant.url }}
- name: AGENTBUS_QDRANT_URL
  value: {{ $v.qdrant.url | quote }}
- name: AGENTBUS_QDRANT_COLLECTION
  value: {{ $v.qdrant.collection | quote }}
{{- with (include "agentbus.credentialEnv" (dict "root" $root "name" "AGENTBUS_QDRANT_API_KEY" "existingSecret" $v.qdrant.existingSecret "key" $v.qdrant.apiKeyKey "inline" $v.qdrant.apiKey "chartKey" "qdrant-api-key")) }}
{{ . }}
{{- end }}
{{- end }}
- name: AGENTBUS_VECTOR_INDEX
  value: {{ $v.qdrant.vectorIndex | default "auto" | quote }}
- name: AGENTBUS_EMBEDDINGS_URL
  value: {{ include "agentbus.embeddingsUrl" $root | quote }}
- name: AGENTBUS_EMBEDDINGS_MODEL
  value: {{ $v.embeddings.model | quote }}
- name: AGENTBUS_EMBEDDINGS_DIM
  value: {{ $v.embeddings.dim | quote }}
{{- with (include "agentbus.credentialEnv" (dict "root" $root "name" "AGENTBUS_EMBEDDINGS_API_KEY" "existingSecret" $v.embeddings.existingSecret "key" $v.embeddings.apiKeyKey "inline" $v.embeddings.apiKey "chartKey" "embeddings-api-key")) }}
{{ . }}
{{- end }}
{{- end }}
{{- if eq $c "reasoner" }}
{{- if $v.llm.baseUrl }}
- name: AGENTBUS_LLM_BASE_URL
  value: {{ $v.llm.baseUrl | quote }}
{{- end }}
{{- if $v.llm.model }}
- name: AGENTBUS_LLM_MODEL
  value: {{ $v.llm.model | quote }}
{{- end }}
- name: AGENTBUS_LLM_TIMEOUT_S
  value: {{ $v.llm.timeoutSeconds | quote }}
{{- with (include "agentbus.credentialEnv" (dict "root" $root "name" "AGENTBUS_LLM_API_KEY" "existingSecret" $v.llm.existingSecret "key" $v.llm.apiKeyKey "inline" $v.llm.apiKey "chartKey" "llm-api-key")) }}
{{ . }}
{{- end }}
{{- end }}
{{- range $v.secretEnv }}
{{ include "agentbus.secretEnv" (dict "name" .name "secret" .secretName "key" .key) }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .serviceEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "agentbus.embeddingsUrl" -}}
{{- if .Values.embeddings.url -}}
{{- .Values.embeddings.url -}}
{{- else if .Values.embeddings.server.enabled -}}
{{- printf "http://%s:%v/v1" (include "agentbus.componentName" (dict "root" . "component" "embeddings")) .Values.embeddings.server.port -}}
{{- end -}}
{{- end -}}

{{/* Volumes for the config, /tmp and the Kafka TLS files: (dict "root" $ "config" bool). */}}
{{- define "agentbus.volumes" -}}
{{- $v := .root.Values -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- if .config }}
- name: config
  configMap:
    name: {{ include "agentbus.componentName" (dict "root" .root "component" "config") }}
{{- end }}
{{- if $v.kafka.tls.enabled }}
- name: kafka-ca
  secret:
    secretName: {{ $v.kafka.tls.caSecret.name | quote }}
    items:
      - key: {{ $v.kafka.tls.caSecret.key | quote }}
        path: {{ $v.kafka.tls.caSecret.key | quote }}
{{- if $v.kafka.tls.clientSecret.name }}
- name: kafka-client
  secret:
    secretName: {{ $v.kafka.tls.clientSecret.name | quote }}
    defaultMode: 0440
    items:
      - key: {{ $v.kafka.tls.clientSecret.certKey | quote }}
        path: {{ $v.kafka.tls.clientSecret.certKey | quote }}
      - key: {{ $v.kafka.tls.clientSecret.keyKey | quote }}
        path: {{ $v.kafka.tls.clientSecret.keyKey | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "agentbus.volumeMounts" -}}
{{- $v := .root.Values -}}
- name: tmp
  mountPath: /tmp
{{- if .config }}
- name: config
  mountPath: /etc/agentbus/config
  readOnly: true
{{- end }}
{{- if $v.kafka.tls.enabled }}
- name: kafka-ca
  mountPath: {{ printf "%s/ca" (include "agentbus.kafkaTlsDir" .root) }}
  readOnly: true
{{- if $v.kafka.tls.clientSecret.name }}
- name: kafka-client
  mountPath: {{ printf "%s/client" (include "agentbus.kafkaTlsDir" .root) }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}
