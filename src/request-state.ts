// What the pipeline carries for one request from stage to stage.
import type { RequestFacts } from './log.ts';

export interface RequestState {
  /** The bearer token of stage 2; never logged, never forwarded. */
  token: string | undefined;
  /** The JWT of stage 7, for the proxy. */
  upstreamJwt: string | undefined;
  facts: RequestFacts;
  startedAt: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    phantom: RequestState;
  }
}
