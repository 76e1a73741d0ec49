// Comparing a secret or a proof with what was presented, in time that does not depend on
// where they differ. Lengths are not secret here (thumbprints, hashes, configured tokens).
import { timingSafeEqual } from 'node:crypto';

export function sameText(expected: string, presented: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}
