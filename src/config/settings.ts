// Generated from the README's Configuration tables by deploy/scripts/settings-catalogue.ts
// (npm run settings); a test fails when the two differ. Read by --help and check.

export interface SettingEntry {
  names: readonly string[];
  fallback: string;
  summary: string;
}

export interface SettingsGroup {
  title: string;
  settings: readonly SettingEntry[];
}

export const SETTINGS_GROUPS: readonly SettingsGroup[] = [
  {
    title: "The listener and the partner certificate",
    settings: [
      {"names":["PHANTOM_LISTEN_HOST","PHANTOM_LISTEN_PORT"],"fallback":"0.0.0.0, 8443","summary":"the mTLS listener"},
      {"names":["PHANTOM_TLS_CERT","PHANTOM_TLS_KEY"],"fallback":"required","summary":"PEM paths of the server certificate (chain) and its key"},
      {"names":["PHANTOM_TLS_CLIENT_CA"],"fallback":"required","summary":"PEM bundle of the CAs that issue partner client certificates"},
      {"names":["PHANTOM_TLS_CLIENT_CRL"],"fallback":"none","summary":"space-separated paths of PEM CRL files (each may hold several)"},
      {"names":["PHANTOM_TLS_RELOAD_INTERVAL_S"],"fallback":"60","summary":"how often every file renewed in place is checked: the TLS files (certificate, key, CA bundle, …"},
      {"names":["PHANTOM_TLS_MIN_VERSION"],"fallback":"TLSv1.2","summary":"TLSv1.2 or TLSv1.3"},
      {"names":["PHANTOM_TLS_HANDSHAKE_TIMEOUT_MS"],"fallback":"10000","summary":"a connection that has not finished its TLS handshake by then is closed"},
      {"names":["PHANTOM_TLS_MAX_CONNECTION_AGE_S"],"fallback":"3600","summary":"no connection lives longer: the next response on an older one carries Connection: close"},
      {"names":["PHANTOM_HEADERS_TIMEOUT_MS"],"fallback":"10000","summary":"the whole request head must arrive within this: 408 and the connection closed"},
      {"names":["PHANTOM_REQUEST_TIMEOUT_MS"],"fallback":"30000","summary":"the whole request, body included, must arrive within this: 408, the connection closed, the …"},
      {"names":["PHANTOM_KEEPALIVE_TIMEOUT_MS"],"fallback":"50000","summary":"an idle keep-alive connection is closed after this (below the usual 60 s of load balancers)"},
      {"names":["PHANTOM_MAX_BODY_BYTES"],"fallback":"10485760","summary":"a larger Content-Length is 413 before anything is forwarded"},
      {"names":["PHANTOM_ALLOWED_METHODS"],"fallback":"GET HEAD POST PUT PATCH DELETE OPTIONS","summary":"anything else (TRACE and CONNECT always) is 405 with Allow"},
      {"names":["PHANTOM_PUBLIC_HOSTS"],"fallback":"none","summary":"space-separated Host values the sidecar answers for, as a Host header carries them (with the …"},
      {"names":["PHANTOM_FORWARD_COOKIES"],"fallback":"false","summary":"Cookie is dropped unless true (logged as loosened)"},
      {"names":["PHANTOM_DRAIN_TIMEOUT_S"],"fallback":"20","summary":"on SIGTERM: no new connections, each request under way answered on a connection that then closes"},
    ],
  },
  {
    title: "Sender constraints, certificates from an ingress, routes",
    settings: [
      {"names":["PHANTOM_SENDER_CONSTRAINTS"],"fallback":"mtls","summary":"which bindings a token may have: mtls (RFC 8705 cnf.x5t#S256), dpop (RFC 9449 cnf.jkt) or mtls …"},
      {"names":["PHANTOM_DPOP_ALGS"],"fallback":"ES256 PS256 EdDSA","summary":"DPoP proof algorithms accepted (of ES256 ES384 PS256 PS384 EdDSA"},
      {"names":["PHANTOM_DPOP_MAX_AGE_S"],"fallback":"60","summary":"a proof's iat may be this old (or this far ahead) plus 5 s of leeway"},
      {"names":["PHANTOM_DPOP_NONCE"],"fallback":"false","summary":"true: proofs must carry a nonce the sidecar issued (RFC 9449 §9): a missing or stale one is 401 …"},
      {"names":["PHANTOM_DPOP_NONCE_SECRET"],"fallback":"required with nonces","summary":"the HMAC key, ≥ 32 bytes, the same on every replica (or _FILE)"},
      {"names":["PHANTOM_RESOURCE"],"fallback":"none","summary":"this API's resource identifier (an https URL)"},
      {"names":["PHANTOM_CLIENT_CERT_SOURCE"],"fallback":"tls","summary":"header: behind an ingress that terminates mTLS, take the partner's certificate from RFC 9440 …"},
      {"names":["PHANTOM_TRUSTED_PROXY_CERT_X5T"],"fallback":"none","summary":"space-separated x5t#S256 thumbprints of the ingress's client certificates"},
      {"names":["PHANTOM_TRUSTED_PROXY_CA"],"fallback":"none","summary":"or a CA bundle of the ingresses' own (its certificates complete the handshake but are never a …"},
      {"names":["PHANTOM_CLIENT_CERT_HEADER_FORMAT"],"fallback":"rfc9440","summary":"rfc9440: Client-Cert (and Client-Cert-Chain)"},
      {"names":["PHANTOM_CLIENT_CERT_HEADER"],"fallback":"x-ssl-client-cert","summary":"with PHANTOM_CLIENT_CERT_HEADER_FORMAT=nginx: the header in which the gateway passes nginx's …"},
      {"names":["PHANTOM_FORWARD_CLIENT_CERT"],"fallback":"false","summary":"true: the verified partner certificate goes to the API as RFC 9440 Client-Cert (a client's copy …"},
      {"names":["PHANTOM_POLICY_FILE"],"fallback":"none","summary":"a YAML route policy (see Route policy), checked whole at start-up (exit 2 naming the file, the …"},
      {"names":["PHANTOM_POLICY_CASE_INSENSITIVE"],"fallback":"false","summary":"compare policy paths without case, for an API whose router does (Fastify caseSensitive: false, …"},
    ],
  },
  {
    title: "What one partner may take",
    settings: [
      {"names":["PHANTOM_MAX_CONCURRENT_PER_CLIENT"],"fallback":"64","summary":"requests one partner may have in flight"},
      {"names":["PHANTOM_MAX_FAILED_TOKENS_PER_MIN"],"fallback":"60","summary":"tokens that prove invalid (inactive, expired, bound elsewhere, another audience…) and DPoP …"},
      {"names":["PHANTOM_MAX_CONCURRENT_INTROSPECTIONS_PER_CLIENT"],"fallback":"16","summary":"introspections of tokens the cache does not know, in flight at once for one partner"},
      {"names":["PHANTOM_MAX_CONNECTIONS"],"fallback":"1000","summary":"TLS connections open at once, all partners together"},
      {"names":["PHANTOM_MAX_CONNECTIONS_PER_CLIENT"],"fallback":"256","summary":"TLS connections open at once per partner certificate (by x5t#S256, counted at the handshake)"},
      {"names":["PHANTOM_MAX_CONCURRENT_INTROSPECTIONS"],"fallback":"64","summary":"calls in flight to the AS, all partners together"},
      {"names":["PHANTOM_UPSTREAM_CONNECTIONS"],"fallback":"128","summary":"connections to the API"},
      {"names":["PHANTOM_UPSTREAM_QUEUE_TIMEOUT_MS"],"fallback":"1000","summary":"a request that cannot get an upstream connection within this is 503 Retry-After: 1 instead of …"},
    ],
  },
  {
    title: "The fleet",
    settings: [
      {"names":["PHANTOM_REDIS_URL"],"fallback":"none","summary":"redis:// or rediss:// host and port of a Redis every replica shares: introspection answers …"},
      {"names":["PHANTOM_REDIS_CA"],"fallback":"system CAs","summary":"PEM bundle trusted for rediss://"},
      {"names":["PHANTOM_REDIS_PASSWORD"],"fallback":"none","summary":"or _FILE"},
      {"names":["PHANTOM_REDIS_KEY"],"fallback":"required with PHANTOM_REDIS_URL","summary":"or _FILE"},
      {"names":["PHANTOM_REDIS_PREVIOUS_KEY"],"fallback":"none","summary":"or _FILE"},
      {"names":["PHANTOM_REDIS_TIMEOUT_MS"],"fallback":"50","summary":"deadline of every Redis command"},
      {"names":["PHANTOM_CACHE_DEGRADED_TTL_S"],"fallback":"5","summary":"while Redis is away (revocation events may be missed), in-process answers, those already held …"},
      {"names":["PHANTOM_CACHE_STALE_IF_ERROR_S"],"fallback":"0 (off)","summary":"when the AS cannot be reached, an active answer whose cache lifetime has just ended but whose …"},
      {"names":["PHANTOM_SSF_ISSUER"],"fallback":"none","summary":"the Shared Signals transmitter (its /.well-known/ssf-configuration names its keys)"},
      {"names":["PHANTOM_SSF_JWKS_URL"],"fallback":"from the transmitter's configuration","summary":"the transmitter's keys"},
      {"names":["PHANTOM_SSF_AUDIENCE"],"fallback":"required with PHANTOM_SSF_ISSUER","summary":"the aud the SETs must carry"},
      {"names":["PHANTOM_SSF_CA"],"fallback":"PHANTOM_INTROSPECTION_CA","summary":"PEM bundle trusted for the transmitter's TLS"},
      {"names":["PHANTOM_SSF_AUTH_TOKEN"],"fallback":"none","summary":"or _FILE: the bearer token the transmitter must send with every push"},
    ],
  },
  {
    title: "The authorization server and the token",
    settings: [
      {"names":["PHANTOM_MODE"],"fallback":"proxy","summary":"proxy: the sidecar forwards to the API. decision: it answers a gateway's authorization call …"},
      {"names":["PHANTOM_DECISION_JWT_HEADER"],"fallback":"authorization","summary":"decision mode: the response header that carries the JWT for the gateway to set upstream"},
      {"names":["PHANTOM_DECISION_PATH_PREFIX"],"fallback":"none","summary":"decision mode: Envoy's HTTP ext_authz path_prefix, taken off the check request's path to give …"},
      {"names":["PHANTOM_EXT_AUTHZ_GRPC_PORT"],"fallback":"off","summary":"decision mode: also serve Envoy's gRPC envoy.service.auth.v3.Authorization/Check on this port …"},
      {"names":["PHANTOM_UPSTREAM_URL"],"fallback":"required","summary":"the API beside the sidecar, e.g. http://127.0.0.1:3000"},
      {"names":["PHANTOM_UPSTREAM_TIMEOUT_MS"],"fallback":"30000","summary":"no answer from the API in time: 504"},
      {"names":["PHANTOM_AS_ISSUER"],"fallback":"none","summary":"the authorization server's issuer identifier"},
      {"names":["PHANTOM_AS_METADATA_REFRESH_S"],"fallback":"3600","summary":"how often the metadata is read again (a refresh that fails or disagrees keeps the last good …"},
      {"names":["PHANTOM_INTROSPECTION_URL"],"fallback":"required without PHANTOM_AS_ISSUER","summary":"the introspection endpoint (https only)"},
      {"names":["PHANTOM_INTROSPECTION_CLIENT_ID"],"fallback":"required","summary":"the sidecar's client id at the AS"},
      {"names":["PHANTOM_INTROSPECTION_AUTH"],"fallback":"client_secret_basic","summary":"how the sidecar authenticates: client_secret_basic, client_secret_post, or, as FAPI 2.0 …"},
      {"names":["PHANTOM_INTROSPECTION_CLIENT_SECRET"],"fallback":"required for the two secret methods","summary":"also as _FILE"},
      {"names":["PHANTOM_INTROSPECTION_CLIENT_KEY"],"fallback":"required for private_key_jwt","summary":"the PEM private key (or its path via _FILE)"},
      {"names":["PHANTOM_INTROSPECTION_CLIENT_KEY_ALG"],"fallback":"from the key","summary":"ES256 (EC P-256), PS256 (RSA ≥ 2048) or EdDSA (Ed25519)"},
      {"names":["PHANTOM_INTROSPECTION_CLIENT_KEY_ID"],"fallback":"RFC 7638 thumbprint","summary":"the assertion's kid"},
      {"names":["PHANTOM_INTROSPECTION_CLIENT_CERT","PHANTOM_INTROSPECTION_CLIENT_CERT_KEY"],"fallback":"required for the two TLS methods","summary":"PEM paths of the sidecar's own client certificate and key (RFC 8705 §2), re-read every …"},
      {"names":["PHANTOM_INTROSPECTION_RESPONSE"],"fallback":"json","summary":"jwt: ask for an RFC 9701 signed answer (Accept: application/token-introspection+jwt) and accept …"},
      {"names":["PHANTOM_AS_JWKS_URL"],"fallback":"the metadata's jwks_uri","summary":"the AS's keys for signed answers, fetched with jose's remote JWKS: an unknown kid fetches the …"},
      {"names":["PHANTOM_AS_JWKS_COOLDOWN_S"],"fallback":"10","summary":"at most one such refetch per this many seconds, so a flood of unknown kids cannot hammer the AS"},
      {"names":["PHANTOM_INTROSPECTION_CA"],"fallback":"system CAs","summary":"PEM bundle trusted for the authorization server's TLS (introspection, metadata, JWKS)"},
      {"names":["PHANTOM_INTROSPECTION_TIMEOUT_MS"],"fallback":"2000","summary":"one deadline over the whole introspection exchange"},
      {"names":["PHANTOM_INTROSPECTION_CONNECTIONS"],"fallback":"8","summary":"kept-alive TLS connections to the introspection endpoint, at most"},
      {"names":["PHANTOM_CACHE_MAX_ENTRIES"],"fallback":"10000","summary":"active answers held"},
      {"names":["PHANTOM_CACHE_MAX_TTL_S"],"fallback":"300","summary":"longest reuse of an introspection answer: the revocation window"},
      {"names":["PHANTOM_CACHE_NEGATIVE_TTL_S"],"fallback":"5","summary":"how long an active: false answer is remembered"},
      {"names":["PHANTOM_CACHE_NEGATIVE_MAX_ENTRIES"],"fallback":"1000","summary":"inactive answers live in a small cache of their own, so random tokens can never evict an active …"},
      {"names":["PHANTOM_EXPECTED_AUDIENCE"],"fallback":"required","summary":"aud must contain it (a token without aud is refused)"},
      {"names":["PHANTOM_ALLOW_ANY_AUDIENCE"],"fallback":"false","summary":"true accepts tokens for any API (logged as loosened)"},
      {"names":["PHANTOM_EXPECTED_ISSUER"],"fallback":"PHANTOM_AS_ISSUER","summary":"when set, iss must equal it"},
      {"names":["PHANTOM_REQUIRE_BINDING"],"fallback":"true","summary":"refuse tokens without cnf.x5t#S256 (FAPI: no plain bearer tokens)"},
      {"names":["PHANTOM_REQUIRE_TOKEN_TYPE"],"fallback":"true","summary":"RFC 7662 token_type must be Bearer or DPoP (any case): an AS may call a refresh token active. …"},
      {"names":["PHANTOM_REQUIRED_SCOPES"],"fallback":"none","summary":"space-separated scopes every request needs (without PHANTOM_POLICY_FILE)"},
      {"names":["PHANTOM_UPSTREAM_TOKEN"],"fallback":"mint","summary":"mint: the sidecar signs the JWT"},
      {"names":["PHANTOM_JWT_ISSUER","PHANTOM_JWT_AUDIENCE"],"fallback":"required in mint mode","summary":"iss and aud of minted JWTs"},
      {"names":["PHANTOM_JWT_TTL_S"],"fallback":"60","summary":"minted JWT lifetime, never past the opaque token's exp"},
      {"names":["PHANTOM_JWT_ALG"],"fallback":"ES256","summary":"ES256, PS256 or EdDSA (never none, HMAC or RS256)"},
      {"names":["PHANTOM_JWT_SIGNING_KEY"],"fallback":"generated at start","summary":"the PEM private key (or its path via _FILE)"},
      {"names":["PHANTOM_ADMIN_HOST","PHANTOM_ADMIN_PORT"],"fallback":"0.0.0.0, 9090","summary":"plain-HTTP admin listener: GET /healthz, /readyz (200 once listening, 503 while starting or …"},
      {"names":["PHANTOM_LOG_LEVEL"],"fallback":"info","summary":"fatal … trace, silent"},
    ],
  },
  {
    title: "Tracing and the access line",
    settings: [
      {"names":["OTEL_EXPORTER_OTLP_ENDPOINT"],"fallback":"none (tracing off)","summary":"the collector's OTLP/HTTP base URL (/v1/traces is appended)"},
      {"names":["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],"fallback":"none","summary":"the traces URL itself, used as is"},
      {"names":["OTEL_EXPORTER_OTLP_PROTOCOL"],"fallback":"http/protobuf","summary":"or http/json (gRPC is not offered)"},
      {"names":["OTEL_EXPORTER_OTLP_HEADERS"],"fallback":"none","summary":"name=value pairs, comma-separated, values URL-encoded (the collector's API key)"},
      {"names":["OTEL_SERVICE_NAME"],"fallback":"phantom-sidecar","summary":"the spans' service.name (OTEL_RESOURCE_ATTRIBUTES adds more)"},
      {"names":["OTEL_TRACES_SAMPLER","OTEL_TRACES_SAMPLER_ARG"],"fallback":"parentbased_always_on, 1","summary":"always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or …"},
      {"names":["OTEL_SDK_DISABLED"],"fallback":"false","summary":"true turns tracing off whatever else is set"},
      {"names":["PHANTOM_LOG_TIME"],"fallback":"epoch","summary":"epoch: pino's milliseconds"},
    ],
  },
  {
    title: "The injector",
    settings: [
      {"names":["PHANTOM_WEBHOOK_HOST","PHANTOM_WEBHOOK_PORT"],"fallback":"0.0.0.0, 9443","summary":"the HTTPS listener the API server calls (POST /mutate, GET /healthz)"},
      {"names":["PHANTOM_WEBHOOK_TLS_CERT","PHANTOM_WEBHOOK_TLS_KEY"],"fallback":"required","summary":"PEM paths of its certificate and key (from cert-manager), read again when renewed (every …"},
      {"names":["PHANTOM_WEBHOOK_TEMPLATE"],"fallback":"required","summary":"the JSON of the sidecar container and its volumes, as the Helm chart renders it into a ConfigMap"},
    ],
  },
];
