// The request state of a Fastify request, made on first use: an error raised before any hook
// ran (a malformed URL) still needs one for its access line.
import type { FastifyRequest } from 'fastify';
import { newRequestState, type RequestState } from '../request/state.ts';

export function stateOf(request: Pick<FastifyRequest, 'phantom'>): RequestState {
  request.phantom ??= newRequestState();
  return request.phantom;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Null until the request's first hook (or first error) makes it: read it through stateOf. */
    phantom: RequestState | null;
  }
}
