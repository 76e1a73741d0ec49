{{/* Names: the release's, cut to 63 characters as Kubernetes names must be. */}}
{{- define "phantom-sidecar.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "phantom-sidecar.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "phantom-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "phantom-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: phantom-sidecar
{{- end -}}

{{- define "phantom-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "phantom-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The pods the sidecar runs in: the chart's own workload, or the team's (podSelector). */}}
{{- define "phantom-sidecar.podSelector" -}}
{{- if .Values.workload.enabled -}}
{{ include "phantom-sidecar.selectorLabels" . }}
app.kubernetes.io/component: api
{{- else -}}
{{- if empty .Values.podSelector -}}
{{- fail "podSelector: set the labels of your pods (the Service, PDB and NetworkPolicies select them), or workload.enabled" -}}
{{- end -}}
{{ toYaml .Values.podSelector }}
{{- end -}}
{{- end -}}

{{- define "phantom-sidecar.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "phantom-sidecar.tlsSecret" -}}
{{- .Values.certificate.secretName | default (printf "%s-tls" (include "phantom-sidecar.fullname" .)) -}}
{{- end -}}

{{- define "phantom-sidecar.partnerCaConfigMap" -}}
{{- .Values.partnerCA.trustManagerBundle | default .Values.partnerCA.configMap.name | default (printf "%s-partner-ca" (include "phantom-sidecar.fullname" .)) -}}
{{- end -}}

{{- define "phantom-sidecar.jwtIssuer" -}}
{{- .Values.jwt.issuer | default (printf "https://%s.%s.phantom-sidecar" (include "phantom-sidecar.fullname" .) .Release.Namespace) -}}
{{- end -}}

{{- define "phantom-sidecar.jwtAudience" -}}
{{- .Values.jwt.audience | default (printf "https://%s.%s.svc" (include "phantom-sidecar.fullname" .) .Release.Namespace) -}}
{{- end -}}

{{- define "phantom-sidecar.isSecretAuth" -}}
{{- if has .Values.authorizationServer.auth (list "client_secret_basic" "client_secret_post") -}}true{{- end -}}
{{- end -}}

{{- define "phantom-sidecar.isTlsAuth" -}}
{{- if has .Values.authorizationServer.auth (list "tls_client_auth" "self_signed_tls_client_auth") -}}true{{- end -}}
{{- end -}}

{{/*
The sidecar's settings: every PHANTOM_* value that is not a secret. Secrets are files on
mounted Secret volumes, named here by their paths.
*/}}
{{- define "phantom-sidecar.settings" -}}
{{- $as := .Values.authorizationServer -}}
PHANTOM_LISTEN_PORT: {{ .Values.ports.https | quote }}
PHANTOM_ADMIN_PORT: {{ .Values.ports.admin | quote }}
PHANTOM_TLS_CERT: /etc/phantom/tls/tls.crt
PHANTOM_TLS_KEY: /etc/phantom/tls/tls.key
PHANTOM_TLS_CLIENT_CA: /etc/phantom/partner-ca/ca.crt
PHANTOM_UPSTREAM_URL: {{ printf "http://127.0.0.1:%v" .Values.upstream.port | quote }}
PHANTOM_AS_ISSUER: {{ required "authorizationServer.issuer is required" $as.issuer | quote }}
PHANTOM_INTROSPECTION_CLIENT_ID: {{ required "authorizationServer.clientId is required" $as.clientId | quote }}
PHANTOM_INTROSPECTION_AUTH: {{ $as.auth | quote }}
{{- if eq $as.auth "private_key_jwt" }}
PHANTOM_INTROSPECTION_CLIENT_KEY_FILE: /var/run/secrets/phantom/client/client.key
{{- else if include "phantom-sidecar.isTlsAuth" . }}
PHANTOM_INTROSPECTION_CLIENT_CERT: /var/run/secrets/phantom/client/tls.crt
PHANTOM_INTROSPECTION_CLIENT_CERT_KEY: /var/run/secrets/phantom/client/tls.key
{{- else }}
PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE: /var/run/secrets/phantom/client/client-secret
{{- end }}
{{- if $as.signedAnswers }}
PHANTOM_INTROSPECTION_RESPONSE: jwt
{{- end }}
{{- if $as.caConfigMap.name }}
PHANTOM_INTROSPECTION_CA: /etc/phantom/as-ca/ca.crt
{{- end }}
PHANTOM_EXPECTED_AUDIENCE: {{ required "token.audience is required" .Values.token.audience | quote }}
{{- with .Values.token.requiredScopes }}
PHANTOM_REQUIRED_SCOPES: {{ . | quote }}
{{- end }}
PHANTOM_SENDER_CONSTRAINTS: {{ .Values.token.senderConstraints | quote }}
{{- with .Values.token.publicHosts }}
PHANTOM_PUBLIC_HOSTS: {{ . | quote }}
{{- end }}
PHANTOM_JWT_ISSUER: {{ include "phantom-sidecar.jwtIssuer" . | quote }}
PHANTOM_JWT_AUDIENCE: {{ include "phantom-sidecar.jwtAudience" . | quote }}
PHANTOM_JWT_TTL_S: {{ .Values.jwt.ttlSeconds | quote }}
PHANTOM_JWT_ALG: {{ .Values.jwt.alg | quote }}
{{- if .Values.jwt.signingKeySecret }}
PHANTOM_JWT_SIGNING_KEY_FILE: /var/run/secrets/phantom/jwt/signing.key
{{- end }}
{{- if .Values.fleet.enabled }}
PHANTOM_REDIS_URL: {{ required "fleet.redis.url is required with fleet.enabled" .Values.fleet.redis.url | quote }}
{{- if .Values.fleet.redis.caConfigMap }}
PHANTOM_REDIS_CA: /etc/phantom/redis-ca/ca.crt
{{- end }}
{{- if .Values.fleet.redis.passwordKey }}
PHANTOM_REDIS_PASSWORD_FILE: /var/run/secrets/phantom/redis/password
{{- end }}
PHANTOM_REDIS_KEY_FILE: /var/run/secrets/phantom/redis/sealing-key
{{- if .Values.fleet.ssf.enabled }}
PHANTOM_SSF_ISSUER: {{ required "fleet.ssf.issuer is required with fleet.ssf.enabled" .Values.fleet.ssf.issuer | quote }}
PHANTOM_SSF_AUDIENCE: {{ required "fleet.ssf.audience is required with fleet.ssf.enabled" .Values.fleet.ssf.audience | quote }}
PHANTOM_SSF_AUTH_TOKEN_FILE: /var/run/secrets/phantom/ssf/token
{{- end }}
{{- end }}
PHANTOM_LOG_LEVEL: {{ .Values.logLevel | quote }}
{{- range $name, $value := .Values.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* The sidecar container, one definition for the chart's Deployment and the injector's template. */}}
{{- define "phantom-sidecar.container" -}}
name: phantom-sidecar
image: {{ include "phantom-sidecar.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
# A native sidecar: up (started, then ready) before the API, stopped after it.
restartPolicy: Always
ports:
  - name: phantom-https
    containerPort: {{ .Values.ports.https }}
    protocol: TCP
  - name: phantom-admin
    containerPort: {{ .Values.ports.admin }}
    protocol: TCP
envFrom:
  - configMapRef:
      name: {{ include "phantom-sidecar.fullname" . }}-settings
startupProbe:
  httpGet: { path: /healthz, port: phantom-admin }
  periodSeconds: 1
  failureThreshold: 30
livenessProbe:
  httpGet: { path: /healthz, port: phantom-admin }
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: phantom-admin }
  periodSeconds: 5
  failureThreshold: 2
resources: {{- toYaml .Values.resources | nindent 2 }}
securityContext: {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - { name: phantom-server-tls, mountPath: /etc/phantom/tls, readOnly: true }
  - { name: phantom-partner-ca, mountPath: /etc/phantom/partner-ca, readOnly: true }
  - { name: phantom-client-credentials, mountPath: /var/run/secrets/phantom/client, readOnly: true }
{{- if .Values.authorizationServer.caConfigMap.name }}
  - { name: phantom-as-ca, mountPath: /etc/phantom/as-ca, readOnly: true }
{{- end }}
{{- if .Values.jwt.signingKeySecret }}
  - { name: phantom-jwt-key, mountPath: /var/run/secrets/phantom/jwt, readOnly: true }
{{- end }}
{{- if .Values.fleet.enabled }}
  - { name: phantom-redis, mountPath: /var/run/secrets/phantom/redis, readOnly: true }
{{- if .Values.fleet.redis.caConfigMap }}
  - { name: phantom-redis-ca, mountPath: /etc/phantom/redis-ca, readOnly: true }
{{- end }}
{{- if .Values.fleet.ssf.enabled }}
  - { name: phantom-ssf, mountPath: /var/run/secrets/phantom/ssf, readOnly: true }
{{- end }}
{{- end }}
{{- end -}}

{{/* The sidecar's volumes; each Secret and ConfigMap is mapped to the fixed file names above. */}}
{{- define "phantom-sidecar.volumes" -}}
{{- $fullname := include "phantom-sidecar.fullname" . -}}
{{- $as := .Values.authorizationServer -}}
- name: phantom-server-tls
  secret:
    secretName: {{ include "phantom-sidecar.tlsSecret" . }}
- name: phantom-partner-ca
  configMap:
    name: {{ include "phantom-sidecar.partnerCaConfigMap" . }}
    items:
      - { key: {{ .Values.partnerCA.configMap.key }}, path: ca.crt }
- name: phantom-client-credentials
  secret:
{{- if eq $as.auth "private_key_jwt" }}
    secretName: {{ $as.clientKey.secretName | default (printf "%s-client-key" $fullname) }}
    items:
      - { key: {{ $as.clientKey.key }}, path: client.key }
{{- else if include "phantom-sidecar.isTlsAuth" . }}
    secretName: {{ $as.clientCertificate.secretName | default (printf "%s-client-certificate" $fullname) }}
    items:
      - { key: tls.crt, path: tls.crt }
      - { key: tls.key, path: tls.key }
{{- else }}
    secretName: {{ $as.clientSecret.secretName | default (printf "%s-client-secret" $fullname) }}
    items:
      - { key: {{ $as.clientSecret.key }}, path: client-secret }
{{- end }}
{{- if $as.caConfigMap.name }}
- name: phantom-as-ca
  configMap:
    name: {{ $as.caConfigMap.name }}
    items:
      - { key: {{ $as.caConfigMap.key }}, path: ca.crt }
{{- end }}
{{- if .Values.jwt.signingKeySecret }}
- name: phantom-jwt-key
  secret:
    secretName: {{ .Values.jwt.signingKeySecret }}
    items:
      - { key: signing.key, path: signing.key }
{{- end }}
{{- if .Values.fleet.enabled }}
- name: phantom-redis
  secret:
    secretName: {{ .Values.fleet.redis.secretName | default (printf "%s-redis" $fullname) }}
    items:
      - { key: sealing-key, path: sealing-key }
{{- with .Values.fleet.redis.passwordKey }}
      - { key: {{ . }}, path: password }
{{- end }}
{{- if .Values.fleet.redis.caConfigMap }}
- name: phantom-redis-ca
  configMap:
    name: {{ .Values.fleet.redis.caConfigMap }}
    items:
      - { key: ca.crt, path: ca.crt }
{{- end }}
{{- if .Values.fleet.ssf.enabled }}
- name: phantom-ssf
  secret:
    secretName: {{ .Values.fleet.ssf.authTokenSecret | default (printf "%s-ssf" $fullname) }}
    items:
      - { key: token, path: token }
{{- end }}
{{- end }}
{{- end -}}
