// OpenTelemetry tracing: a server span per request, a client span per upstream attempt, W3C context upstream.
import type { Channel } from 'node:diagnostics_channel';
import type * as OtelApi from '@opentelemetry/api';
import type { Span } from '@opentelemetry/api';
import type * as OtelCore from '@opentelemetry/core';
import type * as OtlpHttp from '@opentelemetry/exporter-trace-otlp-http';
import type * as OtelResources from '@opentelemetry/resources';
import type * as OtelTraceBase from '@opentelemetry/sdk-trace-base';
import { optionalDependency } from '../optional-dependency.js';
import type { Call, RequestContext } from '../pipeline/types.js';
import { events } from './events.js';
import type { AttemptEndEvent, AttemptStartEvent, RequestEndEvent, RequestStartEvent } from './events.js';

// Loaded by the first `startTracing`: a gateway without an OTLP endpoint never loads the SDK.
const otel = {
  api: optionalDependency<typeof OtelApi>('@opentelemetry/api'),
  core: optionalDependency<typeof OtelCore>('@opentelemetry/core'),
  otlp: optionalDependency<typeof OtlpHttp>('@opentelemetry/exporter-trace-otlp-http'),
  resources: optionalDependency<typeof OtelResources>('@opentelemetry/resources'),
  traceBase: optionalDependency<typeof OtelTraceBase>('@opentelemetry/sdk-trace-base'),
};

export interface TracingOptions {
  /** OTLP/HTTP base URL; spans are POSTed to `<endpoint>/v1/traces`. */
  endpoint: string;
  /** Default `slipstream`. */
  serviceName?: string;
  /** Fraction of new traces sampled (0..1); an incoming sampled parent is always followed. Default 1. */
  sampleRatio?: number;
  /** Extra headers for the exporter (collector auth). */
  headers?: Record<string, string>;
}

export interface Tracing {
  /** Unsubscribes and flushes pending spans. */
  shutdown(): Promise<void>;
}

/**
 * Starts tracing. Only called when an endpoint is configured, so tracing costs nothing when off.
 * The request span continues an incoming `traceparent`; each upstream attempt gets a child client span
 * whose context is injected into the attempt's headers, so the upstream joins the same trace.
 */
export function startTracing(options: TracingOptions): Tracing {
  const { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter, trace } =
    otel.api();
  const { W3CTraceContextPropagator } = otel.core();
  const { OTLPTraceExporter } = otel.otlp();
  const { resourceFromAttributes } = otel.resources();
  const { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } =
    otel.traceBase();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName ?? 'slipstream' }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio ?? 1) }),
    spanProcessors: [
      new BatchSpanProcessor(
        new OTLPTraceExporter({
          url: `${options.endpoint.replace(/\/$/, '')}/v1/traces`,
          headers: options.headers,
        }),
        { scheduledDelayMillis: 1000 },
      ),
    ],
  });
  const tracer = provider.getTracer('slipstream');
  const propagator = new W3CTraceContextPropagator();
  const requestSpans = new WeakMap<RequestContext, Span>();
  const attemptSpans = new WeakMap<Call, Span>();

  const subscriptions: Array<[Channel, (message: unknown) => void]> = [
    [
      events.requestStart,
      (message) => {
        const e = message as RequestStartEvent;
        const parent = propagator.extract(ROOT_CONTEXT, e.headers, defaultTextMapGetter);
        const span = tracer.startSpan(
          `${e.method} ${e.ctx.route}`,
          {
            kind: SpanKind.SERVER,
            attributes: {
              'http.request.method': e.method,
              'url.path': e.path,
              'slipstream.route': e.ctx.route,
            },
          },
          parent,
        );
        requestSpans.set(e.ctx, span);
      },
    ],
    [
      events.requestEnd,
      (message) => {
        const e = message as RequestEndEvent;
        const span = requestSpans.get(e.ctx);
        if (span === undefined) return;
        span.setAttribute('http.response.status_code', e.status);
        if (e.errorCode !== undefined) span.setAttribute('error.type', e.errorCode);
        if (e.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: e.errorCode });
        span.end();
        requestSpans.delete(e.ctx);
      },
    ],
    [
      events.attemptStart,
      (message) => {
        const e = message as AttemptStartEvent;
        const parentSpan = requestSpans.get(e.call.ctx);
        const parent = parentSpan === undefined ? ROOT_CONTEXT : trace.setSpan(ROOT_CONTEXT, parentSpan);
        const span = tracer.startSpan(
          `upstream ${e.call.upstream}`,
          {
            kind: SpanKind.CLIENT,
            attributes: {
              'slipstream.upstream': e.call.upstream,
              'http.request.method': e.call.method,
              'url.path': e.call.path,
              'slipstream.attempt': e.call.ctx.attempts + 1,
            },
          },
          parent,
        );
        attemptSpans.set(e.call, span);
        propagator.inject(trace.setSpan(ROOT_CONTEXT, span), e.headers, defaultTextMapSetter);
      },
    ],
    [
      events.attemptEnd,
      (message) => {
        const e = message as AttemptEndEvent;
        const span = attemptSpans.get(e.call);
        if (span === undefined) return;
        if (e.status !== undefined) span.setAttribute('http.response.status_code', e.status);
        if (e.errorCode !== undefined) {
          span.setAttribute('error.type', e.errorCode);
          span.setStatus({ code: SpanStatusCode.ERROR, message: e.errorCode });
        }
        span.end();
        attemptSpans.delete(e.call);
      },
    ],
  ];
  for (const [channel, handler] of subscriptions) channel.subscribe(handler);

  return {
    async shutdown() {
      for (const [channel, handler] of subscriptions) channel.unsubscribe(handler);
      await provider.shutdown();
    },
  };
}
