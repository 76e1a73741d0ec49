// Mutual TLS. The handshake verifies the client certificate (chain, dates, and the
// CRLs when configured); a missing, untrusted, expired or revoked one is refused by
// http/admission.ts the moment the handshake ends, so nothing of such a peer reaches HTTP. The certificate's RFC 8705 thumbprint is computed once
// per TLS connection.
import { constants } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import { WatchedFiles } from '../config/watched-files.ts';
import { readTlsMaterial, type TlsMaterial, type TlsPaths } from '../config/tls-material.ts';

// FAPI 2.0 §5.2.1 / BCP 195: under TLS 1.2 only ECDHE key exchange with AES-GCM, for RSA
// and ECDSA certificates. TLS 1.3 suites are all AEAD and are left at OpenSSL's defaults.
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
].join(':');

const PEM_CRL_BLOCK = /-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g;

export interface ServerTlsOptions extends SecureContextOptions {
  requestCert: true;
  rejectUnauthorized: false;
}

/**
 * @param handshakeOnlyCa CAs whose certificates may complete the handshake without being a
 * partner's: a trusted ingress's own (PHANTOM_TRUSTED_PROXY_CA)
 */
export function serverTlsOptions(tls: Pick<TlsMaterial, 'cert' | 'key' | 'clientCa' | 'crl'> & Pick<Config['tls'], 'minVersion'>, handshakeOnlyCa?: string): ServerTlsOptions {
  return {
    cert: tls.cert,
    key: tls.key,
    ca: handshakeOnlyCa === undefined ? tls.clientCa : `${tls.clientCa}\n${handshakeOnlyCa}`,
    // A revoked partner certificate fails the handshake. A CRL past its nextUpdate fails every
    // handshake of its CA's partners (OpenSSL's rule, as in nginx): closed, never silently open.
    // One PEM block per element: Node's context reads a single CRL from each string given.
    ...(tls.crl === undefined ? {} : { crl: tls.crl.match(PEM_CRL_BLOCK) ?? [] }),
    requestCert: true,
    // OpenSSL still verifies the chain, dates and CRLs during the handshake; its verdict is
    // enforced by http/admission.ts before HTTP reads a byte (the connection is destroyed),
    // so that the reason can be logged and counted: with rejectUnauthorized Node never says it.
    rejectUnauthorized: false,
    minVersion: tls.minVersion,
    ciphers: TLS12_CIPHERS,
    honorCipherOrder: true,
    // The thumbprint is cached per connection, so the certificate must not change under
    // it: refuse TLS 1.2 renegotiation (TLS 1.3 has none).
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
  };
}

interface SecureServer {
  setSecureContext(options: SecureContextOptions): void;
}

export interface TlsReloadHooks {
  /** The partner CAs or CRLs changed: connections made under the old ones must go. */
  onTrustChanged(generation: number): void;
}

/**
 * Keeps the listener's TLS material current: every PHANTOM_TLS_RELOAD_INTERVAL_S it re-reads
 * the files and, when they changed and still check out, gives new connections the new
 * certificate, partner CA bundle and CRLs (cert-manager renews a Secret in place; a rollout
 * should not be needed for it). Files that do not check out (a renewal caught half written,
 * a key that does not match) are not used; the current ones stay. A CRL past its nextUpdate is
 * warned about on every check, since that is how revocation stops working unnoticed.
 */
export class TlsReloader {
  #material: TlsMaterial;
  #trustGeneration = 0;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #watched: WatchedFiles<TlsMaterial>;

  constructor(server: SecureServer, tls: Config['tls'], logger: Logger, hooks: TlsReloadHooks, now: () => number = Date.now, handshakeOnlyCa?: string) {
    this.#material = tls;
    this.#logger = logger;
    this.#now = now;
    const { paths } = tls;
    this.#watched = new WatchedFiles({
      paths: [paths.cert, paths.key, paths.clientCa, ...paths.crl, ...(paths.proxyCa === undefined ? [] : [paths.proxyCa])],
      intervalSeconds: tls.reloadIntervalSeconds,
      read: () => readTlsMaterial(paths as TlsPaths, this.#now()),
      changed: (material) => {
        server.setSecureContext(serverTlsOptions({ ...material, minVersion: tls.minVersion }, handshakeOnlyCa));
        const trustChanged = material.clientCa !== this.#material.clientCa || material.crl !== this.#material.crl;
        this.#material = material;
        logger.info({ not_after: new Date(material.serverNotAfterMs).toISOString(), trust_changed: trustChanged }, 'TLS certificate, partner CA bundle and CRLs reloaded');
        if (trustChanged) {
          this.#trustGeneration += 1;
          hooks.onTrustChanged(this.#trustGeneration);
        }
      },
      what: 'TLS files',
    }, logger);
  }

  get material(): TlsMaterial {
    return this.#material;
  }

  start(): void {
    this.#warnIfCrlStale();
    this.#watched.start(() => this.#warnIfCrlStale());
  }

  stop(): void {
    this.#watched.stop();
  }

  /** One reload check; public so that a test need not wait for the timer. */
  check(): void {
    this.#watched.check();
    this.#warnIfCrlStale();
  }

  #warnIfCrlStale(): void {
    const next = this.#material.crlNextUpdateMs;
    if (next !== undefined && next <= this.#now()) {
      this.#logger.warn({ next_update: new Date(next).toISOString() }, 'a partner CRL is past its nextUpdate: partners of its CA fail the handshake until a fresh CRL is in place');
    }
  }
}
