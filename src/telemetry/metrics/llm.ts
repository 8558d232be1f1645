// Prometheus metrics for the LLM relay and the transcript writer, fed by their diagnostics_channel events.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type {
  LlmChunkEvent,
  LlmFallbackEvent,
  LlmFirstByteEvent,
  LlmStreamEndEvent,
  TranscriptDropEvent,
  TranscriptFlushEvent,
  TranscriptQueuedEvent,
  TranscriptStoreErrorEvent,
} from '../events.js';
import { HotCounter, HotHistogram } from './hot.js';
import type { CounterCell, HistogramCell } from './hot.js';
import type { Subscription } from './subscription.js';

/** Seconds, from 10 us (an inter-chunk gap on loopback) to 30 s (a slow first token). */
const STREAM_BUCKETS = [
  0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
/** Seconds per transcript transaction, from 50 us to 1 s. */
const FLUSH_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1];

/**
 * Registers the relay's and the transcript writer's metrics on `registry` and returns the event
 * subscriptions that feed them (the caller subscribes and unsubscribes). Streams are labelled by provider
 * and wire format; per-chunk work is one cached histogram child and one counter child per (provider,
 * format); tokens come from the usage each reply reports, aborts are `streams_total{outcome="aborted"}`.
 */
export function llmMetrics(registry: Registry): Subscription[] {
  const registers = [registry];
  const firstByte = new Histogram({
    name: 'slipstream_llm_first_byte_seconds',
    help: 'Time from receiving an LLM request to writing its first chunk to the client, per provider and wire format.',
    labelNames: ['provider', 'format'] as const,
    buckets: STREAM_BUCKETS,
    registers,
  });
  const gap = new HotHistogram({
    name: 'slipstream_llm_chunk_gap_seconds',
    help: 'Time between consecutive chunks relayed on one stream.',
    labelNames: ['provider', 'format'] as const,
    buckets: STREAM_BUCKETS,
    registers,
  });
  const chunks = new HotCounter({
    name: 'slipstream_llm_chunks_total',
    help: 'Chunks relayed to clients.',
    labelNames: ['provider', 'format'] as const,
    registers,
  });
  const streams = new Counter({
    name: 'slipstream_llm_streams_total',
    help: 'Relayed LLM replies by outcome: complete, aborted (client went away) or error.',
    labelNames: ['provider', 'format', 'outcome'] as const,
    registers,
  });
  const tokens = new Counter({
    name: 'slipstream_llm_tokens_total',
    help: "Tokens the providers reported in their replies' usage, by direction (input or output).",
    labelNames: ['provider', 'format', 'direction'] as const,
    registers,
  });
  const fallbacks = new Counter({
    name: 'slipstream_llm_fallbacks_total',
    help: 'Fallbacks to another provider/model before the first byte.',
    labelNames: ['from', 'to', 'reason'] as const,
    registers,
  });
  const flushRows = new Histogram({
    name: 'slipstream_transcript_flush_rows',
    help: 'Rows per transcript transaction.',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250],
    registers,
  });
  const flushDuration = new Histogram({
    name: 'slipstream_transcript_flush_seconds',
    help: 'Duration of one transcript transaction (for SQLite: time the event loop was blocked).',
    buckets: FLUSH_BUCKETS,
    registers,
  });
  const rowsWritten = new Counter({
    name: 'slipstream_transcript_rows_written_total',
    help: 'Transcript rows committed.',
    registers,
  });
  const queueDepth = new Gauge({
    name: 'slipstream_transcript_queue_depth',
    help: 'Transcript rows waiting to be written.',
    registers,
  });
  const storeErrors = new Counter({
    name: 'slipstream_transcript_store_errors_total',
    help: 'Transcript transactions that failed (their rows stay queued and are retried).',
    registers,
  });
  const dropped = new Counter({
    name: 'slipstream_transcript_dropped_rows_total',
    help: 'Transcript rows given up on: queue-full (the store was failing) or shutdown (not written by the deadline).',
    labelNames: ['reason'] as const,
    registers,
  });

  // Per chunk: two Map lookups (format, then provider: no key string built) and two cell updates (`hot.ts`).
  const chunkChildren = new Map<string, Map<string, { gap: HistogramCell; count: CounterCell }>>();
  return [
    [
      events.llmChunk,
      (message) => {
        const e = message as LlmChunkEvent;
        let byProvider = chunkChildren.get(e.format);
        if (byProvider === undefined) {
          byProvider = new Map();
          chunkChildren.set(e.format, byProvider);
        }
        let child = byProvider.get(e.provider);
        if (child === undefined) {
          child = { gap: gap.labels(e.provider, e.format), count: chunks.labels(e.provider, e.format) };
          byProvider.set(e.provider, child);
        }
        child.gap.observe(e.gapMs / 1000);
        child.count.inc();
      },
    ],
    [
      events.llmFirstByte,
      (message) => {
        const e = message as LlmFirstByteEvent;
        firstByte.observe({ provider: e.provider, format: e.format }, e.durationMs / 1000);
      },
    ],
    [
      events.llmStreamEnd,
      (message) => {
        const e = message as LlmStreamEndEvent;
        streams.inc({ provider: e.provider, format: e.format, outcome: e.outcome });
        const input = e.usage?.inputTokens;
        const output = e.usage?.outputTokens;
        if (input !== undefined && input > 0) {
          tokens.inc({ provider: e.provider, format: e.format, direction: 'input' }, input);
        }
        if (output !== undefined && output > 0) {
          tokens.inc({ provider: e.provider, format: e.format, direction: 'output' }, output);
        }
      },
    ],
    [
      events.llmFallback,
      (message) => {
        const e = message as LlmFallbackEvent;
        fallbacks.inc({ from: e.from, to: e.to, reason: e.reason });
      },
    ],
    [
      events.transcriptFlush,
      (message) => {
        const e = message as TranscriptFlushEvent;
        flushRows.observe(e.rows);
        flushDuration.observe(e.durationMs / 1000);
        rowsWritten.inc(e.rows);
        queueDepth.set(e.queueDepth);
      },
    ],
    [
      events.transcriptStoreError,
      (message) => {
        storeErrors.inc();
        queueDepth.set((message as TranscriptStoreErrorEvent).queueDepth);
      },
    ],
    [events.transcriptQueued, (message) => queueDepth.set((message as TranscriptQueuedEvent).queueDepth)],
    [
      events.transcriptDrop,
      (message) => {
        const e = message as TranscriptDropEvent;
        dropped.inc({ reason: e.reason }, e.rows);
      },
    ],
  ];
}
