// MCP metrics: pooled stdio processes started, exited and recycled; each server up or down.
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type { McpProcessEvent, McpServerStateEvent } from '../events.js';
import type { Subscription } from './subscription.js';

/** Registers the MCP pool metrics and returns the subscriptions that feed them. */
export function mcpMetrics(registry: Registry): Subscription[] {
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
