// Stage 5: RFC 8705 §3 certificate binding. The token's `cnf.x5t#S256` must equal the
// thumbprint of the certificate on this very connection, on every request, cache hit or not.
import { timingSafeEqual } from 'node:crypto';
import { InvalidToken } from '../errors.ts';
import type { Confirmation } from './introspect.ts';

function sameThumbprint(expected: string, presented: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(presented);
  // Lengths of a base64url SHA-256 are public (43); only the content is compared in constant time.
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * @param cnf the token's confirmation claim, if any
 * @param thumbprint the x5t#S256 of the connection's client certificate, if any
 * @param requireBinding FAPI: refuse tokens that are not sender-constrained
 */
export function checkCertificateBinding(
  cnf: Confirmation | undefined,
  thumbprint: string | undefined,
  requireBinding: boolean,
): void {
  const bound = cnf?.['x5t#S256'];
  // Bound to a certificate and a DPoP key needs both proofs; DPoP proofs are not checked yet.
  if (bound !== undefined && cnf?.jkt !== undefined) throw new InvalidToken('dpop_bound_token', 'both');
  if (bound === undefined) {
    // A DPoP-bound token (RFC 9449) needs a proof this sidecar does not check: never a bearer.
    if (cnf?.jkt !== undefined) throw new InvalidToken('dpop_bound_token');
    if (requireBinding) throw new InvalidToken('token_not_bound');
    return;
  }
  if (thumbprint === undefined || !sameThumbprint(bound, thumbprint)) {
    throw new InvalidToken('binding_mismatch');
  }
}
