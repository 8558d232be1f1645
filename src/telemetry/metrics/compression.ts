// Compression metrics: bytes before and after re-coding per route, the ratio, the time it took, remembered re-codings.
import { Counter, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type { ContentCodingEvent } from '../events.js';
import { LATENCY_BUCKETS } from './subscription.js';
import type { Subscription } from './subscription.js';

/** Registers the content-coding metrics (replies compressed for clients, or decoded for those who cannot take a coding). */
export function compressionMetrics(registry: Registry): Subscription[] {
  const registers = [registry];
  const bytes = new Counter({
    name: 'slipstream_compression_bytes_total',
    help: 'Body bytes of re-coded replies: `identity` (uncompressed size) and `sent` (on the wire), by route and codings.',
    labelNames: ['route', 'from', 'to', 'size'] as const,
    registers,
  });
  const replies = new Counter({
    name: 'slipstream_compression_replies_total',
    help: 'Replies re-coded for a client; remembered="true" when the bytes were re-coded earlier (a cache hit).',
    labelNames: ['route', 'from', 'to', 'remembered'] as const,
    registers,
  });
  const ratio = new Histogram({
    name: 'slipstream_compression_ratio',
    help: 'Bytes sent over identity bytes per re-coded reply (0.2 = five times smaller).',
    labelNames: ['route', 'to'] as const,
    buckets: [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5],
    registers,
  });
  const duration = new Histogram({
    name: 'slipstream_compression_duration_seconds',
    help: 'Time spent re-coding one reply (not counted for remembered ones; for streams, the stream life).',
    labelNames: ['route', 'to'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  return [
    [
      events.contentCoding,
      (message) => {
        const e = message as ContentCodingEvent;
        bytes.inc({ route: e.route, from: e.from, to: e.to, size: 'identity' }, e.identityBytes);
        bytes.inc({ route: e.route, from: e.from, to: e.to, size: 'sent' }, e.sentBytes);
        replies.inc({ route: e.route, from: e.from, to: e.to, remembered: String(e.remembered) });
        if (e.identityBytes > 0) ratio.observe({ route: e.route, to: e.to }, e.sentBytes / e.identityBytes);
        if (!e.remembered) duration.observe({ route: e.route, to: e.to }, e.durationMs / 1000);
      },
    ],
  ];
}
