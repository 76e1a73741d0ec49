// The one way an error leaves the mTLS listener, for the pipeline's errors and Fastify's own.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { InternalError, SidecarError, asSidecarError, toErrorResponse, type ChallengeContext } from '../errors.ts';
import { stateOf } from './request-state-of.ts';

export const REALM = 'phantom-sidecar';

export type ErrorReplier = (error: unknown, request: FastifyRequest, reply: FastifyReply) => FastifyReply;

export interface ErrorReplyParts {
  logger: Logger;
  /** The challenges' fixed parts: accepted schemes, DPoP algorithms, resource metadata. */
  challenges: ChallengeContext;
  isLastResponse: (socket: Socket) => boolean;
  /** Makes sure the request gets its access line, also when Fastify failed it before any hook. */
  track: (request: FastifyRequest, reply: FastifyReply) => void;
}

export function errorReplier({ logger, challenges, isLastResponse, track }: ErrorReplyParts): ErrorReplier {
  return (error, request, reply) => {
    const failure = asSidecarError(error);
    track(request, reply);
    const state = stateOf(request);
    state.reason = failure.reason;
    state.detail = failure.detail;
    if (failure instanceof InternalError && !(error instanceof SidecarError)) logUnexpected(logger, request.id, error);
    const response = toErrorResponse(failure, { ...challenges, presented: state.scheme });
    // A body the client is still sending was not read: the connection cannot be reused.
    if (!request.raw.complete || isLastResponse(request.raw.socket)) reply.header('connection', 'close');
    return reply.code(response.status).headers(response.headers).header('x-fapi-interaction-id', request.id).send(response.body);
  };
}

/**
 * A bug, not a refusal: worth a line of its own. Only the error's class, code and stack
 * frames are logged; a message could quote a header or a token, so it is left out.
 */
function logUnexpected(logger: Logger, interactionId: string, error: unknown): void {
  const { name, code, stack } = (error instanceof Error ? error : new Error('non-error thrown')) as Error & { code?: unknown };
  const frames = (stack ?? '').split('\n').slice(1, 6).map((frame) => frame.trim());
  logger.error({ interaction_id: interactionId, err_name: name, err_code: typeof code === 'string' ? code : undefined, frames }, 'unexpected error');
}
