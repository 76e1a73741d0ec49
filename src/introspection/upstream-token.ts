// The upstream token: the JWT the API receives in place of the opaque token (the phantom-token pattern).
// `mint`: the sidecar signs an RFC 9068 access-token JWT; `as-jwt`: the authorization server
// supplied it with the introspection answer. Either way it is kept with the cache entry, so
// a cache hit signs nothing.
import { createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { calculateJwkThumbprint } from 'jose/jwk/thumbprint';
import { SignJWT } from 'jose/jwt/sign';
import { InternalError, InvalidToken } from '../errors.ts';
import type { JwtAlg, MintConfig } from '../config/config.ts';
import type { CacheEntry, UpstreamJwt } from './cache.ts';
import type { TokenClaims } from './answer.ts';

export interface UpstreamTokenSource {
  /** The JWT to forward for this (already authorized) cache entry. */
  jwtFor(entry: CacheEntry, nowSeconds: number): Promise<string>;
  /** The same, when it is at hand without signing or waiting; undefined otherwise. */
  readyJwtFor(entry: CacheEntry, nowSeconds: number): string | undefined;
  /** Public keys for the API to verify with (empty in as-jwt mode). */
  readonly jwks: { keys: JWK[] };
}

// A JWT this close to its exp is re-minted rather than sent: it could expire in transit.
const REUSE_MARGIN_SECONDS = 5;

/** The RFC 9068 claims of a minted JWT; exp never past the opaque token's. */
export function mintedClaims(claims: TokenClaims, settings: Pick<MintConfig, 'issuer' | 'audience' | 'ttlSeconds'>, nowSeconds: number): Record<string, unknown> {
  const exp = Math.min(nowSeconds + settings.ttlSeconds, claims.exp ?? Number.POSITIVE_INFINITY);
  if (exp <= nowSeconds) throw new InvalidToken('token_expired');
  const minted: Record<string, unknown> = {
    iss: settings.issuer,
    aud: settings.audience,
    sub: claims.sub ?? claims.client_id,
    client_id: claims.client_id,
    iat: nowSeconds,
    exp,
    jti: randomUUID(),
  };
  if (claims.scope !== undefined) minted.scope = claims.scope;
  // The confirmation as it was verified: the certificate's thumbprint, the DPoP key's, or both.
  const cnf: Record<string, string> = {};
  if (claims.cnf?.['x5t#S256'] !== undefined) cnf['x5t#S256'] = claims.cnf['x5t#S256'];
  if (claims.cnf?.jkt !== undefined) cnf.jkt = claims.cnf.jkt;
  if (Object.keys(cnf).length > 0) minted.cnf = cnf;
  return minted;
}

/**
 * A JWT's text as one flat string. jose joins the three parts with a template literal, which
 * V8 keeps as a tree of the parts (a third more memory than the text, measured); the cache
 * holds thousands of them for minutes.
 */
function flatCopy(jwt: string): string {
  return Buffer.from(jwt, 'latin1').toString('latin1');
}

/** Without PHANTOM_JWT_SIGNING_KEY: a fresh key for this process only. */
export function generateSigningKey(alg: JwtAlg): KeyObject {
  switch (alg) {
    case 'ES256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'PS256':
      return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    case 'EdDSA':
      return generateKeyPairSync('ed25519').privateKey;
  }
}

export class JwtMinter implements UpstreamTokenSource {
  readonly #settings: MintConfig;
  readonly #privateKey: KeyObject;
  readonly #kid: string;
  readonly #header: { alg: JwtAlg; typ: 'at+jwt'; kid: string };
  // The protected header, encoded, with its dot: the same for every JWT this minter signs, so
  // kept here once and not in each of the thousands of cached entries (a sixth of a JWT).
  readonly #encodedHeader: string;
  readonly jwks: { keys: JWK[] };

  private constructor(settings: MintConfig, privateKey: KeyObject, publicJwk: JWK, kid: string) {
    this.#settings = settings;
    this.#privateKey = privateKey;
    this.#kid = kid;
    this.#header = { alg: settings.alg, typ: 'at+jwt', kid };
    this.#encodedHeader = `${Buffer.from(JSON.stringify(this.#header)).toString('base64url')}.`;
    this.jwks = { keys: [{ ...publicJwk, kid, alg: settings.alg, use: 'sig' }] };
  }

  static async create(settings: MintConfig): Promise<JwtMinter> {
    const privateKey = settings.signingKey ?? generateSigningKey(settings.alg);
    const publicJwk = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
    // RFC 7638 thumbprint as kid: stable for a given key, so a rotation changes it.
    const kid = await calculateJwkThumbprint(publicJwk);
    return new JwtMinter(settings, privateKey, publicJwk, kid);
  }

  get kid(): string {
    return this.#kid;
  }

  jwtFor(entry: CacheEntry, nowSeconds: number): Promise<string> {
    if (!entry.introspection.active) throw new InternalError('inactive_token_reached_minting');
    const kept = entry.upstreamJwt;
    if (kept !== undefined && kept.exp - nowSeconds > REUSE_MARGIN_SECONDS) {
      if (kept.signed !== undefined) return Promise.resolve(this.#encodedHeader + kept.signed);
      return kept.jwt ?? Promise.reject(new InternalError('jwt_lost'));
    }
    const fresh = this.#mint(entry.introspection.claims, nowSeconds);
    const pending = fresh.jwt;
    entry.upstreamJwt = fresh;
    pending.then(
      (jwt) => {
        if (entry.upstreamJwt !== fresh) return;
        const signed = this.#withoutHeader(jwt);
        entry.upstreamJwt = signed === undefined ? undefined : { signed, exp: fresh.exp };
      },
      // A failed signature must not stay with the entry.
      () => {
        if (entry.upstreamJwt === fresh) entry.upstreamJwt = undefined;
      },
    );
    return pending;
  }

  readyJwtFor(entry: CacheEntry, nowSeconds: number): string | undefined {
    const kept = entry.upstreamJwt;
    if (kept?.signed === undefined || kept.exp - nowSeconds <= REUSE_MARGIN_SECONDS) return undefined;
    return this.#encodedHeader + kept.signed;
  }

  /** What the entry keeps of a signed JWT: the rest after the header, as one flat string. */
  #withoutHeader(jwt: string): string | undefined {
    // Never the case with the header jose was given; if it were, the JWT is not kept (and is
    // signed again next time) rather than a wrong one forwarded.
    if (!jwt.startsWith(this.#encodedHeader)) return undefined;
    return flatCopy(jwt.slice(this.#encodedHeader.length));
  }

  #mint(claims: TokenClaims, nowSeconds: number): UpstreamJwt & { jwt: Promise<string> } {
    const payload = mintedClaims(claims, this.#settings, nowSeconds);
    const jwt = new SignJWT(payload).setProtectedHeader(this.#header).sign(this.#privateKey);
    return { jwt, exp: payload.exp as number };
  }
}

/** as-jwt mode: the authorization server's JWT is forwarded as it came. */
export class AuthorizationServerJwt implements UpstreamTokenSource {
  readonly jwks = { keys: [] };

  jwtFor(entry: CacheEntry): Promise<string> {
    const { introspection } = entry;
    if (!introspection.active || introspection.jwt === undefined) {
      return Promise.reject(new InternalError('as_jwt_missing'));
    }
    return Promise.resolve(introspection.jwt);
  }

  readyJwtFor(entry: CacheEntry): string | undefined {
    return entry.introspection.active ? entry.introspection.jwt : undefined;
  }
}

export async function createUpstreamTokenSource(settings: MintConfig | { mode: 'as-jwt' }): Promise<UpstreamTokenSource> {
  return settings.mode === 'mint' ? JwtMinter.create(settings) : new AuthorizationServerJwt();
}
