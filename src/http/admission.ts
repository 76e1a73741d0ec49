// Which TLS connections the mTLS listener keeps once their handshake is over. The partner
// certificate is verified by OpenSSL during the handshake (chain, dates, CRLs); its verdict
// is read here, before HTTP sees a byte, so that a refused certificate is said to the
// operator (reason, address, subject, issuer, serial, x5t#S256) instead of vanishing as a
// reset, as nginx does with ssl_verify_client. Here too: no more connections per partner
// than PHANTOM_MAX_CONNECTIONS_PER_CLIENT, and none that sends no request head in time.
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { LogThrottle } from '../log.ts';
import { certificateNames } from '../config/tls-material.ts';
import type { X509Certificate } from 'node:crypto';
import { certificateThumbprint, connectionThumbprint } from '../thumbprint.ts';

/** Why a handshake failed or its certificate was refused: a closed set, a metric label. */
export type HandshakeFailure = 'expired' | 'unknown_ca' | 'revoked' | 'no_certificate' | 'handshake_timeout' | 'protocol' | 'other';

// OpenSSL's X509_V_ERR_* names, as Node reports them in authorizationError.
const VERIFY_ERRORS: Readonly<Record<string, HandshakeFailure>> = {
  CERT_HAS_EXPIRED: 'expired',
  UNABLE_TO_GET_ISSUER_CERT: 'unknown_ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown_ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown_ca',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'unknown_ca',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown_ca',
  CERT_UNTRUSTED: 'unknown_ca',
  CERT_SIGNATURE_FAILURE: 'unknown_ca',
  CERT_REVOKED: 'revoked',
};

/** The reason of a refused certificate, from Node's authorizationError. */
export function verifyFailure(code: string | undefined, presented: boolean): HandshakeFailure {
  if (!presented) return 'no_certificate';
  return VERIFY_ERRORS[code ?? ''] ?? 'other';
}

/** The reason of a handshake that never completed, from the error Node gives `tlsClientError`. */
export function handshakeErrorFailure(code: string | undefined): HandshakeFailure {
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'handshake_timeout';
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'no_certificate';
  if (code?.startsWith('ERR_SSL_') === true) return 'protocol';
  return 'other';
}

export interface AdmissionSettings {
  maxConnectionsPerClient: number;
  /** A connection must send its first request head within this of its handshake. */
  firstRequestTimeoutMs: number;
}

export interface AdmissionObserver {
  handshakeFailed(reason: HandshakeFailure): void;
  refused(cap: 'per_client' | 'total'): void;
}

const LOG_INTERVAL_MS = 10_000;

export class ConnectionAdmission {
  readonly #settings: AdmissionSettings;
  readonly #observer: AdmissionObserver;
  readonly #logger: Logger;
  readonly #throttle: LogThrottle;
  // Open connections per partner certificate; an entry goes with its last connection.
  readonly #perClient = new Map<string, number>();
  // Connections still waiting for their first request head.
  readonly #awaitingFirst = new WeakSet<TLSSocket>();

  constructor(settings: AdmissionSettings, observer: AdmissionObserver, logger: Logger, now: () => number = Date.now) {
    this.#settings = settings;
    this.#observer = observer;
    this.#logger = logger;
    this.#throttle = new LogThrottle(LOG_INTERVAL_MS, now);
  }

  /** At the end of a handshake, before HTTP: true to keep the connection, false when it was closed. */
  admit(socket: TLSSocket): boolean {
    if (socket.authorized !== true) {
      const certificate = socket.getPeerX509Certificate?.();
      this.#failed(socket, verifyFailure(socket.authorizationError instanceof Error ? socket.authorizationError.message : String(socket.authorizationError ?? ''), certificate !== undefined), socket.authorizationError, certificate);
      socket.destroy();
      return false;
    }
    const partner = connectionThumbprint(socket) ?? '';
    const open = this.#perClient.get(partner) ?? 0;
    if (open >= this.#settings.maxConnectionsPerClient) {
      this.#observer.refused('per_client');
      this.#warn(`cap:${partner}`, { x5t: partner, cap: this.#settings.maxConnectionsPerClient }, 'a partner reached PHANTOM_MAX_CONNECTIONS_PER_CLIENT: new connections of its certificate are closed');
      socket.destroy();
      return false;
    }
    this.#perClient.set(partner, open + 1);
    socket.once('close', () => {
      const left = (this.#perClient.get(partner) ?? 1) - 1;
      if (left <= 0) this.#perClient.delete(partner);
      else this.#perClient.set(partner, left);
    });
    // Node's head deadline starts only with a request: a connection that sends nothing would
    // otherwise be held for ever. Node's own keep-alive timer takes over after each response.
    this.#awaitingFirst.add(socket);
    socket.setTimeout(this.#settings.firstRequestTimeoutMs);
    return true;
  }

  /** A request head arrived on this connection: the first-request deadline is over. */
  requestArrived(socket: TLSSocket): void {
    if (!this.#awaitingFirst.has(socket)) return;
    this.#awaitingFirst.delete(socket);
    socket.setTimeout(0);
  }

  /** A handshake that failed before it completed (Node's tlsClientError). */
  handshakeError(error: NodeJS.ErrnoException, socket: TLSSocket): void {
    this.#failed(socket, handshakeErrorFailure(error.code), error, undefined);
  }

  /** Connections open per partner (for tests). */
  openConnections(partner: string): number {
    return this.#perClient.get(partner) ?? 0;
  }

  #failed(socket: TLSSocket, reason: HandshakeFailure, error: unknown, certificate: X509Certificate | undefined): void {
    this.#observer.handshakeFailed(reason);
    const address = socket.remoteAddress ?? '-';
    const code = typeof error === 'object' && error !== null ? ((error as { code?: unknown }).code ?? (error as { message?: unknown }).message) : error;
    const facts: Record<string, unknown> = { remote_address: address, reason, tls_error: typeof code === 'string' ? code.slice(0, 64) : undefined };
    if (certificate !== undefined) {
      Object.assign(facts, certificateNames(certificate));
      facts.x5t = certificateThumbprint(certificate.raw);
    }
    this.#warn(`${address} ${reason}`, facts, 'TLS handshake refused');
  }

  #warn(key: string, facts: Record<string, unknown>, message: string): void {
    const suppressed = this.#throttle.admit(key);
    if (suppressed === undefined) return;
    this.#logger.warn({ ...facts, suppressed }, message);
  }
}
