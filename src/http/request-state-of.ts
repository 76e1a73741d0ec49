// The request state of a Fastify request, made on first use: an error raised before any hook
// ran (a malformed URL) still needs one for its access line.
import type { FastifyRequest } from 'fastify';
import { newRequestState, type RequestState } from '../request/state.ts';

export function stateOf(request: FastifyRequest): RequestState {
  request.phantom ??= newRequestState();
  return request.phantom;
}
