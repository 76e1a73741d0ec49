// The one error family of the request path, and the one place that turns it into an
// HTTP response. Every stage throws what it means; only this file knows RFC 6750 §3.
//
// A refusal carries a reason from the closed set in reasons.ts (logged, a metric label) and
// optionally a detail (logged only). What the client reads is the reason's fixed public
// description, never built from the request or from the authorization server's answer, so
// no token and no upstream text can reach a client.
import { REASON_DESCRIPTIONS, type RefusalReason } from './reasons.ts';

/**
 * RFC 6750 §3.1 error codes, and RFC 9449 §7.1/§9's for DPoP. Absent when the client sent no
 * credentials at all.
 */
export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'invalid_dpop_proof' | 'use_dpop_nonce';

/** The HTTP authentication schemes an access token may come with. */
export type AuthScheme = 'Bearer' | 'DPoP';

export abstract class SidecarError extends Error {
  abstract readonly status: number;
  /** RFC 6750 error code, when the failure is the client's bearer credential. */
  readonly bearerError: BearerErrorCode | undefined = undefined;
  /** Whether a `WWW-Authenticate: Bearer` challenge belongs on this response. */
  readonly challenges: boolean = false;
  /** The scheme whose challenge carries this error; else the one the client used. */
  readonly scheme: AuthScheme | undefined = undefined;
  /** Seconds for a Retry-After header, when trying again later may work. */
  readonly retryAfterSeconds: number | undefined = undefined;
  readonly reason: RefusalReason;
  /** What varies within a reason (a status code, an error code): logged, never a label. */
  readonly detail: string | undefined;

  constructor(reason: RefusalReason, detail?: string) {
    super(REASON_DESCRIPTIONS[reason]);
    this.name = new.target.name;
    this.reason = reason;
    this.detail = detail;
  }
}

/** No credentials, or a scheme other than Bearer: 401 and a challenge with no error code. */
export class MissingCredentials extends SidecarError {
  readonly status = 401;
  override readonly challenges = true;
}

/** The request is malformed: 400 invalid_request. */
export class InvalidRequest extends SidecarError {
  readonly status = 400;
  override readonly bearerError = 'invalid_request';
  override readonly challenges = true;
}

/** A DPoP proof that does not check out (RFC 9449 §4.3): 401 invalid_dpop_proof, DPoP challenged. */
export class InvalidDpopProof extends SidecarError {
  readonly status = 401;
  override readonly bearerError = 'invalid_dpop_proof';
  override readonly challenges = true;
  override readonly scheme: AuthScheme | undefined = 'DPoP';
}

/** RFC 9449 §9: the proof lacks the server's current nonce; the answer carries a fresh one. */
export class UseDpopNonce extends SidecarError {
  readonly status = 401;
  override readonly bearerError = 'use_dpop_nonce';
  override readonly challenges = true;
  override readonly scheme: AuthScheme | undefined = 'DPoP';
  readonly nonce: string;
  constructor(nonce: string, detail?: string) {
    super('dpop_nonce_required', detail);
    this.nonce = nonce;
  }
}

/** Expired, revoked, unknown, not bound to this certificate: 401 invalid_token. */
export class InvalidToken extends SidecarError {
  readonly status = 401;
  override readonly bearerError = 'invalid_token';
  override readonly challenges = true;
}

/** A required scope is missing: 403 insufficient_scope with the scopes that are needed. */
export class InsufficientScope extends SidecarError {
  readonly status = 403;
  override readonly bearerError = 'insufficient_scope';
  override readonly challenges = true;
  readonly requiredScope: string;
  constructor(requiredScope: string) {
    super('scope_missing');
    this.requiredScope = requiredScope;
  }
}

/**
 * The authorization server could not give a usable answer (down, slow, non-200, not JSON,
 * a wrong shape, or it rejected the sidecar's own credentials). Never the client's fault,
 * so never 401: 503 with Retry-After, and nothing is forwarded.
 */
export class AuthorizationServerUnavailable extends SidecarError {
  readonly status = 503;
  override readonly retryAfterSeconds = 5;
}

/**
 * The fleet's Redis cannot record what a check needs shared (a DPoP proof's jti): the check
 * cannot be made for the whole fleet, so the request is refused, never waved through. 503.
 */
export class FleetUnavailable extends SidecarError {
  readonly status = 503;
  override readonly retryAfterSeconds = 1;
}

/** The API refused the connection or broke it: 502. */
export class UpstreamUnavailable extends SidecarError {
  readonly status = 502;
  constructor(detail?: string) {
    super('upstream_unavailable', detail);
  }
}

/** The API did not answer within PHANTOM_UPSTREAM_TIMEOUT_MS: 504. */
export class UpstreamTimeout extends SidecarError {
  readonly status = 504;
  constructor() {
    super('upstream_timeout');
  }
}

/** A request refused at the HTTP level (method, host, size, rate, time), before any token. */
export class RequestRejected extends SidecarError {
  readonly status: number;
  override readonly retryAfterSeconds: number | undefined;
  /** The methods to list in `Allow` on a 405. */
  readonly allow: string | undefined;

  constructor(status: number, reason: RefusalReason, options: { detail?: string; retryAfterSeconds?: number; allow?: string } = {}) {
    super(reason, options.detail);
    this.status = status;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.allow = options.allow;
  }
}

/** A fault of the sidecar itself. */
export class InternalError extends SidecarError {
  readonly status = 500;
  constructor(detail?: string) {
    super('internal_error', detail);
  }
}

/**
 * The `error` member of a body whose refusal has no RFC 6750 code (no credentials, or a
 * refusal at the HTTP level or by the sidecar's own trouble): a closed set, by status.
 */
export type PublicErrorCode =
  | 'unauthorized'
  | 'invalid_request'
  | 'access_denied'
  | 'method_not_allowed'
  | 'request_timeout'
  | 'request_too_large'
  | 'misdirected_request'
  | 'rate_limited'
  | 'client_closed_request'
  | 'server_error'
  | 'bad_gateway'
  | 'temporarily_unavailable'
  | 'gateway_timeout';

const PUBLIC_ERROR_CODES: Readonly<Record<number, PublicErrorCode>> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'access_denied',
  405: 'method_not_allowed',
  408: 'request_timeout',
  413: 'request_too_large',
  421: 'misdirected_request',
  429: 'rate_limited',
  499: 'client_closed_request',
  502: 'bad_gateway',
  503: 'temporarily_unavailable',
  504: 'gateway_timeout',
};

/** The body's `error`: the RFC 6750/9449 code where there is one, else ours for the status. */
export function errorCodeOf(error: SidecarError): BearerErrorCode | PublicErrorCode {
  return error.bearerError ?? PUBLIC_ERROR_CODES[error.status] ?? 'server_error';
}

export interface ErrorResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body: { error: BearerErrorCode | PublicErrorCode; error_description: string };
}

/** What the challenges of a response depend on besides the error. */
export interface ChallengeContext {
  realm: string;
  /** The schemes the sidecar accepts: each one is challenged when no credentials came. */
  schemes: readonly AuthScheme[];
  /** RFC 9449 §7.1 `algs` of the DPoP challenge. */
  dpopAlgs: readonly string[];
  /** RFC 9728 §5.1: where the protected resource metadata is, on every challenge. */
  resourceMetadata: string | undefined;
  /** The scheme the client used, when it used an accepted one. */
  presented?: AuthScheme;
}

export const BEARER_ONLY = (realm: string): ChallengeContext => ({ realm, schemes: ['Bearer'], dpopAlgs: [], resourceMetadata: undefined });

// RFC 6750 §3: error_description and scope use only %x20-21 / %x23-5B / %x5D-7E.
const CHALLENGE_UNSAFE = /[^\x20\x21\x23-\x5b\x5d-\x7e]/g;

function quoted(value: string): string {
  return `"${value.replace(CHALLENGE_UNSAFE, '')}"`;
}

/** One `WWW-Authenticate` challenge (RFC 6750 §3, RFC 9449 §7.1), each parameter at most once. */
export function challenge(scheme: AuthScheme, context: ChallengeContext, error?: SidecarError): string {
  const params = [`realm=${quoted(context.realm)}`];
  if (scheme === 'DPoP') params.push(`algs=${quoted(context.dpopAlgs.join(' '))}`);
  const code = error?.bearerError;
  if (error !== undefined && code !== undefined) {
    params.push(`error=${quoted(code)}`, `error_description=${quoted(error.message)}`);
  }
  if (error instanceof InsufficientScope) params.push(`scope=${quoted(error.requiredScope)}`);
  if (context.resourceMetadata !== undefined) params.push(`resource_metadata=${quoted(context.resourceMetadata)}`);
  return `${scheme} ${params.join(', ')}`;
}

/** The Bearer challenge alone, for a sidecar that accepts nothing else. */
export function bearerChallenge(realm: string, error: SidecarError): string {
  return challenge('Bearer', BEARER_ONLY(realm), error);
}

/**
 * The challenges of an error response: with no (usable) credentials, one per accepted scheme
 * and no error code; otherwise one, of the scheme the error is about or the client used.
 */
function challenges(error: SidecarError, context: ChallengeContext): string[] {
  if (error.bearerError === undefined) return context.schemes.map((scheme) => challenge(scheme, context));
  const scheme = error.scheme ?? context.presented ?? context.schemes[0] ?? 'Bearer';
  return [challenge(scheme, context, error)];
}

/** Maps any error of the family to its status, headers and JSON body. */
export function toErrorResponse(error: SidecarError, context: ChallengeContext | string): ErrorResponse {
  const challengeContext = typeof context === 'string' ? BEARER_ONLY(context) : context;
  const headers: Record<string, string | string[]> = { 'cache-control': 'no-store' };
  if (error.challenges) {
    const values = challenges(error, challengeContext);
    headers['www-authenticate'] = values.length === 1 ? (values[0] ?? '') : values;
  }
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = String(error.retryAfterSeconds);
  if (error instanceof RequestRejected && error.allow !== undefined) headers.allow = error.allow;
  if (error instanceof UseDpopNonce) headers['dpop-nonce'] = error.nonce;
  return { status: error.status, headers, body: { error: errorCodeOf(error), error_description: error.message } };
}

interface ErrorWithStatus {
  statusCode?: unknown;
  code?: unknown;
}

// What Fastify and Node raise themselves, by their error code, in our words. A URL Fastify's
// router cannot decode is a malformed request target like any other: 400 invalid_request, as
// stage 2 answers the targets it refuses itself.
const FOREIGN_CODES: Record<string, (code: string) => SidecarError> = {
  FST_ERR_BAD_URL: (code) => new InvalidRequest('malformed_url', code),
  FST_ERR_CTP_BODY_TOO_LARGE: (code) => new RequestRejected(413, 'body_too_large', { detail: code }),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: (code) => new RequestRejected(400, 'bad_request', { detail: code }),
  ERR_HTTP_REQUEST_TIMEOUT: (code) => new RequestRejected(408, 'request_timeout', { detail: code }),
};

/**
 * Turns anything thrown on the request path into the family. Fastify's own 4xx errors keep
 * their status with a reason of ours and their code as the detail; everything else is a 500.
 */
export function asSidecarError(thrown: unknown): SidecarError {
  if (thrown instanceof SidecarError) return thrown;
  const { statusCode, code } = (typeof thrown === 'object' && thrown !== null ? thrown : {}) as ErrorWithStatus;
  const detail = typeof code === 'string' ? code : undefined;
  const known = detail === undefined ? undefined : FOREIGN_CODES[detail];
  if (known !== undefined && detail !== undefined) return known(detail);
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return new RequestRejected(statusCode, 'bad_request', { detail });
  }
  return new InternalError(detail);
}

