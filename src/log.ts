// Logging: pino, JSON to stdout, one line per request.
// The access line is built field by field from values the pipeline chose to expose, so a
// token, a JWT, a secret or a key cannot reach it by accident; the redact paths below are
// a second belt for anything logged with a request or error object attached.
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.ts';
import type { RefusalReason } from './reasons.ts';
import type { CacheOutcome } from './request-state.ts';


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
  // Buffered stdout: lines leave in batches of 8 KiB or more instead of one write(2) each, and
  // at least once a second when traffic is light; pino flushes the rest when the process exits.
  const stdout = pino.destination({ dest: 1, sync: false, minLength: 8192, maxWrite: 65_536 });
  setInterval(() => stdout.flush(), 1000).unref();
  return pino(options, stdout);
}

/**
 * The access line's own logger, on the same stream, without redaction: its line is built field
 * by field from safe values (never an object that could carry a token), so redact paths would
 * only cost time on every request.
 */
export function accessLogger(logger: Logger): Logger {
  const stream = (logger as unknown as Record<symbol, pino.DestinationStream>)[pino.symbols.streamSym];
  return pino({ level: logger.level, base: { service: 'phantom-sidecar' }, formatters: { level: (label) => ({ level: label }) } }, stream);
}

/** The one line per request: built field by field from the request state, nothing else. */
export interface AccessLine {
  interactionId: string;
  method: string;
  /** The path the API receives, or, for a request refused before its target was checked, the raw path. */
  path: string;
  status: number;
  durationMs: number;
  clientId: string | undefined;
  sub: string | undefined;
  cache: CacheOutcome;
  /** SHA-256 thumbprint of the client certificate: public, and what a reviewer asks first. */
  x5t: string | undefined;
  reason: RefusalReason | undefined;
  detail: string | undefined;
  /** The route policy's rule, and whether it let the request through without a token. */
  rule: string | undefined;
  anonymous: boolean;
}

// A refused target is logged as received (a security analyst wants it) but not without end.
const MAX_LOGGED_PATH = 512;

/** The path of a raw request target, without its query (which may carry a token). */
export function pathOnly(url: string): string {
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  return path.length > MAX_LOGGED_PATH ? `${path.slice(0, MAX_LOGGED_PATH)}...` : path;
}

export function logAccess(logger: Logger, line: AccessLine): void {
  logger.info(
    {
      interaction_id: line.interactionId,
      method: line.method,
      path: line.path,
      status: line.status,
      duration_ms: Math.round(line.durationMs * 100) / 100,
      client_id: line.clientId,
      sub: line.sub,
      cache: line.cache,
      x5t: line.x5t,
      reason: line.reason,
      detail: line.detail,
      rule: line.rule,
      anonymous: line.anonymous ? true : undefined,
    },
    'request',
  );
}
