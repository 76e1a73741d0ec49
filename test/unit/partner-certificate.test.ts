// Certificates in a trusted gateway's header, by each gateway's format, with plain objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { loadConfig } from '../../src/config/config.ts';
import { partnerCertificates } from '../../src/request/partner-certificate.ts';
import { makePki } from '../support/pki.ts';
import { baseEnv } from '../support/sidecar.ts';

const pki = makePki();
const material = loadConfig(baseEnv(pki, 'http://127.0.0.1:3000', 'https://as.example.com/introspect')).tls;
// The gateway: partner B's certificate stands in for it, trusted by its thumbprint.
const gateway = { authorized: true, getPeerX509Certificate: () => new X509Certificate(pki.partnerB.cert) };
const source = { source: 'header' as const, format: 'nginx' as const, header: 'x-forwarded-tls-client-cert', trustedProxyThumbprints: new Set([pki.partnerB.thumbprint]), trustedProxyCa: undefined };

test('nginx\'s escaped PEM and Traefik\'s escaped base64 DER (the first of a list) name the same partner', () => {
  const partners = partnerCertificates(source, () => material, Date.now, true);
  const pem = encodeURIComponent(pki.partnerA.cert);
  const der = new X509Certificate(pki.partnerA.cert).raw.toString('base64');
  for (const value of [pem, encodeURIComponent(der), encodeURIComponent(`${der},${new X509Certificate(pki.ca).raw.toString('base64')}`)]) {
    assert.equal(partners.of(gateway, { distinct: { 'x-forwarded-tls-client-cert': [value] } }).x5t, pki.partnerA.thumbprint);
  }
  assert.throws(() => partners.of(gateway, { distinct: { 'x-forwarded-tls-client-cert': ['not-a-certificate'] } }), /not valid/);
});

test('decision mode: a connection that is no trusted gateway is refused, whatever header it sends', () => {
  const partners = partnerCertificates(source, () => material, Date.now, true);
  const partner = { authorized: true, getPeerX509Certificate: () => new X509Certificate(pki.partnerA.cert) };
  assert.throws(() => partners.of(partner, { distinct: { 'x-forwarded-tls-client-cert': [encodeURIComponent(pki.partnerA.cert)] } }), (error: unknown) => (error as { detail?: string }).detail === 'not_a_gateway');
});
