// The seam between the request path and tracing. Stages and clients take an optional
// `Spans`; without OTEL_EXPORTER_OTLP_ENDPOINT it is undefined and the path does no tracing
// work at all (no SDK loaded, no span objects): `inSpan` then only calls through.
import type { IncomingHttpHeaders } from 'node:http';

export type SpanValue = string | number | boolean;
export type SpanAttributes = Record<string, SpanValue | undefined>;

/** What a stage may add to its span while it runs. Never a token, a JWT or a secret. */
export interface SpanNotes {
  set(name: string, value: SpanValue): void;
  failed(reason: string): void;
}

export interface Spans {
  /** `run` inside a child span of the request's span (no span outside a request). */
  around<T>(name: string, kind: 'internal' | 'client', attributes: SpanAttributes, run: (notes: SpanNotes) => Promise<T>): Promise<T>;
  /** A child span of work already done, synchronously, between two instants (ms since the epoch). */
  record(name: string, startMs: number, endMs: number, attributes: SpanAttributes): void;
}

/** The span of one request, from its head to the end of its response. */
export interface RequestTrace {
  readonly traceId: string;
  /** Runs `run` with this request's span as the active one, so stages below find it. */
  within<T>(run: () => T): T;
  /** A client span for the call to the API; its traceparent goes in the call's headers. */
  upstream(attributes: SpanAttributes): UpstreamSpan;
  end(attributes: SpanAttributes, failure?: string): void;
}

export interface UpstreamSpan {
  headers: { traceparent: string; tracestate?: string };
  end(status: number | undefined, failure?: string): void;
}

export interface Tracing extends Spans {
  /** Continues the partner's W3C Trace Context, or starts a trace. */
  startRequest(headers: IncomingHttpHeaders, attributes: SpanAttributes): RequestTrace;
  close(): Promise<void>;
}

const NO_NOTES: SpanNotes = { set: () => undefined, failed: () => undefined };

export function inSpan<T>(spans: Spans | undefined, name: string, kind: 'internal' | 'client', attributes: SpanAttributes, run: (notes: SpanNotes) => Promise<T>): Promise<T> {
  return spans === undefined ? run(NO_NOTES) : spans.around(name, kind, attributes, run);
}
