// Purges across instances: a purge or invalidation on one gateway is published on Redis and applied to every L1.
import { randomBytes } from 'node:crypto';
import type { RedisConnection } from './redis-connection.js';

/** What to drop from the in-process tier: keys by prefix (admin purge), or whole key groups (a write, RFC 9111 §4.4). */
export type PurgeOperation = { prefix: string } | { groups: readonly string[] };

export interface PurgeBusOptions {
  connection: RedisConnection;
  /** Pub/sub channel. Default `slipstream:purge`. */
  channel?: string;
  /** Applies an operation announced by another instance (to this instance's in-process tier). */
  onPurge: (operation: PurgeOperation) => Promise<unknown>;
}

export interface PurgeBus {
  /** Tells every other instance to apply `operation`; resolves false when Redis could not be told. */
  announce(operation: PurgeOperation): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Subscribes on a second connection (a subscribed connection can do nothing else) and re-subscribes
 * after every reconnect. Messages are `<origin id> <operation as JSON>`; an instance ignores its own,
 * and any message it cannot read.
 */
export function purgeBus(options: PurgeBusOptions): PurgeBus {
  const channel = options.channel ?? 'slipstream:purge';
  const origin = randomBytes(8).toString('hex');
  const subscriber = options.connection.duplicate();
  const onMessage = (message: Buffer | string) => {
    const text = message.toString();
    const space = text.indexOf(' ');
    if (space === -1 || text.slice(0, space) === origin) return;
    const operation = readOperation(text.slice(space + 1));
    if (operation !== undefined) options.onPurge(operation).catch(() => {});
  };
  const subscribe = () => {
    subscriber.subscribe(channel, onMessage).catch(() => {}); // retried on the next 'ready'
  };
  // node-redis restores subscriptions itself after a reconnect; this covers a Redis that was down at start.
  subscriber.once('ready', subscribe);
  subscriber.connect().catch(() => {});

  return {
    async announce(operation) {
      try {
        const message = `${origin} ${JSON.stringify(operation)}`;
        await options.connection.timed(options.connection.client.publish(channel, message));
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      if (subscriber.isOpen) subscriber.destroy();
    },
  };
}

function readOperation(json: string): PurgeOperation | undefined {
  try {
    const value = JSON.parse(json) as { prefix?: unknown; groups?: unknown };
    if (typeof value.prefix === 'string') return { prefix: value.prefix };
    if (Array.isArray(value.groups) && value.groups.every((g) => typeof g === 'string'))
      return { groups: value.groups };
  } catch {
    // not ours
  }
  return undefined;
}
