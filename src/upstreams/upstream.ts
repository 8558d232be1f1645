// The lifecycle every upstream kind shares (HTTP pools, LLM providers, MCP servers, fan-out groups).
import type { UpstreamConnectionStats } from '../telemetry/metrics.js';

/**
 * Something the gateway talks to, with a life: `start` opens it ahead of traffic (warm pools, spawned and
 * initialized processes, a first discovery load) and never fails start-up for a cold upstream; `stats`
 * reads its pool counters for `slipstream_upstream_connections`; `close` waits for calls in flight
 * (bounded by their deadlines) and releases everything.
 */
export interface Upstream {
  readonly name: string;
  start(): Promise<void>;
  stats(): UpstreamConnectionStats[];
  close(): Promise<void>;
}
