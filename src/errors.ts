// The one error family of the request path, and the one place that turns it into an
// HTTP response. Every stage throws what it means; only this file knows RFC 6750 §3.
//
// A refusal carries a reason from the closed set in reasons.ts (logged, a metric label) and
// optionally a detail (logged only). What the client reads is the reason's fixed public
// description, never built from the request or from the authorization server's answer, so
// no token and no upstream text can reach a client.
import { REASONS, type BearerErrorCode, type PublicErrorCode, type RefusalReason, type ReasonSpec } from './reasons.ts';

export type { BearerErrorCode, PublicErrorCode };

/** The HTTP authentication schemes an access token may come with. */
export type AuthScheme = 'Bearer' | 'DPoP';

/**
 * A refusal or failure of the request path. Everything the response needs comes from its
 * reason's row of the table in reasons.ts; the subclasses say only what kind of failure it is
 * (for the stages that treat kinds apart) and carry what one response adds (a nonce, a scope).
 */
export abstract class SidecarError extends Error {
  readonly reason: RefusalReason;
  /** What varies within a reason (a status code, an error code): logged, never a label. */
  readonly detail: string | undefined;
  readonly status: number;
  /** The body's `error`. */
  readonly code: BearerErrorCode | PublicErrorCode;
  /** RFC 6750 error code of the challenge, when the failure is the client's credential. */
  readonly bearerError: BearerErrorCode | undefined;
  /** Whether a `WWW-Authenticate` challenge belongs on this response. */
  readonly challenges: boolean;
  /** The scheme whose challenge carries this error; else the one the client used. */
  readonly scheme: AuthScheme | undefined;
  /** Seconds for a Retry-After header, when trying again later may work. */
  readonly retryAfterSeconds: number | undefined;

  constructor(reason: RefusalReason, detail?: string, retryAfterSeconds?: number) {
    const spec: ReasonSpec = REASONS[reason];
    super(spec.description);
    this.name = new.target.name;
    this.reason = reason;
    this.detail = detail;
    this.status = spec.status;
    this.code = spec.error;
    this.challenges = spec.challenge !== undefined;
    this.bearerError = spec.challenge === 'coded' ? (spec.error as BearerErrorCode) : undefined;
    this.scheme = spec.scheme;
    this.retryAfterSeconds = retryAfterSeconds ?? spec.retryAfterSeconds;
  }
}

/** No credentials, or a scheme this resource does not accept: 401 and a bare challenge. */
export class MissingCredentials extends SidecarError {}

/** The request is malformed: 400 invalid_request. */
export class InvalidRequest extends SidecarError {}

/** A DPoP proof that does not check out (RFC 9449 §4.3): 401 invalid_dpop_proof, DPoP challenged. */
export class InvalidDpopProof extends SidecarError {}

/** RFC 9449 §9: the proof lacks the server's current nonce; the answer carries a fresh one. */
export class UseDpopNonce extends SidecarError {
  readonly nonce: string;
  constructor(nonce: string, detail?: string) {
    super('dpop_nonce_required', detail);
    this.nonce = nonce;
  }
}

/** Expired, revoked, unknown, not bound to this certificate: 401 invalid_token. */
export class InvalidToken extends SidecarError {}

/** A required scope is missing: 403 insufficient_scope with the scopes that are needed. */
export class InsufficientScope extends SidecarError {
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
export class AuthorizationServerUnavailable extends SidecarError {}

/**
 * The fleet's Redis cannot record what a check needs shared (a DPoP proof's jti): the check
 * cannot be made for the whole fleet, so the request is refused, never waved through. 503.
 */
export class FleetUnavailable extends SidecarError {}

/** The API refused the connection or broke it: 502. */
export class UpstreamUnavailable extends SidecarError {
  constructor(detail?: string) {
    super('upstream_unavailable', detail);
  }
}

/** The API did not answer within PHANTOM_UPSTREAM_TIMEOUT_MS: 504. */
export class UpstreamTimeout extends SidecarError {
  constructor() {
    super('upstream_timeout');
  }
}

/** A request refused at the HTTP level (method, host, size, rate, time), before any token. */
export class RequestRejected extends SidecarError {
  /** The methods to list in `Allow` on a 405. */
  readonly allow: string | undefined;

  constructor(reason: RefusalReason, options: { detail?: string; retryAfterSeconds?: number; allow?: string } = {}) {
    super(reason, options.detail, options.retryAfterSeconds);
    this.allow = options.allow;
  }
}

/** Another framework's 4xx (Fastify, Node) in our family: its own status, our reason. */
export class ForeignRejection extends SidecarError {
  override readonly status: number;
  constructor(status: number, detail: string | undefined) {
    super('bad_request', detail);
    this.status = status;
  }
}

/** A fault of the sidecar itself. */
export class InternalError extends SidecarError {
  constructor(detail?: string) {
    super('internal_error', detail);
  }
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
  return { status: error.status, headers, body: { error: error.code, error_description: error.message } };
}

interface ErrorWithStatus {
  statusCode?: unknown;
  code?: unknown;
}

// What Fastify and Node raise themselves, by their error code, in our words. A URL Fastify's
// router cannot decode is a malformed request target like any other: 400 invalid_request, as
// the request-target rules answer the targets they refuse themselves.
const FOREIGN_CODES: Record<string, (code: string) => SidecarError> = {
  FST_ERR_BAD_URL: (code) => new InvalidRequest('malformed_url', code),
  FST_ERR_CTP_BODY_TOO_LARGE: (code) => new RequestRejected('body_too_large', { detail: code }),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: (code) => new RequestRejected('bad_request', { detail: code }),
  ERR_HTTP_REQUEST_TIMEOUT: (code) => new RequestRejected('request_timeout', { detail: code }),
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
    return new ForeignRejection(statusCode, detail);
  }
  return new InternalError(detail);
}

