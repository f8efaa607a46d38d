{{/*
Shared helpers. Service templates range over "gantry.serviceNames" and call the helpers
below with a context dict: (dict "root" $ "name" $name "svc" $svc).
*/}}

{{/* The eight services, in port order (rollout 50051 ... vla 50058). */}}
{{- define "gantry.serviceNames" -}}
rollout trainer envfarm pruner verifier retrieval video vla
{{- end -}}

{{- define "gantry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Release-wide prefix of every object name. Kept to 40 characters so that
"<fullname>-<service>-headless" still fits a 63-character DNS label.
*/}}
{{- define "gantry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gantry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object (root context). */}}
{{- define "gantry.commonLabels" -}}
helm.sh/chart: {{ include "gantry.chart" . }}
app.kubernetes.io/name: {{ include "gantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: gantry
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Object name of one component: <fullname>-<name>. Context: (dict "root" "name"). */}}
{{- define "gantry.componentName" -}}
{{- printf "%s-%s" (include "gantry.fullname" .root) .name -}}
{{- end -}}

{{/* Selector labels of one component. Context: (dict "root" "name"). */}}
{{- define "gantry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gantry.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* All labels of one component. Context: (dict "root" "name"). */}}
{{- define "gantry.labels" -}}
{{ include "gantry.commonLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* The image reference of a service. Context: (dict "root" "name" "svc"). */}}
{{- define "gantry.image" -}}
{{- $tag := .svc.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- $repo := .svc.image.repository -}}
{{- if .root.Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .root.Values.image.registry) $repo -}}
{{- end -}}
{{- printf "%s:%s" $repo (toString $tag) -}}
{{- end -}}

{{/* GANTRY_<SERVICE>_ prefix of a service's settings. Context: (dict "name"). */}}
{{- define "gantry.envPrefix" -}}
{{- printf "GANTRY_%s_" (upper .name) -}}
{{- end -}}

{{/*
The in-cluster gRPC target of a service, for other services: the headless Service
through the dns resolver, so gantry.core.client balances calls round-robin over pods.
Context: (dict "root" "name").
*/}}
{{- define "gantry.grpcTarget" -}}
{{- $svc := index .root.Values .name -}}
{{- printf "dns:///%s-headless.%s.svc.%s:%d" (include "gantry.componentName" .) .root.Release.Namespace .root.Values.clusterDomain (int $svc.port) -}}
{{- end -}}

{{/* Whether a service is on: "true" or "". Context: (dict "root" "name"). */}}
{{- define "gantry.enabled" -}}
{{- $svc := index .root.Values .name -}}
{{- if and $svc $svc.enabled -}}true{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the bearer token. */}}
{{- define "gantry.authSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "gantry.fullname" .)) -}}
{{- end -}}

{{/* Object name of the in-chart Qdrant. */}}
{{- define "gantry.qdrantName" -}}
{{- printf "%s-qdrant" (include "gantry.fullname" .) -}}
{{- end -}}

{{/* The URL retrieval uses for Qdrant: the external one, or the in-chart Service. */}}
{{- define "gantry.qdrantUrl" -}}
{{- if .Values.retrieval.qdrant.url -}}
{{- .Values.retrieval.qdrant.url -}}
{{- else -}}
{{- printf "http://%s.%s.svc.%s:6333" (include "gantry.qdrantName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- end -}}

{{/* The port of the external Qdrant URL (explicit, else by scheme). */}}
{{- define "gantry.externalQdrantPort" -}}
{{- $u := urlParse .Values.retrieval.qdrant.url -}}
{{- $hostParts := splitList ":" $u.host -}}
{{- if gt (len $hostParts) 1 -}}
{{- last $hostParts -}}
{{- else if eq $u.scheme "https" -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}

{{/*
Checks across values that a JSON schema cannot express; each fails the render with a
message naming the values to change. Called once, from configmap.yaml.
*/}}
{{- define "gantry.validate" -}}
{{- $root := . -}}
{{- range $name := include "gantry.serviceNames" $root | splitList " " -}}
{{- $svc := index $root.Values $name -}}
{{- if $svc.enabled -}}
{{- if and $svc.autoscaling.enabled (gt (int $svc.autoscaling.minReplicas) (int $svc.autoscaling.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling: minReplicas (%v) is greater than maxReplicas (%v)" $name $svc.autoscaling.minReplicas $svc.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if eq (int $svc.port) (int $svc.metricsPort) -}}
{{- fail (printf "%s: port and metricsPort are both %v; they must differ" $name $svc.port) -}}
{{- end -}}
{{- if has $name $svc.talksTo -}}
{{- fail (printf "%s.talksTo: a service cannot list itself" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $root.Values.openai.enabled -}}
{{- if not $root.Values.rollout.enabled -}}
{{- fail "openai.enabled needs rollout.enabled=true: the OpenAI front is served by rollout" -}}
{{- end -}}
{{- if $root.Values.kserve.rollout.enabled -}}
{{- fail "openai.enabled and kserve.rollout.enabled: the InferenceService predictor exposes gRPC only; serve the OpenAI front from the plain rollout Deployment" -}}
{{- end -}}
{{- if has (int $root.Values.openai.port) (list (int $root.Values.rollout.port) (int $root.Values.rollout.metricsPort)) -}}
{{- fail (printf "openai.port %v collides with rollout's port or metricsPort" $root.Values.openai.port) -}}
{{- end -}}
{{- end -}}
{{- include "gantry.validateDistributed" $root -}}
{{- if $root.Values.retrieval.enabled -}}
{{- if and $root.Values.qdrant.enabled $root.Values.retrieval.qdrant.url -}}
{{- fail "retrieval.qdrant.url is set and qdrant.enabled=true: use either the in-chart Qdrant or an external URL, not both" -}}
{{- end -}}
{{- if not (or $root.Values.qdrant.enabled $root.Values.retrieval.qdrant.url) -}}
{{- fail "retrieval needs a Qdrant: set qdrant.enabled=true (in-chart) or retrieval.qdrant.url (external)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The ConfigMap data of a service: the runtime fields the chart manages, the targets of the
services it calls, then its `config` entries. Context: (dict "root" "name" "svc").
*/}}
{{- define "gantry.configData" -}}
{{- $p := include "gantry.envPrefix" . -}}
{{- $root := .root -}}
{{ $p }}HOST: "0.0.0.0"
{{ $p }}PORT: {{ .svc.port | quote }}
{{ $p }}METRICS_PORT: {{ .svc.metricsPort | quote }}
{{ $p }}GRACE_PERIOD_S: {{ .svc.gracePeriodSeconds | quote }}
{{ $p }}MAX_CONNECTION_AGE_S: {{ .svc.maxConnectionAgeSeconds | quote }}
{{ $p }}DATA_DIR: /var/lib/gantry
{{ $p }}LOG_JSON: "true"
{{- if $root.Values.auth.disabled }}
{{ $p }}AUTH_DISABLED: "true"
{{- else }}
{{ $p }}AUTH_TOKEN_FILE: /var/run/secrets/gantry/auth/token
{{- end }}
{{- range $peer := .svc.talksTo }}
{{- if include "gantry.enabled" (dict "root" $root "name" $peer) }}
{{ $p }}{{ upper $peer }}_TARGET: {{ include "gantry.grpcTarget" (dict "root" $root "name" $peer) | quote }}
{{- end }}
{{- end }}
{{- if eq .name "retrieval" }}
{{ $p }}QDRANT_URL: {{ include "gantry.qdrantUrl" $root | quote }}
{{- if include "gantry.qdrantApiKeySecret" $root }}
{{ $p }}QDRANT_API_KEY_FILE: /var/run/secrets/gantry/qdrant/api-key
{{- end }}
{{- end }}
{{- if and (eq .name "trainer") $root.Values.publishedWeights.toAllReplicas (include "gantry.enabled" (dict "root" $root "name" "rollout")) }}
{{ $p }}ROLLOUT_REPLICAS: {{ list (include "gantry.grpcTarget" (dict "root" $root "name" "rollout")) | toJson | quote }}
{{- end }}
{{- if $root.Values.publishedWeights.existingClaim }}
{{- if eq .name "trainer" }}
{{ $p }}PUBLISHED_WEIGHTS_DIR: {{ include "gantry.publishedMount" .name | quote }}
{{- else if eq .name "rollout" }}
{{ $p }}PUBLISHED_WEIGHTS: {{ include "gantry.publishedMount" .name | quote }}
{{- end }}
{{- end }}
{{- if and (eq .name "trainer") (include "gantry.distributed" $root) }}
{{- with .svc.distributed }}
{{ $p }}RANKS: "pods"
{{ $p }}MAX_WORLD_SIZE: {{ .worldSize | quote }}
{{ $p }}RENDEZVOUS_HOST: {{ include "gantry.rendezvousHost" $root | quote }}
{{ $p }}RENDEZVOUS_PORT: {{ .rendezvousPort | quote }}
{{ $p }}RANK_TIMEOUT_S: {{ .rankTimeoutSeconds | quote }}
{{ $p }}RANK_RESTARTS: {{ .restarts | quote }}
{{- end }}
{{- end }}
{{- if and (eq .name "rollout") $root.Values.openai.enabled }}
{{ $p }}OPENAI_HOST: "0.0.0.0"
{{ $p }}OPENAI_PORT: {{ $root.Values.openai.port | quote }}
{{- end }}
{{- if eq .name "envfarm" }}
{{- with .svc.sandbox }}
{{ $p }}SANDBOX_BACKEND: {{ .backend | quote }}
{{ $p }}SANDBOX_IMAGE: {{ .image | quote }}
{{- if eq .backend "kubernetes" }}
{{ $p }}SANDBOX_NAMESPACE: {{ include "gantry.sandboxNamespace" $root | quote }}
{{ $p }}SANDBOX_RUNTIME_CLASS: {{ .runtimeClassName | quote }}
{{ $p }}SANDBOX_WARM_POOL: {{ .warmPool | quote }}
{{ $p }}SANDBOX_CPU: {{ .cpu | toString | quote }}
{{ $p }}SANDBOX_MEMORY_BYTES: {{ .memoryBytes | int64 | toString | quote }}
{{- end }}
{{- end }}
{{ $p }}DRAIN_TIMEOUT_S: {{ .svc.sessions.drainSeconds | quote }}
{{- end }}
{{- range $key, $value := .svc.config }}
{{ $p }}{{ upper $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
"true" when envfarm runs its sandboxes as Pods (it then talks to the Kubernetes API).
*/}}
{{- define "gantry.kubeSandboxes" -}}
{{- if and .Values.envfarm.enabled (eq .Values.envfarm.sandbox.backend "kubernetes") -}}true{{- end -}}
{{- end -}}

{{/*
The namespace of envfarm's sandbox Pods.
*/}}
{{- define "gantry.sandboxNamespace" -}}
{{- .Values.envfarm.sandbox.namespace | default .Release.Namespace -}}
{{- end -}}

{{/*
The Secret (name and key, as "name/key") retrieval reads the Qdrant API key from, or "".
*/}}
{{- define "gantry.qdrantApiKeySecret" -}}
{{- if .Values.retrieval.qdrant.url -}}
{{- with .Values.retrieval.qdrant.apiKeySecret -}}
{{- if .name }}{{ .name }}/{{ .key }}{{ end -}}
{{- end -}}
{{- else if .Values.qdrant.apiKey.existingSecret -}}
{{- .Values.qdrant.apiKey.existingSecret }}/{{ .Values.qdrant.apiKey.secretKey -}}
{{- end -}}
{{- end -}}

{{/*
Where the published-weights claim is mounted: in rollout, inside its checkpoints root
(/var/lib/gantry/checkpoints), where it may read weights. Context: the service name.
*/}}
{{- define "gantry.publishedMount" -}}
{{- if eq . "rollout" -}}/var/lib/gantry/checkpoints/published{{- else -}}/var/lib/gantry-published{{- end -}}
{{- end -}}


{{/*
Multi-pod trainer runs (trainer.distributed): "true" when on.
*/}}
{{- define "gantry.distributed" -}}
{{- $t := .Values.trainer -}}
{{- if and $t.enabled ($t.distributed | default dict).enabled -}}true{{- end -}}
{{- end -}}

{{/* Object name of the trainer's rank pods (StatefulSet and its headless Service). */}}
{{- define "gantry.trainerRanksName" -}}
{{- printf "%s-trainer-ranks" (include "gantry.fullname" .) -}}
{{- end -}}

{{/*
Where ranks 1..N-1 reach rank 0's rendezvous store: the ClusterIP Service
<fullname>-trainer-rendezvous, in the cluster only whatever trainer.service.type is.
*/}}
{{- define "gantry.rendezvousName" -}}
{{- printf "%s-trainer-rendezvous" (include "gantry.fullname" .) -}}
{{- end -}}

{{- define "gantry.rendezvousHost" -}}
{{- printf "%s.%s.svc.%s" (include "gantry.rendezvousName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/*
Checks of trainer.distributed that the schema cannot express. The trainer's data volume
must be ReadWriteMany: every rank writes its checkpoint shards into the run's folder.
*/}}
{{- define "gantry.validateDistributed" -}}
{{- if include "gantry.distributed" . -}}
{{- $t := .Values.trainer -}}
{{- $d := $t.distributed -}}
{{- if lt (int $d.worldSize) 2 -}}
{{- fail (printf "trainer.distributed.worldSize is %v: a multi-pod run has at least 2 ranks (the trainer pod and one rank pod)" $d.worldSize) -}}
{{- end -}}
{{- if or (ne (int $t.replicas) 1) $t.autoscaling.enabled -}}
{{- fail "trainer.distributed.enabled: the trainer pod is rank 0 of every multi-pod run, so trainer.replicas must be 1 and trainer.autoscaling.enabled false" -}}
{{- end -}}
{{- if has (int $d.rendezvousPort) (list (int $t.port) (int $t.metricsPort)) -}}
{{- fail (printf "trainer.distributed.rendezvousPort %v collides with trainer.port or trainer.metricsPort" $d.rendezvousPort) -}}
{{- end -}}
{{- if and $t.gpu.enabled (ne (int $t.gpu.count) (int $d.gpusPerPod)) -}}
{{- fail (printf "trainer.gpu.count is %v but trainer.distributed.gpusPerPod is %v: with distributed.enabled the trainer pod is one rank like each rank pod (one rank per pod); set trainer.gpu.count=%v" $t.gpu.count $d.gpusPerPod $d.gpusPerPod) -}}
{{- end -}}
{{- range $key := list "ranks" "max_world_size" "rendezvous_host" "rendezvous_port" "rank_timeout_s" "rank_restarts" -}}
{{- if hasKey ($t.config | default dict) $key -}}
{{- fail (printf "trainer.config.%s: with trainer.distributed.enabled the chart sets it from trainer.distributed; remove it from trainer.config" $key) -}}
{{- end -}}
{{- end -}}
{{- $rwx := "trainer.distributed.enabled needs the trainer's data volume on ReadWriteMany storage, mounted by the trainer pod and every rank pod (each rank writes its checkpoint shards there)" -}}
{{- $persistence := $t.data.persistence | default dict -}}
{{- if $t.data.existingClaim -}}
{{- /* Checked where the cluster can be read (install, upgrade); `helm template` cannot. */ -}}
{{- $live := lookup "v1" "PersistentVolumeClaim" .Release.Namespace $t.data.existingClaim -}}
{{- if and $live (not (has "ReadWriteMany" ($live.spec.accessModes | default list))) -}}
{{- fail (printf "%s: trainer.data.existingClaim %s has accessModes %v" $rwx $t.data.existingClaim $live.spec.accessModes) -}}
{{- end -}}
{{- else if $persistence.enabled -}}
{{- if not (has "ReadWriteMany" ($persistence.accessModes | default list)) -}}
{{- fail (printf "%s: set trainer.data.persistence.accessModes to [ReadWriteMany] (a StorageClass that supports it), or trainer.data.existingClaim to a ReadWriteMany PVC" $rwx) -}}
{{- end -}}
{{- else -}}
{{- fail (printf "%s: set trainer.data.existingClaim to a ReadWriteMany PVC, or trainer.data.persistence.enabled=true with accessModes [ReadWriteMany]" $rwx) -}}
{{- end -}}
{{- $name := include "gantry.trainerRanksName" . -}}
{{- if gt (len $name) 52 -}}
{{- fail (printf "the rank StatefulSet name %s has %d characters; Kubernetes allows 52 (its pods' controller-revision-hash label adds 11): shorten the release name or set fullnameOverride" $name (len $name)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
