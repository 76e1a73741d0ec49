// The one error family of the request path, and the one place that turns it into an
// HTTP response. Every stage throws what it means; only this file knows RFC 6750 §3.
//
// Descriptions are fixed strings chosen here, never built from the request or from the
// authorization server's answer, so no token and no upstream text can reach a client.

/** RFC 6750 §3.1 error codes. Absent when the client sent no credentials at all. */
export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope';

export abstract class SidecarError extends Error {
  abstract readonly status: number;
  /** RFC 6750 error code, when the failure is the client's bearer credential. */
  readonly bearerError: BearerErrorCode | undefined = undefined;
  /** Whether a `WWW-Authenticate: Bearer` challenge belongs on this response. */
  readonly challenges: boolean = false;
  /** Short machine-readable cause for the log line; never sent to the client. */
  readonly reason: string;

  constructor(reason: string, description: string) {
    super(description);
    this.name = new.target.name;
    this.reason = reason;
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
    super('scope_missing', 'The access token lacks a required scope');
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
  readonly retryAfterSeconds = 5;
  constructor(reason: string) {
    super(reason, 'The authorization server is unavailable; try again later');
  }
}

/** The API refused the connection or broke it: 502. */
export class UpstreamUnavailable extends SidecarError {
  readonly status = 502;
  constructor(reason = 'upstream_unavailable') {
    super(reason, 'The API is unavailable');
  }
}

/** The API did not answer within PHANTOM_UPSTREAM_TIMEOUT_MS: 504. */
export class UpstreamTimeout extends SidecarError {
  readonly status = 504;
  constructor() {
    super('upstream_timeout', 'The API did not answer in time');
  }
}

/** A request the HTTP layer refused before any stage ran (body too large, bad framing…). */
export class RequestRejected extends SidecarError {
  readonly status: number;
  constructor(status: number, reason: string) {
    super(reason, status === 413 ? 'The request body is too large' : 'The request was rejected');
    this.status = status;
  }
}

/** A fault of the sidecar itself. */
export class InternalError extends SidecarError {
  readonly status = 500;
  constructor(reason = 'internal_error') {
    super(reason, 'Internal error');
  }
}

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: { error?: BearerErrorCode; error_description: string };
}

// RFC 6750 §3: error_description and scope use only %x20-21 / %x23-5B / %x5D-7E.
const CHALLENGE_UNSAFE = /[^\x20\x21\x23-\x5b\x5d-\x7e]/g;

function quoted(value: string): string {
  return `"${value.replace(CHALLENGE_UNSAFE, '')}"`;
}

/** The `WWW-Authenticate` value of RFC 6750 §3, each parameter at most once. */
export function bearerChallenge(realm: string, error: SidecarError): string {
  const params = [`realm=${quoted(realm)}`];
  const code = error.bearerError;
  if (code !== undefined) {
    params.push(`error=${quoted(code)}`, `error_description=${quoted(error.message)}`);
  }
  if (error instanceof InsufficientScope) params.push(`scope=${quoted(error.requiredScope)}`);
  return `Bearer ${params.join(', ')}`;
}

/** Maps any error of the family to its status, headers and JSON body. */
export function toErrorResponse(error: SidecarError, realm: string): ErrorResponse {
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  if (error.challenges) headers['www-authenticate'] = bearerChallenge(realm, error);
  if (error instanceof AuthorizationServerUnavailable) {
    headers['retry-after'] = String(error.retryAfterSeconds);
  }
  const code = error.bearerError;
  const body = code === undefined
    ? { error_description: error.message }
    : { error: code, error_description: error.message };
  return { status: error.status, headers, body };
}

interface ErrorWithStatus {
  statusCode?: unknown;
  code?: unknown;
}

/**
 * Turns anything thrown on the request path into the family. Fastify's own 4xx errors
 * (body too large, bad content length) keep their status; everything else is ours: 500.
 */
export function asSidecarError(thrown: unknown): SidecarError {
  if (thrown instanceof SidecarError) return thrown;
  const { statusCode, code } = (typeof thrown === 'object' && thrown !== null ? thrown : {}) as ErrorWithStatus;
  const reason = typeof code === 'string' ? code : 'internal_error';
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return new RequestRejected(statusCode, reason);
  }
  return new InternalError(reason);
}
