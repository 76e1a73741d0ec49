// What a revocation may name a cached answer by, written one way for the cache, the fleet and
// the Shared Signals receiver: its token (by the SHA-256 the cache keys it with), its subject
// or client (SSF "opaque"), or issuer and subject together (SSF "iss_sub").
import type { Introspection } from './answer.ts';

const TOKEN = 'token:';

export const tokenSubject = (key: string): string => `${TOKEN}${key}`;
export const opaqueSubject = (id: string): string => `opaque:${id}`;
export const issuerSubject = (iss: string, sub: string): string => `iss_sub:${iss}|${sub}`;

/** The cache key a token subject names, or undefined for any other subject. */
export function tokenKeyOf(subject: string): string | undefined {
  return subject.startsWith(TOKEN) ? subject.slice(TOKEN.length) : undefined;
}

/** Every subject an answer can be revoked by; the token's own first. */
export function subjectsOf(introspection: Introspection, key: string): string[] {
  const subjects = [tokenSubject(key)];
  if (!introspection.active) return subjects;
  const { iss, sub, client_id: clientId } = introspection.claims;
  if (sub !== undefined) subjects.push(opaqueSubject(sub));
  if (clientId !== undefined) subjects.push(opaqueSubject(clientId));
  // Client-credentials tokens have no sub: their client stands for it.
  const who = sub ?? clientId;
  if (iss !== undefined && who !== undefined) subjects.push(issuerSubject(iss, who));
  return subjects;
}
