{{/* Labels of every object of the release; `component` is the service (or job) name. */}}
{{- define "meshkit.labels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: meshkit-shop
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* The selector of one component's pods. */}}
{{- define "meshkit.selector" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* The image of a target of infra/docker/Dockerfile. */}}
{{- define "meshkit.image" -}}
{{- $i := .root.Values.image -}}
{{- $repo := printf "%s/%s" $i.repository .component -}}
{{- if $i.registry }}{{ $repo = printf "%s/%s" $i.registry $repo }}{{ end -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion $i.tag) -}}
{{- end -}}

{{- define "meshkit.consulHost" -}}
{{- .Values.consulAddress.host | default "$(HOST_IP)" -}}
{{- end -}}

{{- define "meshkit.natsUrl" -}}
{{- .Values.natsUrl | default (printf "nats://%s-nats:4222" .Release.Name) -}}
{{- end -}}

{{- define "meshkit.signerUrl" -}}
{{- /* The signer's own certificate names it "signer" (and localhost): the short name. */ -}}
https://signer:{{ .Values.signer.port }}
{{- end -}}

{{- define "meshkit.consulTokensSecret" -}}
{{- .Values.consulTokens.existingSecret | default (printf "%s-consul-tokens" .Release.Name) -}}
{{- end -}}

{{- define "meshkit.natsSecret" -}}
{{- .Values.natsCredentials.existingSecret | default (printf "%s-nats-creds" .Release.Name) -}}
{{- end -}}

{{- define "meshkit.caSecret" -}}
{{- .Values.meshCA.existingSecret | default (printf "%s-mesh-ca" .Release.Name) -}}
{{- end -}}

{{- define "meshkit.databaseSecret" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" .Release.Name) -}}
{{- end -}}

{{/* The identities the release holds Consul tokens for: the enabled services, the gateway. */}}
{{- define "meshkit.identities" -}}
{{- $names := list -}}
{{- range $name, $svc := .Values.services }}{{ if $svc.enabled }}{{ $names = append $names $name }}{{ end }}{{ end -}}
{{- if .Values.gateway.enabled }}{{ $names = append $names "gateway" }}{{ end -}}
{{- toJson $names -}}
{{- end -}}

{{/* Pod-level settings shared by every Deployment; `component`, `root`. */}}
{{- define "meshkit.podCommon" -}}
{{- $v := .root.Values -}}
serviceAccountName: {{ if $v.serviceAccount.create }}{{ .root.Release.Name }}-workload{{ else }}{{ $v.serviceAccount.name | default "default" }}{{ end }}
automountServiceAccountToken: {{ $v.serviceAccount.automountToken }}
enableServiceLinks: false
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $v.affinity }}
affinity:
  {{- toYaml $v.affinity | nindent 2 }}
{{- else if $v.spreadOverNodes }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "meshkit.selector" . | nindent 14 }}
{{- end }}
{{- end -}}

{{/* The pod's own facts (downward API): first in a container's env, as $(VAR) refers
     only to variables defined before it. */}}
{{- define "meshkit.podEnv" -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: HOST_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}

{{/* The environment of a mesh workload (meshkit.config.MeshConfig.from_args); `name`, `root`. */}}
{{- define "meshkit.meshEnv" -}}
{{- $v := .root.Values -}}
- name: MESH_INSTANCE_ID
  value: "$(POD_NAME)"
- name: CONSUL_HTTP_ADDR
  value: "{{ include "meshkit.consulHost" .root }}:{{ $v.consulAddress.port }}"
- name: CONSUL_HTTP_TOKEN_FILE
  value: /etc/meshkit/consul/{{ .name }}
- name: MESH_SIGNER_URL
  value: {{ include "meshkit.signerUrl" .root | quote }}
- name: MESH_CONNECT
  value: {{ $v.mesh.connect | quote }}
- name: MESH_TRUST_DOMAIN
  value: {{ $v.mesh.trustDomain | quote }}
- name: MESH_DISCOVERY
  value: {{ $v.mesh.discovery | quote }}
{{- if $v.mesh.discoveryUrl }}
- name: MESH_DISCOVERY_URL
  value: {{ $v.mesh.discoveryUrl | quote }}
{{- else if eq $v.mesh.discovery "dns" }}
- name: MESH_DISCOVERY_URL
  value: "dns:///?name=_grpc._tcp.{service}.{namespace}.svc.{{ $v.mesh.clusterDomain }}"
{{- end }}
- name: MESH_BROKER
  value: nats
- name: NATS_URL
  value: {{ include "meshkit.natsUrl" .root | quote }}
{{- if $v.natsCredentials.enabled }}
- name: MESH_NATS_CREDS
  value: /etc/meshkit/nats/{{ .name }}.nk
{{- end }}
- name: MESH_FILE
  value: /etc/meshkit/policy/mesh.toml
- name: MESH_INTENTIONS_DIR
  value: /etc/meshkit/intentions
- name: MESH_STATE_DIR
  value: /var/lib/meshkit
- name: MESH_TRACES_DB
  value: "off"
- name: MESH_TRACE_SAMPLE
  value: {{ $v.mesh.traceSample | quote }}
{{- if $v.mesh.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $v.mesh.otlpEndpoint | quote }}
{{- end }}
- name: MESH_LOG_JSON
  value: {{ $v.mesh.logJson | quote }}
- name: MESH_ACCESS_LOG
  value: {{ $v.mesh.accessLog | quote }}
{{- with $v.mesh.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The volumes every mesh workload mounts; `name`, `root`. */}}
{{- define "meshkit.meshVolumes" -}}
{{- $v := .root.Values -}}
- name: policy
  configMap:
    name: {{ .root.Release.Name }}-mesh-policy
- name: intentions
  configMap:
    name: {{ .root.Release.Name }}-intentions
- name: consul-token
  secret:
    secretName: {{ include "meshkit.consulTokensSecret" .root }}
    defaultMode: 0400
    items:
      - key: {{ .name }}
        path: {{ .name }}
{{- if $v.natsCredentials.enabled }}
- name: nats-creds
  secret:
    secretName: {{ include "meshkit.natsSecret" .root }}
    defaultMode: 0400
    items:
      - key: {{ .name }}.nk
        path: {{ .name }}.nk
{{- end }}
- name: state
  emptyDir: {}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
{{- end -}}

{{- define "meshkit.meshMounts" -}}
{{- $v := .root.Values -}}
- name: policy
  mountPath: /etc/meshkit/policy
  readOnly: true
- name: intentions
  mountPath: /etc/meshkit/intentions
  readOnly: true
- name: consul-token
  mountPath: /etc/meshkit/consul
  readOnly: true
{{- if $v.natsCredentials.enabled }}
- name: nats-creds
  mountPath: /etc/meshkit/nats
  readOnly: true
{{- end }}
- name: state
  mountPath: /var/lib/meshkit
- name: tmp
  mountPath: /tmp
{{- end -}}
