// Libraries that only some configurations need, loaded on first use rather than at start: a
// sidecar runs beside every pod, and Redis's client, the YAML parser and the ASN.1 readers
// cost 10-25 MB of RSS each where nothing calls them (measured, README "Memory"). They are
// CommonJS packages, so a synchronous require keeps their callers synchronous.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function once<T>(load: () => T): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= load());
}

/** ioredis: with PHANTOM_REDIS_URL only. */
export const ioredis = once(() => require('ioredis') as typeof import('ioredis'));
/** yaml: with PHANTOM_POLICY_FILE only. */
export const yaml = once(() => require('yaml') as typeof import('yaml'));
/** fastest-levenshtein: only to suggest a name for a mistyped PHANTOM_* variable (it allocates 256 KB as it loads). */
export const levenshtein = once(() => require('fastest-levenshtein') as typeof import('fastest-levenshtein'));
/** The ASN.1 readers: with CRLs, or certificates from a gateway's header. */
export const asn1Schema = once(() => require('@peculiar/asn1-schema') as typeof import('@peculiar/asn1-schema'));
export const asn1X509 = once(() => require('@peculiar/asn1-x509') as typeof import('@peculiar/asn1-x509'));
