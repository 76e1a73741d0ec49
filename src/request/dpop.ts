// The DPoP proof: RFC 9449 at the resource server (§4.3, §7.1, §8, §9), checked fully
// before the token is looked up: typ, an allowed asymmetric alg, a public jwk and a signature
// by it, htm, htu (the URL the client addressed), iat within the window, ath, a nonce when the
// sidecar asks for them, and a jti never seen before. The key's RFC 7638 thumbprint comes back,
// to be compared with the token's cnf.jkt in the binding stage.
import { createHash, createHmac } from 'node:crypto';
import type { JWK } from 'jose';
import { decodeProtectedHeader } from 'jose/decode/protected_header';
import * as errors from 'jose/errors';
import { EmbeddedJWK } from 'jose/jwk/embedded';
import { calculateJwkThumbprint } from 'jose/jwk/thumbprint';
import { decodeJwt } from 'jose/jwt/decode';
import { jwtVerify } from 'jose/jwt/verify';
import { InvalidDpopProof, UseDpopNonce } from '../errors.ts';
import type { DpopConfig } from '../config/config.ts';
import { sameText } from '../constant-time.ts';
import { SeenSet } from '../seen-set.ts';

// Clock skew allowed on top of PHANTOM_DPOP_MAX_AGE_S, in either direction.
export const DPOP_LEEWAY_SECONDS = 5;
const NONCE_STEP_SECONDS = 60;
const MAX_JTI_LENGTH = 256;
// The replay store holds one entry per proof seen within the window; past this many the
// oldest go first (documented: at a sustained rate above max/window, the window shrinks).
const REPLAY_STORE_ENTRIES = 200_000;
// Members of a private JWK: a proof must carry the public key only.
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

export interface ProofContext {
  method: string;
  /** The URL the client addressed: https:// + the checked Host + the path, no query. */
  htu: string;
  token: string;
}

function refuse(detail: string): never {
  throw new InvalidDpopProof('dpop_proof_invalid', detail);
}

/** base64url(SHA-256(token)), RFC 9449 §4.2 `ath`. */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** The URL the client addressed, without query (a proof's htu): only with a vouched-for Host. */
export function addressedUrl(checkedHost: string | undefined, target: string): string | undefined {
  return checkedHost === undefined ? undefined : `https://${checkedHost}${target.split('?', 1)[0] ?? ''}`;
}

/** RFC 9449 §4.3 step 11 with RFC 3986 §6 normalisation: scheme and host case, default port. */
function normalisedHtu(value: string): string | undefined {
  try {
    const url = new URL(value);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return undefined;
  }
}

/**
 * Stateless nonces (§8): an HMAC over the current time step, so every replica with the same
 * secret issues and accepts the same values; the previous step is accepted too.
 */
export class DpopNonces {
  readonly #secret: Buffer;
  readonly #now: () => number;

  constructor(secret: Buffer, now: () => number = Date.now) {
    this.#secret = secret;
    this.#now = now;
  }

  #forStep(step: number): string {
    return createHmac('sha256', this.#secret).update(`dpop-nonce:${step}`).digest('base64url').slice(0, 32);
  }

  #step(): number {
    return Math.floor(this.#now() / 1000 / NONCE_STEP_SECONDS);
  }

  current(): string {
    return this.#forStep(this.#step());
  }

  accepts(nonce: unknown): boolean {
    if (typeof nonce !== 'string') return false;
    const step = this.#step();
    return sameText(nonce, this.#forStep(step)) || sameText(nonce, this.#forStep(step - 1));
  }
}

/** Where the jti of each accepted proof is remembered for the acceptance window. */
export interface ReplayStore {
  /** Whether this process has already seen the key: a replay refused before any signature work. */
  has(key: string): boolean;
  /** True the first time a key is seen within `ttlMs`; false for a replay. */
  firstSeen(key: string, ttlMs: number): boolean | Promise<boolean>;
}

/** This process's replay store: at most REPLAY_STORE_ENTRIES proofs within their window. */
export const memoryReplayStore = (): ReplayStore => new SeenSet(REPLAY_STORE_ENTRIES);

export interface DpopVerifier {
  /** The jkt of a valid, fresh proof for this request; throws InvalidDpopProof or UseDpopNonce. */
  verify(proof: string, context: ProofContext): Promise<string>;
}

// RFC 7518 §6.3.1 / NIST SP 800-56B: the public exponent is 65537 in every sane key; the
// modulus 2048 to 4096 bits. A huge exponent or modulus makes one signature check cost tens of
// milliseconds: refused before any signature work, so a proof cannot be a CPU lever.
const RSA_EXPONENT = 'AQAB';
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 4096;
// The key type and curve each allowed algorithm needs.
const KEY_OF_ALG: Readonly<Record<string, { kty: string; crv?: string }>> = {
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
};

/** The bit length of a big-endian unsigned integer in base64url (an RSA modulus). */
function bitLength(base64url: string): number {
  const bytes = Buffer.from(base64url, 'base64url');
  let first = 0;
  while (first < bytes.length && bytes[first] === 0) first += 1;
  if (first === bytes.length) return 0;
  return (bytes.length - first - 1) * 8 + (32 - Math.clz32(bytes[first] ?? 0));
}

/** The public key of a proof header, checked for its type, curve and size; the refusal's detail otherwise. */
function checkProofKey(jwk: JWK, alg: string): void {
  if (PRIVATE_MEMBERS.some((member) => member in jwk)) refuse('jwk_private');
  const wanted = KEY_OF_ALG[alg];
  if (wanted === undefined || jwk.kty !== wanted.kty || (wanted.crv !== undefined && jwk.crv !== wanted.crv)) refuse('jwk_type');
  if (jwk.kty === 'RSA') {
    if (jwk.e !== RSA_EXPONENT) refuse('jwk_rsa_exponent');
    const bits = typeof jwk.n === 'string' ? bitLength(jwk.n) : 0;
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) refuse('jwk_rsa_size');
  }
}

function unverifiedClaims(proof: string): Record<string, unknown> {
  try {
    return decodeJwt(proof);
  } catch {
    refuse('malformed');
  }
}

export function dpopVerifier(settings: DpopConfig, replay: ReplayStore = memoryReplayStore(), now: () => number = Date.now): DpopVerifier {
  const nonces = settings.nonceSecret === undefined ? undefined : new DpopNonces(settings.nonceSecret, now);
  const windowMs = (settings.maxAgeSeconds + 2 * DPOP_LEEWAY_SECONDS) * 1000;
  return {
    async verify(proof, context) {
      // Every check that costs no signature comes first, so a refused proof costs next to nothing.
      let header: ReturnType<typeof decodeProtectedHeader>;
      try {
        header = decodeProtectedHeader(proof);
      } catch {
        refuse('malformed');
      }
      if (header.typ !== 'dpop+jwt') refuse('typ');
      if (typeof header.alg !== 'string' || !settings.algs.includes(header.alg)) refuse('alg');
      const jwk = header.jwk as JWK | undefined;
      if (typeof jwk !== 'object' || jwk === null) refuse('jwk');
      checkProofKey(jwk, header.alg);
      const claims = unverifiedClaims(proof);
      if (claims.htm !== context.method) refuse('htm');
      const htu = typeof claims.htu === 'string' ? normalisedHtu(claims.htu) : undefined;
      if (htu === undefined || htu !== normalisedHtu(context.htu)) refuse('htu');
      if (typeof claims.ath !== 'string' || !sameText(claims.ath, accessTokenHash(context.token))) refuse('ath');
      if (typeof claims.jti !== 'string' || claims.jti.length > MAX_JTI_LENGTH) refuse('jti');
      let jkt: string;
      try {
        jkt = await calculateJwkThumbprint(jwk);
      } catch {
        refuse('jwk');
      }
      const key = createHash('sha256').update(`${jkt}:${claims.jti}`).digest('base64url');
      // A proof this pod has already accepted is a replay: refused without verifying it again.
      if (replay.has(key)) throw new InvalidDpopProof('dpop_proof_replayed');
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(proof, EmbeddedJWK, {
          typ: 'dpop+jwt',
          algorithms: [...settings.algs],
          maxTokenAge: settings.maxAgeSeconds,
          clockTolerance: DPOP_LEEWAY_SECONDS,
          requiredClaims: ['iat', 'jti', 'htm', 'htu'],
          currentDate: new Date(now()),
        }));
      } catch (error) {
        if (error instanceof errors.JWTClaimValidationFailed || error instanceof errors.JWTExpired) refuse(`claim_${error.claim}`);
        refuse(error instanceof errors.JWSSignatureVerificationFailed ? 'signature' : 'unverified');
      }
      if (nonces !== undefined && !nonces.accepts(payload.nonce)) {
        throw new UseDpopNonce(nonces.current(), payload.nonce === undefined ? 'missing' : 'stale');
      }
      // Atomic set-if-absent: the same proof twice is refused, wherever it is replayed.
      if (!(await replay.firstSeen(key, windowMs))) throw new InvalidDpopProof('dpop_proof_replayed');
      return jkt;
    },
  };
}
