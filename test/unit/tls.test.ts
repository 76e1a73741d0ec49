import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { TLS12_CIPHERS, serverTlsOptions } from '../../src/http/tls.ts';
import { certificateThumbprint, connectionThumbprint } from '../../src/thumbprint.ts';

// RFC 8705 Appendix A, Figure 6, and its x5t#S256 from Figure 5.
const RFC8705_CERT = `-----BEGIN CERTIFICATE-----
MIIBBjCBrAIBAjAKBggqhkjOPQQDAjAPMQ0wCwYDVQQDDARtdGxzMB4XDTE4MTAx
ODEyMzcwOVoXDTIyMDUwMjEyMzcwOVowDzENMAsGA1UEAwwEbXRsczBZMBMGByqG
SM49AgEGCCqGSM49AwEHA0IABNcnyxwqV6hY8QnhxxzFQ03C7HKW9OylMbnQZjjJ
/Au08/coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8wCgYIKoZIzj0EAwID
SQAwRgIhAP0RC1E+vwJD/D1AGHGzuri+hlV/PpQEKTWUVeORWz83AiEA5x2eXZOV
bUlJSGQgjwD5vaUaKlLR50Q2DmFfQj1L+SY=
-----END CERTIFICATE-----`;
const RFC8705_THUMBPRINT = 'A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0';

test('the thumbprint is RFC 8705 Appendix A\'s for its example certificate', () => {
  assert.equal(certificateThumbprint(new X509Certificate(RFC8705_CERT).raw), RFC8705_THUMBPRINT);
});

function fakeSocket(authorized: boolean, certificate: X509Certificate | undefined): { socket: TLSSocket; reads: () => number } {
  let reads = 0;
  const socket = {
    authorized,
    getPeerX509Certificate: () => {
      reads += 1;
      return certificate;
    },
  } as unknown as TLSSocket;
  return { socket, reads: () => reads };
}

test('the thumbprint is computed once per connection and then remembered', () => {
  const { socket, reads } = fakeSocket(true, new X509Certificate(RFC8705_CERT));
  assert.equal(connectionThumbprint(socket), RFC8705_THUMBPRINT);
  assert.equal(connectionThumbprint(socket), RFC8705_THUMBPRINT);
  assert.equal(reads(), 1);
});

test('an unverified connection or one without a certificate has no thumbprint', () => {
  assert.equal(connectionThumbprint(fakeSocket(false, new X509Certificate(RFC8705_CERT)).socket), undefined);
  const none = fakeSocket(true, undefined);
  assert.equal(connectionThumbprint(none.socket), undefined);
  assert.equal(connectionThumbprint(none.socket), undefined);
  assert.equal(none.reads(), 1, 'the absence is remembered too');
});

test('server options demand a verified client certificate and FAPI cipher suites', () => {
  const options = serverTlsOptions({ cert: 'c', key: 'k', clientCa: 'ca', crl: undefined, minVersion: 'TLSv1.2' });
  assert.equal(options.requestCert, true);
  assert.equal(options.rejectUnauthorized, false, 'the verdict is enforced, and logged, by the admission at secureConnection');
  assert.equal(options.minVersion, 'TLSv1.2');
  for (const suite of TLS12_CIPHERS.split(':')) assert.match(suite, /^ECDHE-(ECDSA|RSA)-AES(128|256)-GCM-SHA(256|384)$/);
});
