// RFC 9701 signed introspection answers, as FAPI 2.0 Message Signing asks of a resource
// server: asked for with Accept: application/token-introspection+jwt and accepted only as a
// JWS by a key of the AS's JWKS, with pinned algorithms, typ, iss, aud = our client id and a
// fresh iat; the RFC 7662 answer is read from `token_introspection` by the JSON rules.
import type { JWTVerifyGetKey } from 'jose';
import * as errors from 'jose/errors';
import { jwtVerify } from 'jose/jwt/verify';
import type { Dispatcher } from 'undici';
import { remoteKeySet } from './remote-jwks.ts';
import { AuthorizationServerUnavailable } from '../errors.ts';
import { malformed, parseIntrospectionJson } from '../introspection/answer.ts';
import type { AnswerFormat } from './answer-format.ts';
import { FAPI_ALGORITHMS } from '../vocabulary.ts';

const MEDIA_TYPE = 'application/token-introspection+jwt';
// FAPI 2.0 §5.4.1: never RS256, HMAC or none.
const IAT_SKEW_SECONDS = 60;

export interface SignedAnswerSettings {
  /** The AS's issuer identifier: the answer's `iss`. */
  issuer: string;
  /** Our client id: the answer's `aud`. */
  clientId: string;
  /** Where the AS's keys are (configured, or the metadata's jwks_uri). */
  jwksUri: () => URL | undefined;
  cooldownSeconds: number;
  timeoutMs: number;
  dispatcher: Dispatcher;
}

/** Which rule a refused answer broke, for the log: a closed set like the reasons. */
function brokenRule(error: unknown): string {
  if (error instanceof errors.JWTClaimValidationFailed || error instanceof errors.JWTExpired) return `claim_${error.claim}`;
  if (error instanceof errors.JOSEAlgNotAllowed) return 'alg';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'signature';
  if (error instanceof errors.JWKSNoMatchingKey) return 'unknown_key';
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) return 'jwks_unavailable';
  if (error instanceof errors.JWTInvalid || error instanceof errors.JWSInvalid) return 'jws_malformed';
  return 'unverified';
}

export function signedAnswer(settings: SignedAnswerSettings): AnswerFormat {
  let keys: { url: string; set: JWTVerifyGetKey } | undefined;
  // jose's remote set: an unknown kid refetches once per cooldown, so rotation needs no
  // restart and a flood of unknown kids cannot hammer the AS.
  const keySet = (): JWTVerifyGetKey => {
    const url = settings.jwksUri();
    if (url === undefined) throw new AuthorizationServerUnavailable('as_unreachable', 'no_jwks_uri');
    if (keys?.url !== url.href) {
      keys = {
        url: url.href,
        set: remoteKeySet(url, settings.dispatcher, { cooldownSeconds: settings.cooldownSeconds, timeoutMs: settings.timeoutMs }),
      };
    }
    return keys.set;
  };
  return {
    accept: MEDIA_TYPE,
    async parse(status, contentType, text) {
      if (status !== 200) throw new AuthorizationServerUnavailable('as_error_status', String(status));
      // A plain JSON answer where a signed one was asked for is a downgrade.
      if (contentType !== MEDIA_TYPE) throw new AuthorizationServerUnavailable('as_unverified_response', 'not_signed');
      const jws = text.trim();
      // Five parts: a JWE. No decryption key is configured, so it cannot be read.
      if (jws.split('.').length === 5) throw new AuthorizationServerUnavailable('as_unverified_response', 'encrypted');
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(jws, keySet(), {
          algorithms: [...FAPI_ALGORITHMS],
          typ: MEDIA_TYPE.replace('application/', ''),
          issuer: settings.issuer,
          audience: settings.clientId,
          maxTokenAge: IAT_SKEW_SECONDS,
          clockTolerance: IAT_SKEW_SECONDS,
          requiredClaims: ['iat'],
        }));
      } catch (error) {
        if (error instanceof AuthorizationServerUnavailable) throw error;
        throw new AuthorizationServerUnavailable('as_unverified_response', brokenRule(error));
      }
      if (payload.token_introspection === undefined) throw malformed('no_token_introspection');
      return parseIntrospectionJson(payload.token_introspection);
    },
  };
}
