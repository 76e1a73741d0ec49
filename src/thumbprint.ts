// The RFC 8705 §3.1 thumbprint of a certificate: what a token's cnf.x5t#S256 is compared with.
import { createHash } from 'node:crypto';
import type { X509Certificate } from 'node:crypto';

/** What the request path needs of a TLS connection: whether its peer verified, and its certificate. */
export interface PeerConnection {
  readonly authorized: boolean;
  getPeerX509Certificate(): X509Certificate | undefined;
}

/** base64url(SHA-256(DER)), RFC 8705 §3.1. */
export function certificateThumbprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}

const thumbprints = new WeakMap<PeerConnection, string | null>();

/**
 * The `x5t#S256` of the leaf certificate the peer presented on this connection, or
 * undefined when there is none or the handshake did not verify it. Computed on the first
 * request of a connection and remembered for its later ones. A resumed session carries
 * its original peer certificate, so resumption keeps the binding.
 */
export function connectionThumbprint(socket: PeerConnection): string | undefined {
  let known = thumbprints.get(socket);
  if (known === undefined) {
    known = computeThumbprint(socket);
    thumbprints.set(socket, known);
  }
  return known ?? undefined;
}

function computeThumbprint(socket: PeerConnection): string | null {
  if (socket.authorized !== true) return null;
  const certificate = socket.getPeerX509Certificate();
  return certificate === undefined ? null : certificateThumbprint(certificate.raw);
}
