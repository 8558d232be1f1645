// What every feature's metrics module returns: the diagnostics_channel subscriptions that feed its metrics.
import type { Channel } from 'node:diagnostics_channel';

/** A channel and the handler that turns its events into metric updates (the caller subscribes both ways). */
export type Subscription = [Channel, (message: unknown) => void];

/** Latency buckets in seconds, from 100 us (a cache hit) to 30 s (a slow LLM call). */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
