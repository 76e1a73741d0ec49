// The RFC 8705 §3.1 thumbprint of a certificate: what a token's cnf.x5t#S256 is compared with.
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

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
