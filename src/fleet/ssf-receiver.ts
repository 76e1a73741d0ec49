// OpenID Shared Signals: a receiver of Security Event Tokens (RFC 8417) delivered by push
// (RFC 8935) on the admin listener. A SET is accepted only when signed by the transmitter's
// key (its JWKS from /.well-known/ssf-configuration or PHANTOM_SSF_JWKS_URL), typ
// secevent+jwt, iss the transmitter, aud ours, and its jti not seen before; its revocation
// events then drop every cached answer of their subject on every pod. 202 once applied; 400
// with {err, description} for a SET that does not check out; 503 when the fleet cannot take
// it (the transmitter retries; an event is never acknowledged and then lost).
import type { JWTVerifyGetKey } from 'jose';
import * as errors from 'jose/errors';
import { jwtVerify } from 'jose/jwt/verify';
import { request, type Agent } from 'undici';
import { verifiedAgent } from '../authorization-server/outbound.ts';
import type { Logger } from 'pino';
import type { FleetConfig } from '../config/config.ts';
import { sameText } from '../constant-time.ts';
import { remoteKeySet } from '../authorization-server/remote-jwks.ts';
import { mediaType } from '../media-type.ts';
import { FAPI_ALGORITHMS } from '../vocabulary.ts';
import { issuerSubject, opaqueSubject, tokenSubject } from '../introspection/subjects.ts';
import { SeenSet } from '../seen-set.ts';

export const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
export const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
/** One token revoked: its subject is `{"format": "opaque", "id": base64url(SHA-256(token))}`, never the token. */
export const TOKEN_REVOKED = 'urn:phantom-sidecar:secevent:token-revoked';

const REVOKING = new Set([
  `${CAEP}session-revoked`,
  `${CAEP}credential-change`,
  `${RISC}account-disabled`,
  `${RISC}account-purged`,
  `${RISC}credential-compromise`,
  TOKEN_REVOKED,
]);
// A transmitter retries for a while; a jti is remembered a day.
const JTI_TTL_MS = 24 * 60 * 60 * 1000;
const SET_MAX_AGE_S = 24 * 60 * 60;

export interface SsfAnswer {
  status: 202 | 400 | 503;
  body?: { err: string; description: string };
}

/** Where applied revocations go: the fleet (broadcast) or, without Redis, this pod alone. */
export interface RevocationSink {
  revoke(subjects: string[]): Promise<void>;
}

/** Where the jti of every SET taken is remembered: this process's SeenSet, or the fleet's Redis. */
export interface JtiLedger {
  has(jti: string): boolean | Promise<boolean>;
  add(jti: string, ttlMs: number): void | Promise<void>;
}

/** This process's ledger. */
export const memoryJtiLedger = (): JtiLedger => new SeenSet(100_000);

const refused = (err: string, description: string): SsfAnswer => ({ status: 400, body: { err, description } });

export const UNAUTHENTICATED: SsfAnswer = refused('authentication_failed', 'The request is not authenticated');

/** RFC 9493 subject identifiers, as the cache indexes its answers (see subjectsOf). */
export function subjectKeys(subject: unknown, eventType: string): string[] {
  if (typeof subject !== 'object' || subject === null) return [];
  const id = subject as Record<string, unknown>;
  if (id.format === 'opaque' && typeof id.id === 'string') return [eventType === TOKEN_REVOKED ? tokenSubject(id.id) : opaqueSubject(id.id)];
  if (id.format === 'iss_sub' && typeof id.iss === 'string' && typeof id.sub === 'string') return [issuerSubject(id.iss, id.sub)];
  // SSF complex subjects: the user (or the tenant's user) is what cached tokens belong to.
  if (id.format === 'complex' || id.format === undefined) return [...subjectKeys(id.user, eventType), ...subjectKeys(id.session, eventType)];
  // RFC 9493 §3.2.3: several identifiers of one subject; any indexed one finds its answers.
  if (id.format === 'aliases' && Array.isArray(id.identifiers)) return id.identifiers.flatMap((alias) => subjectKeys(alias, eventType));
  return [];
}

/** The format a subject was given in, for an answer that says which could not be applied. */
function formatOf(subject: unknown): string {
  const format = (subject as { format?: unknown } | null)?.format;
  return typeof format === 'string' && /^[a-z_]{1,32}$/.test(format) ? format : 'unknown';
}

// The transmitter's configuration and keys: fetched within this, and a failure remembered this
// long, so that a burst of pushes cannot open a connection each.
const FETCH_TIMEOUT_MS = 2000;
const FAILURE_MEMORY_MS = 30_000;

export class SsfReceiver {
  readonly #settings: NonNullable<FleetConfig['ssf']>;
  readonly #sink: RevocationSink;
  readonly #ledger: JtiLedger;
  readonly #logger: Logger;
  readonly #dispatcher: Agent;
  #keys: JWTVerifyGetKey | undefined;
  #loading: Promise<JWTVerifyGetKey> | undefined;
  #failedUntil = 0;

  constructor(settings: NonNullable<FleetConfig['ssf']>, sink: RevocationSink, ledger: JtiLedger, logger: Logger) {
    this.#settings = settings;
    this.#sink = sink;
    this.#ledger = ledger;
    this.#logger = logger;
    this.#dispatcher = verifiedAgent({ ca: settings.ca, timeoutMs: FETCH_TIMEOUT_MS });
  }

  async #keySet(): Promise<JWTVerifyGetKey> {
    if (this.#keys !== undefined) return this.#keys;
    if (Date.now() < this.#failedUntil) throw new Error('the transmitter\'s configuration failed a moment ago');
    // One fetch at a time, whatever number of pushes arrive meanwhile.
    this.#loading ??= this.#loadKeySet().then(
      (keys) => {
        this.#keys = keys;
        return keys;
      },
      (error: unknown) => {
        this.#failedUntil = Date.now() + FAILURE_MEMORY_MS;
        throw error;
      },
    ).finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #loadKeySet(): Promise<JWTVerifyGetKey> {
    let url = this.#settings.jwksUrl;
    if (url === undefined) {
      // SSF 1.0 §7: the transmitter's configuration names its keys.
      const response = await request(`${this.#settings.issuer?.replace(/\/$/, '')}/.well-known/ssf-configuration`, {
        dispatcher: this.#dispatcher,
        headersTimeout: FETCH_TIMEOUT_MS,
        bodyTimeout: FETCH_TIMEOUT_MS,
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      const metadata = (await response.body.json()) as { issuer?: unknown; jwks_uri?: unknown };
      if (metadata.issuer !== this.#settings.issuer || typeof metadata.jwks_uri !== 'string') throw new Error('ssf configuration does not match');
      url = new URL(metadata.jwks_uri);
    }
    return remoteKeySet(url, this.#dispatcher, { timeoutMs: FETCH_TIMEOUT_MS });
  }

  /** RFC 8935 push authentication, checked before the body is read. */
  authenticated(authorization: string | undefined): boolean {
    const expected = this.#settings.authToken;
    return expected === undefined || (authorization !== undefined && sameText(`Bearer ${expected}`, authorization));
  }

  async receive(contentType: string | undefined, authorization: string | undefined, body: string): Promise<SsfAnswer> {
    if (!this.authenticated(authorization)) return UNAUTHENTICATED;
    if (mediaType(contentType) !== 'application/secevent+jwt') {
      return refused('invalid_request', 'Content-Type must be application/secevent+jwt');
    }
    let keys: JWTVerifyGetKey;
    try {
      keys = await this.#keySet();
    } catch {
      return { status: 503 };
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(body.trim(), keys, {
        typ: 'secevent+jwt',
        algorithms: [...FAPI_ALGORITHMS],
        issuer: this.#settings.issuer,
        audience: this.#settings.audience,
        maxTokenAge: SET_MAX_AGE_S,
        requiredClaims: ['jti', 'iat'],
      }));
    } catch (error) {
      if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'iss') return refused('invalid_issuer', 'The SET is from another issuer');
      if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'aud') return refused('invalid_audience', 'The SET is for another audience');
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWSSignatureVerificationFailed) return refused('invalid_key', 'The SET is not signed by the transmitter');
      if (error instanceof errors.JWKSTimeout) return { status: 503 };
      return refused('invalid_request', 'The SET is not valid');
    }
    const jti = String(payload.jti);
    const events = payload.events;
    if (typeof events !== 'object' || events === null || Array.isArray(events)) return refused('invalid_request', 'The SET carries no events');
    if (await Promise.resolve().then(() => this.#ledger.has(jti)).catch(() => false)) return refused('invalid_request', 'The SET was already received (jti)');
    const subjects = new Set<string>();
    for (const [type, event] of Object.entries(events as Record<string, unknown>)) {
      // Unknown event types are acknowledged and ignored, as SSF says.
      if (!REVOKING.has(type)) continue;
      const subject = payload.sub_id ?? (event as { subject?: unknown } | null)?.subject;
      const keys = subjectKeys(subject, type);
      // A revocation this pod cannot apply is said to the transmitter, never acknowledged and dropped.
      if (keys.length === 0) return refused('invalid_request', `The subject (format ${formatOf(subject)}) cannot be applied: use iss_sub, opaque, complex or aliases holding one`);
      for (const key of keys) subjects.add(key);
    }
    if (subjects.size > 0) {
      try {
        await this.#sink.revoke([...subjects]);
      } catch {
        return { status: 503, body: { err: 'temporarily_unavailable', description: 'Applied at this replica only: the fleet did not get it; deliver the SET again' } };
      }
    }
    await Promise.resolve().then(() => this.#ledger.add(jti, JTI_TTL_MS)).catch(() => undefined);
    this.#logger.info({ events: Object.keys(events).length, subjects: subjects.size }, 'shared signals event applied');
    return { status: 202 };
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }
}
