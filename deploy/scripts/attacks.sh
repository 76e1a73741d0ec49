#!/usr/bin/env bash
# Each defence of the sidecar, and its answer. Exits non-zero if any attack gets an answer
# other than the expected refusal. Settings: see lib.sh, and
#   SIDECAR_REVOCATION_EVENTS  non-empty when the AS pushes Shared Signals revocation events to the sidecar
#   SIDECAR_CACHE_TTL_S  the sidecar's PHANTOM_CACHE_MAX_TTL_S: how long a revocation may
#                        take to bite (the demo runs with 2; the default is 300)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIDECAR_CACHE_TTL_S="${SIDECAR_CACHE_TTL_S:-300}"
API="$SIDECAR_URL/api/accounts"

# expect_refusal WHAT STATUS|tls REASON
expect_refusal() {
  show_answer
  if [ "$2" = tls ]; then
    if [ "$CURL_EXIT" -ne 0 ]; then pass "refused: $3"; else fail "expected the handshake to fail, got HTTP $STATUS"; fi
  elif [ "$CURL_EXIT" -eq 0 ] && [ "$STATUS" = "$2" ]; then
    pass "refused with $STATUS: $3"
  else
    fail "expected $2, got ${STATUS:-no answer} (curl exit $CURL_EXIT) $BODY"
  fi
}

token="$(partner_token partner-a accounts)"
heading "Setting the scene: partner A holds a token bound to its certificate"
note "partner-a x5t#S256: $(thumbprint partner-a)"
note "partner-b x5t#S256: $(thumbprint partner-b)"
request partner-a GET "$API" -H "Authorization: Bearer $token"
if [ "$STATUS" = 200 ]; then pass "partner A with its own token: 200"; else fail "partner A's own call failed: $STATUS"; fi

heading "Attack 1: partner B replays partner A's stolen token with its own certificate"
sent "GET $API  Authorization: Bearer $(short "$token")  [certificate: partner-b.p12]"
request partner-b GET "$API" -H "Authorization: Bearer $token"
expect_refusal replay 401 "cnf.x5t#S256 in the token is partner A's thumbprint, the connection shows partner B's (RFC 8705 §3)"

heading "Attack 2: the stolen token plus a forged client-certificate header"
sent "GET $API  Authorization: Bearer $(short "$token")  x-forwarded-client-cert: Hash=<partner A>  [certificate: partner-b.p12]"
request partner-b GET "$API" -H "Authorization: Bearer $token" -H "x-forwarded-client-cert: Hash=$(thumbprint partner-a)" -H "Client-Cert: :$(cert_pem partner-a | openssl x509 -outform DER | openssl base64 -A):"
expect_refusal forged-header 401 "the sidecar reads the certificate from its own TLS socket; client-supplied certificate headers are dropped"

heading "Attack 3: no client certificate at all"
sent "GET $API  Authorization: Bearer $(short "$token")  [no certificate]"
request none GET "$API" -H "Authorization: Bearer $token"
expect_refusal no-cert tls "mutual TLS is required: no certificate, no HTTP"

heading "Attack 4: a certificate from a CA nobody trusts (same subject as partner A)"
describe_cert rogue
sent "GET $API  Authorization: Bearer $(short "$token")  [certificate: rogue.p12]"
request rogue GET "$API" -H "Authorization: Bearer $token"
expect_refusal rogue tls "the certificate does not chain to the partner CA bundle"

heading "Attack 5: a revoked token"
revoked="$(partner_token partner-a accounts)"
request partner-a GET "$API" -H "Authorization: Bearer $revoked"
note "first use: $STATUS (the introspection answer is now cached for at most ${SIDECAR_CACHE_TTL_S}s)"
sent "POST $AS_URL/token/revocation token=$(short "$revoked")  [certificate: partner-a.p12]"
request partner-a POST "$AS_URL/token/revocation" --data-urlencode "token=$revoked" --data-urlencode client_id=partner-a
if [ -n "${SIDECAR_REVOCATION_EVENTS:-}" ]; then
  # The AS pushes a Shared Signals event for the revoked token: no revocation window to wait out.
  note "revocation: $STATUS; the AS pushes a Shared Signals event to the sidecar (no waiting for the cache lifetime)"
  sleep 0.3
  sent "GET $API  Authorization: Bearer $(short "$revoked")  [certificate: partner-a.p12]"
  request partner-a GET "$API" -H "Authorization: Bearer $revoked"
  expect_refusal revoked 401 "refused at once: the revocation event dropped the cached answer"
else
  note "revocation: $STATUS; waiting out the cache lifetime (${SIDECAR_CACHE_TTL_S}s): the revocation window"
  sleep "$((SIDECAR_CACHE_TTL_S + 1))"
  sent "GET $API  Authorization: Bearer $(short "$revoked")  [certificate: partner-a.p12]"
  request partner-a GET "$API" -H "Authorization: Bearer $revoked"
  expect_refusal revoked 401 "the authorization server now answers active=false"
fi

heading "Attack 6: an expired token"
expired="$(partner_token partner-a 'accounts short-lived')"
note "a token asked with scope 'short-lived' lives 2s at the development authorization server"
sleep 3
sent "GET $API  Authorization: Bearer $(short "$expired")  [certificate: partner-a.p12]"
request partner-a GET "$API" -H "Authorization: Bearer $expired"
expect_refusal expired 401 "past its exp, the authorization server answers active=false and no cache entry outlives exp"

heading "Attack 7: the token in the query string"
sent "GET $API?access_token=$(short "$token")  [certificate: partner-a.p12]"
request partner-a GET "$API?access_token=$token"
expect_refusal query 400 "FAPI forbids access tokens in URLs; the URL's token is never logged nor sent to the authorization server"

heading "Attack 8: a token without the scope the API needs"
narrow="$(partner_token partner-a accounts)"
sent "POST $SIDECAR_URL/api/transactions  Authorization: Bearer $(short "$narrow") (scope 'accounts' only)"
request partner-a POST "$SIDECAR_URL/api/transactions" -H "Authorization: Bearer $narrow" -H 'Content-Type: application/json' --data '{"amount":"1.00"}'
expect_refusal scope 403 "the API itself requires the transactions scope"

finish attacks
