// The binding: sender constraints. RFC 8705 §3: the token's `cnf.x5t#S256` must equal the
// thumbprint of the partner's certificate; RFC 9449 §7.1: its `cnf.jkt` the thumbprint of the
// key that signed this request's DPoP proof. On every request, cache hit or not.
import { InvalidToken, type AuthScheme } from '../errors.ts';
import type { SenderConstraints } from '../config/config.ts';
import type { Confirmation } from '../introspection/answer.ts';
import { sameText } from '../constant-time.ts';


/** The proofs of possession the request brought, and the ones this request accepts. */
export interface Possession {
  scheme: AuthScheme | undefined;
  /** x5t#S256 of the partner certificate. */
  x5t: string | undefined;
  /** RFC 7638 thumbprint of the key of a verified DPoP proof. */
  dpopJkt: string | undefined;
  accepted: SenderConstraints;
}

/**
 * Every member of the token's `cnf` must be proven (RFC 8705 §3, RFC 9449 §7.1), by a method
 * this request accepts: a certificate-bound token by the certificate on this request, a
 * DPoP-bound one by a DPoP proof of that key with the DPoP scheme (never Bearer: a downgrade),
 * both for a token bound both ways.
 * @param requireBinding FAPI: refuse tokens that are not sender-constrained
 */
export function checkBinding(cnf: Confirmation | undefined, possession: Possession, requireBinding: boolean): void {
  const x5t = cnf?.['x5t#S256'];
  const jkt = cnf?.jkt;
  if (x5t === undefined && jkt === undefined) {
    if (requireBinding) throw new InvalidToken('token_not_bound');
    // RFC 9449 §7.1: the DPoP scheme is for DPoP-bound tokens only.
    if (possession.scheme === 'DPoP') throw new InvalidToken('token_not_bound', 'dpop_scheme');
    return;
  }
  if (x5t !== undefined) {
    if (!possession.accepted.mtls) throw new InvalidToken('binding_method_not_accepted', 'mtls');
    if (possession.x5t === undefined || !sameText(x5t, possession.x5t)) throw new InvalidToken('binding_mismatch', 'x5t');
  }
  if (jkt !== undefined) {
    if (!possession.accepted.dpop) throw new InvalidToken('binding_method_not_accepted', 'dpop');
    if (possession.scheme !== 'DPoP') throw new InvalidToken('dpop_downgrade');
    if (possession.dpopJkt === undefined || !sameText(jkt, possession.dpopJkt)) throw new InvalidToken('binding_mismatch', 'jkt');
  } else if (possession.scheme === 'DPoP') {
    throw new InvalidToken('token_not_bound', 'not_dpop_bound');
  }
}
