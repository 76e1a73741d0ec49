// Values the fleet keeps in Redis, sealed: whoever can write to Redis must not be able to
// grant access, and whoever can read it must not learn who holds which token. Each value is
// AES-256-GCM under a key derived (HKDF-SHA256, one key per purpose) from PHANTOM_REDIS_KEY,
// with the Redis key name (or the channel) as associated data: a value cannot be forged,
// read, or moved under another token's key. A value that does not open is a miss, never an
// answer. PHANTOM_REDIS_PREVIOUS_KEY opens what the fleet wrote before a rotation.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

export type SealPurpose = 'answer' | 'revocation' | 'subject';

const IV_BYTES = 12;
const TAG_BYTES = 16;
// The sealed form names its version, so that a later format is never misread as this one.
const FORMAT = 's1.';

function derive(secret: Buffer, purpose: SealPurpose): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), `phantom-sidecar fleet ${purpose}`, 32));
}

interface KeySet {
  answer: Buffer;
  revocation: Buffer;
  subject: Buffer;
}

function keySet(secret: Buffer): KeySet {
  return { answer: derive(secret, 'answer'), revocation: derive(secret, 'revocation'), subject: derive(secret, 'subject') };
}

export class Sealer {
  readonly #current: KeySet;
  readonly #previous: KeySet | undefined;

  constructor(secret: Buffer, previous?: Buffer) {
    this.#current = keySet(secret);
    this.#previous = previous === undefined ? undefined : keySet(previous);
  }

  seal(purpose: Exclude<SealPurpose, 'subject'>, associated: string, plaintext: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#current[purpose], iv);
    cipher.setAAD(Buffer.from(associated, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return FORMAT + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  /** The plaintext, or undefined for anything that was not sealed by this fleet under this name. */
  open(purpose: Exclude<SealPurpose, 'subject'>, associated: string, sealed: string): string | undefined {
    if (!sealed.startsWith(FORMAT)) return undefined;
    const raw = Buffer.from(sealed.slice(FORMAT.length), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) return undefined;
    for (const keys of this.#previous === undefined ? [this.#current] : [this.#current, this.#previous]) {
      const opened = openWith(keys[purpose], associated, raw);
      if (opened !== undefined) return opened;
    }
    return undefined;
  }

  /**
   * The names under which a subject is indexed in Redis: a keyed hash, so a key listing does
   * not show who the fleet holds answers for. Both keys' names during a rotation.
   */
  subjectNames(subject: string): string[] {
    const names = [subjectName(this.#current.subject, subject)];
    if (this.#previous !== undefined) names.push(subjectName(this.#previous.subject, subject));
    return names;
  }
}

function subjectName(key: Buffer, subject: string): string {
  return createHmac('sha256', key).update(subject).digest('base64url');
}

function openWith(key: Buffer, associated: string, raw: Buffer): string | undefined {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(associated, 'utf8'));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
