#!/usr/bin/env bash
# A partner's whole flow, as it would run it: authenticate at the authorization server over
# mutual TLS with its PKCS#12, then call the API through the sidecar with the same certificate.
# Exits non-zero if any answer is not the expected one. Settings: see lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PARTNER="${PARTNER:-partner-a}"

heading "Partner $PARTNER: the client certificate it presents"
describe_cert "$PARTNER"
x5t="$(thumbprint "$PARTNER")"

heading "1. Access token from the authorization server (mTLS client auth, RFC 8705 tls_client_auth)"
sent "POST $AS_URL/token grant_type=client_credentials client_id=$PARTNER scope='accounts transactions'  [certificate: $PARTNER.p12]"
request "$PARTNER" POST "$AS_URL/token" --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$PARTNER" --data-urlencode "scope=accounts transactions"
show_answer
token="$(json_string access_token "$BODY")"
if [ "$STATUS" = 200 ] && [ -n "$token" ]; then
  note "token_type=$(json_string token_type "$BODY") scope='$(json_string scope "$BODY")' expires_in=$(sed -n 's/.*"expires_in":\([0-9]*\).*/\1/p' <<<"$BODY")s"
  note "access_token=$(short "$token"): opaque, meaningless to anyone but the authorization server"
  pass "the authorization server issued a certificate-bound token"
else
  fail "expected 200 with an access token, got $STATUS"
  finish partner-client
fi

heading "2. GET /api/accounts through the sidecar, same certificate"
sent "GET $SIDECAR_URL/api/accounts  Authorization: Bearer $(short "$token")  [certificate: $PARTNER.p12]"
request "$PARTNER" GET "$SIDECAR_URL/api/accounts" -H "Authorization: Bearer $token"
show_answer
if [ "$STATUS" = 200 ]; then
  bound="$(json_string 'x5t#S256' "$BODY")"
  note "the API verified the sidecar's JWT and saw: sub=$(json_string sub "$BODY") client_id=$(json_string client_id "$BODY") scope='$(json_string scope "$BODY")'"
  note "token cnf.x5t#S256 = $bound"
  note "certificate x5t#S256 = $x5t"
  if [ "$bound" = "$x5t" ]; then pass "the token is bound to this certificate, and the API never saw the opaque token"; else fail "cnf.x5t#S256 does not match the certificate"; fi
else
  fail "expected 200, got $STATUS: $BODY"
fi

heading "3. POST /api/transactions through the sidecar"
sent "POST $SIDECAR_URL/api/transactions {\"amount\":\"10.00\",\"currency\":\"EUR\"}"
request "$PARTNER" POST "$SIDECAR_URL/api/transactions" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' --data '{"amount":"10.00","currency":"EUR"}'
show_answer
if [ "$STATUS" = 201 ]; then pass "transaction $(json_string id "$BODY") $(json_string status "$BODY")"; else fail "expected 201, got $STATUS: $BODY"; fi

finish partner-client
