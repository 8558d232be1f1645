// Rare state changes worth knowing when a dashboard opens later: breaker transitions and MCP process exits.
import { events } from '../events.js';
import type {
  BreakerState,
  BreakerStateEvent,
  FanoutMemberRemovedEvent,
  McpProcessEvent,
} from '../events.js';
import type { Subscription } from '../metrics/subscription.js';

/** A breaker that has left `closed` at least once since start-up (the others have been closed all along). */
export interface BreakerEntry {
  name: string;
  state: BreakerState;
  /** Epoch ms of its last transition. */
  since: number;
  /** Transitions since start-up. */
  transitions: number;
}

/** How an MCP server's last process ended, when one did. */
export interface ProcessExit {
  reason: string;
  /** Epoch ms. */
  at: number;
}

export interface StateBoard {
  /** Every breaker that ever transitioned, by name. */
  breakers(): BreakerEntry[];
  /** The last unexpected exit or recycle of one of `server`'s processes. */
  lastExit(server: string): ProcessExit | undefined;
  /** Unsubscribes. */
  close(): void;
}

/** Breakers tracked at most (names come from the config and discovery; a bound all the same). */
const MAX_BREAKERS = 10_000;

/**
 * Subscribes for the gateway's whole life to the two channels whose state a dashboard must know from the
 * start, and which carry no per-request traffic: breaker transitions and MCP process exits. Everything
 * per-request is counted only while a dashboard is open (`live-stats.ts`).
 */
export function stateBoard(now: () => number = Date.now): StateBoard {
  const breakers = new Map<string, BreakerEntry>();
  const exits = new Map<string, ProcessExit & { pid: number | undefined }>();
  const subscriptions: Subscription[] = [
    [
      events.breakerState,
      (message) => {
        const e = message as BreakerStateEvent;
        const entry = breakers.get(e.name);
        if (entry !== undefined) {
          entry.state = e.state;
          entry.since = now();
          entry.transitions++;
        } else if (breakers.size < MAX_BREAKERS) {
          breakers.set(e.name, { name: e.name, state: e.state, since: now(), transitions: 1 });
        }
      },
    ],
    [
      events.mcpProcess,
      (message) => {
        const e = message as McpProcessEvent;
        if (e.event === 'started' || e.reason === undefined) return;
        // A recycled process then exits: its recycle says why, the exit that follows does not.
        const last = exits.get(e.server);
        if (e.event === 'exited' && last !== undefined && last.pid === e.pid && e.pid !== undefined) return;
        exits.set(e.server, { reason: e.reason, at: now(), pid: e.pid });
      },
    ],
    [
      events.fanoutMemberRemoved,
      (message) => breakers.delete((message as FanoutMemberRemovedEvent).upstream),
    ],
  ];
  for (const [channel, handler] of subscriptions) channel.subscribe(handler);
  return {
    breakers: () => [...breakers.values()].map((entry) => ({ ...entry })),
    lastExit(server) {
      const exit = exits.get(server);
      return exit === undefined ? undefined : { reason: exit.reason, at: exit.at };
    },
    close() {
      for (const [channel, handler] of subscriptions) channel.unsubscribe(handler);
    },
  };
}
