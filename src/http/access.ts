// The access line and the request metrics of every request, written once its response is
// over: sent, refused, or cut off by the client or a timeout.
import type { Logger } from 'pino';
import { accessWriter, pathOnly, type AccessLine } from '../log.ts';
import type { SidecarMetrics } from '../metrics.ts';
import type { RequestState } from '../request/state.ts';

// nginx's code for a request whose client went away before an answer could be sent.
export const CLIENT_CLOSED_REQUEST = 499;

export class AccessRecorder {
  readonly #write: (line: AccessLine) => void;
  readonly #metrics: SidecarMetrics;

  constructor(logger: Logger, metrics: SidecarMetrics) {
    this.#write = accessWriter(logger);
    this.#metrics = metrics;
  }

  record(line: AccessLine): void {
    this.#write(line);
    this.#metrics.record(line);
  }
}

export interface Exchange {
  interactionId: string;
  method: string;
  rawUrl: string;
  /** The status sent, or undefined when no response head went out. */
  sentStatus: number | undefined;
}

export function accessLineOf(exchange: Exchange, state: RequestState): AccessLine {
  return {
    interactionId: exchange.interactionId,
    method: exchange.method,
    path: state.upstreamPath ?? pathOnly(exchange.rawUrl),
    status: exchange.sentStatus ?? state.rawStatus ?? CLIENT_CLOSED_REQUEST,
    durationMs: performance.now() - state.startedAt,
    clientId: state.clientId,
    sub: state.sub,
    cache: state.cache,
    x5t: state.x5t,
    reason: state.reason ?? (exchange.sentStatus === undefined && state.rawStatus === undefined ? 'client_closed_request' : undefined),
    detail: state.detail,
    rule: state.route?.name,
    anonymous: state.route?.anonymous === true,
  };
}
