// Purges across instances: an admin purge on one gateway is published on Redis and applied to every L1.
import { randomBytes } from 'node:crypto';
import type { RedisConnection } from './redis-connection.js';

export interface PurgeBusOptions {
  connection: RedisConnection;
  /** Pub/sub channel. Default `slipstream:purge`. */
  channel?: string;
  /** Applies a purge announced by another instance (to this instance's in-process tier). */
  onPurge: (prefix: string) => Promise<unknown>;
}

export interface PurgeBus {
  /** Tells every other instance to purge `prefix`; resolves false when Redis could not be told. */
  announce(prefix: string): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Subscribes on a second connection (a subscribed connection can do nothing else) and re-subscribes
 * after every reconnect. Messages are `<origin id> <prefix>`; an instance ignores its own.
 */
export function purgeBus(options: PurgeBusOptions): PurgeBus {
  const channel = options.channel ?? 'slipstream:purge';
  const origin = randomBytes(8).toString('hex');
  const subscriber = options.connection.duplicate();
  const onMessage = (message: Buffer | string) => {
    const text = message.toString();
    const space = text.indexOf(' ');
    if (space === -1 || text.slice(0, space) === origin) return;
    options.onPurge(text.slice(space + 1)).catch(() => {});
  };
  const subscribe = () => {
    subscriber.subscribe(channel, onMessage).catch(() => {}); // retried on the next 'ready'
  };
  // node-redis restores subscriptions itself after a reconnect; this covers a Redis that was down at start.
  subscriber.once('ready', subscribe);
  subscriber.connect().catch(() => {});

  return {
    async announce(prefix) {
      try {
        await options.connection.timed(options.connection.client.publish(channel, `${origin} ${prefix}`));
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
