// The access line and the request metrics of every request, written once its response is
// over: sent, refused, or cut off by the client or a timeout.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { accessWriter, connectionFacts, cut, pathOnly, type AccessLine, type ConnectionFacts } from '../log.ts';
import { certificateNames } from '../config/tls-material.ts';
import type { SidecarMetrics } from '../metrics.ts';
import type { RequestState } from '../request/state.ts';

// nginx's code for a request whose client went away before an answer could be sent.
export const CLIENT_CLOSED_REQUEST = 499;

export class AccessRecorder {
  readonly #write: (line: AccessLine) => void;
  readonly #metrics: SidecarMetrics;

  constructor(logger: Logger, metrics: SidecarMetrics, time: 'epoch' | 'iso' = 'epoch') {
    this.#write = accessWriter(logger, time);
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
  socket?: TLSSocket | undefined;
  userAgent?: string | undefined;
}

const MAX_USER_AGENT = 256;

/** The client's User-Agent, cut to a length a log line can afford. */
export function boundedUserAgent(value: string | undefined): string | undefined {
  return value === undefined ? undefined : cut(value, MAX_USER_AGENT);
}

type CertificateFacts = ReturnType<typeof certificateNames>;

// Parsed once per certificate (by its x5t), not per request; bounded like every per-partner map.
const certificates = new LRUCache<string, CertificateFacts>({ max: 1024 });

function certificateFacts(x5t: string | undefined, der: (() => Buffer | undefined) | undefined): CertificateFacts | undefined {
  if (x5t === undefined || der === undefined) return undefined;
  const known = certificates.get(x5t);
  if (known !== undefined) return known;
  const bytes = der();
  if (bytes === undefined) return undefined;
  const found = certificateNames(new X509Certificate(bytes));
  certificates.set(x5t, found);
  return found;
}

// One connection serves many requests of one partner (behind a gateway, of several): its
// facts are worked out when the partner changes, not on every request.
const onConnection = new WeakMap<TLSSocket, { x5t: string | undefined; facts: ConnectionFacts }>();

function factsOf(socket: TLSSocket | undefined, state: RequestState): ConnectionFacts | undefined {
  if (socket === undefined) return undefined;
  const known = onConnection.get(socket);
  if (known !== undefined && known.x5t === state.x5t) return known.facts;
  const certificate = certificateFacts(state.x5t, state.partnerDer);
  const facts = connectionFacts({
    clientAddress: socket.remoteAddress,
    clientPort: socket.remotePort,
    tlsVersion: socket.getProtocol?.() ?? undefined,
    certSubject: certificate?.subject,
    certIssuer: certificate?.issuer,
    certSerial: certificate?.serial,
  });
  onConnection.set(socket, { x5t: state.x5t, facts });
  return facts;
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
    connection: factsOf(exchange.socket, state),
    userAgent: boundedUserAgent(exchange.userAgent),
    upstreamStatus: state.upstreamStatus,
    upstreamMs: state.upstreamMs,
    traceId: state.trace?.traceId,
  };
}

