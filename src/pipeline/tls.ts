// Stage 1: mutual TLS. The handshake itself refuses a missing, untrusted or expired client
// certificate (requestCert + rejectUnauthorized), so nothing of such a peer reaches HTTP.
// The certificate's RFC 8705 thumbprint is computed once per TLS connection.
import { X509Certificate, constants, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError, readTlsMaterial, type Config, type TlsMaterial, type TlsPaths } from '../config.ts';

// FAPI 2.0 §5.2.1 / BCP 195: under TLS 1.2 only ECDHE key exchange with AES-GCM, for RSA
// and ECDSA certificates. TLS 1.3 suites are all AEAD and are left at OpenSSL's defaults.
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
].join(':');

export interface ServerTlsOptions extends SecureContextOptions {
  requestCert: true;
  rejectUnauthorized: true;
}

export function serverTlsOptions(tls: TlsMaterial & Pick<Config['tls'], 'minVersion'>): ServerTlsOptions {
  return {
    cert: tls.cert,
    key: tls.key,
    ca: tls.clientCa,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: tls.minVersion,
    ciphers: TLS12_CIPHERS,
    honorCipherOrder: true,
    // The thumbprint is cached per connection, so the certificate must not change under
    // it: refuse TLS 1.2 renegotiation (TLS 1.3 has none).
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
  };
}

/** base64url(SHA-256(DER)), RFC 8705 §3.1. */
export function certificateThumbprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}

const thumbprints = new WeakMap<TLSSocket, string | null>();

/**
 * The `x5t#S256` of the leaf certificate the peer presented on this connection, or
 * undefined when there is none or the handshake did not verify it. Computed on the first
 * request of a connection and remembered for its later ones. A resumed session carries
 * its original peer certificate, so resumption keeps the binding.
 */
export function connectionThumbprint(socket: TLSSocket): string | undefined {
  let known = thumbprints.get(socket);
  if (known === undefined) {
    known = computeThumbprint(socket);
    thumbprints.set(socket, known);
  }
  return known ?? undefined;
}

function computeThumbprint(socket: TLSSocket): string | null {
  if (socket.authorized !== true || typeof socket.getPeerX509Certificate !== 'function') return null;
  const certificate = socket.getPeerX509Certificate();
  return certificate === undefined ? null : certificateThumbprint(certificate.raw);
}

/** A digest of the three files as they are on disk now; undefined while one is unreadable. */
function filesDigest(paths: TlsPaths): string | undefined {
  try {
    const hash = createHash('sha256');
    for (const path of [paths.cert, paths.key, paths.clientCa]) hash.update(readFileSync(path)).update('\0');
    return hash.digest('base64url');
  } catch {
    return undefined;
  }
}

interface SecureServer {
  setSecureContext(options: SecureContextOptions): void;
}

/**
 * Re-reads the TLS files every PHANTOM_TLS_RELOAD_INTERVAL_S and, when they changed and still
 * check out, gives new connections the new certificate and partner CA bundle: cert-manager
 * renews a Secret in place, and a rollout should not be needed for it. Connections already
 * made keep what they were made with. Files that do not check out (a renewal caught half
 * written, a key that does not match) are not used; the current ones stay.
 * Returns the function that stops watching.
 */
export function reloadTlsOnChange(server: SecureServer, tls: Config['tls'], logger: Logger): () => void {
  if (tls.reloadIntervalSeconds === 0) return () => undefined;
  let current = filesDigest(tls.paths);
  let lastProblem: string | undefined;
  const check = (): void => {
    // Unchanged files (the usual case) cost three reads and a hash; only a change is parsed.
    const digest = filesDigest(tls.paths);
    if (digest !== undefined && digest === current) return;
    let material: TlsMaterial;
    try {
      material = readTlsMaterial(tls.paths);
    } catch (error) {
      const problem = error instanceof ConfigError ? error.message : 'unreadable';
      if (problem !== lastProblem) logger.warn({ problem }, 'TLS files do not check out; the current certificates stay in use');
      lastProblem = problem;
      return;
    }
    lastProblem = undefined;
    server.setSecureContext(serverTlsOptions({ ...material, minVersion: tls.minVersion }));
    current = digest;
    logger.info({ not_after: new X509Certificate(material.cert).validTo }, 'TLS certificate and partner CA bundle reloaded');
  };
  const timer = setInterval(check, tls.reloadIntervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
