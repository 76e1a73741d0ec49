// How the introspection answer is asked for (the Accept header) and read. RFC 7662 JSON; the
// AS's own JWT for the phantom-token mode (Curity, Keycloak); RFC 9701 signed answers come in
// signed-answer.ts. Every fault is the AS's: an AuthorizationServerUnavailable.
import { decodeProtectedHeader } from 'jose/decode/protected_header';
import { decodeJwt } from 'jose/jwt/decode';
import { AuthorizationServerUnavailable } from '../errors.ts';
import { isRecord } from '../json.ts';
import { malformed, parseClaims, parseIntrospectionJson, parseJson, type Introspection } from '../introspection/answer.ts';

export interface AnswerFormat {
  readonly accept: string;
  parse(status: number, contentType: string, text: string): Promise<Introspection>;
}

/** RFC 7662 §2.2: a JSON object, 200 only. */
export const jsonAnswer: AnswerFormat = {
  accept: 'application/json',
  async parse(status, contentType, text) {
    if (status !== 200) throw new AuthorizationServerUnavailable('as_error_status', String(status));
    if (contentType !== 'application/json') throw malformed('content_type');
    return parseIntrospectionJson(parseJson(text));
  },
};

/** An AS-issued JWT (phantom-token mode): its claims stand for the introspection answer. */
export function parseUpstreamJwt(jwt: string): Introspection {
  try {
    const header = decodeProtectedHeader(jwt);
    if (typeof header.alg !== 'string' || header.alg === 'none') throw malformed('alg');
    return { active: true, claims: parseClaims(decodeJwt(jwt)), jwt };
  } catch (error) {
    // Our own refusal keeps its detail (`alg`); jose's parse errors are "not a JWT".
    throw error instanceof AuthorizationServerUnavailable ? error : malformed('jwt');
  }
}

/**
 * Curity answers with the JWT as the body (204 when inactive), Keycloak in `jwt`, others in
 * `phantom_token`. A JSON answer is inactive only for `"active": false` exactly.
 */
export function parseAsJwtAnswer(status: number, contentType: string, text: string): Introspection {
  if (status === 204) return { active: false };
  if (contentType === 'application/jwt') return parseUpstreamJwt(text.trim());
  if (contentType !== 'application/json') throw malformed('content_type');
  const body = parseJson(text);
  if (!isRecord(body)) throw malformed();
  if (body.active === false) return { active: false };
  const jwt = typeof body.jwt === 'string' ? body.jwt : body.phantom_token;
  if (typeof jwt !== 'string') throw malformed();
  return parseUpstreamJwt(jwt);
}

export const asJwtAnswer: AnswerFormat = {
  accept: 'application/jwt',
  async parse(status, contentType, text) {
    if (status !== 200 && status !== 204) throw new AuthorizationServerUnavailable('as_error_status', String(status));
    return parseAsJwtAnswer(status, contentType, text);
  },
};
