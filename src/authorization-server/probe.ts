// One introspection of a random token at start-up, so that a wrong secret, a missing CA or a
// wrong URL is said in the log at once rather than as the first partner's 503. A working AS
// answers `active: false` for a token it never issued. Readiness does not wait for it: an AS
// outage must not take every pod out of its Service (each request still fails closed).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { AuthorizationServerUnavailable } from '../errors.ts';
import type { Introspector } from '../introspection/answer.ts';
import { remedyFor } from './trouble.ts';

export type ProbeOutcome = 'answered' | 'active' | 'failed';

const READY_POLL_MS = 100;

export interface ProbeResult {
  outcome: ProbeOutcome;
  /** What went wrong and what to change, when it failed. */
  fault?: { reason: string; detail?: string | undefined; remedy: string };
}

export const PROBE_SAYS: Record<ProbeOutcome, string> = {
  answered: 'the authorization server answers introspection with the sidecar\'s credentials',
  active: 'the authorization server says a random token is active; it is not a working RFC 7662 endpoint for this client',
  failed: 'the authorization server gave no usable answer; every request that needs it will get 503',
};

/** Waits up to `waitMs` for the AS's metadata (with discovery), then introspects once. */
export async function probeOnce(introspector: Introspector, ready: () => boolean, waitMs = 10_000): Promise<ProbeResult> {
  const deadline = Date.now() + waitMs;
  while (!ready() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
  try {
    const answer = await introspector.introspect(randomBytes(32).toString('base64url'));
    return { outcome: answer.active ? 'active' : 'answered' };
  } catch (error) {
    const fault = error instanceof AuthorizationServerUnavailable ? error : new AuthorizationServerUnavailable('as_unreachable', 'unexpected');
    return { outcome: 'failed', fault: { reason: fault.reason, detail: fault.detail, remedy: remedyFor(fault) } };
  }
}

/** The start-up check: the probe's outcome said in the log. */
export async function probeAuthorizationServer(introspector: Introspector, ready: () => boolean, logger: Logger, waitMs = 10_000): Promise<ProbeOutcome> {
  const { outcome, fault } = await probeOnce(introspector, ready, waitMs);
  const message = `start-up check: ${PROBE_SAYS[outcome]}`;
  if (outcome === 'answered') logger.info(message);
  else logger.warn(fault ?? {}, message);
  return outcome;
}
