# Shared by partner-client.sh and attacks.sh: bash, curl and openssl only, as a partner has.
# Settings (environment):
#   CERTS_DIR    certificates from certs/generate.sh        (default: certs/out)
#   AS_URL       the authorization server                   (default: https://localhost:9443)
#   SIDECAR_URL  the sidecar's mTLS listener                (default: https://localhost:8443)
#   P12_PASSWORD password of the PKCS#12 files              (default: Password1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CERTS_DIR="${CERTS_DIR:-$here/../../certs/out}"
AS_URL="${AS_URL:-https://localhost:9443}"
SIDECAR_URL="${SIDECAR_URL:-https://localhost:8443}"
P12_PASSWORD="${P12_PASSWORD:-Password1}"
failures=0

for tool in curl openssl; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done
[ -s "$CERTS_DIR/ca.pem" ] || { echo "no certificates in $CERTS_DIR: run certs/generate.sh" >&2; exit 2; }

if [ -t 1 ]; then bold=$'\e[1m'; green=$'\e[32m'; red=$'\e[31m'; dim=$'\e[2m'; off=$'\e[0m'; else bold=''; green=''; red=''; dim=''; off=''; fi

heading() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$off"; }
sent() { printf '%s  > %s%s\n' "$dim" "$*" "$off"; }
note() { printf '    %s\n' "$*"; }
pass() { printf '  %s✔ %s%s\n' "$green" "$*" "$off"; }
fail() { printf '  %s✘ %s%s\n' "$red" "$*" "$off"; failures=$((failures + 1)); }

# The identity of a partner: its PKCS#12, as a partner would hold it.
p12() { printf '%s/%s.p12' "$CERTS_DIR" "$1"; }
cert_pem() { openssl pkcs12 -in "$(p12 "$1")" -passin "pass:$P12_PASSWORD" -clcerts -nokeys 2>/dev/null | openssl x509; }
# RFC 8705 x5t#S256: base64url(SHA-256(DER)) of the certificate.
thumbprint() { cert_pem "$1" | openssl x509 -outform DER | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '='; }
describe_cert() {
  local pem; pem="$(cert_pem "$1")"
  note "certificate: $(openssl x509 -noout -subject <<<"$pem" | sed 's/^subject=//')"
  note "issued by:   $(openssl x509 -noout -issuer <<<"$pem" | sed 's/^issuer=//')"
  note "x5t#S256:    $(thumbprint "$1")"
}

# Pulls a string member out of a flat JSON body (no jq on a partner's box).
json_string() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$2" | head -n 1; }
short() { printf '%s…(%d chars)' "${1:0:8}" "${#1}"; }

# request IDENTITY METHOD URL [curl args...]: sets STATUS, BODY, HEADERS and CURL_EXIT.
# IDENTITY "none" presents no client certificate.
request() {
  local identity="$1" method="$2" url="$3"; shift 3
  local cert_args=()
  [ "$identity" = none ] || cert_args=(--cert "$(p12 "$identity"):$P12_PASSWORD" --cert-type P12)
  local headers_file body_file
  headers_file="$(mktemp)"; body_file="$(mktemp)"
  set +e
  STATUS="$(curl -sS --max-time 10 --cacert "$CERTS_DIR/ca.pem" "${cert_args[@]}" -X "$method" -D "$headers_file" -o "$body_file" -w '%{http_code}' "$@" "$url" 2>"$body_file.err")"
  CURL_EXIT=$?
  set -e
  HEADERS="$(tr -d '\r' <"$headers_file")"
  BODY="$(cat "$body_file")"
  CURL_ERROR="$(cat "$body_file.err")"
  rm -f "$headers_file" "$body_file" "$body_file.err"
}

header() { sed -n "s/^$1: //Ip" <<<"$HEADERS" | tail -n 1; }

show_answer() {
  if [ "$CURL_EXIT" -ne 0 ]; then
    note "< no HTTP answer: the TLS handshake was refused (curl exit $CURL_EXIT: ${CURL_ERROR#curl: })"
    return
  fi
  note "< $STATUS"
  local challenge; challenge="$(header www-authenticate)"
  [ -z "$challenge" ] || note "< WWW-Authenticate: $challenge"
  local id; id="$(header x-fapi-interaction-id)"
  [ -z "$id" ] || note "< x-fapi-interaction-id: $id"
}

# partner_token PARTNER SCOPE: an access token from the AS over mTLS (tls_client_auth).
partner_token() {
  request "$1" POST "$AS_URL/token" --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$1" --data-urlencode "scope=$2"
  if [ "$STATUS" != 200 ]; then
    echo "token request for $1 failed: $STATUS $BODY $CURL_ERROR" >&2
    return 1
  fi
  json_string access_token "$BODY"
}

finish() {
  echo
  if [ "$failures" -eq 0 ]; then
    printf '%s%s%s\n' "$green" "$1: every answer was the expected one" "$off"
  else
    printf '%s%s%s\n' "$red" "$1: $failures unexpected answer(s)" "$off"
    exit 1
  fi
}
