// Prometheus metrics: one prom-client registry fed by the gateway's diagnostics_channel events, one module per feature.
import { Registry, collectDefaultMetrics } from 'prom-client';
import { cacheMetrics } from './metrics/cache.js';
import { compressionMetrics } from './metrics/compression.js';
import { fanoutMetrics } from './metrics/fanout.js';
import { limitMetrics } from './metrics/limits.js';
import { jobMetrics } from './metrics/jobs.js';
import { llmMetrics } from './metrics/llm.js';
import { mcpMetrics } from './metrics/mcp.js';
import { refreshMetrics } from './metrics/refresh.js';
import { requestMetrics } from './metrics/requests.js';
import type { UpstreamConnectionStats } from './metrics/requests.js';
import { resilienceMetrics } from './metrics/resilience.js';

export type { UpstreamConnectionStats };

export interface MetricsOptions {
  /** Reads upstream pool counters when /metrics is scraped. */
  upstreamStats?: () => Iterable<UpstreamConnectionStats>;
  /** Reads the number of client requests in flight when /metrics is scraped. */
  inFlight?: () => number;
  /** Reads the in-process cache's fill when /metrics is scraped. */
  cacheStats?: () => { entries: number; bytes: number } | undefined;
  /** Jobs running in this instance, read when /metrics is scraped. */
  jobsRunning?: () => number;
  /** `/mcp` calls parked for a 2026-07-28 client's input round, read when /metrics is scraped. */
  mcpParked?: () => number;
  /** Node process metrics (event loop lag, heap, GC) with the `slipstream_` prefix. Default true. */
  processMetrics?: boolean;
}

export interface Metrics {
  /** The registry; later features register their own metrics here. */
  readonly registry: Registry;
  readonly contentType: string;
  render(): Promise<string>;
  /** Unsubscribes from every event. */
  close(): void;
}

/**
 * Creates the metrics registry and subscribes every feature's metrics to its events (`src/telemetry/metrics/`:
 * requests, resilience, cache, compression, fan-out, MCP, LLM). Nothing is computed for a channel nobody subscribed to.
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'slipstream_' });
  const subscriptions = [
    ...requestMetrics(registry, options.upstreamStats, options.inFlight),
    ...resilienceMetrics(registry),
    ...cacheMetrics(registry, options.cacheStats),
    ...compressionMetrics(registry),
    ...refreshMetrics(registry),
    ...jobMetrics(registry, options.jobsRunning),
    ...fanoutMetrics(registry),
    ...mcpMetrics(registry, options.mcpParked),
    ...llmMetrics(registry),
    ...limitMetrics(registry),
  ];
  for (const [channel, handler] of subscriptions) channel.subscribe(handler);
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    close() {
      for (const [channel, handler] of subscriptions) channel.unsubscribe(handler);
    },
  };
}
