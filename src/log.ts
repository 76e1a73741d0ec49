// Logging: pino, JSON to stdout, one line per request.
// The access line is built field by field from values the pipeline chose to expose, so a
// token, a JWT, a secret or a key cannot reach it by accident; the redact paths below are
// a second belt for anything logged with a request or error object attached.
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type CacheOutcome = 'hit' | 'miss' | 'shared' | 'none';

const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'req.url',
  'headers.authorization',
  'token',
  'jwt',
  'secret',
  'clientSecret',
  'key',
];

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'phantom-sidecar' },
    // pino's default epoch-millisecond `time`: cheaper than an ISO string on every line.
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  if (destination !== undefined) return pino(options, destination);
  // Buffered stdout: lines leave in batches of up to 4 KiB instead of one write(2) each, and
  // at least once a second when traffic is light; pino flushes the rest when the process exits.
  const stdout = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => stdout.flush(), 1000).unref();
  return pino(options, stdout);
}

/** What the pipeline learnt about one request, filled in as the stages run. */
export interface RequestFacts {
  clientId?: string;
  sub?: string;
  cache: CacheOutcome;
  /** SHA-256 thumbprint of the client certificate: public, and what a reviewer asks first. */
  x5t?: string;
  reason?: string;
}

export interface AccessLine {
  interactionId: string;
  method: string;
  /** The raw URL; only its path is logged, since the query may carry a token. */
  url: string;
  status: number;
  durationMs: number;
  facts: RequestFacts;
}

export function pathOnly(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

export function logAccess(logger: Logger, line: AccessLine): void {
  const { facts } = line;
  logger.info(
    {
      interaction_id: line.interactionId,
      method: line.method,
      path: pathOnly(line.url),
      status: line.status,
      duration_ms: Math.round(line.durationMs * 100) / 100,
      client_id: facts.clientId,
      sub: facts.sub,
      cache: facts.cache,
      x5t: facts.x5t,
      reason: facts.reason,
    },
    'request',
  );
}
