// MCP metrics: pooled stdio processes started, exited and recycled; each server up or down; parked calls.
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type { McpProcessEvent, McpServerStateEvent } from '../events.js';
import type { Subscription } from './subscription.js';

/**
 * Registers the MCP pool metrics and returns the subscriptions that feed them; `parked` is read at scrape
 * time (calls of 2025-era servers parked for a 2026-07-28 client's input round).
 */
export function mcpMetrics(registry: Registry, parked?: () => number): Subscription[] {
  const processes = new Counter({
    name: 'slipstream_mcp_processes_total',
    help: 'MCP stdio pool processes started, exited unexpectedly (recycled ones included), or recycled for missing a ping.',
    labelNames: ['server', 'event'] as const,
    registers: [registry],
  });
  const up = new Gauge({
    name: 'slipstream_mcp_server_up',
    help: 'Whether an MCP server serves calls (1) or is down (0: no process could start, or its URL does not answer; retried in the background).',
    labelNames: ['server'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'slipstream_mcp_parked_calls',
    help: 'MCP calls of 2025-era servers parked now, waiting for a 2026-07-28 client to answer an input round (bounded by mcp.maxParkedCalls).',
    registers: [registry],
    collect() {
      if (parked !== undefined) this.set(parked());
    },
  });
  return [
    [
      events.mcpProcess,
      (message) => {
        const e = message as McpProcessEvent;
        processes.inc({ server: e.server, event: e.event });
      },
    ],
    [
      events.mcpServerState,
      (message) => {
        const e = message as McpServerStateEvent;
        up.set({ server: e.server }, e.up ? 1 : 0);
      },
    ],
  ];
}
