// What the pipeline carries for one request from stage to stage. The stages write it; the
// access line and the metrics only read it.
import type { RefusalReason } from './reasons.ts';

/** How the introspection answer was found: cached, asked for, or joined a call under way. */
export type CacheOutcome = 'hit' | 'miss' | 'shared' | 'none';

export interface RequestState {
  /** The bearer token of stage 2; never logged, never forwarded. */
  token: string | undefined;
  /** x5t#S256 of the partner certificate (stage 1): public, and what binding is checked against. */
  x5t: string | undefined;
  /** The path the API receives (base path included, no query); set once the target is checked. */
  upstreamPath: string | undefined;
  /** The JWT of stage 7, for the proxy. */
  upstreamJwt: string | undefined;
  /** The token's client and subject, once introspected: for the access line. */
  clientId: string | undefined;
  sub: string | undefined;
  cache: CacheOutcome;
  /** Why the request was refused or failed; undefined when it was served. */
  reason: RefusalReason | undefined;
  /** What varies within the reason (an AS status, an error code): logged, never a label. */
  detail: string | undefined;
  startedAt: number;
}

export function newRequestState(): RequestState {
  return {
    token: undefined,
    x5t: undefined,
    upstreamPath: undefined,
    upstreamJwt: undefined,
    clientId: undefined,
    sub: undefined,
    cache: 'none',
    reason: undefined,
    detail: undefined,
    startedAt: performance.now(),
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    phantom: RequestState;
  }
}
