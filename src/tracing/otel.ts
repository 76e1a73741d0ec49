// OpenTelemetry tracing, loaded (a dynamic import) only when an OTLP endpoint is configured.
// The OpenTelemetry JS API and SDK do the work: W3C Trace Context, the sampler, batching and
// the OTLP/HTTP exporters (protobuf or JSON). The tracer provider is the sidecar's own, not
// the process-global one, so nothing else in the process can add to or read from it.
import { context, trace, SpanKind, SpanStatusCode, type Attributes, type Context, type Span, type TextMapGetter } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { IncomingHttpHeaders } from 'node:http';
import type { TracingConfig } from '../config/config.ts';
import { VERSION } from '../version.ts';
import type { RequestTrace, SpanAttributes, SpanNotes, Tracing, UpstreamSpan } from './seam.ts';

const headerGetter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

function clean(attributes: SpanAttributes): Attributes {
  const out: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) out[key] = value;
  return out;
}

function samplerOf(config: TracingConfig['sampler']): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.ratio);
  switch (config.name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio;
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

async function exporterOf(config: TracingConfig): Promise<SpanExporter> {
  const options = { url: config.endpoint, headers: config.headers, timeoutMillis: config.timeoutMs };
  if (config.protocol === 'http/json') {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    return new OTLPTraceExporter(options);
  }
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
  return new OTLPTraceExporter(options);
}

function notesOf(span: Span): SpanNotes {
  return {
    set: (name, value) => span.setAttribute(name, value),
    failed: (reason) => {
      span.setAttribute('phantom.failure', reason);
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
    },
  };
}

export async function startTracing(config: TracingConfig): Promise<Tracing> {
  // Context follows awaits through AsyncLocalStorage; setting it is a no-op if one is set.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const resource = resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName, [ATTR_SERVICE_VERSION]: VERSION }).merge(detectResources({ detectors: [envDetector] }));
  const provider = new BasicTracerProvider({
    resource,
    sampler: samplerOf(config.sampler),
    spanProcessors: [new BatchSpanProcessor(await exporterOf(config), { scheduledDelayMillis: config.scheduledDelayMs })],
  });
  const tracer = provider.getTracer('phantom-sidecar', VERSION);
  const propagator = new W3CTraceContextPropagator();
  // Child spans only under a request's span: background work (revocation events, a fleet
  // health ping) would otherwise make root spans of its own.
  const parentOf = (): Context | undefined => (trace.getSpan(context.active()) === undefined ? undefined : context.active());

  return {
    async around(name, kind, attributes, run) {
      const parent = parentOf();
      if (parent === undefined) return run({ set: () => undefined, failed: () => undefined });
      const span = tracer.startSpan(name, { kind: kind === 'client' ? SpanKind.CLIENT : SpanKind.INTERNAL, attributes: clean(attributes) }, parent);
      try {
        return await context.with(trace.setSpan(parent, span), () => run(notesOf(span)));
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' });
        throw error;
      } finally {
        span.end();
      }
    },
    record(name, startMs, endMs, attributes) {
      const parent = parentOf();
      if (parent === undefined) return;
      tracer.startSpan(name, { startTime: startMs, attributes: clean(attributes) }, parent).end(endMs);
    },
    startRequest(headers, attributes): RequestTrace {
      const remote = propagator.extract(context.active(), headers, headerGetter);
      const span = tracer.startSpan('phantom-sidecar request', { kind: SpanKind.SERVER, attributes: clean(attributes) }, remote);
      const own = trace.setSpan(remote, span);
      return {
        traceId: span.spanContext().traceId,
        within: (run) => context.with(own, run),
        upstream(upstreamAttributes): UpstreamSpan {
          const client = tracer.startSpan('upstream', { kind: SpanKind.CLIENT, attributes: clean(upstreamAttributes) }, own);
          const carrier: Record<string, string> = {};
          propagator.inject(trace.setSpan(own, client), carrier, { set: (target, key, value) => (target[key] = value) });
          return {
            headers: { traceparent: carrier.traceparent ?? '', ...(carrier.tracestate === undefined ? {} : { tracestate: carrier.tracestate }) },
            end(status, failure) {
              if (status !== undefined) client.setAttribute('http.response.status_code', status);
              if (failure !== undefined || (status ?? 0) >= 500) client.setStatus({ code: SpanStatusCode.ERROR, ...(failure === undefined ? {} : { message: failure }) });
              client.end();
            },
          };
        },
        end(endAttributes, failure) {
          span.setAttributes(clean(endAttributes));
          if (failure !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: failure });
          span.end();
        },
      };
    },
    close: () => provider.shutdown(),
  };
}
