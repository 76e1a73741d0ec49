// Logging: pino, JSON to stdout, one line per request.
// The access line is built field by field from values the pipeline chose to expose, so a
// token, a JWT, a secret or a key cannot reach it by accident; the redact paths below are
// a second belt for anything logged with a request or error object attached.
import type { LRUCache } from 'lru-cache';
import { growingLru } from './growing-lru.ts';
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/config.ts';
import type { RefusalReason } from './reasons.ts';


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

export function createLogger(level: LogLevel, destination?: pino.DestinationStream, time: 'epoch' | 'iso' = 'epoch'): Logger {
  const options: pino.LoggerOptions = {
    level,
    ...(time === 'iso' ? { timestamp: pino.stdTimeFunctions.isoTime } : {}),
    base: { service: 'phantom-sidecar' },
    // pino's default epoch-millisecond `time`: cheaper than an ISO string on every line.
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  if (destination !== undefined) return pino(options, destination);
  const stdout = new LineBatch(pino.destination({ dest: 1, sync: true }));
  setInterval(() => stdout.flush(), 1000).unref();
  process.once('exit', () => stdout.flush());
  return pino(options, stdout);
}

// Lines leave stdout in batches of 8 KiB or more instead of one write(2) each, and at least
// once a second when traffic is light.
const BATCH_CHARS = 8192;

/**
 * Every log line of the process, in order, gathered into one synchronous write per batch.
 * Written here because sonic-boom's own batching (minLength) measures the byte length of its
 * whole pending buffer on every line (about 3 µs a line at 8 KiB, against 0.7 µs here), and its
 * asynchronous mode pays a thread-pool round trip per write (10 µs a line measured, on the
 * one core a sidecar is given). Synchronous, as Node's own stdout is on Linux for files and
 * pipes: a log reader that stops reading slows the sidecar down rather than growing its
 * memory without bound. sonic-boom still does the writing (partial writes, EAGAIN).
 */
/** Where a batch goes: pino's own destination (sonic-boom), which can be flushed. */
type BatchTarget = pino.DestinationStream & { flush?: (done?: (error?: Error) => void) => void };

export class LineBatch implements pino.DestinationStream {
  readonly #target: BatchTarget;
  #lines: string[] = [];
  #chars = 0;

  constructor(target: BatchTarget) {
    this.#target = target;
  }

  write(line: string): void {
    this.#lines.push(line);
    this.#chars += line.length;
    if (this.#chars >= BATCH_CHARS) this.#send();
  }

  /** pino's logger.flush(): what is gathered goes out now. */
  flush(done?: (error?: Error) => void): void {
    this.#send();
    if (this.#target.flush === undefined) done?.();
    else this.#target.flush(done);
  }

  #send(): void {
    if (this.#chars === 0) return;
    const text = this.#lines.length === 1 ? (this.#lines[0] ?? '') : this.#lines.join('');
    this.#lines = [];
    this.#chars = 0;
    this.#target.write(text);
  }
}

/** How the introspection answer was found: cached, asked for, joined a call under way, or from another pod. */
export type CacheOutcome = 'hit' | 'miss' | 'shared' | 'fleet' | 'stale' | 'none';

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
  /** Who called, over what: the same for every request of a connection and partner. */
  connection?: ConnectionFacts | undefined;
  /** At most 256 characters, as the client sent it. */
  userAgent?: string | undefined;
  /** The API's own answer, apart from the sidecar's: its status and the time to its response head. */
  upstreamStatus?: number | undefined;
  upstreamMs?: number | undefined;
  traceId?: string | undefined;
}

/** Where the connection came from, as the sidecar's socket sees it, and the partner certificate beside x5t. */
export interface ConnectionFacts {
  clientAddress: string | undefined;
  clientPort: number | undefined;
  tlsVersion: string | undefined;
  /** Subject, issuer and serial as the refused-handshake line names them (certificateNames). */
  certSubject: string | undefined;
  certIssuer: string | undefined;
  certSerial: string | undefined;
  /** The same as the access line's members, prepared once per connection and partner. */
  readonly json: string;
}

export function connectionFacts(facts: Omit<ConnectionFacts, 'json'>): ConnectionFacts {
  let json = '';
  if (facts.clientAddress !== undefined) json += `,"client_address":${JSON.stringify(facts.clientAddress)}`;
  if (facts.clientPort !== undefined) json += `,"client_port":${facts.clientPort}`;
  if (facts.tlsVersion !== undefined) json += `,"tls_version":${JSON.stringify(facts.tlsVersion)}`;
  if (facts.certSubject !== undefined) json += `,"cert_subject":${JSON.stringify(facts.certSubject)}`;
  if (facts.certIssuer !== undefined) json += `,"cert_issuer":${JSON.stringify(facts.certIssuer)}`;
  if (facts.certSerial !== undefined) json += `,"cert_serial":${JSON.stringify(facts.certSerial)}`;
  return { ...facts, json };
}

// A refused target is logged as received (a security analyst wants it) but not without end.
const MAX_LOGGED_PATH = 512;

/** A client's text cut to what a log line can afford, marked where it was cut. */
export function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/** The path of a raw request target, without its query (which may carry a token). */
export function pathOnly(url: string): string {
  const query = url.indexOf('?');
  return cut(query === -1 ? url : url.slice(0, query), MAX_LOGGED_PATH);
}

// pino's level number for `info`: the access line is written only when that level is enabled.
const INFO = 30;

/**
 * The access line's writer, on the logger's own stream. The line has a fixed shape built from
 * safe values (never an object that could carry a token), so it is written as one prepared
 * string in pino's format: pino's generic path (redaction, serialisers, a walk over an object
 * made per request) would cost time on every request for nothing.
 */
export function accessWriter(logger: Logger, time: 'epoch' | 'iso' = 'epoch'): (line: AccessLine) => void {
  const stream = (logger as unknown as Record<symbol, pino.DestinationStream>)[pino.symbols.streamSym];
  if (stream === undefined || logger.levelVal > INFO) return () => {};
  if (time === 'iso') return (line) => stream.write(accessLineText(line, `"${new Date().toISOString()}"`));
  return (line) => stream.write(accessLineText(line, Date.now()));
}

const str = (value: string): string => JSON.stringify(value);

/** One access line as pino would write it: same fields, same order, undefined ones left out. */
export function accessLineText(line: AccessLine, time: number | string): string {
  let text = `{"level":"info","time":${time},"service":"phantom-sidecar","interaction_id":${JSON.stringify(line.interactionId)},"method":${JSON.stringify(line.method)},"path":${JSON.stringify(line.path)},"status":${line.status},"duration_ms":${Math.round(line.durationMs * 100) / 100}`;
  if (line.clientId !== undefined) text += `,"client_id":${JSON.stringify(line.clientId)}`;
  if (line.sub !== undefined) text += `,"sub":${JSON.stringify(line.sub)}`;
  text += `,"cache":${JSON.stringify(line.cache)}`;
  if (line.x5t !== undefined) text += `,"x5t":${JSON.stringify(line.x5t)}`;
  if (line.reason !== undefined) text += `,"reason":${JSON.stringify(line.reason)}`;
  if (line.detail !== undefined) text += `,"detail":${JSON.stringify(line.detail)}`;
  if (line.rule !== undefined) text += `,"rule":${JSON.stringify(line.rule)}`;
  if (line.anonymous) text += ',"anonymous":true';
  if (line.upstreamStatus !== undefined) text += `,"upstream_status":${line.upstreamStatus}`;
  if (line.upstreamMs !== undefined) text += `,"upstream_ms":${Math.round(line.upstreamMs * 100) / 100}`;
  if (line.connection !== undefined) text += line.connection.json;
  if (line.userAgent !== undefined) text += `,"user_agent":${str(line.userAgent)}`;
  if (line.traceId !== undefined) text += `,"trace_id":${str(line.traceId)}`;
  return `${text},"msg":"request"}\n`;
}

/**
 * At most one line per key and interval, so a flood of the same failure cannot flood the log
 * (nor grow memory: keys are bounded). The line that is let through says how many of its
 * kind were held back since the last one.
 */
export class LogThrottle {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #last: LRUCache<string, { at: number; suppressed: number }>;

  constructor(intervalMs: number, now: () => number = Date.now, maxKeys = 10_000) {
    this.#intervalMs = intervalMs;
    this.#now = now;
    this.#last = growingLru(maxKeys);
  }

  /** The count held back since the last line of this key, when a line may go out now; else undefined. */
  admit(key: string): number | undefined {
    const now = this.#now();
    const last = this.#last.get(key);
    if (last !== undefined && now - last.at < this.#intervalMs) {
      last.suppressed += 1;
      return undefined;
    }
    this.#last.set(key, { at: now, suppressed: 0 });
    return last?.suppressed ?? 0;
  }
}
